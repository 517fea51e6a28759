"""Pairwise (duoBERT) scoring: one logit per (query, a, b) triple, read as P(a more relevant than b)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurank.onnx_models.base import Encoder, stacked
from neurank.onnx_models.batching import tokenize_triples
from neurank.onnx_models.duo_folder import DuoConfig, read_duo
from neurank.onnx_models.runtimes import Runtime


class DuoEncoder(Encoder):
    """A one-logit classifier over `[CLS] q [SEP] a [SEP] b [SEP]` (`batching.tokenize_triples`); the query's
    token budget comes from the folder's `duo.json`."""

    kind = "duo"
    one_call_at_a_time = True

    def __init__(self, model: str, *, home: Path, runtime: Runtime = "torch", int8: bool = False,
                 max_length: int = 256, batch_tokens: int = 16384, threads: int | None = None,
                 device: str = "cpu") -> None:
        super().__init__(model, home=home, runtime=runtime, int8=int8, max_length=max_length,
                         batch_tokens=batch_tokens, threads=threads, device=device)
        self._config: DuoConfig | None = None

    @property
    def config(self) -> DuoConfig:
        if self._config is None:
            self._config = read_duo(self.ref.path)
        return self._config

    def _output_settings(self) -> dict[str, Any]:
        return {"query_length": self.config.query_length}

    def predict(self, query: str, firsts: Sequence[str], seconds: Sequence[str]) -> np.ndarray:
        """One logit per (first, second) pair, in the order given."""
        if not firsts:
            return np.zeros(0, dtype=np.float32)
        tokenized = tokenize_triples(self._model().tokenizer, query, firsts, seconds, self.max_length,
                                     self.config.query_length)
        return stacked(self._run(tokenized), len(firsts), 1)[:, 0]

    def preferences(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """(k, k) with [i, j] = P(passage i more relevant than passage j); see `preference_matrix`."""
        pairs = ordered_pairs(len(passages))
        logits = self.predict(query, [passages[i] for i, _ in pairs], [passages[j] for _, j in pairs])
        return preference_matrix(len(passages), logits)


def ordered_pairs(k: int) -> list[tuple[int, int]]:
    """Every (i, j) with i != j among k passages: both orders, since the model reads them asymmetrically."""
    return [(i, j) for i in range(k) for j in range(k) if i != j]


def preference_matrix(k: int, logits: np.ndarray) -> np.ndarray:
    """(k, k) float32 with [i, j] = σ(logit of `ordered_pairs(k)`'s (i, j)); the diagonal is 0.5."""
    matrix = np.full((k, k), 0.5, dtype=np.float32)
    if k > 1:
        rows, columns = zip(*ordered_pairs(k), strict=True)
        matrix[list(rows), list(columns)] = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return matrix
