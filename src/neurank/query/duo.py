"""Pairwise (duoBERT) reranking of the top few hits: every ordered pair judged, the judgements summed.

Nogueira, Yang, Cho & Lin, "Multi-Stage Document Ranking with BERT" (arXiv:1910.14424, 2019): a pairwise model
gives p(i, j) = P(hit i more relevant than hit j) for every ordered pair of the top k, and SYM-SUM aggregates
them, s_i = Σ_{j≠i} [p(i, j) + (1 − p(j, i))], reading each pair in both orders so that the model's position
bias cancels. k(k−1) model calls make it the costliest stage by far, hence a small default depth, after the
cross-encoder has ordered the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurank.config import Settings
from neurank.query.rerank import trained_length

DUO_OFF_NOTE = ("pairwise reranking is off: no pairwise model given (pass --duo-model DIR, e.g. a folder made by "
                "`neurank train duo`)")


def sym_sum(preferences: np.ndarray) -> np.ndarray:
    """SYM-SUM scores of a (k, k) preference matrix ([i, j] = p(i, j)); the diagonal is ignored."""
    p = np.asarray(preferences, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"a preference matrix is square, got shape {p.shape}")
    both = p + (1.0 - p.T)
    np.fill_diagonal(both, 0.0)
    return both.sum(axis=1)


@dataclass(frozen=True, slots=True)
class DuoReranker:
    """The duo stage around a pairwise model: anything with a `fingerprint` and `preferences(query, passages)`."""

    scorer: Any

    @property
    def fingerprint(self) -> str:
        return str(self.scorer.fingerprint)

    def preferences(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return np.asarray(self.scorer.preferences(query, list(passages)), dtype=np.float32)

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """SYM-SUM of `passages` against each other (a score only means something within this list)."""
        return sym_sum(self.preferences(query, passages)).astype(np.float32)


def load_duo(settings: Settings, model: str | None = None) -> DuoReranker | None:
    """The pairwise model `model` (else `settings.duo_model`), at the precision of the rerank stage; None without
    one. Inputs are cut at the length it was trained at."""
    model = model or settings.duo_model
    if not model:
        return None
    from neurank.onnx_models.duo import DuoEncoder

    int8 = settings.int8 if settings.rerank_int8 is None else settings.rerank_int8
    return DuoReranker(DuoEncoder(model, home=settings.home, runtime=settings.runtime, int8=int8,
                                  max_length=trained_length(model), threads=settings.threads,
                                  device=settings.device))
