"""OpenSearchStore: the Store contract on a real osmem-server, index versions behind an alias, bulk outcomes per
item under injected faults, error mapping, client options, and the bodies of the paths osmem cannot run
(`knn`, `hybrid` with a search pipeline), checked against the OpenSearch API spec."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    ConnectionTimeout,
    NotFoundError,
    RequestError,
    SSLError,
    TransportError,
)
from pydantic import SecretStr
from tests.stores.conftest import FAST_RETRIES, Recorder, Request
from tests.stores.contract import (
    BM25_CORPUS,
    INDEX,
    SPEC,
    Bm25Tests,
    IndexLifecycleTests,
    LateInteractionTests,
    SparseScoringTests,
    WriteTests,
    bm25,
    encoded,
    ids,
    knn,
    sparse,
)

from neurank.config import Settings
from neurank.errors import ConfigError, IndexNotFoundError, StoreError, StoreUnavailableError
from neurank.index_spec import IndexSpec
from neurank.ingest.inline import ensure_index
from neurank.mappings import pipeline_id
from neurank.retrieval import DEFAULT_HYBRID_FUSION, Fusion, SparseQuery, TextQuery, VectorQuery
from neurank.stores import FusingStore, LocalStore, Store, VersionedStore, open_store
from neurank.stores.cluster.bulk import BulkPolicy, backoff_s
from neurank.stores.cluster.errors import root_cause
from neurank.stores.opensearch import Capabilities, OpenSearchStore, client_options
from neurank.stores.opensearch.errors import store_error
from neurank.stores.opensearch.store import ASSUMED_NEURAL_SEARCH, LATE_INTERACTION_KNN

URL = "http://search.example:9200"
PASSWORD = "s3cret-Pa55"
NEW_MODELS = {"splade": "fp-2"}


def _limit(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=reason, strict=True)


OSMEM_LIMITS = {
    "test_a_bad_document_fails_alone[zero-vector-cosine]": (
        "osmem does not implement k-NN's zero-vector check for cosinesimil; a real cluster rejects the item with "
        "'zero vector is not supported when space type is [cosinesimil]', reported per item like the others"
    ),
}
"""Contract cases osmem cannot serve, each with the reason; strict xfail, so a fixed osmem shows up."""


@pytest.mark.integration
class TestOpenSearchStoreContract(IndexLifecycleTests, WriteTests, Bm25Tests, SparseScoringTests,
                                  LateInteractionTests):
    """The contract on osmem, without VectorScoringTests: osmem refuses `knn` (the knn bodies are checked against
    the spec below instead). osmem has no k-NN plugin, so late interaction runs the client-side path (`_mget` and
    MaxSim in the store); the server-side body is checked against the spec in test_opensearch_late.py."""

    @pytest.fixture
    def store(self, osmem_store: OpenSearchStore, request: pytest.FixtureRequest) -> OpenSearchStore:
        reason = OSMEM_LIMITS.get(request.node.name)
        if reason:
            request.applymarker(_limit(reason))
        return osmem_store

    def test_bm25_values(self, store: OpenSearchStore, bm25_corpus: str, tmp_path: Path) -> None:
        """osmem's BM25 values deviate from Lucene's (DESIGN.md), so only the local store's exact values are
        pinned (test_local.py); here the ranking must equal the local store's on the same documents."""
        local = LocalStore(tmp_path / "local")
        local.create_index(INDEX, SPEC)
        local.upsert(INDEX, [encoded(doc_id, text) for doc_id, text in BM25_CORPUS.items()])
        for query in ("neural ranking", "ranking", "survey of search models"):
            assert ids(bm25(store, bm25_corpus, query, 10)) == ids(bm25(local, INDEX, query, 10))


# -- index versions behind the alias ---------------------------------------------------------------------------


def _aliases(store: OpenSearchStore, name: str) -> dict[str, Any]:
    return store.client.indices.get_alias(index=f"{name}-v*")


