"""Inline ingest: read → skip unchanged → encode → upsert, in one process, reporting every document's fate."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from neurank.config import Settings
from neurank.documents import Document
from neurank.errors import ConfigError, InputError
from neurank.index_spec import IndexSpec
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.protocol import EncodedDocument, Store, VersionedStore, WriteFailure


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def failure_to_dict(failure: WriteFailure) -> dict[str, Any]:
    return {"id": failure.id, "source": failure.source, "reason": failure.reason}


@dataclass(slots=True)
class IngestSummary:
    indexed: int = 0
    skipped: int = 0
    failures: list[WriteFailure] = field(default_factory=list)
    truncated: int = 0
    dead: list[WriteFailure] = field(default_factory=list)
    """Documents left in the dead letters (queued ingest only), each with its reason."""

    @property
    def failed(self) -> int:
        return len(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "skipped": self.skipped,
            "failed": self.failed,
            "dead": len(self.dead),
            "truncated": self.truncated,
            "failures": [failure_to_dict(f) for f in self.failures],
            "dead_letters": [failure_to_dict(f) for f in self.dead],
        }


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


def encode_isolating_failures(
    encoders: EncoderBundle, documents: Sequence[Document]
) -> tuple[list[EncodedDocument], list[WriteFailure]]:
    """Encode a batch; if the batch fails, encode one by one so a poison document fails alone."""
    try:
        return encoders.encode(documents), []
    except Exception:
        if len(documents) == 1:
            raise
    encoded: list[EncodedDocument] = []
    failures: list[WriteFailure] = []
    for doc in documents:
        try:
            encoded.extend(encoders.encode([doc]))
        except Exception as exc:
            failures.append(WriteFailure(doc.id, f"encoding failed: {exc}", doc.source))
    return encoded, failures


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
    """Index every valid record; invalid ones and failed writes are reported, never dropped silently."""
    ensure_index(store, index, encoders.index_spec(settings))
    models = encoders.models()
    summary = IngestSummary()
    for chunk in batched(records, batch_size):
        documents: list[Document] = []
        for record in chunk:
            if isinstance(record, InputError):
                summary.failures.append(WriteFailure(id="", reason=str(record), source=record.source))
            else:
                documents.append(record)
        stored = store.stored_state(index, [doc.id for doc in documents])
        todo = [doc for doc in documents if stored.get(doc.id) != (doc.content_hash, models)]
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
    if isinstance(store, VersionedStore):
        store.commit(index)
    return summary
