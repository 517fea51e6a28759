"""The Store protocol: what every store (embedded `local`, `opensearch`) does, and what it means.

Write semantics (the same in every store):
- `upsert` is idempotent by document id: writing a document again replaces it.
- A document is *skipped* by ingest when the store already holds it with the same `content_hash` and the
  same model fingerprints (`stored_state`); it is *re-encoded* when the hash or any fingerprint differs.
- One bad document never fails its batch: `upsert` reports it in `WriteResult.failed` with the reason, and
  writes the others.

Scoring semantics follow ../SCORING.md exactly (BM25 with Lucene's length encoding, `rank_features`
quantization and the `neural_sparse` linear sum, knn score translation per `space_type`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from neurank.documents import Document

if TYPE_CHECKING:
    from neurank.query.fusion import FusedHit
    from neurank.query.plan import RetrievalPlan

SpaceType = Literal["cosinesimil", "innerproduct", "l2"]
SPARSE_FIELDS = ("splade", "deepct")
ScoredIds = list[tuple[str, float]]
"""(document id, score) pairs, best first."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """What an index is built for: analyzer, BM25 parameters, vector space, and the models that fill it."""

    language: str = "english"
    dense_dimension: int | None = None
    space_type: SpaceType = "cosinesimil"
    models: Mapping[str, str] = field(default_factory=dict)
    """role ("splade", "deepct", "dense") → model fingerprint."""
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    knn_engine: Literal["lucene", "faiss"] = "lucene"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 256
    shards: int = 1
    replicas: int = 0


@dataclass(frozen=True, slots=True)
class EncodedDocument:
    """A document with what the encoders made of it, ready to be written."""

    document: Document
    sparse: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """sparse field ("splade", "deepct") → {token: weight > 0}."""
    embedding: np.ndarray | None = None
    models: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    document: Document
    content_hash: str
    models: Mapping[str, str]
    sparse: Mapping[str, Mapping[str, float]]
    embedding: np.ndarray | None


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

    def generation(self, name: str) -> int:
        """A number that changes whenever the index's contents change (like a refresh)."""

    def search_bm25(self, name: str, query: str, k: int) -> ScoredIds:
        """`match` on the `content` field (title + text), Lucene BM25 with the index's k1, b."""

    def search_sparse(self, name: str, field: str, query_tokens: Mapping[str, float], k: int) -> ScoredIds:
        """`neural_sparse` with raw query tokens: Σ w_t · decode(S_d,t) over the `rank_features` field."""

    def search_vector(self, name: str, vector: np.ndarray, k: int) -> ScoredIds:
        """Exact `knn` on `embedding`, scores translated per the index's `space_type`."""

    def explain_bm25(self, name: str, query: str, doc_id: str) -> dict[str, float]:
        """Analyzed query term → its BM25 contribution to `doc_id` (terms that do not match are left out)."""


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
class HybridStore(Store, Protocol):
    """A store that runs all of a plan's sub-queries in one request, and may fuse them on the server."""

    def search_hybrid(
        self,
        name: str,
        plan: RetrievalPlan,
        query_text: str,
        sparse_tokens: Mapping[str, Mapping[str, float]],
        vector: np.ndarray | None,
    ) -> list[FusedHit]:
        """The plan's fused hits, best first, fused as `neurank.query.fusion.fuse` does.

        Fused on the client, each hit carries every sub-query's raw score, normalized score and rank; fused by
        the cluster (a `hybrid` query), only the combined score is known and those are None.
        """