@pytest.mark.integration
def test_create_makes_version_one_behind_the_alias(osmem_store: OpenSearchStore, recorder: Recorder) -> None:
    osmem_store.create_index("docs", SPEC)
    assert _aliases(osmem_store, "docs") == {"docs-v1": {"aliases": {"docs": {}}}}
    assert osmem_store.index_spec("docs") == SPEC
    assert "indices.create" in recorder.kinds()


@pytest.mark.integration
def test_an_index_neurank_did_not_create_is_left_alone(osmem_store: OpenSearchStore) -> None:
    osmem_store.client.indices.create(index="theirs", body={"mappings": {"properties": {"x": {"type": "text"}}}})
    assert osmem_store.index_spec("theirs") is None
    with pytest.raises(StoreError, match="neurank did not create"):
        osmem_store.create_index("theirs", SPEC)


@pytest.mark.integration
def test_new_models_build_a_new_version_and_commit_swaps_the_alias(
    osmem_store: OpenSearchStore, recorder: Recorder
) -> None:
    store = osmem_store
    store.create_index("docs", SPEC)
    store.upsert("docs", [encoded("d1", "old alpha", models=SPEC.models), encoded("d2", "alpha", models=SPEC.models)])
    new_spec = replace(SPEC, models=NEW_MODELS, dense_dimension=5)

    store.create_index("docs", new_spec)
    assert _aliases(store, "docs") == {"docs-v1": {"aliases": {"docs": {}}}, "docs-v2": {"aliases": {}}}
    assert store.index_spec("docs") == new_spec, "writes go to the version being built"
    assert store.stored_state("docs", ["d1", "d2"]) == {}, "nothing is re-encoded yet"
    store.upsert("docs", [encoded("d1", "new gamma", models=NEW_MODELS)])
    assert ids(bm25(store, "docs", "alpha", 10)) == ["d2", "d1"], "the old version is still searched"
    assert store.count("docs") == 2

    store.create_index("docs", new_spec)  # an interrupted ingest resumes into the same version
    assert store.stored_state("docs", ["d1", "d2"]) == {"d1": (encoded("d1", "new gamma").document.content_hash,
                                                           NEW_MODELS)}
    assert store.commit("docs") == "docs-v2"
    assert _aliases(store, "docs") == {"docs-v2": {"aliases": {"docs": {}}}}
    assert ids(bm25(store, "docs", "gamma", 10)) == ["d1"]
    assert store.count("docs") == 1
    assert store.commit("docs") is None

    swap = next(r for r in recorder.requests if r.url == "/_aliases")
    assert swap.body == {"actions": [{"remove": {"index": "docs-v1", "alias": "docs"}},
                                     {"add": {"index": "docs-v2", "alias": "docs"}}]}, "one atomic request"
    dropped = next(i for i, r in enumerate(recorder.requests) if r.method == "DELETE" and "docs-v1" in r.url)
    assert dropped > recorder.requests.index(swap), "the old version is kept until the swap"


class FakeEncoders:
    """The slice of EncoderBundle that inline ingest uses, with fixed fingerprints and a switch to fail."""

    def __init__(self, models: dict[str, str], fail_on: str | None = None) -> None:
        self._models = models
        self.fail_on = fail_on
        self.truncated = 0

    def warm_up(self) -> None:
        """Nothing to load: inline ingest calls it before reading the first record."""

    def models(self) -> dict[str, str]:
        return dict(self._models)

    def index_spec(self, settings: Settings) -> IndexSpec:
        return replace(SPEC, models=self.models())

    def encode(self, documents: list[Any]) -> list[Any]:
        if any(doc.id == self.fail_on for doc in documents):
            raise KeyboardInterrupt("the ingest process stops here")
        return [encoded(doc.id, doc.text, sparse={"splade": {"w": 1.0}}, models=self._models) for doc in documents]


