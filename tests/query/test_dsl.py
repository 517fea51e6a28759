"""Query DSL: every body is valid for the OpenSearch spec and scores as SCORING.md says."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from tests.spec import validate, validate_msearch

from neurank.errors import InputError, PlanError
from neurank.mappings import search_pipeline_body
from neurank.query.dsl import (
    bm25_query,
    hybrid_body,
    knn_query,
    msearch_lines,
    search_body,
    sparse_query,
    sub_queries,
    term_filter,
)
from neurank.query.plan import RetrievalPlan, Stage

TOKENS = {"cat": 1.25, "feline": 0.5, "##s": 2.0}
FILTERS = [term_filter("source", "corpus.jsonl"), term_filter("metadata.year", [2020, 2021])]
VECTOR = [0.1, -0.2, 0.3]


def _every_query() -> dict[str, dict[str, Any]]:
    queries = {}
    for suffix, filters in (("", ()), ("+filters", FILTERS)):
        queries |= {
            f"bm25{suffix}": bm25_query("cats and dogs", filters=filters),
            f"neural_sparse{suffix}": sparse_query("splade", TOKENS, neural_sparse=True, filters=filters),
            f"rank_feature{suffix}": sparse_query("deepct", TOKENS, neural_sparse=False, filters=filters),
            f"knn{suffix}": knn_query(VECTOR, 50, filters=filters),
        }
    queries["empty sparse"] = sparse_query("splade", {}, neural_sparse=False)
    return queries


QUERIES = _every_query()


@pytest.mark.parametrize("name", QUERIES)
def test_every_query_is_a_valid_search_and_msearch_body(name: str) -> None:
    body = search_body(QUERIES[name], 10, ["title", "text"])
    validate("search", body)
    validate_msearch(msearch_lines("docs", [body, search_body(QUERIES[name], 0)]))


def test_hybrid_of_every_stage_is_valid() -> None:
    queries = [QUERIES[name] for name in ("bm25+filters", "neural_sparse+filters", "knn+filters", "rank_feature")]
    body = hybrid_body(queries, size=10, pagination_depth=100, from_=20, source_fields=["title"])
    validate("search", body)
    assert body["query"]["hybrid"] == {"queries": queries, "pagination_depth": 100}
    assert (body["from"], body["size"], body["_source"]) == (20, 10, ["title"])


def test_hybrid_always_sets_pagination_depth() -> None:
    body = hybrid_body([bm25_query("q")], size=10, pagination_depth=10)
    assert body["query"]["hybrid"]["pagination_depth"] == 10
    assert body["from"] == 0


@pytest.mark.parametrize(("count", "depth", "from_"), [(0, 10, 0), (6, 10, 0), (2, 0, 0), (2, 10, -1)])
def test_hybrid_limits(count: int, depth: int, from_: int) -> None:
    with pytest.raises(PlanError):
        hybrid_body([bm25_query("q")] * count, size=10, pagination_depth=depth, from_=from_)


def test_bm25_matches_the_content_field() -> None:
    assert bm25_query("a b") == {"match": {"content": {"query": "a b"}}}


def test_neural_sparse_sends_raw_tokens_verbatim() -> None:
    query = sparse_query("splade", {"u.s.": 0.75, "cat": 1.0}, neural_sparse=True)
    assert query == {"neural_sparse": {"splade": {"query_tokens": {"u.s.": 0.75, "cat": 1.0}}}}


def test_rank_feature_fallback_is_linear_with_boost_equal_to_the_weight() -> None:
    clauses = sparse_query("splade", TOKENS, neural_sparse=False)["bool"]["should"]
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
    native = _score(sparse_query("splade", TOKENS, neural_sparse=True), document)
    fallback = _score(sparse_query("splade", TOKENS, neural_sparse=False), document)
    assert native == fallback


def test_empty_tokens_match_nothing_in_both_forms() -> None:
    """A bool with no should clause would match every document."""
    assert sparse_query("splade", {}, neural_sparse=True) == {"match_none": {}}
    assert sparse_query("splade", {}, neural_sparse=False) == {"match_none": {}}


def test_rank_feature_cannot_address_a_dotted_token() -> None:
    with pytest.raises(InputError, match=r"contains '\.'"):
        sparse_query("splade", {"u.s.": 1.0}, neural_sparse=False)


@pytest.mark.parametrize("weight", [0.0, -1.0, 64.5, math.nan, math.inf])
@pytest.mark.parametrize("neural_sparse", [True, False])
def test_query_weights_outside_lucene_range_are_refused(weight: float, neural_sparse: bool) -> None:
    with pytest.raises(InputError, match=r"\(0, 64\]"):
        sparse_query("splade", {"cat": weight}, neural_sparse=neural_sparse)


def test_sparse_field_must_be_a_rank_features_field() -> None:
    with pytest.raises(PlanError, match="splade, deepct"):
        sparse_query("content", TOKENS, neural_sparse=True)


def test_filters_wrap_the_query_without_touching_its_should_clauses() -> None:
    """The fallback's should clauses stay in their own bool: beside a filter they would become optional."""
    inner = sparse_query("splade", TOKENS, neural_sparse=False)
    assert sparse_query("splade", TOKENS, neural_sparse=False, filters=FILTERS) == {
        "bool": {"must": [inner], "filter": FILTERS}
    }
    assert bm25_query("q", filters=FILTERS) == {"bool": {"must": [bm25_query("q")], "filter": FILTERS}}


