"""The OpenSearch store on osmem-server against the local store, on the same documents and queries.

- `rank_feature` scores (the sparse path without neural-search) equal the local store's sparse scores to
  float32 precision, and the top hits agree with ties aside. A single clause is exact; osmem multiplies
  w · S in double where Lucene (and the local store) rounds each clause to float32 before the double sum, so
  a sum of several clauses may differ in the last place (at most 1 ulp, measured).
- The client-side fusion of one `_msearch` equals the local store's fusion, for every technique.
- A hybrid plan through the Searcher is one `_msearch`, and its hits carry every stage's score.
- Late interaction (SCORING.md §7): on the same token vectors (rounded to float16, the local store's default
  records), osmem (no k-NN plugin: the store's `_mget` + MaxSim path) and the local store give the same hits,
  scores within float32 rounding, for every query; with int8 and binary records the local ranks are compared.
- SciFact (slow): top-10 agreement of the BM25-only and sparse-only plans over the test queries. BM25 runs over
  the whole corpus; the sparse plan over the first 1,000 documents, encoded with the real splade-tiny weights
  (encoding the whole corpus takes ~10 minutes on 2 cores). osmem scores BM25 with bleve's formula, not
  Lucene's, and ignores k1/b (osmem's compatibility page): its BM25 ranking is not expected to agree, and that
  check is a strict xfail that states the measured agreement.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.stores.conftest import Recorder
from tests.stores.contract import bm25, encoded, ids, late_interaction, sparse

from neurank.documents import Document, read_corpus
from neurank.eval.datasets import load_qrels, load_queries
from neurank.index_spec import IndexSpec, TokenCompression
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.fusion import fuse
from neurank.query.plan import RetrievalPlan, Stage
from neurank.query.target import SearchTarget
from neurank.retrieval import COMBINATIONS, TECHNIQUES, Fusion, ScoredIds, SparseQuery
from neurank.stores import LocalStore
from neurank.stores.agreement import agreement, same_top_k
from neurank.stores.opensearch import OpenSearchStore
from neurank.stores.protocol import EncodedDocument, Store

INDEX = "compare"
SPEC = IndexSpec(language="english", bm25_k1=1.2, bm25_b=0.75)
"""k1/b as osmem uses them (it ignores custom values); a real cluster reads them from the index settings."""
VOCABULARY = [f"t{i}" for i in range(120)]
FIELDS = ("splade", "deepct")


def random_weights(rng: random.Random, size: int) -> dict[str, float]:
    return {token: rng.lognormvariate(0, 1) for token in rng.sample(VOCABULARY, size)}


def synthetic_corpus(seed: int = 7, n: int = 300) -> list[EncodedDocument]:
    """Documents with random sparse weights in both fields; the text only needs to exist."""
    rng = random.Random(seed)
    return [encoded(f"d{i:03}", f"document {i}",
                    sparse={field: random_weights(rng, rng.randint(3, 40)) for field in FIELDS})
            for i in range(n)]


def synthetic_queries(seed: int = 11, n: int = 40, max_tokens: int = 12) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{token: round(rng.uniform(0.05, 3.0), 3)
             for token in rng.sample(VOCABULARY, rng.randint(1, max_tokens))} for _ in range(n)]


def fill(stores: tuple[Store, ...], documents: list[EncodedDocument], spec: IndexSpec = SPEC) -> None:
    for store in stores:
        store.create_index(INDEX, spec)
        for start in range(0, len(documents), 500):
            result = store.upsert(INDEX, documents[start : start + 500])
            assert not result.failed, result.failed[:3]


@pytest.fixture
def pair(osmem_store: OpenSearchStore, tmp_path: Path) -> tuple[LocalStore, OpenSearchStore]:
    local = LocalStore(tmp_path / "local")
    fill((local, osmem_store), synthetic_corpus())
    return local, osmem_store


def assert_float32_equal(got: ScoredIds, expected: ScoredIds, ulps: int = 1) -> None:
    """Equal scores, each within `ulps` float32 units in the last place of the expected one."""
    assert len(got) == len(expected)
    want = np.array([score for _, score in expected], dtype=np.float32)
    have = np.array([score for _, score in got], dtype=np.float32)
    assert np.all(np.abs(have.astype(np.float64) - want) <= ulps * np.spacing(want)), (have, want)


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.integration
def test_late_interaction_gives_the_same_hits_on_both(osmem_store: OpenSearchStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    documents = [encoded(f"d{i:03}", token_vectors=unit_rows(rng, int(n), 32).astype(np.float16))
                 for i, n in enumerate(rng.integers(0, 60, size=200))]  # n = 0: a document that kept no token
    local = LocalStore(tmp_path / "local")
    fill((local, osmem_store), documents, IndexSpec(colbert_dimension=32))
    every_id = [doc.document.id for doc in documents]
    for _ in range(20):
        query = unit_rows(rng, 32, 32)
        candidates = [every_id[i] for i in rng.choice(len(every_id), size=100, replace=False)]
        expected = late_interaction(local, INDEX, query, candidates, 30)
        got = late_interaction(osmem_store, INDEX, query, candidates, 30)
        assert ids(got) == ids(expected)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)


@pytest.mark.parametrize("compression", ["int8", "binary"])
def test_compressed_records_keep_the_float_ranking_above_a_floor(tmp_path: Path, compression: TokenCompression) -> None:
    """A floor, not a benchmark (benchmarks/token_compression.py measures): the top 10 of 100 candidates by
    MaxSim on int8 or binary records shares with float16's: measured 1.0 (int8) and 0.55 (binary) here, against
    0.1 for a random pick; the floors leave room for other seeds."""
    rng = np.random.default_rng(6)
    documents = [encoded(f"d{i:03}", token_vectors=unit_rows(rng, int(n), 64)) for i, n in
                 enumerate(rng.integers(20, 80, size=100))]
    compressions: tuple[TokenCompression, ...] = ("float16", compression)
    stores = [LocalStore(tmp_path / name) for name in compressions]
    for name, store in zip(compressions, stores, strict=True):
        store.create_index(INDEX, IndexSpec(colbert_dimension=64, token_compression=name))
        store.upsert(INDEX, documents)
    every_id = [doc.document.id for doc in documents]
    overlaps = []
    for _ in range(10):
        # a query near one document's tokens, so that there is something to find
        target = documents[int(rng.integers(0, 100))].token_vectors
        assert target is not None
        query = target[:32] + 0.5 * unit_rows(rng, min(32, len(target)), 64)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        top = [ids(late_interaction(store, INDEX, query, every_id, 10)) for store in stores]
        overlaps.append(len(set(top[0]) & set(top[1])) / 10)
    assert np.mean(overlaps) >= (0.8 if compression == "int8" else 0.4), overlaps


@pytest.mark.integration
@pytest.mark.parametrize("field", FIELDS)
def test_rank_feature_scores_equal_the_local_sparse_scores(
    pair: tuple[LocalStore, OpenSearchStore], field: str
) -> None:
    local, osmem = pair
    for query in synthetic_queries():
        expected = sparse(local, INDEX, field, query, 300)
        got = sparse(osmem, INDEX, field, query, 20)
        assert_float32_equal(got, expected[:20])
        assert same_top_k(expected, ids(got), 20)


@pytest.mark.integration
@pytest.mark.parametrize(
    "fusion",
    [Fusion(technique, combination) for technique in TECHNIQUES for combination in COMBINATIONS
     if technique not in ("rrf", "z_score") or combination == "arithmetic_mean"] + [Fusion("rrf", weights=(0.3, 0.7))],
    ids=lambda fusion: f"{fusion.technique}-{fusion.combination}" + ("-weights" if fusion.weights else ""),
)
def test_msearch_fusion_equals_the_local_fusion(
    pair: tuple[LocalStore, OpenSearchStore], recorder: Recorder, fusion: Fusion
) -> None:
    """One-token queries, whose sub-query scores are exact on osmem too, so that fused scores must be equal."""
    local, osmem = pair
    for query in synthetic_queries(n=10, max_tokens=1):
        fused = fuse(osmem.search(INDEX, [SparseQuery(field, query, 60) for field in FIELDS]), fusion)
        expected = fuse([sparse(local, INDEX, field, query, 60) for field in FIELDS], fusion)
        assert [hit.id for hit in fused] == [hit.id for hit in expected]
        assert [np.float32(hit.score) for hit in fused] == [np.float32(hit.score) for hit in expected]
        assert [hit.ranks for hit in fused] == [hit.ranks for hit in expected]
    assert sum(request.url.endswith("/_msearch") for request in recorder.requests) == 10


class QueryTokens:
    """A sparse encoder stand-in: fixed query tokens, and the fingerprint the index was built with."""

    fingerprint = "synthetic"

    def __init__(self, tokens: dict[str, float]) -> None:
        self.tokens = tokens

    def encode_queries(self, texts: list[str]) -> list[dict[str, float]]:
        return [self.tokens for _ in texts]


@pytest.mark.integration
def test_a_hybrid_plan_is_one_msearch_and_keeps_every_stage_score(
    osmem_store: OpenSearchStore, recorder: Recorder
) -> None:
    documents = [encoded(f"d{i}", f"neural ranking {'models ' * i}", sparse={"splade": {"t1": 1.0 + i}})
                 for i in range(6)]
    fill((osmem_store,), documents, IndexSpec(language="english", models={"splade": QueryTokens.fingerprint}))
    plan = RetrievalPlan(stages=(Stage("bm25", k=10), Stage("sparse", k=10)), fusion=Fusion("min_max"), k=4)
    target = SearchTarget(osmem_store, INDEX, EncoderBundle(splade=QueryTokens({"t1": 2.0})))
    before = len(recorder.requests)
    result = target.searcher().search("ranking models", plan)
    searched = [r.url for r in recorder.requests[before:] if r.url.endswith(("/_search", "/_msearch"))]
    assert searched == ["/_msearch"]
    expected = fuse([bm25(osmem_store, INDEX, "ranking models", 10),
                     sparse(osmem_store, INDEX, "splade", {"t1": 2.0}, 10)], plan.fusion)[:4]
    assert [(hit.id, hit.score) for hit in result.hits] == [(hit.id, hit.score) for hit in expected]
    assert all(set(hit.stages) == {"bm25", "sparse"} for hit in result.hits)
    assert result.hits[0].text.startswith("neural ranking")


# -- SciFact ---------------------------------------------------------------------------------------------------

SPARSE_SLICE = 1000
TARGET = 0.95


@pytest.fixture(scope="module")
def scifact_stores(scifact: Path, tmp_path_factory: pytest.TempPathFactory,
                   osmem_server: object) -> Iterator[tuple[LocalStore, OpenSearchStore, dict[str, str], Path]]:
    """BM25-only documents of the whole corpus in both stores (index `compare`)."""
    clone = osmem_server.clone()  # type: ignore[attr-defined]
    local = LocalStore(tmp_path_factory.mktemp("scifact") / "local")
    osmem = OpenSearchStore(clone.url)
    documents = [EncodedDocument(doc) for doc in read_corpus(scifact) if isinstance(doc, Document)]
    fill((local, osmem), documents, IndexSpec(language="english"))
    qrels = load_qrels(scifact, "test")
    queries = {qid: text for qid, text in load_queries(scifact).items() if qid in qrels}
    yield local, osmem, queries, tmp_path_factory.mktemp("home")
    clone.close()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.xfail(strict=True, reason=(
    "osmem scores `match` with bleve's BM25 and ignores k1/b: on SciFact test queries its top 10 agree with "
    "Lucene's (the local store's) on 0% of queries ties aside, 63% overlap@10; a real cluster runs the same "
    "`match` body with Lucene BM25"))
def test_scifact_bm25_top10_agreement(scifact_stores: tuple[LocalStore, OpenSearchStore, dict[str, str], Path]) -> None:
    local, osmem, queries, _ = scifact_stores
    pairs = [(bm25(local, INDEX, text, 100), ids(bm25(osmem, INDEX, text, 10)))
             for text in queries.values()]
    assert agreement(pairs, 10) >= TARGET


@pytest.mark.slow
@pytest.mark.integration
def test_scifact_sparse_top10_agreement(
    scifact_stores: tuple[LocalStore, OpenSearchStore, dict[str, str], Path], scifact: Path
) -> None:
    from neurank.onnx_models import SparseEncoder

    local, osmem, queries, home = scifact_stores
    encoder = SparseEncoder("splade-tiny", home=home, runtime="torch")
    documents = [doc for doc in read_corpus(scifact) if isinstance(doc, Document)][:SPARSE_SLICE]
    weights = encoder.encode_documents([doc.passage for doc in documents])
    slice_index = "compare-sparse"
    for store in (local, osmem):
        store.create_index(slice_index, IndexSpec(language="english"))
        result = store.upsert(slice_index, [EncodedDocument(doc, sparse={"splade": w})
                                            for doc, w in zip(documents, weights, strict=True)])
        assert not result.failed
    pairs = []
    for tokens in encoder.encode_queries(list(queries.values())):
        expected = sparse(local, slice_index, "splade", tokens, 100)
        got = sparse(osmem, slice_index, "splade", tokens, 10)
        assert_float32_equal(got, expected[:10])
        pairs.append((expected, ids(got)))
    assert agreement(pairs, 10) >= TARGET
