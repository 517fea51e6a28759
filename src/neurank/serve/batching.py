"""Query encoding shared by concurrent searches: a micro-batcher per encoder and an LRU cache of encodings.

A model call on one query costs almost as much as on sixteen, so the texts that concurrent searches ask for
within a few milliseconds go to each encoder as one batch, on the batcher's own thread. The wrapped encoders
keep the encoders' interface, so the Searcher runs unchanged on a bundle of them; the CLI never builds one.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

import numpy as np

from neurank.onnx_models.bundle import EncoderBundle
from neurank.serve.options import ServeOptions

_STOP = None


class EncodingObserver(Protocol):
    """Told of every batch and cache lookup (the service's metrics)."""

    def batch(self, encoder: str, size: int) -> None: ...

    def cache_lookup(self, encoder: str, hit: bool) -> None: ...


class MicroBatcher:
    """Collects texts from any number of threads for at most `max_wait_s` or `max_batch` texts, then encodes
    them in one call on its own thread; each caller gets a Future of its text's encoding."""

    def __init__(self, encode: Callable[[list[str]], Sequence[Any]], *, name: str, max_batch: int,
                 max_wait_s: float, on_batch: Callable[[int], None] = lambda _: None) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[tuple[str, Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"neurank-batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._queue.put((text, future))
        return future

    def close(self) -> None:
        """Encode what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not _STOP:
            batch, stopping = [first], False
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._answer(batch)
            if stopping:
                return

    def _answer(self, batch: list[tuple[str, Future[Any]]]) -> None:
        texts = list(dict.fromkeys(text for text, _ in batch))
        self._on_batch(len(texts))
        try:
            encoded = dict(zip(texts, self._encode(texts), strict=True))
        except Exception as exc:  # every waiting search gets the model's error, not a hang
            for _, future in batch:
                future.set_exception(exc)
            return
        for text, future in batch:
            future.set_result(encoded[text])


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


class SharedQueryEncoder:
    """`encoder` whose `encode_queries` goes through the cache and the batcher; anything else is the encoder's own.

    Without a batcher (batching off) the calling thread encodes its own misses.
    """

    def __init__(self, encoder: Any, name: str, cache: EncodingCache, batcher: MicroBatcher | None,
                 observer: EncodingObserver) -> None:
        self._encoder = encoder
        self._name = name
        self._cache = cache
        self._batcher = batcher
        self._observer = observer

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._encoder, attribute)

    def encode_queries(self, texts: Sequence[str]) -> list[Any]:
        fingerprint = self._encoder.fingerprint
        found = [self._cache.get((fingerprint, text)) for text in texts]
        for value in found:
            self._observer.cache_lookup(self._name, value is not None)
        missing = list(dict.fromkeys(text for text, value in zip(texts, found, strict=True) if value is None))
        if missing:
            if self._batcher is None:
                self._observer.batch(self._name, len(missing))
                fresh = dict(zip(missing, self._encoder.encode_queries(missing), strict=True))
            else:
                futures = [self._batcher.submit(text) for text in missing]
                fresh = {text: future.result() for text, future in zip(missing, futures, strict=True)}
            for text, value in fresh.items():
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False  # shared by every search that asks for the same text
                self._cache.put((fingerprint, text), value)
            found = [fresh[text] if value is None else value for text, value in zip(texts, found, strict=True)]
        return found


class SharedEncoders:
    """The bundle's encoders wrapped for sharing across concurrent searches: `bundle` is what a Searcher uses."""

    def __init__(self, encoders: EncoderBundle, options: ServeOptions, observer: EncodingObserver) -> None:
        self.cache = EncodingCache(options.cache_size)
        self._batchers: list[MicroBatcher] = []
        wrapped: dict[str, Any] = {}
        for name in ("splade", "deepct", "dense", "colbert"):
            encoder = getattr(encoders, name)
            if encoder is None:
                continue
            batcher = None
            if options.batching:
                batcher = MicroBatcher(encoder.encode_queries, name=name, max_batch=options.batch_size,
                                       max_wait_s=options.batch_wait_ms / 1000,
                                       on_batch=functools.partial(observer.batch, name))
                self._batchers.append(batcher)
            wrapped[name] = SharedQueryEncoder(encoder, name, self.cache, batcher, observer)
        self.bundle = EncoderBundle(**wrapped)

    def close(self) -> None:
        for batcher in self._batchers:
            batcher.close()
