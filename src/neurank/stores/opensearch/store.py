"""The OpenSearch store (`http(s)://host:port`): a user's OpenSearch 2.x / 3.x cluster, through opensearch-py.

Index versions. The index NAME is an alias over one concrete index NAME-vN, created from
`neurank.mappings.index_body` (its `_meta` holds the IndexSpec and the model fingerprints). `create_index`
with other models (same analyzer and BM25 parameters) builds NAME-v(N+1) beside the searched version:
`upsert` and `stored_state` go to the newest version, searches and `get` keep going to the alias, so the old
version answers queries while the new one fills. `commit` refreshes, swaps the alias in one `_aliases`
request (remove + add, atomic) and only then deletes the older versions. Inline ingest commits at the end of
a run; an interrupted run resumes into the same new version (its spec already matches). Deletes go to every
live version.

Searching. One sub-query is one `_search`, several are one `_msearch`. With the neural-search plugin (asked
once per store with `GET _cat/plugins`, or set by `opensearch_neural_plugin`) the store also fuses: a `hybrid`
query with a fusion search pipeline (`search_fused`), for the fusions the plugin's version has (`fuses`).
Learned-sparse sub-queries use `neural_sparse` where the plugin exists, else the equivalent `rank_feature` sum.
A late-interaction sub-query runs on the cluster where the k-NN plugin has `lateInteractionScore` (3.3+, from
the same `_cat/plugins`, or set by `opensearch_late_interaction`), and its scores are mapped back to MaxSim
(SCORING.md §7); elsewhere the store fetches the candidates' token vectors (`_mget`) and scores them itself.
Either way a sub-query's scores are MaxSim, as in the local store.

Refresh. Bulk requests do not wait for a refresh (`wait_for` would hold each one for up to a refresh
interval); the store refreshes an index it wrote to before its next read that needs it, and `commit`
refreshes explicitly. Writes of other processes show at the cluster's refresh interval (1 s by default).

Secrets. Credentials come from Settings (`SecretStr`) only; a URL with credentials in it is refused, so `url`
is always safe to log, and no message echoes the password.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from opensearchpy import OpenSearch
from opensearchpy.exceptions import AuthorizationException, OpenSearchException, TransportError

from neurank import __version__
from neurank.config import Settings
from neurank.errors import ConfigError, IndexNotFoundError, StoreError
from neurank.index_spec import COLBERT_ROLE, IndexSpec
from neurank.mappings import index_body, pipeline_id, search_pipeline_body, spec_from_meta
from neurank.mappings.index import CONTENT_FIELD
from neurank.retrieval import (
    DEFAULT_HYBRID_FUSION,
    MAX_SUB_QUERIES,
    Fusion,
    LateInteractionQuery,
    ScoredIds,
    SubQuery,
)
from neurank.stores import scoring
from neurank.stores.opensearch.bulk import DEFAULT_POLICY, Action, BulkOutcome, BulkPolicy, write
from neurank.stores.opensearch.documents import (
    SOURCE_FIELDS,
    STATE_FIELDS,
    UnsendableDocument,
    document_source,
    stored_document,
    stored_state,
    token_vectors,
)
from neurank.stores.opensearch.dsl import hybrid_body, msearch_lines, search_body, sub_query, term_filter
from neurank.stores.opensearch.errors import store_error
from neurank.stores.protocol import EncodedDocument, StoredDocument, WriteFailure, WriteResult

log = logging.getLogger(__name__)

NEURAL_SEARCH = "opensearch-neural-search"
"""The plugin's component name in `_cat/plugins`."""
ASSUMED_NEURAL_SEARCH = (3, 1)
"""The neural-search version assumed when `opensearch_neural_plugin` is set to true."""
KNN = "opensearch-knn"
"""The k-NN plugin's component name in `_cat/plugins`."""
LATE_INTERACTION_KNN = (3, 3)
"""The first k-NN version with the `lateInteractionScore` Painless function (k-NN #2909)."""
MGET_CHUNK = 1000


