"""Cross-encoder rerank of the top fused hits, run by the ONNX (or torch) cross-encoder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(slots=True)
class Reranker:
    """Rescores (query, passage) pairs; the depth is the plan's, so the cost per query is bounded."""

    cross_encoder: Any

    @property
    def fingerprint(self) -> str:
        return self.cross_encoder.fingerprint

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not passages:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.cross_encoder.predict(query, list(passages)), dtype=np.float32)


RERANK_OFF_NOTE = (
    "reranking is off: no cross-encoder given"
    " (pass --rerank-model DIR, e.g. a folder made by `neurank train cross-encoder`)"
)
