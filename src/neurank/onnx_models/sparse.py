"""Learned-sparse encoding (SPLADE with expansion, DeepCT without) into OpenSearch `rank_features` maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from neurank.errors import ConfigError
from neurank.onnx_models.base import Encoder
from neurank.onnx_models.runtimes import Runtime

SparseMode = Literal["splade", "deepct"]
MODES: tuple[SparseMode, ...] = ("splade", "deepct")

FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""The smallest normal float32: `rank_features` rejects zero, negative and subnormal values."""


def feature_name(token: str) -> str:
    """A token as a `rank_features` key: OpenSearch reads '.' as a path, so '%' and '.' are percent-escaped.

    Apply the same function to query tokens so that they meet the indexed keys.
    """
    return token.replace("%", "%25").replace(".", "%2E")


class SparseEncoder(Encoder):
    """An MLM model read as a term-weighting model: token → weight maps, positive normal float32 only.

    `splade` keeps every vocabulary term the model activates (expansion); `deepct` keeps only the text's
    own tokens. Queries and documents go through the same model (a bi-encoder). Special tokens never appear.
    """

    kind = "sparse"

    def __init__(self, model: str, *, home: Path, runtime: Runtime = "torch", int8: bool = False,
                 mode: SparseMode = "splade", max_length: int = 256, top_k: int | None = None,
                 threshold: float = 0.0, batch_tokens: int = 16384, threads: int | None = None,
                 device: str = "cpu") -> None:
        super().__init__(model, home=home, runtime=runtime, int8=int8, max_length=max_length,
                         batch_tokens=batch_tokens, threads=threads, device=device)
        if mode not in MODES:
            raise ConfigError(f"unknown sparse mode {mode!r}; use one of: {', '.join(MODES)}")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"top_k must be at least 1 (or None for no limit), got {top_k}")
        if threshold < 0:
            raise ConfigError(f"threshold must be >= 0, got {threshold}")
        self.mode = mode
        self.top_k = top_k
        self.threshold = threshold
        self._names: np.ndarray | None = None
        self._allowed: np.ndarray | None = None

    def _output_settings(self) -> dict[str, Any]:
        return {"mode": self.mode, "top_k": self.top_k, "threshold": self.threshold}

    def encode_documents(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return self.encode_modes(texts, (self.mode,))[self.mode]

    def encode_queries(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return self.encode_modes(texts, (self.mode,))[self.mode]

    def encode_modes(self, texts: Sequence[str],
                     modes: Sequence[SparseMode]) -> dict[SparseMode, list[dict[str, float]]]:
        """Several views from one forward pass: SPLADE and DeepCT share the same MLM activations.

        Each view equals what an encoder built with that `mode` (and this one's other settings) returns.
        """
        unknown = set(modes) - set(MODES)
        if unknown:
            raise ConfigError(f"unknown sparse mode {sorted(unknown)}; use one of: {', '.join(MODES)}")
        results: dict[SparseMode, list[dict[str, float]]] = {mode: [{} for _ in texts] for mode in modes}
        for batch, weights in self._batches(texts):
            names, allowed = self._vocabulary(weights.shape[1])
            weights = np.where(allowed, weights, 0.0)
            own = _own_tokens(batch.inputs, weights.shape[1]) if "deepct" in modes else None
            for mode in modes:
                view = np.where(own, weights, 0.0) if mode == "deepct" and own is not None else weights
                for position, row in zip(batch.positions, view, strict=True):
                    results[mode][position] = self._to_map(row, names)
        return results

    def _to_map(self, row: np.ndarray, names: np.ndarray) -> dict[str, float]:
        """Prune by threshold and top_k, drop what rank_features rejects, heaviest first."""
        ids = np.flatnonzero((row > self.threshold) & (row >= FLOAT32_TINY))
        if self.top_k is not None and ids.size > self.top_k:
            ids = ids[np.argpartition(row[ids], -self.top_k)[-self.top_k:]]
        ids = ids[np.argsort(-row[ids], kind="stable")]
        return {names[i]: float(row[i]) for i in ids}

    def _vocabulary(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Feature names per output column, and which columns may carry weight (real, non-special tokens)."""
        if self._names is None or self._names.shape[0] != width:
            tokenizer = self._model().tokenizer
            tokens = tokenizer.convert_ids_to_tokens(list(range(width)))
            allowed = np.array([token is not None for token in tokens], dtype=bool)
            special = [i for i in tokenizer.all_special_ids if i < width]
            allowed[special] = False
            self._names = np.array([feature_name(token) if token else "" for token in tokens], dtype=object)
            self._allowed = allowed
        assert self._allowed is not None
        return self._names, self._allowed


def _own_tokens(inputs: dict[str, np.ndarray], width: int) -> np.ndarray:
    """(rows, width) mask of the token ids each row's text contains (DeepCT: no expansion)."""
    present = inputs["attention_mask"].astype(bool)
    ids = inputs["input_ids"]
    own = np.zeros((ids.shape[0], width), dtype=bool)
    rows = np.nonzero(present)[0]
    own[rows, ids[present]] = True
    return own
