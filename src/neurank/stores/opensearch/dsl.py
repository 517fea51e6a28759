"""OpenSearch request bodies for ready sub-queries: one `_search`, an `_msearch`, or a `hybrid` search.

Each sub-query scores as SCORING.md says, on the fields of `neurank.mappings.index`:
- text (BM25): `match` on `content` (§1).
- sparse: `neural_sparse` with raw `query_tokens` when the cluster has the neural-search plugin; otherwise a
  `bool.should` of linear `rank_feature` clauses with boost = query weight. Both build Lucene's
  `BoostQuery(FeatureQuery(linear), w)` per token and sum them: the same score, Σ w_t · decode(S_d,t) (§2, §3).
- vector: `knn` on `embedding` (§4).
- late interaction (k-NN 3.3+): `script_score` over the candidates (an `ids` query, limited to documents that
  have token vectors) with k-NN's `lateInteractionScore` reading the `colbert` field from `_source`, `space_type`
  `innerproduct` set explicitly (its default is `l2`); the score is a monotone transform of MaxSim (§7).
  Without the function, the store scores the candidates itself.
`pagination_depth` of a `hybrid` query needs neural-search 2.19.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neurank.errors import PlanError
from neurank.index_spec import COLBERT_ROLE
from neurank.mappings.index import EMBEDDING_FIELD, TOKEN_COUNT_FIELD
from neurank.retrieval import MAX_SUB_QUERIES, LateInteractionQuery, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores.cluster.dsl import bm25_query, msearch_lines, rank_feature_sum

Query = dict[str, Any]

__all__ = ["bm25_query", "hybrid_body", "knn_query", "late_interaction_query", "msearch_lines", "search_body",
           "sparse_query", "sub_query"]


def sparse_query(query: SparseQuery, *, neural_sparse: bool) -> Query:
    """Score Σ w_t · S_d,t over a `rank_features` field, with or without the neural-search plugin."""
    if neural_sparse and query.tokens:  # an empty neural_sparse matches nothing, as does rank_feature_sum's
        return {"neural_sparse": {query.field: {"query_tokens": {t: float(w) for t, w in query.tokens.items()}}}}
    return rank_feature_sum(query)


def knn_query(query: VectorQuery) -> Query:
    return {"knn": {EMBEDDING_FIELD: {"vector": query.vector.tolist(), "k": query.k}}}


LATE_INTERACTION_SPACE = "innerproduct"
"""The `space_type` sent to `lateInteractionScore`: the dot product of MaxSim (the function's default is l2)."""
LATE_INTERACTION_SCRIPT = (
    f"lateInteractionScore(params.query_vectors, '{COLBERT_ROLE}', params._source, params.space_type)"
)


def late_interaction_query(query: LateInteractionQuery) -> Query:
    """MaxSim of the candidates that have token vectors, on the cluster (SCORING.md §7 gives the transform)."""
    candidates = {"bool": {"filter": [
        {"ids": {"values": list(dict.fromkeys(query.ids))}},
        {"exists": {"field": TOKEN_COUNT_FIELD}},
    ]}}
    script = {
        "source": LATE_INTERACTION_SCRIPT,
        "lang": "painless",
        "params": {"query_vectors": query.vectors.tolist(), "space_type": LATE_INTERACTION_SPACE},
    }
    return {"script_score": {"query": candidates, "script": script}}


def sub_query(query: SubQuery, *, neural_sparse: bool) -> Query:
    """The OpenSearch query of one sub-query."""
    if isinstance(query, TextQuery):
        return bm25_query(query.text, query.fuzzy, ngram=query.ngram)
    if isinstance(query, SparseQuery):
        return sparse_query(query, neural_sparse=neural_sparse)
    if isinstance(query, LateInteractionQuery):
        return late_interaction_query(query)
    return knn_query(query)


def search_body(query: Query, size: int) -> dict[str, Any]:
    """A `_search` body that returns ids and scores only."""
    if size < 0:
        raise PlanError(f"size must be >= 0, got {size}")
    return {"query": query, "size": size, "_source": False}


def hybrid_body(sub_queries: Sequence[Query], size: int, pagination_depth: int) -> dict[str, Any]:
    """A `hybrid` search: each sub-query collects `pagination_depth` hits per shard before fusion.

    The request must name a fusion pipeline (`search_pipeline`), or the scores are never combined.
    """
    if not 1 <= len(sub_queries) <= MAX_SUB_QUERIES:
        raise PlanError(f"a hybrid query has 1 to {MAX_SUB_QUERIES} sub-queries, got {len(sub_queries)}")
    if pagination_depth < 1:
        raise PlanError(f"pagination_depth must be >= 1, got {pagination_depth}")
    return search_body({"hybrid": {"queries": list(sub_queries), "pagination_depth": pagination_depth}}, size)