@pytest.mark.integration
def test_ingest_with_new_models_rebuilds_resumes_and_swaps(osmem_store: OpenSearchStore) -> None:
    from neurank.documents import Document
    from neurank.ingest.inline import ingest_records

    documents = [Document(id=f"d{i}", text=f"text number {i}") for i in range(6)]
    settings = Settings()
    first = ingest_records(documents, osmem_store, "docs", FakeEncoders(SPEC.models), settings, batch_size=2)
    assert (first.indexed, osmem_store.count("docs")) == (6, 6)

    with pytest.raises(KeyboardInterrupt):
        ingest_records(documents, osmem_store, "docs", FakeEncoders(NEW_MODELS, fail_on="d4"), settings, batch_size=2)
    assert osmem_store.count("docs") == 6, "the old version answers while the new one is incomplete"
    assert sorted(_aliases(osmem_store, "docs")) == ["docs-v1", "docs-v2"]

    resumed = ingest_records(documents, osmem_store, "docs", FakeEncoders(NEW_MODELS), settings, batch_size=2)
    assert (resumed.indexed, resumed.skipped) == (2, 4)
    assert _aliases(osmem_store, "docs") == {"docs-v2": {"aliases": {"docs": {}}}}
    assert osmem_store.get("docs", ["d0"])[0].models == NEW_MODELS


@pytest.mark.integration
def test_ensure_index_still_refuses_another_language(osmem_store: OpenSearchStore) -> None:
    osmem_store.create_index("docs", SPEC)
    with pytest.raises(ConfigError, match=r"other settings \(language 'english' → 'russian', models"):
        ensure_index(osmem_store, "docs", replace(SPEC, language="russian", models=NEW_MODELS))


# -- bulk: one outcome per item, retries bounded ---------------------------------------------------------------


def _bulk_calls(recorder: Recorder) -> int:
    return sum(request.url.endswith("/_bulk") for request in recorder.requests)


@pytest.mark.integration
def test_a_poison_document_is_reported_with_its_reason(osmem_store: OpenSearchStore) -> None:
    osmem_store.create_index(INDEX, SPEC)
    good = [encoded(f"good{i}", f"text {i}", sparse={"splade": {"t": 1.0 + i}}) for i in range(4)]
    poison = [
        encoded("zero", sparse={"splade": {"t": 0.0}}),
        encoded("nan", sparse={"deepct": {"t": float("nan")}}),
        encoded("field", sparse={"colbert": {"t": 1.0}}),
    ]
    result = osmem_store.upsert(INDEX, [good[0], poison[0], good[1], poison[1], good[2], poison[2], good[3]])
    assert result.written == 4
    reasons = {failure.id: failure.reason for failure in result.failed}
    assert list(reasons) == ["zero", "nan", "field"], "failures come in input order"
    assert "featureValue must be a positive normal float" in reasons["zero"]
    assert "[deepct]" in reasons["nan"] and "finite" in reasons["nan"]
    assert "colbert" in reasons["field"]
    assert osmem_store.count(INDEX) == 4


def _fail_bulk(statuses: list[int | str]) -> Any:
    """Fail the first `_bulk` requests with these statuses ('N/A': no answer at all), then pass."""
    remaining = list(statuses)

    def fail(request: Request) -> None:
        if request.url.endswith("/_bulk") and remaining:
            status = remaining.pop(0)
            if status == "N/A":
                raise ConnectionError("N/A", "connection refused", OSError("connection refused"))
            error = {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}
            raise TransportError(status, "es_rejected_execution_exception", error)

    return fail


@pytest.mark.integration
@pytest.mark.parametrize(("statuses", "calls"), [([429], 2), ([429, 429, 429], 4), ([503, "N/A"], 3)],
                         ids=["429-once", "429-thrice", "503-then-no-answer"])
def test_transient_bulk_failures_are_retried(
    osmem_store: OpenSearchStore, recorder: Recorder, statuses: list[int | str], calls: int
) -> None:
    osmem_store.create_index(INDEX, SPEC)
    before = _bulk_calls(recorder)
    recorder.fail = _fail_bulk(statuses)
    result = osmem_store.upsert(INDEX, [encoded(f"d{i}") for i in range(5)])
    assert (result.written, result.failed) == (5, [])
    assert _bulk_calls(recorder) - before == calls
    assert osmem_store.count(INDEX) == 5


