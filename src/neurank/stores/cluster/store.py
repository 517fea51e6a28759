"""What a store on a search cluster does the same on OpenSearch and Elasticsearch: index versions behind an alias,
bulk writes, reads, deletes, searches of ready request bodies, and MaxSim scored here when the cluster cannot.

Index versions. The index NAME is an alias over one concrete index NAME-vN, created from the engine's index body
(its `_meta` holds the IndexSpec and the model fingerprints). `create_index` with other models (same analyzer and
BM25 parameters) builds NAME-v(N+1) beside the searched version: `upsert` and `stored_state` go to the newest
version, searches and `get` keep going to the alias, so the old version answers queries while the new one fills.
`commit` refreshes, swaps the alias in one `_aliases` request (remove + add, atomic) and only then deletes the
older versions. Inline ingest commits at the end of a run; an interrupted run resumes into the same new version
(its spec already matches). Deletes go to every live version.

Refresh. Bulk requests do not wait for a refresh (`wait_for` would hold each one for up to a refresh interval);
the store refreshes an index it wrote to before its next read that needs it, and `commit` refreshes explicitly.
Writes of other processes show at the cluster's refresh interval (1 s by default).

Secrets. Credentials come from Settings (`SecretStr`) only; a URL with credentials in it is refused, so `url` is
always safe to log, and no message echoes the password.

An engine's store subclasses `ClusterStore` and supplies its client, its error sorting, its index body and its
query dialect (`search`); both engines' clients take the same calls used here (`body=`, `index=`).
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np

from neurank.config import Settings
from neurank.errors import ConfigError, IndexNotFoundError, StoreError
from neurank.index_spec import COLBERT_ROLE, IndexSpec
from neurank.mappings import spec_from_meta
from neurank.mappings.index import CONTENT_FIELD
from neurank.retrieval import LateInteractionQuery, ScoredIds, SubQuery
from neurank.stores import scoring
from neurank.stores.cluster.bulk import DEFAULT_POLICY, Action, BulkDriver, BulkOutcome, BulkPolicy, write
from neurank.stores.cluster.documents import (
    SOURCE_FIELDS,
    STATE_FIELDS,
    UnsendableDocument,
    document_source,
    stored_document,
    stored_state,
    token_vectors,
)
from neurank.stores.cluster.dsl import count_term_body, explain_term_body, msearch_lines
from neurank.stores.cluster.errors import Failure, cluster_error, error_type
from neurank.stores.protocol import EncodedDocument, StoredDocument, WriteFailure, WriteResult

log = logging.getLogger(__name__)

MGET_CHUNK = 1000
Body = dict[str, Any]


def version_tuple(version: str) -> tuple[int, ...]:
    """`8.15.3` → (8, 15, 3); a suffix such as `-SNAPSHOT` is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@dataclass(frozen=True, slots=True)
class Versions:
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


