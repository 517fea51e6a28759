"""What `neurank ingest` does: index a file inline or through Celery workers, or send the dead letters again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from neurank.config import Settings
from neurank.documents import read_corpus
from neurank.errors import ConfigError
from neurank.ingest.inline import IngestSummary, ingest_records
from neurank.onnx_models.bundle import EncoderBundle

Via = Literal["inline", "celery"]


def run_ingest(settings: Settings, path: Path | None, *, via: Via = "inline",
               on_progress: Callable[[int], None] | None = None) -> IngestSummary:
    """Ingest `path` in this process (`inline`) or on Celery workers; with no path, retry the dead letters.

    The celery extra is imported only when it is used.
    """
    if via not in ("inline", "celery"):
        raise ConfigError(f"unknown ingest path {via!r}; use inline or celery")
    if path is None:
        from neurank.ingest.producer import retry_dead_letters

        return retry_dead_letters(settings, on_progress=on_progress)
    if via == "celery":
        from neurank.ingest.producer import ingest_via_celery

        return ingest_via_celery(read_corpus(path), settings, on_progress=on_progress)
    from neurank.stores import open_store

    return ingest_records(read_corpus(path), open_store(settings), settings.index,
                          EncoderBundle.from_settings(settings), settings, on_progress=on_progress)
