"""Cross-encoder rerank of the top fused hits, run by the ONNX (or torch) cross-encoder.

A small cross-encoder trained on a few hundred queries knows things the first stage does not, and misses
things it knows; interpolating the two scores (Nogueira et al.'s monoBERT + BM25, Pyserini's
`--hybrid`) usually beats either alone. `first_stage_weight` sets the first stage's share; the two score
lists are normalized and combined with OpenSearch's fusion semantics (`query/fusion.py`), so the final
score means the same thing as a hybrid query's. At weight 0 the order is the cross-encoder's alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurank.config import Settings
from neurank.errors import ModelError, PlanError
from neurank.query.fusion import fuse
from neurank.query.plan import TECHNIQUES, Fusion, Technique
from neurank.stores.protocol import ScoredIds


@dataclass(frozen=True, slots=True)
class Rescored:
    """The rerank of one window, aligned with the hits given: final scores, raw and normalized logits."""

    final: np.ndarray
    logits: np.ndarray
    normalized: list[float | None]


@dataclass(slots=True)
class Reranker:
    """Rescores (query, passage) pairs; the depth is the plan's, so the cost per query is bounded."""

    cross_encoder: Any
    first_stage_weight: float = 0.0
    """Share of the first-stage score in the final score, in [0, 1); 0 ranks by the cross-encoder alone."""
    normalization: Technique = "min_max"
    """How both score lists are normalized before they are combined (with `first_stage_weight` > 0)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.first_stage_weight < 1.0:
            raise PlanError(f"the first-stage weight of the rerank must be in [0, 1), got {self.first_stage_weight}")
        if self.normalization not in TECHNIQUES:
            raise PlanError(f"unknown rerank normalization {self.normalization!r}; choose one of "
                            f"{', '.join(TECHNIQUES)}")

    @property
    def fingerprint(self) -> str:
        return self.cross_encoder.fingerprint

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.cross_encoder.predict(query, list(passages)), dtype=np.float32)

    def rescore(self, query: str, first_stage: ScoredIds, passages: Sequence[str]) -> Rescored:
        """Score `passages` (those of `first_stage`'s hits, best first) and combine with the first stage."""
        return interpolate(first_stage, self.scores(query, passages), self.first_stage_weight, self.normalization)


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
"""Written beside a cross-encoder by training: the first-stage weight and normalization chosen on dev."""


def calibrated_weight(model: str) -> tuple[float, Technique]:
    """The weight and normalization in `model`'s `rerank.json`; (0, min_max) for a folder without one."""
    path = Path(model).expanduser() / CALIBRATION_FILE
    if not path.is_file():
        return 0.0, "min_max"
    try:
        chosen = json.loads(path.read_text(encoding="utf-8"))
        return float(chosen["first_stage_weight"]), chosen["normalization"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a rerank calibration ({exc}); delete it or train the model again") from exc


def trained_length(model: str, ceiling: int = 512) -> int:
    """The input length `model` was trained at (its tokenizer's `model_max_length`), at most `ceiling`."""
    path = Path(model).expanduser() / "tokenizer_config.json"
    try:
        length = json.loads(path.read_text(encoding="utf-8")).get("model_max_length") if path.is_file() else None
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    return min(int(length), ceiling) if isinstance(length, int | float) and length > 0 else ceiling


def load_reranker(settings: Settings, model: str | None = None) -> Reranker | None:
    """The cross-encoder `model` (else `settings.rerank_model`) with the settings' rerank knobs; None without one.

    Unless the settings fix the first-stage weight, the model's own calibration (`rerank.json`) applies.
    """
    model = model or settings.rerank_model
    if not model:
        return None
    from neurank.onnx_models import CrossEncoder

    if settings.rerank_first_stage_weight is None:
        weight, normalization = calibrated_weight(model)
    else:
        weight, normalization = settings.rerank_first_stage_weight, settings.rerank_normalization
    encoder = CrossEncoder(model, home=settings.home, runtime=settings.runtime, int8=settings.int8,
                           max_length=settings.rerank_max_length or trained_length(model))
    return Reranker(encoder, first_stage_weight=weight, normalization=normalization)  # type: ignore[arg-type]


RERANK_OFF_NOTE = (
    "reranking is off: no cross-encoder given"
    " (pass --rerank-model DIR, e.g. a folder made by `neurank train cross-encoder`)"
)
