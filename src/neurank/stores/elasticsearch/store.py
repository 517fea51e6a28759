"""The Elasticsearch store (`http(s)://host:port`): a user's Elasticsearch 8.x / 9.x cluster, through the official
elasticsearch-py client.

Index versions, writes, reads and refreshes are `neurank.stores.cluster.ClusterStore`'s, as on OpenSearch. What is
Elasticsearch's:

What the cluster can do. Its version comes from the `GET /` that detected the engine (or one `GET /` on first
use), its licence from one `GET _license` (setting `elasticsearch_license` skips it; a cluster without the
endpoint, or one that refuses it, counts as Basic). They decide the field types of a new index
(`neurank.mappings.elasticsearch`), the sparse query (`sparse_vector` where the index has `sparse_vector` fields,
else the `rank_feature` sum), and what fuses on the server.

Searching. One sub-query is one `_search`, several are one `_msearch` (Basic). Hybrid plans fuse on the cluster
only with the licence that sells retrievers (Enterprise / trial): `rrf` (8.14+; weights from 9.2), or `linear`
for min_max (8.18+) and l2 (8.19 / 9.1+) with arithmetic_mean. Everything else — every fusion on a Basic
cluster, z_score and the other means everywhere — runs in neurank over the `_msearch` results, with OpenSearch's
semantics (docs/SCORING.md says where Elasticsearch's own normalizers differ). Late interaction runs on the
cluster with `rank_vectors` (8.18+, Enterprise), else neurank scores MaxSim from the candidates' stored vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from elasticsearch import ApiError
from elasticsearch.helpers import streaming_bulk

from neurank import __version__
from neurank.config import License, Settings
from neurank.errors import PlanError
from neurank.index_spec import COLBERT_ROLE, SPARSE_FIELDS, IndexSpec
from neurank.mappings import FieldTypes, elasticsearch_index_body
from neurank.retrieval import Fusion, LateInteractionQuery, ScoredIds, SubQuery
from neurank.stores.cluster import DEFAULT_POLICY, BulkDriver, BulkPolicy, ClusterStore
from neurank.stores.cluster.connection import connection
from neurank.stores.cluster.detect import detect
from neurank.stores.cluster.store import version_tuple
from neurank.stores.elasticsearch.client import new_client
from neurank.stores.elasticsearch.dsl import fused_body, search_body
from neurank.stores.elasticsearch.errors import CLIENT_ERRORS, failure

log = logging.getLogger(__name__)

BULK = BulkDriver(streaming_bulk, failure)
RETRIEVER_LICENSES = frozenset({"enterprise", "trial"})
"""The licences that allow the `rrf` / `linear` retrievers and `rank_vectors` (ENGINES.md)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The cluster's version and licence, and what they allow."""

    version: tuple[int, ...]
    license: License = "basic"

    @property
    def retrievers(self) -> bool:
        return self.license in RETRIEVER_LICENSES

    @property
    def sparse_vector(self) -> bool:
        """`sparse_vector` fields and the `sparse_vector` query with `query_vector` (8.15+). The field exists from
        8.11, but before 8.15 only `text_expansion` (an inference model on the cluster) queries it, so older
        clusters get `rank_features`, which the `rank_feature` sum queries with the same scores."""
        return self.version >= (8, 15)

    @property
    def rank_vectors(self) -> bool:
        return self.version >= (8, 18) and self.retrievers

    def fusion_site(self, fusion: Fusion) -> str | None:
        """The retriever that fuses `fusion` on the cluster, None where neurank fuses `_msearch` results."""
        if not self.retrievers:
            return None
        if fusion.technique == "rrf":
            weighted_ok = fusion.weights is None or self.version >= (9, 2)
            return "rrf" if self.version >= (8, 14) and weighted_ok else None
        if fusion.combination != "arithmetic_mean":
            return None
        if fusion.technique == "min_max" and self.version >= (8, 18):
            return "linear"
        l2_ok = (8, 19) <= self.version < (9,) or self.version >= (9, 1)
        return "linear" if fusion.technique == "l2" and l2_ok else None


def _license(value: object) -> License:
    return value if isinstance(value, str) and value in get_args(License) else "basic"  # type: ignore[return-value]


