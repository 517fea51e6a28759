"""The service's Prometheus metrics, in a registry of its own (one per app, so two apps in a process never mix).

Labels take only validated values (a parsed mode, a stage name, an encoder role), never user text, so their
number stays bounded; no metric carries a secret.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ServeMetrics:
    """Request latency per mode and per stage, searches in flight, rejections, encoder calls and the time texts
    wait for them, cache lookups."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram("neurank_serve_request_seconds", "search latency, by mode and HTTP status",
                                  ["mode", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.stages = Histogram("neurank_serve_stage_seconds", "time in each stage of a search, by mode",
                                ["mode", "stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("neurank_serve_in_flight", "searches running now", registry=self.registry)
        self.rejected = Counter("neurank_serve_rejected_total",
                                "searches refused: overload (429), deadline (504), not_ready (503)",
                                ["reason"], registry=self.registry)
        self.batch_sizes = Histogram("neurank_serve_encoder_batch_size", "query texts per encoder call",
                                     ["encoder"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.encoder_seconds = Histogram("neurank_serve_encoder_seconds", "time of one encoder call", ["encoder"],
                                         buckets=WAIT_BUCKETS, registry=self.registry)
        self.queue_seconds = Histogram("neurank_serve_encoder_queue_seconds",
                                       "how long a query text waited for its encoder call to start", ["encoder"],
                                       buckets=WAIT_BUCKETS, registry=self.registry)
        self.cache_hits = Counter("neurank_serve_cache_hits_total", "query encodings found in the cache",
                                  ["encoder"], registry=self.registry)
        self.cache_misses = Counter("neurank_serve_cache_misses_total", "query encodings computed",
                                    ["encoder"], registry=self.registry)
        self.gc_pauses = Histogram("neurank_serve_gc_seconds", "Python garbage collections (every thread waits "
                                   "for one), by generation", ["generation"], buckets=GC_BUCKETS,
                                   registry=self.registry)
        self.gc_frozen = Gauge("neurank_serve_gc_frozen_objects", "objects left out of garbage collections "
                               "(NEURANK_SERVE_GC_FREEZE)", registry=self.registry)
        self.gc_frozen.set_function(gc.get_freeze_count)
        self._gc_started = 0.0

    def gc_event(self, phase: str, info: Mapping[str, int]) -> None:
        """A `gc.callbacks` entry: times each collection (they never nest, and run under the GIL)."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.labels(str(info["generation"])).observe(time.perf_counter() - self._gc_started)

    def batch(self, encoder: str, size: int, seconds: float) -> None:
        self.batch_sizes.labels(encoder).observe(size)
        self.encoder_seconds.labels(encoder).observe(seconds)

    def queued(self, encoder: str, seconds: float) -> None:
        self.queue_seconds.labels(encoder).observe(seconds)

    def cache_lookup(self, encoder: str, hit: bool) -> None:
        (self.cache_hits if hit else self.cache_misses).labels(encoder).inc()

    def search(self, mode: str, status: int, seconds: float, timings_ms: Mapping[str, float] | None = None) -> None:
        self.requests.labels(mode, str(status)).observe(seconds)
        for stage, ms in (timings_ms or {}).items():
            if stage != "total":
                self.stages.labels(mode, stage).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
