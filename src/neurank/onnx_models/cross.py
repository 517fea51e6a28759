"""Cross-encoder scoring: (query, passage) pairs through a one-logit sequence classifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurank.onnx_models.base import Encoder
from neurank.onnx_models.runtimes import Runtime


class CrossEncoder(Encoder):
    """Scores are the raw logits (float32); higher is more relevant. Any single-logit classifier works."""

    kind = "cross"
    one_call_at_a_time = True

    def __init__(self, model: str, *, home: Path, runtime: Runtime = "torch", int8: bool = False,
                 max_length: int = 512, batch_tokens: int = 16384, threads: int | None = None,
                 device: str = "cpu") -> None:
        super().__init__(model, home=home, runtime=runtime, int8=int8, max_length=max_length,
                         batch_tokens=batch_tokens, threads=threads, device=device)

    def predict(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One logit per passage, in the order given."""
        return self._stacked([query] * len(passages), 1, pairs=passages)[:, 0]
