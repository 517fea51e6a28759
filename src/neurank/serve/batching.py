"""Query encoding shared by concurrent searches: a dynamic batcher per encoder and an LRU cache of encodings.

Where a model call has a fixed cost (a GPU, a large model), the texts that concurrent searches need are worth
sending to each encoder together; on a CPU the batcher at least bounds the model calls to one per encoder at a
time. Nothing waits for a time window: an idle encoder runs a lone text at once, and the texts that arrive while
it runs form its next call, so batches grow with the load and shrink back when it falls (the dynamic batching of
Triton with no queue delay). A search starts every encoding it needs at once (`SharedEncoders.started`), so its
encoders run side by side; a cached encoding never enters a queue. The wrapped encoders keep the encoders'
interface, so the Searcher runs unchanged on a bundle of them; the CLI never builds one.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from neurank.onnx_models.bundle import EncoderBundle
from neurank.serve.options import ServeOptions

_STOP = None


class EncodingObserver(Protocol):
    """Told of every model call, every text's wait for one, and every cache lookup (the service's metrics)."""

    def batch(self, encoder: str, size: int, seconds: float) -> None: ...

    def queued(self, encoder: str, seconds: float) -> None: ...

    def cache_lookup(self, encoder: str, hit: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Queued:
    text: str
    future: Future[Any]
    since: float


class MicroBatcher:
    """One encoder's queue and the thread that serves it: each call takes every text queued by the time it
    starts (at most `max_batch`); each caller gets a Future of its text's encoding."""

    def __init__(self, encode: Callable[[list[str]], Sequence[Any]], *, name: str, max_batch: int,
                 observer: EncodingObserver) -> None:
        self._encode = encode
        self._name = name
        self._max_batch = max_batch
        self._observer = observer
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"neurank-batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put(_Queued(text, future, time.perf_counter()))
        return future

    def close(self) -> None:
        """Encode what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not _STOP:
            batch, stopping = [first], False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._answer(batch)
            if stopping:
                return

    def _answer(self, batch: list[_Queued]) -> None:
        start = time.perf_counter()
        for item in batch:
            self._observer.queued(self._name, start - item.since)
        texts = list(dict.fromkeys(item.text for item in batch))
        try:
            encoded = dict(zip(texts, self._encode(texts), strict=True))
        except Exception as exc:  # every waiting search gets the model's error, not a hang
            for item in batch:
                item.future.set_exception(exc)
            return
        finally:
            self._observer.batch(self._name, len(texts), time.perf_counter() - start)
        for item in batch:
            item.future.set_result(encoded[item.text])


class EncodingCache:
    """An LRU of query encodings keyed by (model fingerprint, text), shared by every encoder and thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


_STARTED: ContextVar[Mapping[tuple[str, str], Future[Any]]] = ContextVar(
    "neurank_started_encodings", default=MappingProxyType({}))
"""The encodings the running search started ahead, by (encoder name, text): each thread runs one search."""


class SharedQueryEncoder:
    """`encoder` whose `encode_queries` goes through the cache and the batcher; anything else is the encoder's own.

    Without a batcher (batching off) the calling thread encodes its own misses.
    """

    def __init__(self, encoder: Any, name: str, cache: EncodingCache, batch_size: int,
                 observer: EncodingObserver) -> None:
        self._encoder = encoder
        self.name = name
        self._cache = cache
        self._observer = observer
        self._fingerprint: str | None = None
        self._batcher = None if batch_size <= 1 else MicroBatcher(self._encode, name=name, max_batch=batch_size,
                                                                  observer=observer)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._encoder, attribute)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = str(self._encoder.fingerprint)
        return self._fingerprint

    def start(self, text: str) -> Future[Any] | None:
        """`text`'s encoding: found in the cache, or queued on the batcher; None when the caller must encode it."""
        cached = self._cache.get((self.fingerprint, text))
        self._observer.cache_lookup(self.name, cached is not None)
        if cached is not None:
            found: Future[Any] = Future()
            found.set_result(cached)
            return found
        return None if self._batcher is None else self._batcher.submit(text)

    def encode_queries(self, texts: Sequence[str]) -> list[Any]:
        started = _STARTED.get()
        futures = {text: started.get((self.name, text)) or self.start(text) for text in dict.fromkeys(texts)}
        missing = [text for text, future in futures.items() if future is None]
        encoded = dict(zip(missing, self._encode(missing), strict=True)) if missing else {}
        encoded.update((text, future.result()) for text, future in futures.items() if future is not None)
        return [encoded[text] for text in texts]

    def _encode(self, texts: list[str]) -> list[Any]:
        """The model's encodings of `texts`, frozen and cached (every search that asks for a text shares them)."""
        if self._batcher is None:
            start = time.perf_counter()
            values = list(self._encoder.encode_queries(texts))
            self._observer.batch(self.name, len(texts), time.perf_counter() - start)
        else:
            values = list(self._encoder.encode_queries(texts))
        for text, value in zip(texts, values, strict=True):
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
            self._cache.put((self.fingerprint, text), value)
        return values

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()


class SharedEncoders:
    """The bundle's encoders wrapped for sharing across concurrent searches: `bundle` is what a Searcher uses."""

    def __init__(self, encoders: EncoderBundle, options: ServeOptions, observer: EncodingObserver) -> None:
        self.cache = EncodingCache(options.cache_size)
        self._wrapped = {name: SharedQueryEncoder(encoder, name, self.cache, options.batch_size, observer)
                         for name in ("splade", "deepct", "dense", "colbert")
                         if (encoder := getattr(encoders, name)) is not None}
        self.bundle = EncoderBundle(**self._wrapped)

    @contextmanager
    def started(self, text: str, encoders: Iterable[Any]) -> Iterator[None]:
        """Within the block, this thread's search finds `text` already going through each of `encoders` (wrapped
        ones of `bundle`), all at once instead of one after the other."""
        futures = {(encoder.name, text): future for encoder in encoders
                   if isinstance(encoder, SharedQueryEncoder) and (future := encoder.start(text)) is not None}
        token = _STARTED.set(futures)
        try:
            yield
        finally:
            _STARTED.reset(token)

    def close(self) -> None:
        for encoder in self._wrapped.values():
            encoder.close()
