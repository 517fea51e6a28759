"""The Store contract as test mixins (haystack's `DocumentStoreBaseTests` pattern).

A store's test module provides a `store` fixture and inherits `StoreContractTests`, or only the mixins
that apply (osmem-server refuses `knn`, so the OpenSearch store leaves out `VectorScoringTests`).
Engines may compute BM25 values differently (osmem does), so the contract checks BM25 *order*, and
`test_bm25_values` raises NotImplementedError: each store states what it guarantees. `rank_features`
scores (SCORING.md §2-3) and knn translations (§4) are exact everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np
import pytest

from neurank.documents import Document
from neurank.errors import IndexNotFoundError, StoreError
from neurank.index_spec import IndexSpec, SpaceType
from neurank.retrieval import LateInteractionQuery, ScoredIds, SparseQuery, TextQuery, VectorQuery
from neurank.stores.protocol import EncodedDocument, Store

INDEX = "neurank-contract"
SPEC = IndexSpec(language="english", dense_dimension=3, bm25_k1=1.2, bm25_b=0.75, models={"splade": "fp-1"})

def bm25(store: Store, index: str, text: str, k: int) -> ScoredIds:
    return store.search(index, [TextQuery(text, k)])[0]


def sparse(store: Store, index: str, field: str, tokens: Mapping[str, float], k: int) -> ScoredIds:
    return store.search(index, [SparseQuery(field, tokens, k)])[0]


def knn(store: Store, index: str, vector: object, k: int) -> ScoredIds:
    return store.search(index, [VectorQuery(np.asarray(vector, dtype=np.float32), k)])[0]


BM25_CORPUS = {
    "both": "Neural ranking models for search",
    "ranking": "Ranking ranking ranking: a survey of ranking functions",
    "once": "A long report on gardening, cooking, travel, music and, briefly, ranking",
    "none": "Pasta recipes from the south of Italy",
}
"""For the query "neural ranking": `both` has both terms, `ranking` repeats one, `once` has it once in a
longer text, `none` has neither."""

SPARSE_CORPUS = {
    "a": {"cat": 0.3, "mat": 77.7},
    "b": {"cat": 1.0},
    "c": {"dog": 2.5},
}
"""Stored as decode(S): 0.3 → 0.2998047, 77.7 → 77.5, 1.0 and 2.5 exactly (SCORING.md §2)."""


def encoded(
    doc_id: str,
    text: str = "text",
    *,
    title: str = "",
    sparse: Mapping[str, Mapping[str, float]] | None = None,
    embedding: list[float] | None = None,
    models: Mapping[str, str] | None = None,
    token_vectors: object = None,
) -> EncodedDocument:
    return EncodedDocument(
        Document(id=doc_id, text=text, title=title, source=f"corpus.jsonl:{doc_id}"),
        sparse=sparse or {},
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
        models=models or {},
        token_vectors=None if token_vectors is None else np.asarray(token_vectors, dtype=np.float32),
    )


def late_interaction(store: Store, index: str, vectors: object, candidates: list[str], k: int) -> ScoredIds:
    return store.search(index, [LateInteractionQuery(np.asarray(vectors, dtype=np.float32), tuple(candidates), k)])[0]


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [doc_id for doc_id, _ in hits]


class _ContractBase:
    spec = SPEC

    @pytest.fixture
    def index(self, store: Store) -> Iterator[str]:
        store.drop_index(INDEX)
        store.create_index(INDEX, self.spec)
        yield INDEX
        store.drop_index(INDEX)


class IndexLifecycleTests(_ContractBase):
    def test_spec_round_trip(self, store: Store, index: str) -> None:
        assert store.index_spec(index) == self.spec
        assert store.count(index) == 0

    def test_create_again_with_the_same_spec_is_a_no_op(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded("d1")])
        store.create_index(index, self.spec)
        assert store.count(index) == 1

    def test_create_again_with_another_spec_is_refused(self, store: Store, index: str) -> None:
        with pytest.raises(StoreError, match="another spec"):
            store.create_index(index, IndexSpec(language="russian"))

    def test_drop_removes_the_index_and_its_documents(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded("d1")])
        store.drop_index(index)
        assert store.index_spec(index) is None
        store.create_index(index, self.spec)
        assert store.count(index) == 0

    def test_drop_of_a_missing_index_is_fine(self, store: Store) -> None:
        store.drop_index("neurank-contract-missing")
        assert store.index_spec("neurank-contract-missing") is None

    def test_a_missing_index_is_named(self, store: Store) -> None:
        with pytest.raises(IndexNotFoundError, match="neurank-contract-missing"):
            store.count("neurank-contract-missing")


class WriteTests(_ContractBase):
    def test_upsert_is_idempotent_by_id(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded("d1", "first"), encoded("d2")])
        result = store.upsert(index, [encoded("d1", "second")])
        assert (result.written, result.failed) == (1, [])
        assert store.count(index) == 2
        assert store.get(index, ["d1"])[0].document.text == "second"

    def test_stored_state_gives_hash_and_models(self, store: Store, index: str) -> None:
        doc = encoded("d1", "hello", models={"splade": "fp-1", "dense": "fp-2"})
        store.upsert(index, [doc])
        state = store.stored_state(index, ["d1", "missing"])
        assert state == {"d1": (doc.document.content_hash, {"splade": "fp-1", "dense": "fp-2"})}

    def test_get_keeps_the_order_asked_and_leaves_out_missing_ids(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded(f"d{i}", f"text {i}", sparse={"splade": {"t": 1.5}}) for i in range(3)])
        found = store.get(index, ["d2", "missing", "d0"])
        assert [doc.document.id for doc in found] == ["d2", "d0"]
        assert found[0].document.text == "text 2"
        assert found[0].document.source == "corpus.jsonl:d2"
        assert dict(found[0].sparse) == {"splade": {"t": 1.5}}

    def test_get_round_trips_the_embedding(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded("d1", embedding=[0.25, -1.5, 3.0])])
        embedding = store.get(index, ["d1"])[0].embedding
        assert embedding is not None
        np.testing.assert_array_equal(embedding, np.array([0.25, -1.5, 3.0], dtype=np.float32))

    def test_delete_counts_what_existed(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded("d1"), encoded("d2")])
        assert store.delete(index, ["d1", "missing"]) == 1
        assert store.count(index) == 1
        assert store.get(index, ["d1"]) == []

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            (encoded("bad", sparse={"splade": {"zero": 0.0}}), "splade"),
            (encoded("bad", sparse={"splade": {"negative": -1.0}}), "splade"),
            (encoded("bad", sparse={"deepct": {"subnormal": 1e-39}}), "deepct"),
            (encoded("bad", sparse={"splade": {"nan": float("nan")}}), "splade"),
            (encoded("bad", embedding=[1.0, 2.0]), "embedding"),
            (encoded("bad", embedding=[1.0, float("inf"), 0.0]), "embedding"),
            (encoded("bad", embedding=[0.0, 0.0, 0.0]), "embedding"),
        ],
        ids=["zero", "negative", "subnormal", "nan", "dimension", "infinite", "zero-vector-cosine"],
    )
    def test_a_bad_document_fails_alone(
        self, store: Store, index: str, bad: EncodedDocument, field: str
    ) -> None:
        result = store.upsert(index, [encoded("good1"), bad, encoded("good2")])
        assert result.written == 2
        assert [(f.id, f.source) for f in result.failed] == [("bad", "corpus.jsonl:bad")]
        assert field in result.failed[0].reason
        assert store.count(index) == 2
        assert store.get(index, ["bad"]) == []


class Bm25Tests(_ContractBase):
    @pytest.fixture
    def bm25_corpus(self, store: Store, index: str) -> str:
        store.upsert(index, [encoded(doc_id, text) for doc_id, text in BM25_CORPUS.items()])
        return index

    def test_bm25_order(self, store: Store, bm25_corpus: str) -> None:
        hits = bm25(store, bm25_corpus, "neural ranking", 10)
        assert ids(hits) == ["both", "ranking", "once"]
        assert all(isinstance(score, float) and score > 0 for _, score in hits)

    def test_bm25_keeps_the_k_best(self, store: Store, bm25_corpus: str) -> None:
        assert ids(bm25(store, bm25_corpus, "neural ranking", 2)) == ["both", "ranking"]

    def test_bm25_with_no_matching_term_finds_nothing(self, store: Store, bm25_corpus: str) -> None:
        assert bm25(store, bm25_corpus, "zebra", 10) == []
        assert bm25(store, bm25_corpus, "the of and", 10) == []

    def test_bm25_is_analyzed_like_the_documents(self, store: Store, bm25_corpus: str) -> None:
        assert ids(bm25(store, bm25_corpus, "RANKINGS", 10)) == ["ranking", "both", "once"]

    def test_explain_names_the_matching_terms(self, store: Store, bm25_corpus: str) -> None:
        explained = store.explain_bm25(bm25_corpus, "neural ranking recipes", "both")
        assert set(explained) == {"neural", "rank"}
        assert all(value > 0 for value in explained.values())

    def test_document_frequencies_count_live_documents_of_analyzed_terms(self, store: Store,
                                                                         bm25_corpus: str) -> None:
        assert store.document_frequencies(bm25_corpus, ["rank", "neural", "pasta", "ranking", "zebra"]) == {
            "rank": 3, "neural": 1, "pasta": 1, "ranking": 0, "zebra": 0}  # terms are stems: "ranking" is none
        store.delete(bm25_corpus, ["once"])
        assert store.document_frequencies(bm25_corpus, ["rank"]) == {"rank": 2}
        assert store.document_frequencies(bm25_corpus, []) == {}

    def test_bm25_values(self, store: Store, bm25_corpus: str) -> None:
        raise NotImplementedError("each store states whether its BM25 values are exact (SCORING.md §1)")


class SparseScoringTests(_ContractBase):
    @pytest.fixture
    def sparse_corpus(self, store: Store, index: str) -> str:
        store.upsert(index, [encoded(doc_id, sparse={"splade": w}) for doc_id, w in SPARSE_CORPUS.items()])
        return index

    def test_scores_are_sums_of_weight_times_decoded_value(self, store: Store, sparse_corpus: str) -> None:
        query = {"cat": 1.5, "mat": 0.25, "dog": 0.1}
        expected_a = np.float32(
            np.float64(np.float32(1.5) * np.float32(0.2998047))
            + np.float64(np.float32(0.25) * np.float32(77.5))
        )
        expected_b = np.float32(1.5) * np.float32(1.0)
        expected_c = np.float32(0.1) * np.float32(2.5)
        hits = sparse(store, sparse_corpus, "splade", query, 10)
        assert ids(hits) == ["a", "b", "c"]
        assert [np.float32(score) for _, score in hits] == [expected_a, expected_b, expected_c]

    def test_other_field_and_unknown_tokens_find_nothing(self, store: Store, sparse_corpus: str) -> None:
        assert sparse(store, sparse_corpus, "deepct", {"cat": 1.0}, 10) == []
        assert sparse(store, sparse_corpus, "splade", {"unknown": 1.0}, 10) == []


class VectorScoringTests(_ContractBase):
    VECTORS: ClassVar[dict[str, list[float]]] = {
        "x": [1.0, 0.0, 0.0],
        "y": [2.0, 1.0, -1.0],
        "z": [-1.0, 0.2, 0.1],
    }
    QUERY = np.array([1.0, 0.5, 0.0], dtype=np.float32)

    def _search(self, store: Store, space_type: SpaceType) -> dict[str, np.float32]:
        name = f"{INDEX}-{space_type}"
        store.drop_index(name)
        store.create_index(name, IndexSpec(dense_dimension=3, space_type=space_type))
        try:
            store.upsert(name, [encoded(doc_id, embedding=v) for doc_id, v in self.VECTORS.items()])
            hits = knn(store, name, self.QUERY, 10)
        finally:
            store.drop_index(name)
        assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)
        return {doc_id: np.float32(score) for doc_id, score in hits}

    def test_cosinesimil(self, store: Store) -> None:
        scores = self._search(store, "cosinesimil")
        assert scores["x"] == np.float32(0.9472136)
        assert list(scores) == ["y", "x", "z"]

    def test_l2(self, store: Store) -> None:
        scores = self._search(store, "l2")
        assert scores["x"] == np.float32(0.8)
        assert list(scores) == ["x", "y", "z"]

    def test_innerproduct(self, store: Store) -> None:
        scores = self._search(store, "innerproduct")
        assert (scores["y"], scores["z"]) == (np.float32(3.5), np.float32(0.5263158))
        assert list(scores) == ["y", "x", "z"]

    def test_k_limits_the_hits(self, store: Store, index: str) -> None:
        store.upsert(index, [encoded(doc_id, embedding=v) for doc_id, v in self.VECTORS.items()])
        assert len(knn(store, index, self.QUERY, 2)) == 2


LATE_SPEC = IndexSpec(colbert_dimension=4, models={"colbert": "fp-c"})
LATE_QUERY = [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]]
"""Three query rows (the last one stands for a `[MASK]` padding row: it is scored like the others)."""
LATE_CORPUS: dict[str, list[list[float]]] = {
    "a": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]],
    "b": [[0.5, 0.5, 0.5, 0.5]],
    "c": [[-1.0, 0.0, 0.0, 0.0]],
    "empty": [],
}
"""MaxSim by hand (SCORING.md §7), every value exact in float16: a = max(1, 0) + max(.5, .5) + max(0, 0) = 1.5;
b = .5 + 1 + .5 = 2; c = -1 + -.5 + 0 = -1.5 (negative). `empty` kept no token: it has no score."""


class LateInteractionTests(_ContractBase):
    @pytest.fixture
    def late_corpus(self, store: Store) -> Iterator[str]:
        name = f"{INDEX}-late"
        store.drop_index(name)
        store.create_index(name, LATE_SPEC)
        docs = [encoded(doc_id, token_vectors=vectors) for doc_id, vectors in LATE_CORPUS.items()]
        assert store.upsert(name, [*docs, encoded("plain")]).written == 5
        yield name
        store.drop_index(name)

    def test_maxsim_of_the_candidates(self, store: Store, late_corpus: str) -> None:
        candidates = ["a", "b", "c", "empty", "plain", "missing"]
        assert late_interaction(store, late_corpus, LATE_QUERY, candidates, 10) == [
            ("b", 2.0), ("a", 1.5), ("c", -1.5)
        ]

    def test_only_candidates_are_scored_and_k_limits(self, store: Store, late_corpus: str) -> None:
        assert ids(late_interaction(store, late_corpus, LATE_QUERY, ["c", "a"], 10)) == ["a", "c"]
        assert ids(late_interaction(store, late_corpus, LATE_QUERY, ["a", "b", "c"], 2)) == ["b", "a"]
        assert late_interaction(store, late_corpus, LATE_QUERY, ["empty", "plain"], 10) == []

    def test_get_round_trips_token_vectors(self, store: Store, late_corpus: str) -> None:
        a, empty, plain = store.get(late_corpus, ["a", "empty", "plain"])
        assert a.token_vectors is not None and a.token_vectors.dtype == np.float32
        np.testing.assert_array_equal(a.token_vectors, LATE_CORPUS["a"])
        assert (empty.token_vectors, plain.token_vectors) == (None, None)

    def test_a_query_of_another_dimension_is_refused(self, store: Store, late_corpus: str) -> None:
        with pytest.raises(StoreError, match="dimension"):
            late_interaction(store, late_corpus, [[1.0, 0.0, 0.0]], ["a"], 10)

    @pytest.mark.parametrize(
        ("bad", "reason"),
        [([[1.0, 0.0, 0.0]], "dimension"), ([[1.0, float("nan"), 0.0, 0.0]], "NaN"),
         ([[1.0, float("inf"), 0.0, 0.0]], "NaN or infinite"), ([1.0, 0.0, 0.0, 0.0], "dimension")],
        ids=["dimension", "nan", "infinite", "one-row"],
    )
    def test_bad_token_vectors_fail_alone(self, store: Store, late_corpus: str, bad: object, reason: str) -> None:
        result = store.upsert(late_corpus, [encoded("good", token_vectors=LATE_CORPUS["b"]),
                                            encoded("bad", token_vectors=bad)])
        assert result.written == 1
        assert [f.id for f in result.failed] == ["bad"]
        assert "colbert" in result.failed[0].reason and reason in result.failed[0].reason
        assert store.get(late_corpus, ["bad"]) == []

    def test_token_vectors_need_an_index_with_colbert_dimension(self, store: Store, index: str) -> None:
        result = store.upsert(index, [encoded("x", token_vectors=LATE_CORPUS["a"])])
        assert result.written == 0 and "colbert" in result.failed[0].reason


class StoreContractTests(IndexLifecycleTests, WriteTests, Bm25Tests, SparseScoringTests, VectorScoringTests,
                         LateInteractionTests):
    """Everything a store must do; a store's test class inherits this and provides `store`."""