@pytest.mark.integration
def test_retries_are_bounded_then_the_store_is_unavailable(osmem_store: OpenSearchStore, recorder: Recorder) -> None:
    osmem_store.create_index(INDEX, SPEC)
    before = _bulk_calls(recorder)
    recorder.fail = _fail_bulk([503] * 100)
    with pytest.raises(StoreUnavailableError, match=r"5 of 5 bulk items still failed after 3 rounds"):
        osmem_store.upsert(INDEX, [encoded(f"d{i}") for i in range(5)])
    assert _bulk_calls(recorder) - before == FAST_RETRIES.attempts


@pytest.mark.integration
def test_a_5xx_item_is_retried_alone(osmem_store: OpenSearchStore, recorder: Recorder) -> None:
    osmem_store.create_index(INDEX, SPEC)
    send = osmem_store.client.transport.perform_request
    flaky = {"left": 1}

    def perform_request(method: str, url: str, **kwargs: Any) -> Any:
        response = send(method, url, **kwargs)
        if url.endswith("/_bulk") and flaky["left"]:
            flaky["left"] -= 1
            item = response["items"][1]["index"]
            item.update(status=503, error={"type": "unavailable_shards_exception", "reason": "primary not active"})
            response["errors"] = True
        return response

    osmem_store.client.transport.perform_request = perform_request  # type: ignore[method-assign]
    result = osmem_store.upsert(INDEX, [encoded(f"d{i}") for i in range(3)])
    assert (result.written, result.failed) == (3, [])
    resent = [r.lines for r in recorder.requests if r.url.endswith("/_bulk")][-1]
    assert [line["index"]["_id"] for line in resent[::2]] == ["d1"]


@pytest.mark.integration
def test_rejected_credentials_fail_the_write_at_once(osmem_store: OpenSearchStore, recorder: Recorder) -> None:
    osmem_store.create_index(INDEX, SPEC)
    before = _bulk_calls(recorder)

    def fail(request: Request) -> None:
        if request.url.endswith("/_bulk"):
            raise AuthenticationException(401, "security_exception", {"error": "unauthorized"})

    recorder.fail = fail
    with pytest.raises(ConfigError, match="NEURANK_OPENSEARCH_PASSWORD"):
        osmem_store.upsert(INDEX, [encoded("d1")])
    assert _bulk_calls(recorder) - before == 1


