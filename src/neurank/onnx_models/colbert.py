"""Late interaction (ColBERT): one L2-normalized vector per token, scored by MaxSim (`stores.scoring.maxsim`).

Inputs follow ColBERTv2 and PyLate: `[CLS] [unused0] query … [SEP]` padded with `[MASK]` to `query_length`
(the mask rows are returned and scored: query augmentation), `[CLS] [unused1] document … [SEP]` cut at
`document_length` tokens, markers included; a document's punctuation tokens are dropped from its matrix.
The input builders are plain functions so that the export's parity check feeds the graph what the encoder does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurank.errors import ConfigError, ModelError
from neurank.onnx_models.base import Encoder
from neurank.onnx_models.batching import Tokenized, padded_batches, tokenize
from neurank.onnx_models.late_folder import DOCUMENT_LENGTH, LateInteractionConfig, read_late_interaction
from neurank.onnx_models.runtimes import Runtime

MIN_LENGTH = 4
"""The shortest input that holds a token: [CLS], the marker, one token, [SEP]."""


def check_length(name: str, value: int) -> None:
    """Refuse a query or document length too short to hold a token."""
    if value < MIN_LENGTH:
        raise ConfigError(f"{name} must be at least {MIN_LENGTH} tokens ([CLS], marker, a token, [SEP]), got {value}")


@dataclass(frozen=True, slots=True)
class LateInputs:
    """How texts become late-interaction inputs: marker ids, lengths, the tokens a document drops."""

    query_marker: int
    document_marker: int
    mask_id: int
    pad_id: int
    query_length: int
    document_length: int
    attend_to_expansion: bool
    skip_ids: frozenset[int]

    @classmethod
    def build(cls, tokenizer: Any, config: LateInteractionConfig, *, query_length: int | None = None,
              document_length: int | None = None) -> LateInputs:
        """From the folder's settings; `query_length` / `document_length` override the folder's."""
        queries, documents = query_length or config.query_length, document_length or config.document_length
        check_length("query_length", queries)
        check_length("document_length", documents)
        if tokenizer.mask_token_id is None:
            raise ModelError("a late-interaction model needs a tokenizer with a [MASK] token (query padding)")
        skip = {ids[0] for word in config.skiplist
                if (ids := tokenizer.encode(word, add_special_tokens=False)) and len(ids) == 1}
        return cls(_token_id(tokenizer, config.query_marker), _token_id(tokenizer, config.document_marker),
                   int(tokenizer.mask_token_id), int(tokenizer.pad_token_id or 0), queries, documents,
                   config.attend_to_expansion, frozenset(skip))

    def queries(self, tokenizer: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """(len(texts), query_length) int64 inputs padded with [MASK] (a longer query is cut, as ColBERT does)."""
        tokenized = _marked(tokenizer, texts, self.query_length, self.query_marker)
        shape = (len(texts), self.query_length)
        input_ids = np.full(shape, self.mask_id, dtype=np.int64)
        attention_mask = np.full(shape, int(self.attend_to_expansion), dtype=np.int64)
        for row, ids in enumerate(tokenized.input_ids):
            input_ids[row, :len(ids)] = ids
            attention_mask[row, :len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": np.zeros(shape, dtype=np.int64)}

    def documents(self, tokenizer: Any, texts: Sequence[str]) -> Tokenized:
        """Token ids with the document marker, cut at `document_length` (cuts recorded)."""
        return _marked(tokenizer, texts, self.document_length, self.document_marker)

    def kept(self, ids: Sequence[int]) -> np.ndarray:
        """Positions of a document's tokens that get a vector: all but the skiplist's (padding is never there)."""
        return np.array([i for i, token in enumerate(ids) if token not in self.skip_ids], dtype=np.int64)


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise ModelError(f"the tokenizer has no token {token!r} (a late-interaction marker)")
    return int(token_id)


def _marked(tokenizer: Any, texts: Sequence[str], length: int, marker: int) -> Tokenized:
    """Tokenize to `length - 1` tokens, then put `marker` right after [CLS]."""
    tokenized = tokenize(tokenizer, texts, length - 1)
    return Tokenized([[ids[0], marker, *ids[1:]] for ids in tokenized.input_ids],
                     [[types[0], 0, *types[1:]] for types in tokenized.token_type_ids], tokenized.truncated)


class LateInteractionEncoder(Encoder):
    """A BERT-family encoder, a linear projection without bias to `dim`, L2-normalized token vectors.

    Loads the sentence-transformers / PyLate layout (what `neurank train colbert` writes) and Stanford ColBERT
    checkpoints (`late_folder.py`). `query_length` and `document_length` default to the folder's settings.
    """

    kind = "colbert"

    def __init__(self, model: str, *, home: Path, runtime: Runtime = "torch", int8: bool = False,
                 query_length: int | None = None, document_length: int | None = None,
                 batch_tokens: int = 16384, threads: int | None = None,
                 device: str = "cpu") -> None:
        super().__init__(model, home=home, runtime=runtime, int8=int8,
                         max_length=document_length or DOCUMENT_LENGTH, batch_tokens=batch_tokens, threads=threads,
                         device=device)
        for name, value in (("query_length", query_length), ("document_length", document_length)):
            if value is not None:
                check_length(name, value)
        self._query_length = query_length
        self._document_length = document_length
        self._config: LateInteractionConfig | None = None
        self._inputs: LateInputs | None = None

    @property
    def config(self) -> LateInteractionConfig:
        if self._config is None:
            self._config = read_late_interaction(self.ref.path)
        return self._config

    @property
    def inputs(self) -> LateInputs:
        if self._inputs is None:
            self._inputs = LateInputs.build(self._model().tokenizer, self.config, query_length=self._query_length,
                                            document_length=self._document_length)
        return self._inputs

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def query_length(self) -> int:
        return self._query_length or self.config.query_length

    @property
    def document_length(self) -> int:
        return self._document_length or self.config.document_length

    def _output_settings(self) -> dict[str, Any]:
        return {"query_length": self.query_length, "document_length": self.document_length}

    def encode_queries(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each (query_length, dim) float32: every row scored, the [MASK] padding's included."""
        if not texts:
            return []
        loaded, inputs = self._model(), self.inputs
        rows_per_batch = max(1, self.batch_tokens // inputs.query_length)
        result: list[np.ndarray] = []
        for start in range(0, len(texts), rows_per_batch):
            batch = inputs.queries(loaded.tokenizer, texts[start:start + rows_per_batch])
            result.extend(np.ascontiguousarray(matrix, dtype=np.float32) for matrix in loaded.backend(batch))
        return result

    def encode_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each (kept tokens, dim) float32, in input order; punctuation dropped, so a matrix may have no row."""
        matrices = dict(self._document_matrices(texts))
        return [matrices[position] for position in range(len(texts))]

    def query_tokens(self, text: str) -> list[str]:
        """The token of each row of `encode_queries([text])[0]` ([CLS], [unused0], …, [MASK] ×n)."""
        batch = self.inputs.queries(self._model().tokenizer, [text])
        return self._model().tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())

    def document_tokens(self, text: str) -> list[str]:
        """The token of each row of `encode_documents([text])[0]`."""
        ids = self.inputs.documents(self._model().tokenizer, [text]).input_ids[0]
        return self._model().tokenizer.convert_ids_to_tokens([ids[i] for i in self.inputs.kept(ids)])

    def _document_matrices(self, texts: Sequence[str]) -> Iterator[tuple[int, np.ndarray]]:
        if not texts:
            return
        loaded, inputs = self._model(), self.inputs
        tokenized = inputs.documents(loaded.tokenizer, texts)
        self._stats.texts += len(texts)
        self._stats.truncated += sum(tokenized.truncated)
        for batch in padded_batches(tokenized, self.batch_tokens, inputs.pad_id):
            output = loaded.backend(batch.inputs)
            for row, position in enumerate(batch.positions):
                kept = inputs.kept(tokenized.input_ids[position])
                yield position, np.ascontiguousarray(output[row, kept], dtype=np.float32)