def public_url(url: str, engine: str) -> str:
    """`url` without a trailing slash; refused when it carries credentials (they belong in Settings)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"expected http(s)://host:port for an {engine} store, got {url!r}")
    if parts.username or parts.password:
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        raise ConfigError(
            f"the store URL {parts.scheme}://…@{host} carries credentials; give them in NEURANK_OPENSEARCH_USER "
            "and NEURANK_OPENSEARCH_PASSWORD instead, so that they never reach logs or task messages"
        )
    return url.rstrip("/")


def scored(response: Mapping[str, Any]) -> ScoredIds:
    return [(hit["_id"], float(hit["_score"])) for hit in response["hits"]["hits"]]


class ClusterStore(ABC):
    """The Store on a cluster at `url`; see the module docstring. Construction does no I/O.

    `client` injects a ready client (tests wrap one to record requests or inject failures); `bulk` sets chunking
    and retries of writes.
    """

    ENGINE: ClassVar[str]
    """The engine's name, for messages."""
    SOURCE_INCLUDES: ClassVar[str]
    """The client's keyword for `_source_includes`."""
    WRITES_CONTENT: ClassVar[bool] = False
    """Whether documents carry `content` themselves (the mapping has no `copy_to`)."""

    def __init__(self, url: str, settings: Settings | None = None, *, client: Any = None,
                 bulk: BulkPolicy = DEFAULT_POLICY) -> None:
        self.url = public_url(url, self.ENGINE)
        self._settings = settings if settings is not None else Settings()
        self._client = client
        self._bulk = bulk
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # -- what an engine supplies -------------------------------------------------------------------------------

    @abstractmethod
    def _new_client(self) -> Any:
        """The engine's client for `self.url`, from Settings."""

    @property
    @abstractmethod
    def _driver(self) -> BulkDriver:
        """The engine's bulk helper and exception sorting."""

    @property
    @abstractmethod
    def _client_errors(self) -> tuple[type[Exception], ...]:
        """The exceptions the engine's client raises (mapped by `_errors`)."""

    @abstractmethod
    def _index_body(self, spec: IndexSpec) -> Body:
        """The body of `PUT /<index>` for a new version."""

    def _after_create(self) -> None:
        """Anything the engine sets up once an index exists (OpenSearch: the default fusion pipeline)."""
        return None

    @abstractmethod
    def search(self, name: str, queries: Sequence[SubQuery]) -> list[ScoredIds]:
        """Each sub-query's hits, best first (the Store protocol)."""

    # -- client and errors -------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    @contextmanager
    def _errors(self, index: str | None = None) -> Iterator[None]:
        try:
            yield
        except self._client_errors as exc:
            raise cluster_error(self._driver.failure(exc), url=self.url, index=index) from exc

    def _failed(self, status: object, info: object, index: str | None) -> StoreError:
        error = cluster_error(Failure("status", status, info), url=self.url, index=index)
        assert isinstance(error, StoreError)
        return error

    # -- versions ----------------------------------------------------------------------------------------------

    def _versions(self, name: str) -> Versions:
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
        return Versions(name, by_number, current)

    def _mapping(self, index: str) -> Mapping[str, Any]:
        """The mappings of `index` (an alias resolves to the index it points to)."""
        with self._errors(index):
            mapping = self.client.indices.get_mapping(index=index)
        ((_, found),) = mapping.items()
        return found["mappings"]

    def _spec_of(self, index: str) -> IndexSpec | None:
        return spec_from_meta(self._mapping(index).get("_meta"))

    def _write_target(self, name: str) -> str:
        newest = self._versions(name).newest
        if newest is None:
            raise IndexNotFoundError(name, self.url)
        return newest

    # -- indexes -----------------------------------------------------------------------------------------------

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
        self._after_create()

    def _create_version(self, index: str, spec: IndexSpec, alias: str | None) -> None:
        body = self._index_body(spec)
        if alias is not None:
            body = {**body, "aliases": {alias: {}}}
        try:
            with self._errors(index):
                self.client.indices.create(index=index, body=body)
        except StoreError as exc:  # another process may have created the same version first
            cause = exc.__cause__
            info = self._driver.failure(cause).info if isinstance(cause, Exception) else None
            if error_type(info) != "resource_already_exists_exception" or self._spec_of(index) != spec:
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
        self._swapped(name)
        log.info("%s in %s now searches %s", name, self.url, pending)
        return pending

    def _swapped(self, name: str) -> None:
        """The alias `name` now points to another index (an engine forgets what it knew of the old one)."""
        return None

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
        self._swapped(name)
        return existed

    def index_spec(self, name: str) -> IndexSpec | None:
        """The spec of the newest version: the one writes go to."""
        newest = self._versions(name).newest
        return None if newest is None else self._spec_of(newest)

    # -- documents ---------------------------------------------------------------------------------------------

    def _write(self, actions: Sequence[Action], name: str) -> BulkOutcome:
        with self._errors(name):
            outcome = write(self.client, actions, self._driver, self._bulk)
        if outcome.done:
            self._dirty.add(name)
        return outcome

    def upsert(self, name: str, documents: Sequence[EncodedDocument]) -> WriteResult:
        target = self._write_target(name)
        spec = self._spec_of(target) if self.WRITES_CONTENT or any(
            encoded.token_vectors is not None for encoded in documents) else None
        colbert_dimension = None if spec is None else spec.colbert_dimension
        unit_dense = spec is not None and spec.space_type == "cosinesimil"
        failures: list[tuple[int, WriteFailure]] = []
        actions, positions = [], []
        for position, encoded in enumerate(documents):
            doc = encoded.document
            try:
                source = document_source(encoded, colbert_dimension, expansion_terms=self._settings.expansion_terms,
                                         content=self.WRITES_CONTENT, unit_dense=unit_dense)
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
                                            **{self.SOURCE_INCLUDES: list(fields)})
            for doc in response["docs"]:
                if "error" in doc:
                    raise self._failed(404, {"error": doc["error"]}, index)
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

    # -- search ------------------------------------------------------------------------------------------------

    def _refresh_if_dirty(self, name: str) -> None:
        if name in self._dirty:
            with self._errors(name):
                self.client.indices.refresh(index=name)
            self._dirty.discard(name)

    def _search(self, name: str, body: Mapping[str, Any], **params: Any) -> ScoredIds:
        self._refresh_if_dirty(name)
        with self._errors(name):
            response = self.client.search(index=name, body=body, **params)
        return scored(response)

    def _msearch(self, name: str, bodies: Sequence[Mapping[str, Any]]) -> list[ScoredIds]:
        """Each body's hits, from one `_msearch`."""
        return [scored(response) for response in self._msearch_responses(name, bodies)]

    def _msearch_responses(self, name: str, bodies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Each body's response, from one `_msearch`; one failed search fails them all, mapped like its status."""
        self._refresh_if_dirty(name)
        with self._errors(name):
            responses = self.client.msearch(body=msearch_lines(name, bodies))["responses"]
        for response in responses:
            if "error" in response:
                raise self._failed(response.get("status", 500), response, name)
        return list(responses)

    def document_frequencies(self, name: str, terms: Collection[str]) -> dict[str, int]:
        """One `_msearch` of `term` queries that count their matches (live documents, as `docs.count` does)."""
        ordered = sorted(terms)
        if not ordered:
            return {}
        responses = self._msearch_responses(name, [count_term_body(term) for term in ordered])
        return {term: int(response["hits"]["total"]["value"])
                for term, response in zip(ordered, responses, strict=True)}

    def _search_all(self, name: str, bodies: Sequence[Mapping[str, Any]]) -> list[ScoredIds]:
        """One `_search` for one body, one `_msearch` for several."""
        if not bodies:
            return []
        return [self._search(name, bodies[0])] if len(bodies) == 1 else self._msearch(name, bodies)

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
