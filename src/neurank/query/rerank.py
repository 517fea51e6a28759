"""Cross-encoder rerank of the top fused hits, run by the ONNX (or torch) cross-encoder.

A small cross-encoder trained on a few hundred queries knows things the first stage does not, and misses
things it knows; interpolating the two scores (Nogueira et al.'s monoBERT + BM25, Pyserini's
`--hybrid`) usually beats either alone. The first-stage weight sets the first stage's share, calibrated per
first stage (a hybrid fusion deserves a larger share than BM25); the two score lists are normalized and
combined with OpenSearch's fusion semantics (`query/fusion.py`), so the final score means the same thing as
a hybrid query's. At weight 0 the order is the cross-encoder's alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurank.config import Settings
from neurank.errors import ModelError, PlanError
from neurank.query.fusion import fuse
from neurank.retrieval import TECHNIQUES, Fusion, ScoredIds, Technique


@dataclass(frozen=True, slots=True)
class Rescored:
    """The rerank of one window, aligned with the hits given: final scores, raw and normalized logits."""

    final: np.ndarray
    logits: np.ndarray
    normalized: list[float | None]


@dataclass(slots=True)
class Reranker:
    """Rescores (query, passage) pairs; the depth is the plan's, so the cost per query is bounded.

    `scorer` is the cross-encoder, or late interaction's MaxSim scorer (`neurank.query.late_interaction`):
    anything with a `fingerprint` and `predict(query, passages)`. Both stages combine their scores with the
    first stage's the same way, with weights calibrated per first stage.
    """

    scorer: Any
    first_stage_weight: float = 0.0
    """Share of the first-stage score in the final score, in [0, 1); 0 ranks by the cross-encoder alone."""
    normalization: Technique = "min_max"
    """How both score lists are normalized before they are combined (with a first-stage weight > 0)."""
    by_first_stage: dict[str, float] = field(default_factory=dict)
    """Weights for particular first stages (`bm25`, `hybrid`, …); `first_stage_weight` serves the others.

    A better first stage deserves a larger share: one weight for every first stage either drags a strong
    hybrid down or lets a weak BM25 ranking through.
    """

    def __post_init__(self) -> None:
        for weight in (self.first_stage_weight, *self.by_first_stage.values()):
            if not 0.0 <= weight < 1.0:
                raise PlanError(f"the first-stage weight of the rerank must be in [0, 1), got {weight}")
        if self.normalization not in TECHNIQUES:
            raise PlanError(f"unknown rerank normalization {self.normalization!r}; choose one of "
                            f"{', '.join(TECHNIQUES)}")

    @property
    def fingerprint(self) -> str:
        return self.scorer.fingerprint

    def weight_for(self, first_stage: str) -> float:
        return self.by_first_stage.get(first_stage, self.first_stage_weight)

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.scorer.predict(query, list(passages)), dtype=np.float32)

    def rescore(self, query: str, hits: ScoredIds, passages: Sequence[str], *, first_stage: str = "") -> Rescored:
        """Score `passages` (those of the first stage's `hits`, best first) and combine the two.

        `first_stage` names what produced `hits` (a plan's `first_stage`), which picks the weight.
        """
        return self.combine(hits, self.scores(query, passages), first_stage=first_stage)

    def combine(self, hits: ScoredIds, scores: np.ndarray, *, first_stage: str = "") -> Rescored:
        """Combine this stage's `scores` of `hits` (computed here, or by a store) with the first stage's."""
        return interpolate(hits, scores, self.weight_for(first_stage), self.normalization)


def interpolate(first_stage: ScoredIds, logits: np.ndarray, first_stage_weight: float,
                normalization: Technique = "min_max") -> Rescored:
    """Final scores of a reranked window: both lists normalized, then their weighted arithmetic mean."""
    if not first_stage_weight or not first_stage:
        return Rescored(logits, logits, [None] * len(logits))
    ids = [doc_id for doc_id, _ in first_stage]
    by_logit = sorted(zip(ids, logits.tolist(), strict=True), key=lambda pair: -pair[1])
    weights = (first_stage_weight, 1.0 - first_stage_weight)
    fused = {hit.id: hit for hit in fuse([first_stage, by_logit], Fusion(normalization, weights=weights))}
    final = np.array([fused[doc_id].score for doc_id in ids], dtype=np.float32)
    return Rescored(final, logits, [fused[doc_id].normalized[1] for doc_id in ids])


DEFAULT_RERANK_DEPTH = 100
"""Hits the rerank stage reorders unless told otherwise (`neurank eval`), and what calibration scores."""
CALIBRATION_FILE = "rerank.json"
"""Written beside a cross-encoder by training and `neurank train calibrate`: the normalization and, per first
stage, the weight chosen on dev queries."""


CALIBRATION_DEFAULT = "bm25"
"""The calibrated first stage whose weight serves first stages calibrated for none (training always has it)."""


def _folder_json(model: str, name: str) -> Any:
    """The parsed JSON file `name` of the model folder `model`; None when the folder has no such file."""
    path = Path(model).expanduser() / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def calibrated_weights(model: str) -> tuple[dict[str, float], Technique]:
    """First stage → weight, and the normalization, from `model`'s `rerank.json` ({} without one)."""
    saved = _folder_json(model, CALIBRATION_FILE)
    if saved is None:
        return {}, "min_max"
    try:
        weights = {name: float(entry["first_stage_weight"]) for name, entry in saved["first_stages"].items()}
        return weights, saved["normalization"]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"{Path(model) / CALIBRATION_FILE}: not a rerank calibration (missing or bad {exc}); "
                         "run `neurank train calibrate` on it again") from exc


def trained_length(model: str, ceiling: int = 512) -> int:
    """The input length `model` was trained at (its tokenizer's `model_max_length`), at most `ceiling`."""
    saved = _folder_json(model, "tokenizer_config.json")
    length = saved.get("model_max_length") if isinstance(saved, dict) else None
    return min(int(length), ceiling) if isinstance(length, int | float) and length > 0 else ceiling


def load_reranker(settings: Settings, model: str | None = None) -> Reranker | None:
    """The cross-encoder `model` (else `settings.rerank_model`) with the settings' rerank knobs; None without one.

    Unless the settings fix the first-stage weight, the model's own calibration (`rerank.json`) applies: the
    weight chosen for the plan's first stage, else the one chosen for BM25, else 0.
    """
    model = model or settings.rerank_model
    if not model:
        return None
    from neurank.onnx_models import CrossEncoder

    int8 = settings.int8 if settings.rerank_int8 is None else settings.rerank_int8
    encoder = CrossEncoder(model, home=settings.home, runtime=settings.runtime, int8=int8,
                           max_length=settings.rerank_max_length or trained_length(model), device=settings.device)
    fixed = settings.rerank_first_stage_weight
    return calibrated(encoder, model, None if fixed is None else (fixed, settings.rerank_normalization))


def calibrated(scorer: Any, model: str, fixed: tuple[float, str] | None = None) -> Reranker:
    """A rescoring stage around `scorer` with the weights of `model`'s `rerank.json`, or the `fixed` (weight,
    normalization) for every first stage."""
    weights: dict[str, float] = {}
    normalization: str
    if fixed is None:
        weights, normalization = calibrated_weights(model)
        weight = weights.get(CALIBRATION_DEFAULT, 0.0)
    else:
        weight, normalization = fixed
    return Reranker(scorer, first_stage_weight=weight, normalization=normalization,  # type: ignore[arg-type]
                    by_first_stage=weights)


RERANK_OFF_NOTE = (
    "reranking is off: no cross-encoder given"
    " (pass --rerank-model DIR, e.g. a folder made by `neurank train cross-encoder`)"
)
