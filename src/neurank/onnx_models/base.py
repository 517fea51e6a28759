"""What every encoder shares: lazy loading, the fingerprint, truncation counts and token-budget batching."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from neurank.errors import ConfigError
from neurank.onnx_models.batching import Batch, Tokenized, padded_batches, tokenize
from neurank.onnx_models.devices import DEVICE_SETTING, check_device_name
from neurank.onnx_models.kinds import Kind
from neurank.onnx_models.loading import LoadedModel, load
from neurank.onnx_models.registry import ModelRef, resolve_model
from neurank.onnx_models.runtimes import check_runtime


@dataclass(slots=True)
class EncoderStats:
    """Cumulative counts since the encoder was built: texts encoded, and those cut at `max_length`."""

    texts: int = 0
    truncated: int = 0


class Encoder:
    """Base of the three encoders. Building one does no I/O: the model resolves and loads on first use."""

    kind: ClassVar[Kind]
    one_call_at_a_time: ClassVar[bool] = False
    """Whether calls from several threads take turns. A reranker scores up to a token budget of passages per
    call, and calls running at once each hold their activations: a service whose 16 searches reranked at once
    grew past 15 GiB and was killed. ONNX Runtime spreads one call over every core already, so turns cost
    little. (Query encoders get their turns from the service's batcher.)"""

    def __init__(self, model: str, *, home: Path, runtime: str, int8: bool, max_length: int,
                 batch_tokens: int, threads: int | None, device: str = "cpu") -> None:
        for name, value in (("max_length", max_length), ("batch_tokens", batch_tokens)):
            if value < 1:
                raise ConfigError(f"{name} must be a positive number of tokens, got {value}")
        self.model = model
        self.home = Path(home)
        self.runtime = check_runtime(runtime)
        self.int8 = int8 and self.runtime == "onnx"
        self.max_length = max_length
        self.batch_tokens = batch_tokens
        self.threads = threads
        self.device = check_device_name(device, DEVICE_SETTING)
        """Where the model runs (`neurank.onnx_models.devices`); the outputs, so the fingerprint, do not depend
        on it beyond float rounding."""
        self._stats = EncoderStats()
        self._ref: ModelRef | None = None
        self._loaded: LoadedModel | None = None
        self._turn = threading.Lock()

    def __repr__(self) -> str:
        precision = "int8" if self.int8 else "fp32"
        return f"{type(self).__name__}({self.model!r}, runtime={self.runtime!r}, {precision})"

    @property
    def ref(self) -> ModelRef:
        if self._ref is None:
            self._ref = resolve_model(self.model, self.home)
        return self._ref

    @property
    def stats(self) -> EncoderStats:
        return self._stats

    @property
    def fingerprint(self) -> str:
        """Model fingerprint plus every setting that changes the outputs; 16 hex digits."""
        parts = {"model": self.ref.fingerprint, "kind": self.kind, "runtime": self.runtime,
                 "int8": self.int8, "max_length": self.max_length, **self._output_settings()}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def _output_settings(self) -> dict[str, Any]:
        return {}

    def warm_up(self) -> None:
        """Load the model now rather than on the first call (e.g. when a worker process starts)."""
        self._model()

    def pieces(self, word: str) -> int:
        """How many tokens the model's tokenizer makes of `word`: one for a word its vocabulary holds whole."""
        return len(self._model().tokenizer.tokenize(word))

    def _model(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load(self.ref, self.kind, self.runtime, int8=self.int8, home=self.home,
                                threads=self.threads, device=self.device)
        return self._loaded

    def _batches(self, texts: Sequence[str], pairs: Sequence[str] | None = None
                 ) -> Iterator[tuple[Batch, np.ndarray]]:
        """Run the model over token-budget batches; each batch comes with its rows' input positions."""
        if not texts:
            return
        loaded = self._model()
        yield from self._run(tokenize(loaded.tokenizer, texts, self.max_length, pairs))

    def _run(self, tokenized: Tokenized) -> Iterator[tuple[Batch, np.ndarray]]:
        """Run the model over token-budget batches of inputs already tokenized (an encoder's own layout)."""
        loaded = self._model()
        self._stats.texts += len(tokenized.input_ids)
        self._stats.truncated += sum(tokenized.truncated)
        pad_id = loaded.tokenizer.pad_token_id or 0
        for batch in padded_batches(tokenized, self.batch_tokens, pad_id):
            with self._turn if self.one_call_at_a_time else nullcontext():
                output = loaded.backend(batch.inputs)
            yield batch, output

    def _stacked(self, texts: Sequence[str], width: int, pairs: Sequence[str] | None = None) -> np.ndarray:
        """All outputs as one (len(texts), width) float32 array in input order."""
        return stacked(self._batches(texts, pairs), len(texts), width)


def stacked(batches: Iterator[tuple[Batch, np.ndarray]], rows: int, width: int) -> np.ndarray:
    """The outputs of `batches` as one (rows, width) float32 array in input order."""
    result: np.ndarray | None = None
    for batch, output in batches:
        if result is None:
            result = np.empty((rows, output.shape[1]), dtype=np.float32)
        result[batch.positions] = output
    return result if result is not None else np.empty((0, width), dtype=np.float32)
