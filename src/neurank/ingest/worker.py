"""The ingest worker: `neurank worker`, or `celery -A neurank.ingest.worker worker` configured by NEURANK_*.

Each pool process loads the encoders and opens the store once, when it starts (`worker_process_init`);
the store and the models come from this worker's own Settings.
"""

from __future__ import annotations

import os
from functools import cache

from neurank.config import Settings, load_settings
from neurank.ingest.app import IngestApp, make_app


@cache
def _environment_app() -> IngestApp:
    return make_app(load_settings())


def __getattr__(name: str) -> IngestApp:
    """`app`, the app `celery -A neurank.ingest.worker` finds, built from NEURANK_* when first asked for: importing
    `run_worker` reads no setting, and a bad one is a ConfigError naming it (never a report echoing its value)."""
    if name == "app":
        return _environment_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_worker(settings: Settings, *, concurrency: int | None = None, queues: list[str] | None = None,
               loglevel: str = "INFO") -> None:
    """Run a worker in this process until it is stopped.

    By default one pool process per core, each with one encoder thread (torch or ONNX Runtime) unless
    `settings.threads` says otherwise: small encoders run faster side by side than spread over threads.
    """
    processes = concurrency or os.cpu_count() or 1
    if settings.threads is None:
        settings = settings.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // processes)})
    worker_app = make_app(settings)
    worker_app.worker_main([
        "worker", "--pool=prefork", f"--concurrency={processes}", f"--loglevel={loglevel}",
        f"--queues={','.join(queues or [settings.ingest_options().queue])}",
    ])