def test_knn_takes_filters_as_its_own_filter() -> None:
    assert knn_query(VECTOR, 7, filters=FILTERS) == {
        "knn": {"embedding": {"vector": VECTOR, "k": 7, "filter": {"bool": {"filter": FILTERS}}}}
    }


def test_knn_needs_a_vector_and_k() -> None:
    with pytest.raises(PlanError):
        knn_query(VECTOR, 0)
    with pytest.raises(InputError):
        knn_query([], 5)


def test_term_filter_forms() -> None:
    assert term_filter("source", "a.jsonl") == {"term": {"source": "a.jsonl"}}
    assert term_filter("metadata.year", (2020, 2021)) == {"terms": {"metadata.year": [2020, 2021]}}


def test_search_body_without_source_fields_returns_ids_only() -> None:
    assert search_body(bm25_query("q"), 5) == {"query": bm25_query("q"), "size": 5, "_source": False}


def test_msearch_lines_pair_a_header_with_each_body() -> None:
    bodies = [search_body(bm25_query("a"), 5), search_body(bm25_query("b"), 5)]
    assert msearch_lines("docs", bodies) == [{"index": "docs"}, bodies[0], {"index": "docs"}, bodies[1]]


def test_sub_queries_follow_the_plan_order() -> None:
    plan = RetrievalPlan(stages=(Stage("dense", k=30), Stage("sparse", field="deepct"), Stage("bm25")))
    queries = sub_queries(plan, query_text="cats", sparse_tokens={"deepct": {"cat": 1.0}}, vector=VECTOR,
                          neural_sparse=False)
    assert queries == [
        knn_query(VECTOR, 30),
        sparse_query("deepct", {"cat": 1.0}, neural_sparse=False),
        bm25_query("cats"),
    ]


@pytest.mark.parametrize("neural_sparse", [True, False])
def test_hybrid_plan_end_to_end_bodies_are_valid(neural_sparse: bool) -> None:
    plan = RetrievalPlan.for_mode("hybrid", k=10, depth=100)
    queries = sub_queries(plan, query_text="cats", sparse_tokens={"splade": TOKENS}, vector=VECTOR,
                          neural_sparse=neural_sparse, filters=FILTERS)
    validate("search", hybrid_body(queries, size=plan.k, pagination_depth=100))
    validate("search_pipeline.put", search_pipeline_body(plan.fusion, len(queries)))
    bodies = [search_body(query, stage.k) for query, stage in zip(queries, plan.stages, strict=True)]
    validate_msearch(msearch_lines("docs", bodies))


def test_sub_queries_need_what_their_stages_use() -> None:
    with pytest.raises(PlanError, match="no query vector"):
        sub_queries(RetrievalPlan((Stage("dense"),)), query_text="q", sparse_tokens=None, vector=None,
                    neural_sparse=True)
    with pytest.raises(PlanError, match="'splade'"):
        sub_queries(RetrievalPlan((Stage("sparse"),)), query_text="q", sparse_tokens={"deepct": TOKENS},
                    vector=None, neural_sparse=True)
