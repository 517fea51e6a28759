"""Query DSL: every body is valid for the OpenSearch spec and scores as SCORING.md says."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from tests.spec import validate, validate_msearch

from neurank.errors import InputError, PlanError
from neurank.mappings import search_pipeline_body
from neurank.retrieval import DEFAULT_HYBRID_FUSION, Fuzzy, SparseQuery, TextQuery, VectorQuery
from neurank.stores.opensearch.dsl import (
    bm25_query,
    hybrid_body,
    knn_query,
    msearch_lines,
    search_body,
    sparse_query,
    sub_query,
)

TOKENS = {"cat": 1.25, "feline": 0.5, "##s": 2.0}
VECTOR = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def sparse(tokens: Mapping[str, float], *, neural_sparse: bool, field: str = "splade") -> dict[str, Any]:
    return sparse_query(SparseQuery(field, tokens, 10), neural_sparse=neural_sparse)


QUERIES = {
    "bm25": bm25_query("cats and dogs"),
    "bm25 fuzzy": bm25_query("cats and dgos", Fuzzy("AUTO:4,7", prefix_length=1, max_expansions=20,
                                                    transpositions=False)),
    "neural_sparse": sparse(TOKENS, neural_sparse=True),
    "rank_feature": sparse(TOKENS, neural_sparse=False, field="deepct"),
    "knn": knn_query(VectorQuery(VECTOR, 50)),
    "empty sparse": sparse({}, neural_sparse=False),
}


@pytest.mark.parametrize("name", QUERIES)
def test_every_query_is_a_valid_search_and_msearch_body(name: str) -> None:
    body = search_body(QUERIES[name], 10)
    validate("search", body)
    validate_msearch(msearch_lines("docs", [body, search_body(QUERIES[name], 0)]))


def test_hybrid_of_every_stage_is_valid() -> None:
    queries = [QUERIES[name] for name in ("bm25 fuzzy", "neural_sparse", "knn", "rank_feature")]
    body = hybrid_body(queries, size=10, pagination_depth=100)
    validate("search", body)
    assert body["query"]["hybrid"] == {"queries": queries, "pagination_depth": 100}
    assert (body["size"], body["_source"]) == (10, False)


@pytest.mark.parametrize(("count", "depth"), [(0, 10), (6, 10), (2, 0)])
def test_hybrid_limits(count: int, depth: int) -> None:
    with pytest.raises(PlanError):
        hybrid_body([bm25_query("q")] * count, size=10, pagination_depth=depth)


def test_bm25_matches_the_content_field() -> None:
    assert bm25_query("a b") == {"match": {"content": {"query": "a b"}}}


def test_fuzzy_bm25_sends_every_option_and_leaves_the_rewrite_to_the_engine() -> None:
    assert sub_query(TextQuery("a b", 10, Fuzzy()), neural_sparse=True) == {"match": {"content": {
        "query": "a b", "fuzziness": "AUTO", "prefix_length": 0, "max_expansions": 50, "fuzzy_transpositions": True}}}
    assert QUERIES["bm25 fuzzy"]["match"]["content"]["fuzziness"] == "AUTO:4,7"


def test_neural_sparse_sends_raw_tokens_verbatim() -> None:
    query = sparse({"u.s.": 0.75, "cat": 1.0}, neural_sparse=True)
    assert query == {"neural_sparse": {"splade": {"query_tokens": {"u.s.": 0.75, "cat": 1.0}}}}


def test_rank_feature_fallback_is_linear_with_boost_equal_to_the_weight() -> None:
    clauses = sparse(TOKENS, neural_sparse=False)["bool"]["should"]
    assert clauses == [
        {"rank_feature": {"field": f"splade.{token}", "linear": {}, "boost": weight}}
        for token, weight in TOKENS.items()
    ]


def _score(query: Mapping[str, Any], features: Mapping[str, Mapping[str, float]]) -> float | None:
    """Evaluate the sparse DSL forms as OpenSearch does (SCORING.md §2-3); None = the document does not match."""
    if "neural_sparse" in query:
        ((field, spec),) = query["neural_sparse"].items()
        hits = [w * features[field][t] for t, w in spec["query_tokens"].items() if t in features[field]]
        return sum(hits) if hits else None
    if "rank_feature" in query:
        field, _, token = query["rank_feature"]["field"].rpartition(".")
        value = features[field].get(token)
        return None if value is None else query["rank_feature"]["boost"] * value
    if "match_none" in query:
        return None
    scores = [_score(clause, features) for clause in query["bool"]["should"]]
    matched = [score for score in scores if score is not None]
    return sum(matched) if matched else None


@pytest.mark.parametrize("features", [
    {"cat": 3.0, "##s": 0.25, "dog": 9.0},
    {"dog": 1.0},
    {"feline": 0.125},
    {},
])
def test_fallback_scores_exactly_like_neural_sparse(features: dict[str, float]) -> None:
    document = {"splade": features}
    native = _score(sparse(TOKENS, neural_sparse=True), document)
    fallback = _score(sparse(TOKENS, neural_sparse=False), document)
    assert native == fallback


def test_empty_tokens_match_nothing_in_both_forms() -> None:
    """A bool with no should clause would match every document."""
    assert sparse({}, neural_sparse=True) == {"match_none": {}}
    assert sparse({}, neural_sparse=False) == {"match_none": {}}


def test_rank_feature_cannot_address_a_dotted_token() -> None:
    with pytest.raises(InputError, match=r"contains '\.'"):
        sparse({"u.s.": 1.0}, neural_sparse=False)


@pytest.mark.parametrize("weight", [0.0, -1.0, 64.5, math.nan, math.inf])
def test_query_weights_outside_lucene_range_are_refused(weight: float) -> None:
    with pytest.raises(InputError, match=r"\(0, 64\]"):
        SparseQuery("splade", {"cat": weight}, 10)


def test_sparse_field_must_be_a_rank_features_field() -> None:
    with pytest.raises(PlanError, match="splade, deepct"):
        SparseQuery("content", TOKENS, 10)


def test_knn_body() -> None:
    assert knn_query(VectorQuery(VECTOR, 7)) == {"knn": {"embedding": {"vector": VECTOR.tolist(), "k": 7}}}


def test_sub_queries_need_a_k_and_a_vector() -> None:
    with pytest.raises(PlanError, match=r"\[1, 10000\]"):
        VectorQuery(VECTOR, 0)
    with pytest.raises(PlanError, match=r"\[1, 10000\]"):
        TextQuery("q", 10_001)
    with pytest.raises(InputError):
        VectorQuery(np.zeros(0), 5)


def test_search_body_returns_ids_only() -> None:
    assert search_body(bm25_query("q"), 5) == {"query": bm25_query("q"), "size": 5, "_source": False}


def test_msearch_lines_pair_a_header_with_each_body() -> None:
    bodies = [search_body(bm25_query("a"), 5), search_body(bm25_query("b"), 5)]
    assert msearch_lines("docs", bodies) == [{"index": "docs"}, bodies[0], {"index": "docs"}, bodies[1]]


@pytest.mark.parametrize("neural_sparse", [True, False])
def test_sub_queries_of_a_hybrid_search_are_valid_bodies(neural_sparse: bool) -> None:
    queries = [TextQuery("cats", 100), SparseQuery("splade", TOKENS, 100), VectorQuery(VECTOR, 100)]
    bodies = [sub_query(query, neural_sparse=neural_sparse) for query in queries]
    assert [next(iter(body)) for body in bodies] == ["match", "neural_sparse" if neural_sparse else "bool", "knn"]
    validate("search", hybrid_body(bodies, size=10, pagination_depth=100))
    validate("search_pipeline.put", search_pipeline_body(DEFAULT_HYBRID_FUSION, len(bodies)))
    validate_msearch(msearch_lines("docs", [search_body(body, query.k) for body, query in zip(bodies, queries,
                                                                                              strict=True)]))
