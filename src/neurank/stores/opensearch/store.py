"""The OpenSearch store (`http(s)://host:port`): a user's OpenSearch 2.x / 3.x cluster, through opensearch-py.

Index versions, writes, reads and refreshes are `neurank.stores.cluster.ClusterStore`'s. What is OpenSearch's:

Searching. One sub-query is one `_search`, several are one `_msearch`. With the neural-search plugin (asked
once per store with `GET _cat/plugins`, or set by `opensearch_neural_plugin`) the store also fuses: a `hybrid`
query with a fusion search pipeline (`search_fused`), for the fusions the plugin's version has (`fuses`).
Learned-sparse sub-queries use `neural_sparse` where the plugin exists, else the equivalent `rank_feature` sum.
A late-interaction sub-query runs on the cluster where the k-NN plugin has `lateInteractionScore` (3.3+, from
the same `_cat/plugins`, or set by `opensearch_late_interaction`), and its scores are mapped back to MaxSim
(SCORING.md §7); elsewhere the store fetches the candidates' token vectors (`_mget`) and scores them itself.
Either way a sub-query's scores are MaxSim, as in the local store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException, OpenSearchException
from opensearchpy.helpers import streaming_bulk

from neurank import __version__
from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.index_spec import IndexSpec
from neurank.mappings import index_body, pipeline_id, search_pipeline_body
from neurank.retrieval import (
    DEFAULT_HYBRID_FUSION,
    MAX_SUB_QUERIES,
    Fusion,
    LateInteractionQuery,
    ScoredIds,
    SubQuery,
)
from neurank.stores import scoring
from neurank.stores.cluster import DEFAULT_POLICY, BulkDriver, BulkPolicy, ClusterStore
from neurank.stores.cluster.connection import client_options as cluster_client_options
from neurank.stores.cluster.connection import connection
from neurank.stores.cluster.store import version_tuple
from neurank.stores.opensearch.dsl import hybrid_body, search_body, sub_query
from neurank.stores.opensearch.errors import failure

log = logging.getLogger(__name__)

NEURAL_SEARCH = "opensearch-neural-search"
"""The plugin's component name in `_cat/plugins`."""
ASSUMED_NEURAL_SEARCH = (3, 1)
"""The neural-search version assumed when `opensearch_neural_plugin` is set to true."""
KNN = "opensearch-knn"
"""The k-NN plugin's component name in `_cat/plugins`."""
LATE_INTERACTION_KNN = (3, 3)
"""The first k-NN version with the `lateInteractionScore` Painless function (k-NN #2909)."""
@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the cluster can do beyond core OpenSearch; `neural_search` and `knn` are the plugins' versions, None
    where absent."""

    neural_search: tuple[int, ...] | None = None
    knn: tuple[int, ...] | None = None

    @property
    def late_interaction(self) -> bool:
        """Whether Painless has `lateInteractionScore`."""
        return self.knn is not None and self.knn >= LATE_INTERACTION_KNN

    @property
    def neural_sparse(self) -> bool:
        return self.neural_search is not None

    def fuses(self, fusion: Fusion) -> bool:
        """Whether a `hybrid` query with a pipeline can do `fusion`: `pagination_depth` and rrf need 2.19,
        z_score 3.0, rrf weights 3.1; otherwise the client fuses `_msearch` results, with the same result."""
        if self.neural_search is None:
            return False
        if fusion.technique == "rrf" and fusion.weights is not None:
            return self.neural_search >= (3, 1)
        if fusion.technique == "z_score":
            return self.neural_search >= (3, 0)
        return self.neural_search >= (2, 19)


BULK = BulkDriver(streaming_bulk, failure)


def client_options(url: str, settings: Settings) -> dict[str, Any]:
    """opensearch-py client options from Settings: TLS, basic auth, CA bundle, timeout."""
    conn = connection(url, settings)
    if conn.api_key is not None:
        raise ConfigError("OpenSearch takes no API key: unset NEURANK_OPENSEARCH_API_KEY and give "
                          "NEURANK_OPENSEARCH_USER and NEURANK_OPENSEARCH_PASSWORD")
    return cluster_client_options(conn, timeout="timeout", basic_auth="http_auth")


class OpenSearchStore(ClusterStore):
    """The Store on an OpenSearch cluster at `url`; see the module docstring. Construction does no I/O."""

    ENGINE = "OpenSearch"
    SOURCE_INCLUDES = "_source_includes"

    def __init__(self, url: str, settings: Settings | None = None, *, client: OpenSearch | None = None,
                 bulk: BulkPolicy = DEFAULT_POLICY) -> None:
        super().__init__(url, settings, client=client, bulk=bulk)
        self._capabilities: Capabilities | None = None
        self._pipelines: set[str] = set()

    def _new_client(self) -> OpenSearch:
        return OpenSearch(**client_options(self.url, self._settings))

    @property
    def _driver(self) -> BulkDriver:
        return BULK

    @property
    def _client_errors(self) -> tuple[type[Exception], ...]:
        return (OpenSearchException,)

    def _index_body(self, spec: IndexSpec) -> dict[str, Any]:
        return index_body(spec, version=__version__)

    def _after_create(self) -> None:
        if self.capabilities().fuses(DEFAULT_HYBRID_FUSION):
            self._pipeline(DEFAULT_HYBRID_FUSION, MAX_SUB_QUERIES)

    # -- what the cluster can do ---------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Asked once per store (`_cat/plugins`) unless `opensearch_neural_plugin` and
        `opensearch_late_interaction` both say it; each setting that is set wins over what the cluster says."""
        if self._capabilities is None:
            neural, late = self._settings.opensearch_neural_plugin, self._settings.opensearch_late_interaction
            detected = self._detect() if neural is None or late is None else Capabilities()
            self._capabilities = Capabilities(
                detected.neural_search if neural is None else (ASSUMED_NEURAL_SEARCH if neural else None),
                detected.knn if late is None else (LATE_INTERACTION_KNN if late else None),
            )
        return self._capabilities

    def _detect(self) -> Capabilities:
        try:
            with self._errors():
                plugins = self.client.cat.plugins(format="json")
        except ConfigError as exc:
            if not isinstance(exc.__cause__, AuthorizationException):
                raise
            log.warning("%s does not let this user list plugins; assuming no neural-search plugin and no "
                        "lateInteractionScore (set NEURANK_OPENSEARCH_NEURAL_PLUGIN=true or "
                        "NEURANK_OPENSEARCH_LATE_INTERACTION=true where it has them)", self.url)
            return Capabilities()

        def oldest(component: str) -> tuple[int, ...] | None:
            """The plugin's version on the node that has the oldest (what every node can run), None if absent."""
            versions = [version_tuple(p.get("version", "")) for p in plugins if p.get("component") == component]
            return min(versions) if versions else None

        return Capabilities(oldest(NEURAL_SEARCH), oldest(KNN))

    # -- search ----------------------------------------------------------------------------------------------

    def _pipeline(self, fusion: Fusion, n_sub_queries: int) -> str:
        """The fusion's search pipeline, put once per store (a PUT replaces it with the same body)."""
        pipeline = pipeline_id(fusion)
        if pipeline not in self._pipelines:
            with self._errors():
                self.client.search_pipeline.put(id=pipeline, body=search_pipeline_body(fusion, n_sub_queries))
            self._pipelines.add(pipeline)
        return pipeline

    def search(self, name: str, queries: Sequence[SubQuery]) -> list[ScoredIds]:
        """One `_search`, or one `_msearch` for several sub-queries; a late-interaction sub-query the cluster
        cannot score is scored here from the candidates' token vectors."""
        capabilities = self.capabilities()
        on_cluster = [i for i, query in enumerate(queries)
                      if not isinstance(query, LateInteractionQuery) or capabilities.late_interaction]
        bodies = [search_body(sub_query(queries[i], neural_sparse=capabilities.neural_sparse), queries[i].k)
                  for i in on_cluster]
        found = self._search_all(name, bodies)
        answered = dict(zip(on_cluster, found, strict=True))
        results = []
        for i, query in enumerate(queries):
            if not isinstance(query, LateInteractionQuery):
                results.append(answered[i])
            elif i in answered:
                results.append(_maxsim_of_scores(answered[i], query))
            else:
                results.append(self._late_interaction(name, query))
        return results

    def fuses(self, fusion: Fusion) -> bool:
        return self.capabilities().fuses(fusion)

    def fused_by(self, fusion: Fusion) -> str:
        if self.fuses(fusion):
            return "hybrid query"
        return "neurank over one _msearch"

    def search_fused(self, name: str, queries: Sequence[SubQuery], fusion: Fusion, size: int) -> ScoredIds:
        """One `hybrid` query through the fusion's search pipeline (put once per store)."""
        fusion.check_sub_queries(len(queries))
        neural_sparse = self.capabilities().neural_sparse
        body = hybrid_body([sub_query(query, neural_sparse=neural_sparse) for query in queries], size=size,
                           pagination_depth=max(query.k for query in queries))
        return self._search(name, body, search_pipeline=self._pipeline(fusion, len(queries)))


def _maxsim_of_scores(hits: ScoredIds, query: LateInteractionQuery) -> ScoredIds:
    """`lateInteractionScore`'s innerproduct scores mapped back to MaxSim (SCORING.md §7; the order is kept)."""
    n_tokens = len(query.vectors)
    return [(doc_id, float(scoring.late_interaction_maxsim(score, n_tokens))) for doc_id, score in hits]