def test_backoff_has_full_jitter_and_a_cap() -> None:
    policy = BulkPolicy(initial_backoff_s=0.5, max_backoff_s=4.0)
    assert [backoff_s(r, policy, rng=lambda: 1.0) for r in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_s(3, policy, rng=lambda: 0.25) == 1.0


# -- error mapping -------------------------------------------------------------------------------------------------


def _error(kind: str, reason: str) -> dict[str, Any]:
    return {"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}}


@pytest.mark.parametrize(
    ("exc", "expected", "message"),
    [
        (AuthenticationException(401, "security_exception", _error("security_exception", "missing credentials")),
         ConfigError, "NEURANK_OPENSEARCH_USER and NEURANK_OPENSEARCH_PASSWORD"),
        (AuthorizationException(403, "security_exception", _error("security_exception", "no permissions")),
         ConfigError, "no permissions"),
        (SSLError("N/A", "ssl", OSError("certificate verify failed")), ConfigError, "NEURANK_OPENSEARCH_CA_CERTS"),
        (NotFoundError(404, "index_not_found_exception", _error("index_not_found_exception", "no such index [x]")),
         IndexNotFoundError, "'docs' does not exist"),
        (ConnectionError("N/A", "refused", OSError("connection refused")), StoreUnavailableError, "cannot reach"),
        (ConnectionTimeout("TIMEOUT", "timed out", TimeoutError("read timed out")), StoreUnavailableError,
         "cannot reach"),
        (TransportError(429, "too_many_requests", _error("rejected", "queue full")), StoreUnavailableError,
         "answered 429"),
        (TransportError(503, "unavailable", _error("cluster_block_exception", "blocked")), StoreUnavailableError,
         "retry later"),
        (RequestError(400, "x_content_parse_exception", _error("parsing_exception", "unknown query [knn]")),
         StoreError, r"400\): parsing_exception: unknown query \[knn\]"),
    ],
    ids=["401", "403", "tls", "404-index", "connection", "timeout", "429", "503", "400"],
)
def test_store_error_maps_by_what_the_caller_does_next(exc: Exception, expected: type, message: str) -> None:
    error = store_error(exc, url=URL, index="docs")
    assert type(error) is expected
    with pytest.raises(expected, match=message):
        raise error


def test_root_cause_names_the_deepest_reason() -> None:
    info = {"error": {"type": "search_phase_execution_exception", "reason": "all shards failed",
                      "root_cause": [{"type": "query_shard_exception", "reason": "failed to create query"}]}}
    assert root_cause(info) == ("search_phase_execution_exception: all shards failed "
                                "(root cause query_shard_exception: failed to create query)")


def test_a_missing_document_is_not_a_missing_index() -> None:
    error = store_error(NotFoundError(404, "not_found", {"found": False}), url=URL, index="docs")
    assert type(error) is StoreError


# -- client options, secrets, laziness -----------------------------------------------------------------------------


def _secure_settings(tmp_path: Path, **overrides: Any) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return Settings(**{"opensearch_user": "neurank", "opensearch_password": SecretStr(PASSWORD),
                       "opensearch_ca_certs": ca, "opensearch_timeout_s": 7.5, **overrides})


def test_client_options_carry_tls_auth_ca_and_timeout(tmp_path: Path) -> None:
    options = client_options("https://search.example:9200", _secure_settings(tmp_path))
    assert options["http_auth"] == ("neurank", PASSWORD)
    assert options["ca_certs"] == str(tmp_path / "ca.pem")
    assert (options["timeout"], options["verify_certs"], options["max_retries"]) == (7.5, True, 0)
    assert "http_auth" not in client_options(URL, Settings())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"opensearch_password": None}, "set NEURANK_OPENSEARCH_PASSWORD"),
     ({"opensearch_user": None}, "set NEURANK_OPENSEARCH_USER"),
     ({"opensearch_ca_certs": Path("/nowhere/ca.pem")}, "is not a file")],
)
def test_incomplete_client_settings_are_config_errors(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        client_options(URL, _secure_settings(tmp_path, **overrides))
    assert PASSWORD not in str(raised.value)


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError, match="NEURANK_OPENSEARCH_USER") as raised:
        OpenSearchStore(f"https://admin:{PASSWORD}@search.example:9200")
    assert PASSWORD not in str(raised.value)


def test_construction_does_no_io(tmp_path: Path, recorder: Recorder) -> None:
    client = recorder.attach(OpenSearch(hosts=[URL]), respond=_refuse)
    store = OpenSearchStore(URL + "/", _secure_settings(tmp_path), client=client)
    assert recorder.requests == []
    assert isinstance(store, Store) and isinstance(store, VersionedStore) and isinstance(store, FusingStore)
    assert store.url == URL and PASSWORD not in repr(store)


def _refuse(method: str, url: str, **kwargs: Any) -> Any:
    raise ConnectionError("N/A", "refused", OSError("connection refused"))


def test_secrets_never_reach_messages_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(_secure_settings(tmp_path, opensearch_ca_certs=None, engine="opensearch"), "http://127.0.0.1:9")
    assert isinstance(store, OpenSearchStore)
    (connection,) = store.client.transport.connection_pool.connections
    assert connection.headers["authorization"].startswith("Basic "), "open_store passes the settings"
    with caplog.at_level("DEBUG"), pytest.raises(StoreUnavailableError, match="cannot reach") as raised:
        store.count("docs")
    assert caplog.records, "the client logged the failed request"
    assert PASSWORD not in str(raised.value) + caplog.text


# -- what the cluster can do: plugin detection, and the bodies osmem cannot run -------------------------------------

HITS_SCORED = [("a", 0.75), ("b", 0.5)]
HITS = {"hits": {"hits": [{"_id": doc_id, "_score": score} for doc_id, score in HITS_SCORED]}}
QUERY_TOKENS = {"splade": {"cell": 1.5, "protein": 0.5}}
VECTOR = np.array([0.25, -0.5, 1.0], dtype=np.float32)


