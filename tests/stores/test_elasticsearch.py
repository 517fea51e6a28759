"""The Elasticsearch store on a real noida-db (an Elasticsearch 8.15 API server): the store contract, and what is
Elasticsearch's own. Every body sent is checked against the Elasticsearch spec (the `es_store` fixture)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.stores.conftest import EXACT_HNSW, FAST_RETRIES, Recorder, es_client
from tests.stores.contract import SPEC, StoreContractTests, encoded, ids

from neurank.config import Settings
from neurank.index_spec import IndexSpec
from neurank.mappings import EXPANSION_TERMS_FIELD
from neurank.query.fusion import fuse
from neurank.retrieval import Fusion, Fuzzy, ScoredIds, SparseQuery, TextQuery, VectorQuery
from neurank.stores import LocalStore, open_store
from neurank.stores.elasticsearch import Capabilities, ElasticsearchStore
from neurank.stores.elasticsearch.client import compatible_headers

pytestmark = pytest.mark.integration


class TestElasticsearchContract(StoreContractTests):
    @pytest.fixture
    def store(self, es_store: ElasticsearchStore) -> ElasticsearchStore:
        return es_store

    def test_bm25_values(self, store: ElasticsearchStore, bm25_corpus: str) -> None:
        pytest.skip("noida-db's BM25 values are not Lucene's; the order is checked, and benchmarks measure it")


def test_a_9x_client_asks_an_8x_server_for_its_own_major(es_store: ElasticsearchStore, recorder: Recorder) -> None:
    es_store.drop_index("compat")
    es_store.create_index("compat", SPEC)
    es_store.upsert("compat", [encoded("a", "neural ranking")])
    assert es_store.count("compat") == 1
    es_store.drop_index("compat")
    sent = [request.headers for request in recorder.requests]
    assert sent and all("compatible-with=8" in headers["accept"] for headers in sent)
    assert any(headers.get("content-type") == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
               for headers in sent)


def test_compatible_headers_rewrite_json_and_ndjson_only() -> None:
    headers = {"Accept": "application/vnd.elasticsearch+json; compatible-with=9",
               "Content-Type": "application/x-ndjson", "User-Agent": "x"}
    assert compatible_headers(headers, 8) == {
        "Accept": "application/vnd.elasticsearch+json; compatible-with=8",
        "Content-Type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8", "User-Agent": "x"}


def test_open_store_detects_the_engine_and_assumes_basic_without_a_license_endpoint(noida_url: str) -> None:
    store = open_store(Settings(), noida_url)
    assert isinstance(store, ElasticsearchStore)
    assert store.capabilities() == Capabilities((8, 15, 3), "basic")


@pytest.mark.parametrize(
    ("capabilities", "fusion", "site"),
    [(Capabilities((8, 15, 3), "basic"), Fusion("rrf"), None),
     (Capabilities((8, 15, 3), "enterprise"), Fusion("rrf"), "rrf"),
     (Capabilities((8, 15, 3), "enterprise"), Fusion("rrf", weights=(0.5, 0.5)), None),
     (Capabilities((9, 2, 0), "enterprise"), Fusion("rrf", weights=(0.5, 0.5)), "rrf"),
     (Capabilities((8, 15, 3), "enterprise"), Fusion("min_max"), None),
     (Capabilities((8, 18, 0), "enterprise"), Fusion("min_max"), "linear"),
     (Capabilities((8, 18, 0), "enterprise"), Fusion("l2"), None),
     (Capabilities((9, 1, 0), "trial"), Fusion("l2"), "linear"),
     (Capabilities((9, 1, 0), "enterprise"), Fusion("min_max", "geometric_mean"), None),
     (Capabilities((9, 1, 0), "enterprise"), Fusion("z_score"), None),
     (Capabilities((9, 1, 0), "platinum"), Fusion("min_max"), None)],
)
def test_server_side_fusion_needs_version_and_licence(capabilities: Capabilities, fusion: Fusion,
                                                      site: str | None) -> None:
    assert capabilities.fusion_site(fusion) == site


SPARSE_DOCS = {f"d{i}": {"cat": 0.1 * (i + 1), "mat": 3.0 / (i + 1), f"t{i}": 1.7} for i in range(12)}
VECTORS = {f"d{i}": [np.cos(i / 3), np.sin(i / 3), 0.1 * i] for i in range(12)}
TEXTS = {f"d{i}": " ".join(["ranking"] * (i % 3 + 1) + ["neural"] * (i % 2) + ["filler"] * i) for i in range(12)}


@pytest.fixture
def twin(es_store: ElasticsearchStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """The same twelve documents in noida-db (index `twin`) and in a local store."""
    local = LocalStore(tmp_path_factory.mktemp("twin") / "store")
    spec = IndexSpec(dense_dimension=3, models={"splade": "fp"})
    docs = [encoded(doc_id, TEXTS[doc_id], sparse={"splade": SPARSE_DOCS[doc_id]}, embedding=VECTORS[doc_id])
            for doc_id in SPARSE_DOCS]
    es_store.drop_index("twin")
    for store in (es_store, local):
        store.create_index("twin", spec)
        assert store.upsert("twin", docs).written == 12
    yield local
    es_store.drop_index("twin")


def scores(hits: ScoredIds) -> np.ndarray:
    return np.float32([score for _, score in hits])


def test_sparse_vector_scores_equal_the_local_stores(es_store: ElasticsearchStore, twin: LocalStore,
                                                     recorder: Recorder) -> None:
    query = SparseQuery("splade", {"cat": 0.7, "mat": 1.3, "t4": 0.2}, 10)
    (got,), (expected,) = es_store.search("twin", [query]), twin.search("twin", [query])
    assert "sparse_vector" in recorder.requests[-1].body["query"]
    assert ids(got) == ids(expected)
    np.testing.assert_array_equal(scores(got), scores(expected))


def test_knn_order_equals_the_local_stores_exact_order(es_store: ElasticsearchStore, twin: LocalStore) -> None:
    query = VectorQuery(np.array([0.6, 0.8, 0.3], dtype=np.float32), 10)
    (got,), (expected,) = es_store.search("twin", [query]), twin.search("twin", [query])
    assert ids(got) == ids(expected)
    np.testing.assert_allclose(scores(got), scores(expected), rtol=2e-7)  # noida-db rounds (1 + cos) / 2 once more


def test_msearch_fused_by_neurank_equals_the_local_fusion(es_store: ElasticsearchStore, twin: LocalStore,
                                                          recorder: Recorder) -> None:
    queries = [TextQuery("neural ranking", 10), SparseQuery("splade", {"cat": 1.0, "mat": 0.5}, 10),
               VectorQuery(np.array([1.0, 0.2, 0.0], dtype=np.float32), 10)]
    remote = es_store.search("twin", queries)
    assert recorder.kinds()[-1] == "msearch"
    local = twin.search("twin", queries)
    assert len(remote[0]) == 10  # BM25 answered too; noida-db's BM25 is not Lucene's (docs/BENCHMARKS.md)
    for fusion in (Fusion("min_max", "harmonic_mean"), Fusion("l2", "geometric_mean"), Fusion("rrf"),
                   Fusion("z_score"), Fusion("min_max", weights=(0.3, 0.7))):
        assert [hit.id for hit in fuse(remote[1:], fusion)] == [hit.id for hit in fuse(local[1:], fusion)]


def test_the_rrf_retriever_agrees_with_neurank_rrf(noida_url: str, recorder: Recorder, twin: LocalStore) -> None:
    """noida-db behaves as a licensed cluster: with the licence set, the store fuses with the `rrf` retriever."""
    store = ElasticsearchStore(noida_url, Settings(elasticsearch_license="enterprise",
                                                   elasticsearch_dense_index_options=EXACT_HNSW),
                               client=es_client(noida_url, recorder), bulk=FAST_RETRIES, server_version="8.15.3")
    queries = [SparseQuery("splade", {"cat": 1.0, "mat": 0.5}, 8),
               VectorQuery(np.array([1.0, 0.2, 0.0], dtype=np.float32), 8)]
    assert store.fuses(Fusion("rrf"))
    fused = store.search_fused("twin", queries, Fusion("rrf"), size=8)
    assert recorder.requests[-1].body["retriever"]["rrf"]["rank_window_size"] == 8
    expected = fuse(store.search("twin", queries), Fusion("rrf"))
    assert ids(fused) == [hit.id for hit in expected][:8]
    np.testing.assert_allclose([s for _, s in fused], [hit.score for hit in expected][:8], rtol=1e-6)
    recorder.validate_all_es()


def test_a_model_change_builds_a_new_version_and_swaps(es_store: ElasticsearchStore) -> None:
    es_store.drop_index("swap")
    es_store.create_index("swap", SPEC)
    es_store.upsert("swap", [encoded("old", "old text")])
    es_store.create_index("swap", IndexSpec(**{**SPEC.to_dict(), "models": {"splade": "fp-2"}}))
    es_store.upsert("swap", [encoded("new", "new text")])
    assert ids(es_store.search("swap", [TextQuery("text", 10)])[0]) == ["old"]  # the old version still answers
    assert es_store.commit("swap") == "swap-v2"
    assert ids(es_store.search("swap", [TextQuery("text", 10)])[0]) == ["new"]
    assert es_store.index_spec("swap").models == {"splade": "fp-2"}  # type: ignore[union-attr]
    es_store.drop_index("swap")


def test_expansion_terms_are_a_keyword_array_of_the_top_terms(es_store: ElasticsearchStore) -> None:
    es_store.drop_index("terms")
    es_store.create_index("terms", SPEC)
    weights = {f"t{i}": float(i + 1) for i in range(30)}
    es_store.upsert("terms", [encoded("a", sparse={"splade": weights, "deepct": {"z": 9.0}})])
    source = es_store._mget("terms", ["a"], [EXPANSION_TERMS_FIELD])["a"]
    assert source[EXPANSION_TERMS_FIELD] == [f"t{i}" for i in range(29, 9, -1)]
    es_store.drop_index("terms")


def test_an_older_cluster_gets_rank_features_and_the_same_scores(noida_url: str, recorder: Recorder,
                                                                 twin: LocalStore) -> None:
    """Before 8.15 the `sparse_vector` query takes no raw weights: `rank_features` and the `rank_feature` sum."""
    store = ElasticsearchStore(noida_url, Settings(), client=es_client(noida_url, recorder), bulk=FAST_RETRIES,
                               server_version="8.12.2")
    store.drop_index("older")
    store.create_index("older", IndexSpec(models={"splade": "fp"}))
    store.upsert("older", [encoded(doc_id, sparse={"splade": weights}) for doc_id, weights in SPARSE_DOCS.items()])
    assert store._types_of("older")["splade"] == "rank_features"
    query = SparseQuery("splade", {"cat": 0.7, "mat": 1.3, "t4": 0.2}, 10)
    (got,), (expected,) = store.search("older", [query]), twin.search("twin", [query])
    assert "rank_feature" in json.dumps(recorder.requests[-1].body)
    assert ids(got) == ids(expected)
    np.testing.assert_array_equal(scores(got), scores(expected))
    store.drop_index("older")
    recorder.validate_all_es()


TYPO_DOCS = {"s": "Statins lower cholesterol", "w": "Wind turbines", "d": "Cholesterol in the diet", "x": "Statistics"}


@pytest.mark.parametrize("query", [
    TextQuery("cholestrol statnis", 10, Fuzzy()), TextQuery("cholestrol", 10, ngram=True),
    TextQuery("trubines", 10, Fuzzy("2", prefix_length=1, transpositions=False)),
], ids=["fuzzy", "ngram", "fuzzy-options"])
def test_typo_tolerant_matches_find_what_the_local_store_finds(es_store: ElasticsearchStore, tmp_path: Path,
                                                                query: TextQuery) -> None:
    local = LocalStore(tmp_path / "store")
    es_store.drop_index("typos")
    for store in (es_store, local):
        store.create_index("typos", IndexSpec(ngram=3))
        store.upsert("typos", [encoded(doc_id, text) for doc_id, text in TYPO_DOCS.items()])
    found = es_store.search("typos", [query])[0]
    es_store.drop_index("typos")
    assert found and set(ids(found)) == set(ids(local.search("typos", [query])[0]))