def explain_term_body(term: str, count: int, doc_id: str) -> dict[str, Any]:
    """One analyzed query term's BM25 contribution to one document: a `term` query boosted by the term's count
    in the query (what `match` sums for a repeated term), restricted to the document by its `doc_id`."""
    query = {"bool": {
        "must": [{"term": {CONTENT_FIELD: {"value": term, "boost": float(count)}}}],
        "filter": [term_filter("doc_id", doc_id)],
    }}
    return search_body(query, 1)


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


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True, slots=True)
class _Versions:
    """The concrete indexes NAME-vN of an index NAME, and which one the alias NAME points to."""

    name: str
    by_number: Mapping[int, str]
    current: str | None

    @property
    def newest(self) -> str | None:
        return self.by_number[max(self.by_number)] if self.by_number else None

    @property
    def pending(self) -> str | None:
        """A version newer than the searched one, being filled."""
        return self.newest if self.newest != self.current else None

    def next_name(self) -> str:
        return f"{self.name}-v{max(self.by_number, default=0) + 1}"


def _public_url(url: str) -> str:
    """`url` without a trailing slash; refused when it carries credentials (they belong in Settings)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected http(s)://host:port for an OpenSearch store, got {url!r}")
    if parts.username or parts.password:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        raise ConfigError(
            f"the store URL {parts.scheme}://…@{host} carries credentials; give them in NEURANK_OPENSEARCH_USER "
            "and NEURANK_OPENSEARCH_PASSWORD instead, so that they never reach logs or task messages"
        )
    return url.rstrip("/")


def client_options(url: str, settings: Settings) -> dict[str, Any]:
    """opensearch-py client options from Settings: TLS, basic auth, CA bundle, timeout (no retries here:
    bulk writes retry with backoff themselves, and callers retry a StoreUnavailableError)."""
    options: dict[str, Any] = {
        "hosts": [url],
        "timeout": settings.opensearch_timeout_s,
        "max_retries": 0,
        "retry_on_timeout": False,
        "verify_certs": settings.opensearch_verify_certs,
        "ssl_show_warn": settings.opensearch_verify_certs,
    }
    user, password = settings.opensearch_user, settings.opensearch_password
    if (user is None) != (password is None):
        missing = "NEURANK_OPENSEARCH_PASSWORD" if password is None else "NEURANK_OPENSEARCH_USER"
        raise ConfigError(f"basic auth needs both NEURANK_OPENSEARCH_USER and NEURANK_OPENSEARCH_PASSWORD; "
                          f"set {missing}")
    if user is not None and password is not None:
        options["http_auth"] = (user, password.get_secret_value())
    if settings.opensearch_ca_certs is not None:
        if not settings.opensearch_ca_certs.is_file():
            raise ConfigError(f"NEURANK_OPENSEARCH_CA_CERTS={settings.opensearch_ca_certs} is not a file")
        options["ca_certs"] = str(settings.opensearch_ca_certs)
    return options


class OpenSearchStore:
    """The Store on an OpenSearch cluster at `url`; see the module docstring. Construction does no I/O.

    `client` injects a ready opensearch-py client (tests wrap one to inject failures); `bulk` sets chunking and
    retries of writes.
    """

    def __init__(self, url: str, settings: Settings | None = None, *, client: OpenSearch | None = None,
                 bulk: BulkPolicy = DEFAULT_POLICY) -> None:
        self.url = _public_url(url)
        self._settings = settings if settings is not None else Settings()
        self._client = client
        self._bulk = bulk
        self._capabilities: Capabilities | None = None
        self._pipelines: set[str] = set()
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenSearchStore({self.url!r})"

    @property
    def client(self) -> OpenSearch:
        with self._lock:
            if self._client is None:
                self._client = OpenSearch(**client_options(self.url, self._settings))
            return self._client

    @contextmanager
    def _errors(self, index: str | None = None) -> Iterator[None]:
        try:
            yield
        except OpenSearchException as exc:
            raise store_error(exc, url=self.url, index=index) from exc

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
            versions = [_version_tuple(p.get("version", "")) for p in plugins if p.get("component") == component]
            return min(versions) if versions else None

        return Capabilities(oldest(NEURAL_SEARCH), oldest(KNN))

    # -- versions --------------------------------------------------------------------------------------------

    def _versions(self, name: str) -> _Versions:
        with self._errors(name):
            aliases = self.client.indices.get_alias(index=f"{name}-v*")
        pattern = re.compile(rf"{re.escape(name)}-v(\d+)")
        by_number, current = {}, None
        for index, info in aliases.items():
            match = pattern.fullmatch(index)
            if match:
                by_number[int(match.group(1))] = index
                if name in info.get("aliases", {}):
                    current = index
        return _Versions(name, by_number, current)

    def _spec_of(self, index: str) -> IndexSpec | None:
        with self._errors(index):
            mapping = self.client.indices.get_mapping(index=index)
        return spec_from_meta(mapping[index]["mappings"].get("_meta"))

    def _write_target(self, name: str) -> str:
        newest = self._versions(name).newest
        if newest is None:
            raise IndexNotFoundError(name, self.url)
        return newest

    # -- indexes ---------------------------------------------------------------------------------------------

    def create_index(self, name: str, spec: IndexSpec) -> None:
        """Create NAME-v1 behind the alias NAME; with other models, build the next version (see `commit`)."""
        versions = self._versions(name)
        if versions.newest is None:
            with self._errors(name):
                taken = self.client.indices.exists(index=name)
            if taken:
                raise StoreError(
                    f"{name!r} in {self.url} is an index neurank did not create (not an alias over {name}-vN); "
                    "choose another --index or drop it"
                )
            self._create_version(versions.next_name(), spec, alias=name)
        else:
            existing = self._spec_of(versions.newest)
            if existing == spec:
                return
            if existing is None or not existing.rebuilds_as(spec):
                changed = "unknown" if existing is None else existing.describe_changes(spec)
                raise StoreError(
                    f"index {name!r} already exists in {self.url} with another spec ({changed}); a new version "
                    "is built only when the models change: drop it or choose a new name"
                )
            self._create_version(versions.next_name(), spec, alias=None)
            log.info("building %s in %s for new models; %s stays searchable until commit",
                     versions.next_name(), self.url, versions.current)
        if self.capabilities().fuses(DEFAULT_HYBRID_FUSION):
            self._pipeline(DEFAULT_HYBRID_FUSION, MAX_SUB_QUERIES)

    def _create_version(self, index: str, spec: IndexSpec, alias: str | None) -> None:
        body = index_body(spec, version=__version__)
        if alias is not None:
            body = {**body, "aliases": {alias: {}}}
        try:
            with self._errors(index):
                self.client.indices.create(index=index, body=body)
        except StoreError as exc:  # another process may have created the same version first
            cause = exc.__cause__
            exists = isinstance(cause, TransportError) and cause.error == "resource_already_exists_exception"
            if not exists or self._spec_of(index) != spec:
                raise

    def commit(self, name: str) -> str | None:
        versions = self._versions(name)
        pending = versions.pending
        with self._errors(name):
            if pending is None:
                if versions.current is not None:  # other processes (Celery workers) may have written
                    self.client.indices.refresh(index=name)
                self._dirty.discard(name)
                return None
            self.client.indices.refresh(index=pending)
            actions: list[dict[str, Any]] = [{"add": {"index": pending, "alias": name}}]
            if versions.current is not None:
                actions.insert(0, {"remove": {"index": versions.current, "alias": name}})
            self.client.indices.update_aliases(body={"actions": actions})
            older = [index for index in versions.by_number.values() if index != pending]
            if older:
                self.client.indices.delete(index=",".join(older), ignore_unavailable=True)
        self._dirty.discard(name)
        log.info("%s in %s now searches %s", name, self.url, pending)
        return pending

    def drop_index(self, name: str) -> bool:
        versions = self._versions(name)
        with self._errors(name):
            if versions.by_number:
                self.client.indices.delete(index=",".join(versions.by_number.values()), ignore_unavailable=True)
                existed = True
            else:
                existed = bool(self.client.indices.exists(index=name))
                if existed:
                    self.client.indices.delete(index=name, ignore_unavailable=True)
        self._dirty.discard(name)
        return existed

    def index_spec(self, name: str) -> IndexSpec | None:
        """The spec of the newest version: the one writes go to."""
        newest = self._versions(name).newest
        return None if newest is None else self._spec_of(newest)

    # -- documents -------------------------------------------------------------------------------------------

    def _write(self, actions: Sequence[Action], name: str) -> BulkOutcome:
        with self._errors(name):
            outcome = write(self.client, actions, self._bulk)
        if outcome.done:
            self._dirty.add(name)
        return outcome

    def upsert(self, name: str, documents: Sequence[EncodedDocument]) -> WriteResult:
        target = self._write_target(name)
        colbert_dimension = None
        if any(encoded.token_vectors is not None for encoded in documents):
            spec = self._spec_of(target)
            colbert_dimension = None if spec is None else spec.colbert_dimension
        failures: list[tuple[int, WriteFailure]] = []
        actions, positions = [], []
        for position, encoded in enumerate(documents):
            doc = encoded.document
            try:
                source = document_source(encoded, colbert_dimension)
            except UnsendableDocument as exc:
                failures.append((position, WriteFailure(doc.id, str(exc), doc.source)))
                continue
            actions.append({"_op_type": "index", "_index": target, "_id": doc.id, "_source": source})
            positions.append(position)
        outcome = self._write(actions, name)
        for i, reason in outcome.failed.items():
            doc = documents[positions[i]].document
            failures.append((positions[i], WriteFailure(doc.id, reason, doc.source)))
        return WriteResult(written=len(outcome.done), failed=[failure for _, failure in sorted(failures)])

    def _mget(self, index: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """id → `_source` (limited to `fields`) of the ids found; realtime, so unrefreshed writes count."""
        found: dict[str, Mapping[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), MGET_CHUNK):
            with self._errors(index):
                response = self.client.mget(index=index, body={"ids": unique[start : start + MGET_CHUNK]},
                                            _source_includes=list(fields))
            for doc in response["docs"]:
                if "error" in doc:
                    raise store_error(TransportError(404, doc["error"].get("type", "error"), doc),
                                      url=self.url, index=index)
                if doc.get("found"):
                    found[doc["_id"]] = doc.get("_source", {})
        return found

    def stored_state(self, name: str, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        """From the version writes go to, so that an interrupted rebuild resumes where it stopped."""
        found = self._mget(self._write_target(name), ids, STATE_FIELDS)
        return {doc_id: stored_state(source) for doc_id, source in found.items()}

    def get(self, name: str, ids: Sequence[str]) -> list[StoredDocument]:
        found = self._mget(name, ids, SOURCE_FIELDS)
        return [stored_document(doc_id, found[doc_id]) for doc_id in ids if doc_id in found]

    def delete(self, name: str, ids: Sequence[str]) -> int:
        versions = self._versions(name)
        if not versions.by_number:
            raise IndexNotFoundError(name, self.url)
        targets = [index for index in (versions.current, versions.pending) if index is not None]
        unique = list(dict.fromkeys(ids))
        actions = [{"_op_type": "delete", "_index": index, "_id": doc_id} for index in targets for doc_id in unique]
        outcome = self._write(actions, name)
        if outcome.failed:
            raise StoreError(f"delete in {name!r} at {self.url} failed: {next(iter(outcome.failed.values()))}")
        return len({actions[i]["_id"] for i in outcome.done})

    def count(self, name: str) -> int:
        self._refresh_if_dirty(name)
        with self._errors(name):
            return int(self.client.count(index=name)["count"])

    # -- search ----------------------------------------------------------------------------------------------

    def _refresh_if_dirty(self, name: str) -> None:
        if name in self._dirty:
            with self._errors(name):
                self.client.indices.refresh(index=name)
            self._dirty.discard(name)

    def _search(self, name: str, body: Mapping[str, Any], **params: Any) -> ScoredIds:
        self._refresh_if_dirty(name)
        with self._errors(name):
            response = self.client.search(index=name, body=body, **params)
        return _scored(response)

    def _msearch(self, name: str, bodies: Sequence[Mapping[str, Any]]) -> list[ScoredIds]:
        """Each body's hits, from one `_msearch`; one failed search fails them all, mapped like its status."""
        self._refresh_if_dirty(name)
        with self._errors(name):
            responses = self.client.msearch(body=msearch_lines(name, bodies))["responses"]
        for response in responses:
            if "error" in response:
                error = response["error"]
                kind = error.get("type", "error") if isinstance(error, Mapping) else str(error)
                raise store_error(TransportError(response.get("status", 500), kind, response),
                                  url=self.url, index=name)
        return [_scored(response) for response in responses]

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
        found = [self._search(name, bodies[0])] if len(bodies) == 1 else self._msearch(name, bodies) if bodies else []
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

    def _late_interaction(self, name: str, query: LateInteractionQuery) -> ScoredIds:
        """SCORING.md §7 in the client: MaxSim of the candidates' token vectors fetched with `_mget` (realtime);
        candidates without token vectors are left out. Ties keep the candidates' order."""
        found = self._mget(name, query.ids, [COLBERT_ROLE])
        candidates = [(doc_id, vectors) for doc_id in dict.fromkeys(query.ids)
                      if doc_id in found and (vectors := token_vectors(found[doc_id])) is not None]
        if not candidates:
            return []
        dimension = query.vectors.shape[1]
        for doc_id, vectors in candidates:
            if vectors.ndim != 2 or vectors.shape[1] != dimension:
                raise StoreError(f"[{COLBERT_ROLE}] of {doc_id!r} in {name!r} has token vectors of shape "
                                 f"{vectors.shape}; the query's have dimension {dimension}")
        if not np.isfinite(query.vectors).all():
            raise StoreError(f"[{COLBERT_ROLE}] query vectors refused: values cannot be NaN or infinite")
        scores = scoring.maxsim(query.vectors, [vectors for _, vectors in candidates]).tolist()
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])[: query.k]
        return [(candidates[i][0], scores[i]) for i in order]

    def fuses(self, fusion: Fusion) -> bool:
        return self.capabilities().fuses(fusion)

    def search_fused(self, name: str, queries: Sequence[SubQuery], fusion: Fusion, size: int) -> ScoredIds:
        """One `hybrid` query through the fusion's search pipeline (put once per store)."""
        fusion.check_sub_queries(len(queries))
        neural_sparse = self.capabilities().neural_sparse
        body = hybrid_body([sub_query(query, neural_sparse=neural_sparse) for query in queries], size=size,
                           pagination_depth=max(query.k for query in queries))
        return self._search(name, body, search_pipeline=self._pipeline(fusion, len(queries)))

    def explain_bm25(self, name: str, query: str, doc_id: str) -> dict[str, float]:
        """Each analyzed query term's score on its own (`_explain` trees differ between versions)."""
        self._refresh_if_dirty(name)
        with self._errors(name):
            analyzed = self.client.indices.analyze(index=name, body={"field": CONTENT_FIELD, "text": query})
        counts = Counter(token["token"] for token in analyzed.get("tokens", []))
        if not counts:
            return {}
        results = self._msearch(name, [explain_term_body(term, count, doc_id) for term, count in counts.items()])
        return {term: hits[0][1] for term, hits in zip(counts, results, strict=True) if hits}


def _maxsim_of_scores(hits: ScoredIds, query: LateInteractionQuery) -> ScoredIds:
    """`lateInteractionScore`'s innerproduct scores mapped back to MaxSim (SCORING.md §7; the order is kept)."""
    n_tokens = len(query.vectors)
    return [(doc_id, float(scoring.late_interaction_maxsim(score, n_tokens))) for doc_id, score in hits]


def _scored(response: Mapping[str, Any]) -> ScoredIds:
    return [(hit["_id"], float(hit["_score"])) for hit in response["hits"]["hits"]]