class FakeCluster:
    """Answers the requests a search makes, like a cluster with the neural-search plugin at `version` and the
    k-NN plugin at `knn`."""

    def __init__(self, version: str | None = "3.1.0.0", plugins_status: int = 200, knn: str | None = None) -> None:
        self.version = version
        self.plugins_status = plugins_status
        self.knn = knn

    def __call__(self, method: str, url: str, headers: Any = None, params: Any = None, body: Any = None) -> Any:
        path = url.split("?")[0]
        if path == "/_cat/plugins":
            if self.plugins_status == 403:
                raise AuthorizationException(403, "security_exception", _error("security_exception", "no monitor"))
            plugins = [("opensearch-neural-search", self.version), ("opensearch-knn", self.knn)]
            return [{"name": "node-1", "component": component, "version": version}
                    for component, version in plugins if version]
        if method == "HEAD":
            return False
        if path.endswith("/_alias"):
            return {}
        if path.endswith("/_msearch"):
            return {"responses": [{**HITS, "status": 200} for _ in Request(method, url, {}, body).lines[::2]]}
        if path.endswith("/_search"):
            return HITS
        return {"acknowledged": True}


def _fake_store(recorder: Recorder, cluster: FakeCluster, **settings: Any) -> OpenSearchStore:
    client = recorder.attach(OpenSearch(hosts=[URL]), respond=cluster)
    return OpenSearchStore(URL, Settings(**settings), client=client)


def _sent(recorder: Recorder, suffix: str) -> list[Request]:
    return [request for request in recorder.requests if request.url.split("?")[0].endswith(suffix)]


@pytest.mark.parametrize(
    ("version", "fusion", "fuses"),
    [(None, Fusion(), False), ((2, 17), Fusion("min_max"), False), ((2, 19), Fusion("min_max"), True),
     ((2, 19), Fusion("rrf"), True), ((2, 19), Fusion("z_score"), False), ((3, 0), Fusion("z_score"), True),
     ((3, 0), Fusion("rrf", weights=(0.5, 0.5)), False), ((3, 1), Fusion("rrf", weights=(0.5, 0.5)), True)],
)
def test_server_side_fusion_needs_the_plugin_version_that_has_it(
    version: tuple[int, ...] | None, fusion: Fusion, fuses: bool
) -> None:
    capabilities = Capabilities(version)
    assert capabilities.fuses(fusion) is fuses
    assert capabilities.neural_sparse is (version is not None)


@pytest.mark.integration
def test_osmem_has_no_plugin_asked_once_and_gets_rank_feature(osmem_store: OpenSearchStore, recorder: Recorder) -> None:
    osmem_store.create_index(INDEX, SPEC)
    osmem_store.upsert(INDEX, [encoded("a", sparse={"splade": {"cell": 2.0}})])
    for _ in range(2):
        assert ids(sparse(osmem_store, INDEX, "splade", {"cell": 1.0}, 10)) == ["a"]
    assert osmem_store.capabilities() == Capabilities(None)
    assert len(_sent(recorder, "/_cat/plugins")) == 1
    query = _sent(recorder, "/_search")[0].body["query"]
    assert query == {"bool": {"should": [{"rank_feature": {"field": "splade.cell", "linear": {}, "boost": 1.0}}]}}


def test_the_settings_override_detection(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster(None), opensearch_neural_plugin=True, opensearch_late_interaction=False)
    sparse(store, "docs", "splade", QUERY_TOKENS["splade"], 10)
    assert _sent(recorder, "/_cat/plugins") == []
    assert store.capabilities() == Capabilities(ASSUMED_NEURAL_SEARCH, None)
    assert _sent(recorder, "/_search")[0].body["query"] == {"neural_sparse": {"splade": {"query_tokens": {
        "cell": 1.5, "protein": 0.5}}}}
    recorder.validate_all()


