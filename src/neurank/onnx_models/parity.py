"""Parity of an ONNX graph with the PyTorch module it came from, on fixed English samples.

Each sample runs alone (batch of one, no padding) and all together (padded), so a graph that mishandles
either the attention mask or the dynamic axes shows up. The long sample is cut at `max_length`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neurank.onnx_models.batching import Batch, padded_batches, tokenize
from neurank.onnx_models.kinds import Kind
from neurank.onnx_models.runtimes import Backend

FP32_MAX_ABS_DIFF = 1e-4
"""fp32 ONNX vs torch, any output value (SPLADE weights reach ~3, normalized embeddings ≤ 1)."""
INT8_MIN_COSINE = 0.99
"""int8 vs torch, per text (MODELS.md: a published int8 MiniLM reaches 0.9993)."""

SAMPLE_QUERY = "how does the immune system respond to a viral infection"
SAMPLE_TEXTS: tuple[str, ...] = (
    "Vitamin D deficiency is associated with an increased risk of respiratory infections.",
    "T cells recognise infected cells through antigens presented on MHC molecules.",
    "The stock market closed higher on Friday after strong earnings reports.",
    "A quick brown fox jumps over the lazy dog.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Antibodies",
    "Interferons are signalling proteins released by host cells in response to viruses; they trigger "
    "antiviral defences in neighbouring cells. " * 30,
)


@dataclass(frozen=True, slots=True)
class Comparison:
    max_abs_diff: float
    min_cosine: float


@dataclass(frozen=True, slots=True)
class ParityReport:
    """How far ONNX fp32 (and int8, when built) stray from PyTorch fp32 on `SAMPLE_TEXTS`."""

    texts: int
    max_length: int
    fp32: Comparison
    int8: Comparison | None = None
    int8_per_channel: bool | None = None
    int8_kept_fp32: tuple[str, ...] = ()
    """Weight nodes left in fp32 because quantizing them cost the most cosine (empty: all are int8)."""
    fp32_max_abs_diff: float = FP32_MAX_ABS_DIFF
    int8_min_cosine: float = INT8_MIN_COSINE

    @property
    def fp32_passed(self) -> bool:
        return self.fp32.max_abs_diff <= self.fp32_max_abs_diff

    @property
    def int8_passed(self) -> bool | None:
        return None if self.int8 is None else self.int8.min_cosine >= self.int8_min_cosine

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "int8_kept_fp32": list(self.int8_kept_fp32), "fp32_passed": self.fp32_passed,
                "int8_passed": self.int8_passed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        fields = {key: value for key, value in data.items() if key not in ("fp32_passed", "int8_passed")}
        fields["fp32"] = Comparison(**data["fp32"])
        fields["int8"] = Comparison(**data["int8"]) if data.get("int8") else None
        fields["int8_kept_fp32"] = tuple(data.get("int8_kept_fp32", ()))
        return cls(**fields)


def parity_batches(tokenizer: Any, kind: Kind) -> tuple[list[Batch], int]:
    """The samples one by one, then all in one padded batch, at the encoders' default max_length."""
    max_length = min(512 if kind == "cross" else 256, int(getattr(tokenizer, "model_max_length", 512)))
    pairs = SAMPLE_TEXTS if kind == "cross" else None
    texts = [SAMPLE_QUERY] * len(SAMPLE_TEXTS) if kind == "cross" else SAMPLE_TEXTS
    tokenized = tokenize(tokenizer, texts, max_length, pairs)
    pad_id = tokenizer.pad_token_id or 0
    alone = list(padded_batches(tokenized, 1, pad_id))
    together = list(padded_batches(tokenized, 1 << 30, pad_id))
    return alone + together, max_length


def run_batches(backend: Backend, batches: list[Batch]) -> np.ndarray:
    return np.concatenate([backend(batch.inputs) for batch in batches])


def compare(reference: np.ndarray, candidate: np.ndarray) -> Comparison:
    """Max abs difference, and the lowest cosine per row (over the whole column for one-logit outputs)."""
    if reference.shape[1] == 1:
        reference, candidate = reference.T, candidate.T
    dots = (reference * candidate).sum(axis=1)
    reference_norm, candidate_norm = np.linalg.norm(reference, axis=1), np.linalg.norm(candidate, axis=1)
    both_zero = (reference_norm == 0) & (candidate_norm == 0)
    cosines = np.where(both_zero, 1.0, dots / np.maximum(reference_norm * candidate_norm, 1e-30))
    return Comparison(max_abs_diff=float(np.abs(reference - candidate).max()), min_cosine=float(cosines.min()))
