"""Choosing, on the dev split, how much of the first-stage score a trained reranker keeps.

A cross-encoder trained on a few hundred queries is rarely better than BM25 everywhere; the weighted mean
of the two (normalized) scores usually beats both. How much the first stage deserves depends on the first
stage: a hybrid fusion is better than BM25 and should keep more. So the weight is chosen per first stage, on
dev queries the model never trained on, ranked by the same plan that will serve them (`neurank eval`'s
modes), over the depth the rerank stage reorders, and saved beside the model (`rerank.json`) so that
`--rerank-model DIR` applies it; `--first-stage-weight` overrides it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.eval.datasets import Qrels, load_qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.eval.runner import run_mode
from neurank.query.late_interaction import late_interaction_stage
from neurank.query.rerank import CALIBRATION_FILE, DEFAULT_RERANK_DEPTH, Reranker, interpolate, load_reranker
from neurank.query.target import SearchTarget
from neurank.retrieval import ScoredIds, Technique
from neurank.train.config import TrainConfig
from neurank.train.data import read_passages, subsample, training_split
from neurank.train.evaluation import DEV_MEASURE, Scorer

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(10))
"""First-stage weights tried: 0 (the cross-encoder alone) to 0.9."""
FIRST_STAGES = ("bm25", "hybrid")
"""First stages `neurank train calibrate` chooses a weight for unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Calibration:
    first_stage: str
    """The first stage whose candidates chose the weight (a retrieval mode: `bm25`, `hybrid`, …)."""
    first_stage_weight: float
    normalization: Technique
    measure: str
    depth: int
    queries: int
    by_weight: dict[str, float]
    """Dev `measure` at each weight tried."""
    chosen_on: str = ""
    """Which queries and candidates: dataset, split, first stage."""


def save_calibrations(folder: Path, calibrations: Sequence[Calibration]) -> None:
    """Write `rerank.json`; weights already there for other first stages (same normalization) are kept."""
    path = Path(folder) / CALIBRATION_FILE
    normalization = calibrations[0].normalization
    if len({calibration.normalization for calibration in calibrations}) > 1:
        raise ConfigError("one rerank.json holds one normalization; calibrate each normalization apart")
    kept: dict[str, Any]
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        kept = dict(saved["first_stages"]) if saved["normalization"] == normalization else {}
    except (OSError, ValueError, KeyError, TypeError):
        kept = {}
    first_stages = {**kept, **{calibration.first_stage: asdict(calibration) for calibration in calibrations}}
    path.write_text(json.dumps({"normalization": normalization, "first_stages": first_stages}, indent=2),
                    encoding="utf-8")


class CachedScorer:
    """A scorer that scores each (query, passage) pair once: first stages share most of their candidates."""

    def __init__(self, score: Scorer) -> None:
        self.score = score
        self.seen: dict[tuple[str, str], float] = {}

    def __call__(self, query: str, passages: Sequence[str]) -> np.ndarray:
        missing = [passage for passage in dict.fromkeys(passages) if (query, passage) not in self.seen]
        if missing:
            self.seen.update(zip(((query, passage) for passage in missing),
                                 np.asarray(self.score(query, missing), dtype=np.float64).tolist(), strict=True))
        return np.array([self.seen[query, passage] for passage in passages], dtype=np.float64)


