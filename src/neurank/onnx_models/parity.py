"""Parity of an ONNX graph with the PyTorch module it came from, on fixed English samples.

Each sample runs alone (batch of one, no padding) and all together (padded), so a graph that mishandles
either the attention mask or the dynamic axes shows up. The long sample is cut at `max_length`.

A late-interaction graph is also judged by what it is used for: the MaxSim scores of `SAMPLE_QUERY` against
the samples, and the order they put the samples in (`LateProbe`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from neurank.onnx_models.batching import Batch, padded_batches, tokenize, tokenize_triples
from neurank.onnx_models.duo_folder import DEFAULT_QUERY_LENGTH
from neurank.onnx_models.kinds import Kind
from neurank.onnx_models.runtimes import Backend
from neurank.stores.scoring import maxsim

if TYPE_CHECKING:
    from neurank.onnx_models.colbert import LateInputs

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
    maxsim_max_abs_diff: float | None = None
    """Late interaction: the largest MaxSim score difference over the samples (None for other kinds)."""
    same_order: bool | None = None
    """Late interaction: whether MaxSim ranks the samples in the reference's order (None for other kinds)."""


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
        return self.fp32.max_abs_diff <= self.fp32_max_abs_diff and self.fp32.same_order is not False

    @property
    def int8_passed(self) -> bool | None:
        if self.int8 is None:
            return None
        return self.int8.min_cosine >= self.int8_min_cosine and self.int8.same_order is not False

    @property
    def int8_bar(self) -> str:
        """The rule `int8_passed` applies, in words (kept in the parity record)."""
        rule = f"min cosine to PyTorch >= {self.int8_min_cosine}"
        return rule + (" per token vector, and the samples' MaxSim order unchanged"
                       if self.fp32.same_order is not None else " per text")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "int8_kept_fp32": list(self.int8_kept_fp32), "fp32_passed": self.fp32_passed,
                "int8_passed": self.int8_passed, "int8_bar": self.int8_bar}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityReport:
        fields = {key: value for key, value in data.items()
                  if key not in ("fp32_passed", "int8_passed", "int8_bar")}
        fields["fp32"] = Comparison(**data["fp32"])
        fields["int8"] = Comparison(**data["int8"]) if data.get("int8") else None
        fields["int8_kept_fp32"] = tuple(data.get("int8_kept_fp32", ()))
        return cls(**fields)


def parity_batches(tokenizer: Any, kind: Kind) -> tuple[list[Batch], int]:
    """The samples one by one, then all in one padded batch, at the encoders' default max_length.

    A cross-encoder reads (`SAMPLE_QUERY`, sample) pairs; a pairwise model (`SAMPLE_QUERY`, sample, next sample)
    triples, the long sample both first and second.
    """
    max_length = min(512 if kind == "cross" else 256, int(getattr(tokenizer, "model_max_length", 512)))
    if kind == "duo":
        seconds = [*SAMPLE_TEXTS[1:], SAMPLE_TEXTS[0]]
        tokenized = tokenize_triples(tokenizer, SAMPLE_QUERY, SAMPLE_TEXTS, seconds, max_length,
                                     DEFAULT_QUERY_LENGTH)
    else:
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


@dataclass(frozen=True, slots=True)
class LateProbe:
    """The parity samples as a late-interaction encoder feeds them: `SAMPLE_QUERY` padded with [MASK], the
    samples as documents alone and together; `positions[i]` are the rows of document i that get a vector."""

    query: dict[str, np.ndarray]
    batches: list[Batch]
    positions: list[np.ndarray]
    max_length: int

    @classmethod
    def build(cls, tokenizer: Any, inputs: LateInputs) -> LateProbe:
        query = inputs.queries(tokenizer, [SAMPLE_QUERY])
        tokenized = inputs.documents(tokenizer, SAMPLE_TEXTS)
        alone = list(padded_batches(tokenized, 1, inputs.pad_id))
        together = list(padded_batches(tokenized, 1 << 30, inputs.pad_id))
        return cls(query, alone + together, [inputs.kept(ids) for ids in tokenized.input_ids],
                   inputs.document_length)

    def run(self, backend: Backend) -> list[np.ndarray]:
        """The query matrix, then every document matrix of every batch (alone, then together)."""
        matrices = [backend(self.query)[0]]
        for batch in self.batches:
            output = backend(batch.inputs)
            matrices.extend(output[row, self.positions[position]] for row, position in enumerate(batch.positions))
        return [np.asarray(matrix, dtype=np.float32) for matrix in matrices]

    def compare(self, reference: list[np.ndarray], candidate: list[np.ndarray]) -> Comparison:
        """Token vectors as `compare` does, plus the MaxSim scores of the query against each document and
        their order (ties in the reference may come in either order)."""
        vectors = compare(np.concatenate(reference), np.concatenate(candidate))
        documents = [i for i in range(1, len(reference)) if len(reference[i])]
        expected = maxsim(reference[0], [reference[i] for i in documents])
        found = maxsim(candidate[0], [candidate[i] for i in documents])
        size = len(SAMPLE_TEXTS)
        same_order = all(np.array_equal(np.argsort(-expected[start:start + size], kind="stable"),
                                        np.argsort(-found[start:start + size], kind="stable"))
                         for start in range(0, len(expected), size))
        return Comparison(vectors.max_abs_diff, vectors.min_cosine,
                          maxsim_max_abs_diff=float(np.abs(expected - found).max()), same_order=same_order)
