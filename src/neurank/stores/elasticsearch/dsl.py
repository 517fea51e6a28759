"""Elasticsearch request bodies for ready sub-queries: one `_search`, an `_msearch`, or a fusing retriever.

Each sub-query scores as SCORING.md says, on the fields of `neurank.mappings.elasticsearch`:
- text (BM25): `match` on `content` (§1), as on OpenSearch.
- sparse: the `sparse_vector` query with `query_vector` on a `sparse_vector` field (8.15+), else (an index from
  before 8.11, with `rank_features`) the same `rank_feature` sum as on OpenSearch: Σ w_t · decode(S_d,t) (§2, §3).
  No pruning: pruned tokens would change the scores.
- vector: the top-level `knn` section (`num_candidates` per shard); `dense_vector` similarities score as
  OpenSearch's space types do (§4).
- late interaction on a `rank_vectors` field: `script_score` with `maxSimDotProduct` over the candidates: MaxSim
  itself (§7).
Fusion on the server: the `rrf` retriever (Σ 1/(k + rank), weights from 9.2) and the `linear` retriever (8.18+,
weighted sum of `minmax` / `l2_norm` normalized scores). Every retriever names `rank_window_size`: its default
differs between Elasticsearch (10) and other servers of the same API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from neurank.errors import PlanError
from neurank.index_spec import COLBERT_ROLE
from neurank.mappings.index import EMBEDDING_FIELD, TOKEN_COUNT_FIELD
from neurank.retrieval import (
    MAX_SUB_QUERIES,
    Fusion,
    LateInteractionQuery,
    SparseQuery,
    SubQuery,
    TextQuery,
    VectorQuery,
)
from neurank.stores.cluster.dsl import bm25_query, rank_feature_sum

Body = dict[str, Any]
LINEAR_NORMALIZER: Mapping[str, str] = {"min_max": "minmax", "l2": "l2_norm"}
"""neurank's normalization → the `linear` retriever's normalizer (z_score has none)."""


def num_candidates(k: int, configured: int | None) -> int:
    """Candidates per shard for a top-`k` knn: the configured number (at least k), else max(100, 1.5·k), ≤ 10,000."""
    wanted = max(k, configured) if configured is not None else max(100, (3 * k + 1) // 2)
    return min(10_000, wanted)


def sparse_vector_query(query: SparseQuery, *, sparse_vector: bool) -> Body:
    """Σ w_t · S_d,t: the `sparse_vector` query where the field is one, else the `rank_feature` sum."""
    if not sparse_vector or not query.tokens:
        return rank_feature_sum(query)
    return {"sparse_vector": {"field": query.field,
                              "query_vector": {token: float(weight) for token, weight in query.tokens.items()},
                              "prune": False}}


def knn_section(query: VectorQuery, candidates: int | None) -> Body:
    """The top-level `knn` section (also the `knn` retriever's body): the k nearest of `embedding`."""
    return {"field": EMBEDDING_FIELD, "query_vector": [float(x) for x in query.vector], "k": query.k,
            "num_candidates": num_candidates(query.k, candidates)}


def late_interaction_query(query: LateInteractionQuery) -> Body:
    """MaxSim of the candidates over a `rank_vectors` field (Enterprise, 8.18+)."""
    candidates = {"bool": {"filter": [
        {"ids": {"values": list(dict.fromkeys(query.ids))}},
        {"exists": {"field": TOKEN_COUNT_FIELD}},
    ]}}
    script = {"source": f"maxSimDotProduct(params.query_vector, '{COLBERT_ROLE}')",
              "params": {"query_vector": query.vectors.tolist()}}
    return {"script_score": {"query": candidates, "script": script}}


def search_body(query: SubQuery, *, sparse_vector: bool, candidates: int | None) -> Body:
    """The `_search` body of one sub-query, ids and scores only."""
    if isinstance(query, VectorQuery):
        return {"knn": knn_section(query, candidates), "size": query.k, "_source": False}
    return {"query": _query(query, sparse_vector=sparse_vector), "size": query.k, "_source": False}


def _query(query: SubQuery, *, sparse_vector: bool) -> Body:
    if isinstance(query, TextQuery):
        return bm25_query(query.text, query.fuzzy, ngram=query.ngram)
    if isinstance(query, SparseQuery):
        return sparse_vector_query(query, sparse_vector=sparse_vector)
    if isinstance(query, LateInteractionQuery):
        return late_interaction_query(query)
    raise PlanError(f"a {type(query).__name__} is not a query clause")


def retriever(query: SubQuery, *, sparse_vector: bool, candidates: int | None) -> Body:
    """One sub-query as a retriever: `knn` for a vector, `standard` for the others."""
    if isinstance(query, VectorQuery):
        return {"knn": knn_section(query, candidates)}
    return {"standard": {"query": _query(query, sparse_vector=sparse_vector)}}


def fused_body(queries: Sequence[SubQuery], fusion: Fusion, size: int, *, sparse_vector: bool,
               candidates: int | None, kind: Literal["rrf", "linear"]) -> Body:
    """One `_search` whose retriever fuses the sub-queries: `rrf`, or `linear` over normalized scores. Each
    sub-retriever contributes its top `rank_window_size` (the deepest sub-query's k)."""
    if not 1 <= len(queries) <= MAX_SUB_QUERIES:
        raise PlanError(f"a fused search has 1 to {MAX_SUB_QUERIES} sub-queries, got {len(queries)}")
    fusion.check_sub_queries(len(queries))
    window = max(max(query.k for query in queries), size)
    parts = [retriever(query, sparse_vector=sparse_vector, candidates=candidates) for query in queries]
    weights = fusion.weights
    if kind == "rrf":
        if weights is None:
            rrf: Body = {"retrievers": parts}
        else:
            rrf = {"retrievers": [{"retriever": part, "weight": float(w)} for part, w in zip(parts, weights,
                                                                                            strict=True)]}
        body: Body = {"rrf": {**rrf, "rank_constant": fusion.rank_constant, "rank_window_size": window}}
    else:
        if fusion.technique not in LINEAR_NORMALIZER or fusion.combination != "arithmetic_mean":
            raise PlanError(f"the linear retriever has no {fusion.technique} / {fusion.combination} fusion")
        shares = weights if weights is not None else tuple(1.0 / len(parts) for _ in parts)
        normalizer = LINEAR_NORMALIZER[fusion.technique]
        body = {"linear": {"retrievers": [{"retriever": part, "weight": float(w), "normalizer": normalizer}
                                          for part, w in zip(parts, shares, strict=True)],
                           "rank_window_size": window}}
    return {"retriever": body, "size": size, "_source": False}
