"""What travels through Redis as JSON: batch messages, batch outcomes and dead letters.

A message names its store by the store's public URL and carries the documents and the model fingerprints
the producer expects, nothing more: no credentials, no vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neurank.documents import Document
from neurank.ingest.core import failure_to_dict
from neurank.stores.protocol import WriteFailure


def document_to_dict(document: Document) -> dict[str, Any]:
    return {"id": document.id, "title": document.title, "text": document.text,
            "metadata": document.metadata, "source": document.source}


def document_from_dict(data: dict[str, Any]) -> Document:
    return Document(id=data["id"], text=data["text"], title=data.get("title") or "",
                    metadata=data.get("metadata") or {}, source=data.get("source"))


def failure_from_dict(data: dict[str, Any]) -> WriteFailure:
    return WriteFailure(id=data["id"], reason=data["reason"], source=data.get("source"))


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One task's input."""

    batch_id: str
    run_id: str
    store: str
    """The store's URL as `Store.url` gives it: without credentials."""
    index: str
    models: dict[str, str]
    """role → fingerprint the producer expects; a worker with other models refuses the batch."""
    documents: list[Document]

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "run_id": self.run_id, "store": self.store, "index": self.index,
                "models": self.models, "documents": [document_to_dict(doc) for doc in self.documents]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchMessage:
        return cls(batch_id=data["batch_id"], run_id=data["run_id"], store=data["store"], index=data["index"],
                   models=dict(data["models"]), documents=[document_from_dict(d) for d in data["documents"]])

    def halves(self) -> list[BatchMessage]:
        """Two batches of half the documents each, so that a document that kills workers ends up alone."""
        middle = (len(self.documents) + 1) // 2
        parts = (self.documents[:middle], self.documents[middle:])
        return [BatchMessage(f"{self.batch_id}.{i}", self.run_id, self.store, self.index, self.models, part)
                for i, part in enumerate(parts) if part]


@dataclass(slots=True)
class BatchOutcome:
    """What a task did with its batch; exactly one outcome is recorded per batch."""

    indexed: int = 0
    """Documents in the store with this content and these models once the task ended."""
    dead: list[WriteFailure] = field(default_factory=list)
    truncated: int = 0
    split: dict[str, int] = field(default_factory=dict)
    """child batch id → its document count, when the batch was handed on in halves."""

    def to_dict(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "dead": [failure_to_dict(f) for f in self.dead],
                "truncated": self.truncated, "split": self.split}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchOutcome:
        return cls(indexed=data["indexed"], dead=[failure_from_dict(f) for f in data["dead"]],
                   truncated=data["truncated"], split=dict(data["split"]))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A document that could not be indexed, why, and the document itself so that it can be sent again."""

    document: Document
    reason: str
    batch_id: str
    at: float
    """Unix time it was recorded."""

    @property
    def failure(self) -> WriteFailure:
        return WriteFailure(id=self.document.id, reason=self.reason, source=self.document.source)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.document.id, "source": self.document.source, "reason": self.reason,
                "content_hash": self.document.content_hash, "batch_id": self.batch_id, "at": self.at,
                "document": document_to_dict(self.document)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        return cls(document=document_from_dict(data["document"]), reason=data["reason"],
                   batch_id=data["batch_id"], at=data["at"])