def test_one_setting_overrides_its_capability_and_the_other_is_asked(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster("2.19.0.0"), opensearch_late_interaction=True)
    assert store.capabilities() == Capabilities((2, 19, 0), LATE_INTERACTION_KNN)
    assert store.capabilities().late_interaction
    assert len(_sent(recorder, "/_cat/plugins")) == 1


def test_a_user_who_may_not_list_plugins_gets_the_fallback(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    store = _fake_store(recorder, FakeCluster(plugins_status=403))
    assert store.capabilities() == Capabilities(None)
    assert "NEURANK_OPENSEARCH_NEURAL_PLUGIN" in caplog.text


def test_knn_body_is_valid(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster())
    assert knn(store, "docs", VECTOR, 7) == [("a", 0.75), ("b", 0.5)]
    (request,) = _sent(recorder, "/_search")
    assert request.body == {"query": {"knn": {"embedding": {"vector": [0.25, -0.5, 1.0], "k": 7}}}, "size": 7,
                            "_source": False}
    recorder.validate_all()


SUB_QUERIES = [TextQuery("cell protein", 50), SparseQuery("splade", QUERY_TOKENS["splade"], 40),
               VectorQuery(VECTOR, 30)]
WEIGHTED = Fusion("min_max", "arithmetic_mean", weights=(0.3, 0.3, 0.4))


def test_a_fused_search_is_one_hybrid_query_with_a_pipeline(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster("3.1.0.0"))
    assert isinstance(store, FusingStore) and store.fuses(WEIGHTED)
    for _ in range(2):
        hits = store.search_fused("docs", SUB_QUERIES, WEIGHTED, size=20)
    assert hits == HITS_SCORED
    (put,) = [r for r in recorder.requests if r.url.startswith("/_search/pipeline/")]
    assert put.url == f"/_search/pipeline/{pipeline_id(WEIGHTED)}", "put once per store"
    searches = _sent(recorder, "/_search")
    assert all(r.params == {"search_pipeline": pipeline_id(WEIGHTED).encode()} for r in searches)
    body = searches[0].body
    assert (body["size"], body["query"]["hybrid"]["pagination_depth"]) == (20, 50)
    assert [next(iter(q)) for q in body["query"]["hybrid"]["queries"]] == ["match", "neural_sparse", "knn"]
    assert _sent(recorder, "/_msearch") == []
    recorder.validate_all()


def test_several_sub_queries_are_one_msearch(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster("2.19.1.0"))
    assert not store.fuses(Fusion("z_score"))
    assert store.search("docs", SUB_QUERIES) == [HITS_SCORED] * 3
    (msearch,) = _sent(recorder, "/_msearch")
    assert [next(iter(line["query"])) for line in msearch.lines[1::2]] == ["match", "neural_sparse", "knn"]
    assert [line["size"] for line in msearch.lines[1::2]] == [50, 40, 30]
    assert _sent(recorder, "/_search") == []
    recorder.validate_all()


def test_create_index_puts_the_default_pipeline_where_the_cluster_fuses(recorder: Recorder) -> None:
    store = _fake_store(recorder, FakeCluster("3.1.0.0"))
    store.create_index("docs", SPEC)
    created = [r for r in recorder.requests if r.method == "PUT"]
    assert [r.url for r in created] == ["/docs-v1", f"/_search/pipeline/{pipeline_id(DEFAULT_HYBRID_FUSION)}"]
    assert created[0].body["aliases"] == {"docs": {}}
    recorder.validate_all()


@pytest.mark.integration
def test_cli_index_create_builds_the_configured_index(
    osmem_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from neurank.cli import app

    monkeypatch.setenv("NEURANK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEURANK_RUNTIME", "torch")
    result = CliRunner().invoke(app, ["index", "create", "docs", "--store", osmem_url, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["index"], info["count"], sorted(info["models"])) == ("docs", 0, ["deepct", "dense", "splade"])
    assert info["dense_dimension"] == 384
    assert OpenSearch(hosts=[osmem_url]).indices.get_alias(index="docs-v*") == {"docs-v1": {"aliases": {"docs": {}}}}
