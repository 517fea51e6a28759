"""Inline ingest: read → skip unchanged → encode → upsert, in one process, reporting every document's fate."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from neurank.config import Settings
from neurank.documents import Document
from neurank.errors import ConfigError, InputError
from neurank.index_spec import IndexSpec
from neurank.ingest.core import IngestSummary, batched, encode_isolating_failures, end_run, stale_documents
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.protocol import Store, VersionedStore


def ensure_index(store: Store, index: str, spec: IndexSpec) -> None:
    """Create the index, or check that the existing one was built for exactly this spec.

    A versioned store (OpenSearch) builds a new version for new models instead (`commit` makes it searchable);
    any other change (analyzer, BM25 k1/b, vector space, HNSW parameters, models on the local store) is refused
    with what changed: documents that are skipped as unchanged would never be written under the new settings.
    """
    existing = store.index_spec(index)
    if existing is None:
        store.create_index(index, spec)
        return
    if existing == spec:
        return
    if isinstance(store, VersionedStore) and existing.rebuilds_as(spec):
        store.create_index(index, spec)
        return
    raise ConfigError(
        f"index {index!r} in {store.url} was built with other settings ({existing.describe_changes(spec)}); "
        f"drop it with `neurank index drop {index}` and ingest again, or ingest into another --index"
    )


def create_configured_index(settings: Settings) -> Store:
    """The configured index in the configured store, created for the configured models (`neurank index create`)."""
    from neurank.stores import open_store

    store = open_store(settings)
    ensure_index(store, settings.index, EncoderBundle.from_settings(settings).index_spec(settings))
    return store


def ingest_records(
    records: Iterable[Document | InputError],
    store: Store,
    index: str,
    encoders: EncoderBundle,
    settings: Settings,
    *,
    batch_size: int = 256,
    on_progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Index every valid record; invalid ones and failed writes are reported, never dropped silently.

    The index is checked (or created) and the encoders loaded before the first record is read, so that a
    missing model, a bad setting or an unreachable store stops the run once, with its own typed error.
    """
    ensure_index(store, index, encoders.index_spec(settings))
    encoders.warm_up()
    models = encoders.models()
    summary = IngestSummary()
    for chunk in batched(records, batch_size):
        documents = summary.documents(chunk)
        todo = stale_documents(store, index, documents, models)
        summary.skipped += len(documents) - len(todo)
        if todo:
            encoded, failures = encode_isolating_failures(encoders, todo)
            summary.failures.extend(failures)
            result = store.upsert(index, encoded)
            summary.indexed += result.written
            summary.failures.extend(result.failed)
        if on_progress:
            on_progress(len(chunk))
    summary.truncated = encoders.truncated
    end_run(store, index)
    return summary
