"""Choosing, on the dev split, how much of the first-stage score a trained reranker keeps.

A cross-encoder trained on a few hundred queries is rarely better than BM25 everywhere; the weighted mean
of the two (normalized) scores usually beats both. The weight is chosen on dev queries the model never
trained on, over the same depth the rerank stage reorders, and saved beside the model (`rerank.json`) so
that `--rerank-model DIR` applies it; `--first-stage-weight` overrides it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.eval.datasets import Qrels, load_qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.query.plan import Technique
from neurank.query.rerank import CALIBRATION_FILE, DEFAULT_RERANK_DEPTH, interpolate, load_reranker
from neurank.stores.protocol import ScoredIds
from neurank.train.data import read_passages, subsample
from neurank.train.evaluation import DEV_MEASURE, Scorer
from neurank.train.first_stage import Source, first_stage_runs

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(10))
"""First-stage weights tried: 0 (the cross-encoder alone) to 0.9."""


@dataclass(frozen=True, slots=True)
class Calibration:
    first_stage_weight: float
    normalization: Technique
    measure: str
    depth: int
    queries: int
    by_weight: dict[str, float]
    """Dev `measure` at each weight tried."""
    chosen_on: str = ""
    """Which queries and candidates: dataset, split, first stage."""

    def save(self, folder: Path) -> None:
        (folder / CALIBRATION_FILE).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")


def calibrate(score: Scorer, queries: Mapping[str, str], qrels: Qrels, runs: Mapping[str, ScoredIds],
              corpus: Mapping[str, str], *, depth: int, normalization: Technique = "min_max",
              weights: Sequence[float] = WEIGHTS, chosen_on: str = "") -> Calibration:
    """Score each dev query's top `depth` candidates once, then pick the weight with the best dev metric.

    Ties go to the smaller first-stage weight (the cross-encoder's own order is preferred).
    """
    windows: dict[str, tuple[ScoredIds, np.ndarray]] = {}
    for query_id in qrels:
        window = list(runs.get(query_id, [])[:depth])
        if window:
            windows[query_id] = (window, np.asarray(score(queries[query_id], [corpus[d] for d, _ in window])))
    by_weight = {}
    for weight in weights:
        run = {query_id: dict(zip([d for d, _ in window], interpolate(window, logits, weight, normalization)
                                  .final.tolist(), strict=True))
               for query_id, (window, logits) in windows.items()}
        by_weight[weight] = next(iter(evaluate(qrels, run, (DEV_MEASURE,)).values()))
    best = max(weights, key=lambda weight: (by_weight[weight], -weight))
    return Calibration(best, normalization, DEV_MEASURE, depth, len(windows),
                       {f"{weight:.1f}": round(value, 4) for weight, value in by_weight.items()}, chosen_on)


def calibrate_model(model: Path, dataset: Path, settings: Settings, *, split: str = "dev", queries: int = 100,
                    source: Source = "bm25", depth: int = DEFAULT_RERANK_DEPTH, seed: int = 42) -> Calibration:
    """Calibrate a trained cross-encoder folder for another collection; its `rerank.json` is rewritten.

    The weight depends on the collection as much as on the model (how good the first stage is there, how far
    the model is from its training data), so a model reused elsewhere is calibrated on that collection's dev
    queries, scored by the runtime that will serve it (the int8 export by default).
    """
    if not (Path(model) / "config.json").is_file():
        raise ConfigError(f"{model} is not a model folder: calibration writes its {CALIBRATION_FILE} there")
    qrels = subsample(load_qrels(dataset, split), queries, seed)
    texts = load_queries(dataset)
    runs = first_stage_runs(dataset, {query_id: texts[query_id] for query_id in qrels}, settings, source=source,
                            depth=depth)
    reranker = load_reranker(settings.model_copy(update={"rerank_first_stage_weight": 0.0}), str(model))
    assert reranker is not None
    calibration = calibrate(reranker.scores, texts, qrels, runs, read_passages(dataset), depth=depth,
                            chosen_on=f"{Path(dataset).name} {split} ({len(qrels)} queries, {source} top {depth})")
    calibration.save(Path(model))
    return calibration