class ElasticsearchStore(ClusterStore):
    """The Store on an Elasticsearch cluster at `url`; see the module docstring. Construction does no I/O.

    `server_version` is what `GET /` said (open_store passes it on, so that the cluster is asked once).
    """

    ENGINE = "Elasticsearch"
    SOURCE_INCLUDES = "source_includes"
    WRITES_CONTENT = True

    def __init__(self, url: str, settings: Settings | None = None, *, client: Any = None,
                 bulk: BulkPolicy = DEFAULT_POLICY, server_version: str | None = None) -> None:
        super().__init__(url, settings, client=client, bulk=bulk)
        self._server_version = server_version
        self._capabilities: Capabilities | None = None
        self._field_types: dict[str, Mapping[str, str]] = {}

    def _version(self) -> tuple[int, ...]:
        if self._server_version is None:
            self._server_version = detect(connection(self.url, self._settings)).version
        return version_tuple(self._server_version)

    def _new_client(self) -> Any:
        return new_client(connection(self.url, self._settings), server_major=self._version()[0])

    @property
    def _driver(self) -> BulkDriver:
        return BULK

    @property
    def _client_errors(self) -> tuple[type[Exception], ...]:
        return CLIENT_ERRORS

    def capabilities(self) -> Capabilities:
        """Version from `GET /`, licence from `GET _license` (or the `elasticsearch_license` setting); once."""
        if self._capabilities is None:
            configured = self._settings.elasticsearch_license
            license_ = configured if configured is not None else self._ask_license()
            self._capabilities = Capabilities(self._version(), license_)
            log.info("%s: Elasticsearch %s, %s licence", self.url, self._server_version, license_)
        return self._capabilities

    def _ask_license(self) -> License:
        try:
            response = self.client.license.get()
        except ApiError as exc:
            log.info("%s did not answer GET _license (%s); assuming a Basic licence", self.url, exc.meta.status)
            return "basic"
        info = response.get("license") or {}
        return _license(info.get("type")) if info.get("status", "active") == "active" else "basic"

    def _index_body(self, spec: IndexSpec) -> dict[str, Any]:
        capabilities = self.capabilities()
        types = FieldTypes(sparse_vector=capabilities.sparse_vector, rank_vectors=capabilities.rank_vectors,
                           dense_index_options=self._settings.elasticsearch_dense_index_options)
        return elasticsearch_index_body(spec, version=__version__, types=types)

    def _swapped(self, name: str) -> None:
        self._field_types.pop(name, None)

    def _types_of(self, name: str) -> Mapping[str, str]:
        """field → mapped type in the index searched as `name` (asked once per alias, forgotten at a swap)."""
        if name not in self._field_types:
            properties: Mapping[str, Any] = self._mapping(name).get("properties", {})
            self._field_types[name] = {field: str(value.get("type", "object")) for field, value in properties.items()}
        return self._field_types[name]

    def _sparse_vector(self, name: str) -> bool:
        """Whether the index maps its sparse fields as `sparse_vector` and the cluster has the query for them."""
        types = self._types_of(name)
        return ({types.get(field) for field in SPARSE_FIELDS} == {"sparse_vector"}
                and self.capabilities().sparse_vector)

    def _late_on_cluster(self, name: str) -> bool:
        return self.capabilities().rank_vectors and self._types_of(name).get(COLBERT_ROLE) == "rank_vectors"

    def search(self, name: str, queries: Sequence[SubQuery]) -> list[ScoredIds]:
        """One `_search`, or one `_msearch` for several sub-queries; a late-interaction sub-query the cluster
        cannot score is scored here from the candidates' token vectors."""
        late_on_cluster = any(isinstance(q, LateInteractionQuery) for q in queries) and self._late_on_cluster(name)
        on_cluster = [i for i, query in enumerate(queries)
                      if not isinstance(query, LateInteractionQuery) or late_on_cluster]
        sparse_vector = self._sparse_vector(name)
        candidates = self._settings.elasticsearch_num_candidates
        bodies = [search_body(queries[i], sparse_vector=sparse_vector, candidates=candidates) for i in on_cluster]
        answered = dict(zip(on_cluster, self._search_all(name, bodies), strict=True))
        return [self._late_interaction(name, query) if isinstance(query, LateInteractionQuery) and i not in answered
                else answered[i] for i, query in enumerate(queries)]

    def fuses(self, fusion: Fusion) -> bool:
        return self.capabilities().fusion_site(fusion) is not None

    def fused_by(self, fusion: Fusion) -> str:
        """Where `fusion` runs, for plans and explanations."""
        site = self.capabilities().fusion_site(fusion)
        if site is None:
            return "neurank over one _msearch (OpenSearch semantics)"
        return f"the Elasticsearch {site} retriever"

    def search_fused(self, name: str, queries: Sequence[SubQuery], fusion: Fusion, size: int) -> ScoredIds:
        """One `_search` whose `rrf` or `linear` retriever fuses the sub-queries."""
        site = self.capabilities().fusion_site(fusion)
        if site is None:
            raise PlanError(f"{self.url} cannot fuse {fusion.technique} itself (version or licence); "
                            "fuse the sub-queries' results instead")
        body = fused_body(queries, fusion, size, sparse_vector=self._sparse_vector(name),
                          candidates=self._settings.elasticsearch_num_candidates,
                          kind="rrf" if site == "rrf" else "linear")
        return self._search(name, body)
