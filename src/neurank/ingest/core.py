"""What inline and queued ingest share, written once: the run summary, how a record becomes a failure, the
skip-unchanged check, encoding that isolates a poison document, the retry backoff and the end of a run.

Errors are of two kinds. A document's own fault (bad input, an encoder or store that refuses this text) is
recorded against that document and the run goes on. A systemic error — a model that cannot load, a bad
setting, a store that cannot be reached (`SYSTEMIC_ERRORS`) — would fail every document alike, so it
propagates: the run stops once, with a typed error, instead of recording it a million times.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

from neurank.documents import Document
from neurank.errors import ConfigError, InputError, MissingExtraError, ModelError, StoreError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores.protocol import EncodedDocument, Store, VersionedStore, WriteFailure

SYSTEMIC_ERRORS: tuple[type[Exception], ...] = (ModelError, ConfigError, MissingExtraError, StoreError)
"""Errors no single document causes: they stop a run instead of being recorded per document."""

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last may be shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def failure_to_dict(failure: WriteFailure) -> dict[str, Any]:
    return {"id": failure.id, "source": failure.source, "reason": failure.reason}


def document_failure(document: Document, reason: str) -> WriteFailure:
    """A document that could not be indexed, named by its id and its place in the source."""
    return WriteFailure(document.id, reason, document.source)


def input_failure(error: InputError) -> WriteFailure:
    """A record that never became a document: no id to name, so its file and line say which (once: the
    reason is the message and the field, without the source again)."""
    reason = f"field {error.field!r}: {error.reason}" if error.field else error.reason
    return WriteFailure(id="", reason=reason, source=error.source)


@dataclass(slots=True)
class IngestSummary:
    """What happened to every record of a run: indexed, skipped (unchanged), failed, or dead-lettered."""

    indexed: int = 0
    skipped: int = 0
    failures: list[WriteFailure] = field(default_factory=list)
    truncated: int = 0
    dead: list[WriteFailure] = field(default_factory=list)
    """Documents left in the dead letters (queued ingest only), each with its reason."""

    @property
    def failed(self) -> int:
        return len(self.failures)

    def documents(self, records: Sequence[Document | InputError]) -> list[Document]:
        """The valid documents among `records`; each invalid record is recorded as a failure."""
        documents = []
        for record in records:
            if isinstance(record, InputError):
                self.failures.append(input_failure(record))
            else:
                documents.append(record)
        return documents

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


def stale_documents(store: Store, index: str, documents: Sequence[Document],
                    models: dict[str, str]) -> list[Document]:
    """The documents the store lacks as they are: absent, changed, or encoded by other models.

    The one skip-unchanged rule: a document stored with the same content hash and model fingerprints is done.
    """
    stored = store.stored_state(index, [doc.id for doc in documents])
    return [doc for doc in documents if stored.get(doc.id) != (doc.content_hash, models)]


def encode_isolating_failures(
    encoders: EncoderBundle, documents: Sequence[Document]
) -> tuple[list[EncodedDocument], list[WriteFailure]]:
    """Encode a batch; if it fails, encode one by one so that a poison document fails alone.

    Systemic errors propagate: every document would fail the same way.
    """
    try:
        return encoders.encode(documents), []
    except SYSTEMIC_ERRORS:
        raise
    except Exception as exc:
        if len(documents) == 1:
            return [], [document_failure(documents[0], f"encoding failed: {exc}")]
    encoded: list[EncodedDocument] = []
    failures: list[WriteFailure] = []
    for doc in documents:
        done, failed = encode_isolating_failures(encoders, [doc])
        encoded.extend(done)
        failures.extend(failed)
    return encoded, failures


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with equal jitter: half the step is fixed, half random, so retrying workers spread out."""
    step = min(cap_s, base_s * 2**attempt)
    return step / 2 + random.uniform(0, step / 2)


def end_run(store: Store, index: str) -> None:
    """Make what the run wrote searchable: a versioned store refreshes, and swaps its alias to a version
    built for new models. Inline and queued runs end alike, whoever wrote the documents."""
    if isinstance(store, VersionedStore):
        store.commit(index)
