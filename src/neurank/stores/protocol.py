"""The Store protocol: what every store (embedded `local`, `opensearch`) does, and what it means.

Write semantics (the same in every store):
- `upsert` is idempotent by document id: writing a document again replaces it.
- A document is *skipped* by ingest when the store already holds it with the same `content_hash` and the
  same model fingerprints (`stored_state`); it is *re-encoded* when the hash or any fingerprint differs.
- One bad document never fails its batch: `upsert` reports it in `WriteResult.failed` with the reason, and
  writes the others.

Search semantics: a store answers ready sub-queries (`neurank.retrieval`), each scored exactly as SCORING.md
says (BM25 with Lucene's length encoding, `rank_features` quantization and the `neural_sparse` linear sum,
knn score translation per `space_type`), and, where the engine can fuse them itself (`FusingStore`), one fused
request. Plans, modes, encoders and client-side fusion belong to the query layer above.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from neurank.documents import Document
from neurank.index_spec import IndexSpec
from neurank.retrieval import Fusion, ScoredIds, SubQuery


@dataclass(frozen=True, slots=True)
class EncodedDocument:
    """A document with what the encoders made of it, ready to be written."""

    document: Document
    sparse: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """sparse field ("splade", "deepct") → {token: weight > 0}."""
    embedding: np.ndarray | None = None
    models: Mapping[str, str] = field(default_factory=dict)
    token_vectors: np.ndarray | None = None
    """Late interaction: one L2-normalized float32 row per kept document token (n_tokens × dim); None when no
    late-interaction model is configured."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    document: Document
    content_hash: str
    models: Mapping[str, str]
    sparse: Mapping[str, Mapping[str, float]]
    embedding: np.ndarray | None
    token_vectors: np.ndarray | None = None
    """As written, after the store's compression (float32 rows back); None when the document has none."""


@dataclass(frozen=True, slots=True)
class WriteFailure:
    id: str
    reason: str
    source: str | None = None


@dataclass(slots=True)
class WriteResult:
    written: int = 0
    failed: list[WriteFailure] = field(default_factory=list)


@runtime_checkable
class Store(Protocol):
    """A place documents are written to and searched. Construction does no I/O."""

    url: str
    """Where the store lives, without credentials (safe to log and to put in task messages)."""

    def create_index(self, name: str, spec: IndexSpec) -> None:
        """Create `name`; if it exists with another spec, raise StoreError (the caller drops or versions)."""

    def drop_index(self, name: str) -> bool:
        """Delete `name` and everything in it; return whether it existed (no error if it did not)."""

    def index_spec(self, name: str) -> IndexSpec | None:
        """The spec `name` was created with, or None when there is no such index."""

    def upsert(self, name: str, documents: Sequence[EncodedDocument]) -> WriteResult:
        """Write (insert or replace by id); report per-document failures instead of raising."""

    def stored_state(self, name: str, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        """id → (content_hash, model fingerprints) for the ids that are stored."""

    def get(self, name: str, ids: Sequence[str]) -> list[StoredDocument]:
        """The stored documents among `ids`, in the order given; missing ids are left out."""

    def delete(self, name: str, ids: Sequence[str]) -> int:
        """Delete by id; return how many existed."""

    def count(self, name: str) -> int: ...

    def search(self, name: str, queries: Sequence[SubQuery]) -> list[ScoredIds]:
        """Each sub-query's hits, best first, in the order given; one request where the engine allows it."""

    def explain_bm25(self, name: str, query: str, doc_id: str) -> dict[str, float]:
        """Analyzed query term → its BM25 contribution to `doc_id` (terms that do not match are left out)."""

    def document_frequencies(self, name: str, terms: Collection[str]) -> dict[str, int]:
        """Analyzed `content` term → how many live documents hold it (0 for a term none holds)."""


@runtime_checkable
class VersionedStore(Store, Protocol):
    """A store whose index NAME is an alias over versions NAME-v1, NAME-v2, … (the OpenSearch store).

    `create_index` on an index built with other models (same analyzer and BM25 parameters) builds the next
    version beside the searched one instead of refusing: `upsert` and `stored_state` then work on the new
    version while searches still see the old one, until `commit` swaps them.
    """

    def commit(self, name: str) -> str | None:
        """Make the writes searchable; swap the alias atomically to a version being built, drop older ones.

        Returns the version searched from now on, or None when no new version was being built.
        """


@runtime_checkable
class FusingStore(Store, Protocol):
    """A store whose engine can fuse sub-queries itself (OpenSearch's `hybrid` query and a search pipeline)."""

    def fuses(self, fusion: Fusion) -> bool:
        """Whether this engine can apply `fusion` itself (with the same result as `neurank.query.fusion`)."""

    def fused_by(self, fusion: Fusion) -> str:
        """What fuses `fusion` on this store (e.g. "hybrid query", "the Elasticsearch rrf retriever"), for notes."""

    def search_fused(self, name: str, queries: Sequence[SubQuery], fusion: Fusion, size: int) -> ScoredIds:
        """The fused hits, best first: one request; only the combined scores are known."""