def calibrate(score: Scorer, queries: Mapping[str, str], qrels: Qrels, runs: Mapping[str, ScoredIds],
              corpus: Mapping[str, str], *, depth: int, first_stage: str = "bm25",
              normalization: Technique = "min_max", weights: Sequence[float] = WEIGHTS, chosen_on: str = "",
              on_query: Callable[[], None] | None = None) -> Calibration:
    """Score each dev query's top `depth` candidates once, then pick the weight with the best dev metric.

    Ties go to the smaller first-stage weight (the cross-encoder's own order is preferred).
    """
    windows: dict[str, tuple[ScoredIds, np.ndarray]] = {}
    for query_id in qrels:
        window = list(runs.get(query_id, [])[:depth])
        if window:
            windows[query_id] = (window, np.asarray(score(queries[query_id], [corpus[d] for d, _ in window])))
        if on_query:
            on_query()
    by_weight = {}
    for weight in weights:
        run = {query_id: dict(zip([d for d, _ in window], interpolate(window, logits, weight, normalization)
                                  .final.tolist(), strict=True))
               for query_id, (window, logits) in windows.items()}
        by_weight[weight] = next(iter(evaluate(qrels, run, (DEV_MEASURE,)).values()))
    best = max(weights, key=lambda weight: (by_weight[weight], -weight))
    return Calibration(first_stage, best, normalization, DEV_MEASURE, depth, len(windows),
                       {f"{weight:.1f}": round(value, 4) for weight, value in by_weight.items()}, chosen_on)


def dev_sample(dataset: Path, *, split: str = "dev", queries: int = 100, seed: int = 42) -> Qrels:
    """The seeded sample of `split`'s judged queries that calibration scores.

    `dev` is what training held out as dev: the dataset's dev split, or (SciFact has none) the seeded
    carve-out of train that the model never trained on. Any other split is read as it is.
    """
    config = TrainConfig(base="", seed=seed, dev_queries=queries)  # the split needs no model
    if split == config.dev_split:
        return training_split(dataset, config)[1]
    return subsample(load_qrels(dataset, split), queries, seed)


def calibrate_model(model: Path, dataset: Path, qrels: Qrels, settings: Settings, *, target: SearchTarget,
                    first_stages: Sequence[str] = FIRST_STAGES, split: str = "dev",
                    depth: int = DEFAULT_RERANK_DEPTH, on_query: Callable[[], None] | None = None
                    ) -> list[Calibration]:
    """Calibrate a trained cross-encoder folder (or, when `model` is the target's late-interaction model, that
    stage) on `qrels` (`dataset`'s `split`, usually a `dev_sample`), one weight per first stage, into its
    `rerank.json`. A first stage may itself end in `+colbert`: the cross-encoder of a cascade is calibrated on
    what late interaction hands it.

    `target` holds the dataset indexed as `neurank eval` indexes it, so each first stage ranks the dev queries
    exactly as it will rank test queries. The weight depends on the collection as
    much as on the model (how good the first stage is there, how far the model is from its training data), so
    a model reused elsewhere is calibrated on that collection; pairs are scored by the runtime that will serve
    them (the int8 export by default), each pair once across first stages.
    """
    if not (Path(model) / "config.json").is_file():
        raise ConfigError(f"{model} is not a model folder: calibration writes its {CALIBRATION_FILE} there")
    texts = load_queries(dataset)
    colbert = target.encoders.colbert
    if colbert is not None and Path(colbert.model) == Path(model):
        reranker: Reranker | None = late_interaction_stage(colbert)
    else:
        reranker = load_reranker(settings.model_copy(update={"rerank_first_stage_weight": 0.0}), str(model))
    assert reranker is not None
    score, corpus = CachedScorer(reranker.scores), read_passages(dataset)
    dev_queries = {query_id: texts[query_id] for query_id in qrels}
    searcher = target.searcher()
    plans = {stage: searcher.plan(stage, k=depth, depth=depth, implied=False) for stage in first_stages}
    calibrations = []
    for first_stage, plan in plans.items():
        run, _ = run_mode(searcher, plan, dev_queries)
        runs = {query_id: list(scores.items()) for query_id, scores in run.items()}
        calibrations.append(calibrate(score, texts, qrels, runs, corpus, depth=depth, first_stage=first_stage,
                                      chosen_on=f"{Path(dataset).name} {split} ({len(qrels)} queries, "
                                                f"{first_stage} top {depth})", on_query=on_query))
    save_calibrations(Path(model), calibrations)
    return calibrations
