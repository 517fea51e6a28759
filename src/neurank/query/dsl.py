"""OpenSearch query bodies: one sub-query per retrieval stage, then a `hybrid` search or an `_msearch`.

Each stage scores as SCORING.md says, on the fields of `neurank.mappings.index`:
- bm25: `match` on `content` (§1).
- sparse: `neural_sparse` with raw `query_tokens` when the cluster has the neural-search plugin; otherwise a
  `bool.should` of linear `rank_feature` clauses with boost = query weight. Both build Lucene's
  `BoostQuery(FeatureQuery(linear), w)` per token and sum them: the same score, Σ w_t · decode(S_d,t) (§2, §3).
- dense: `knn` on `embedding` (§4).
Filters (term/terms) go into every sub-query, so the hybrid path and the `_msearch` path see the same documents:
a `bool.filter` beside the sub-query (`knn` takes them as its own `filter`, which keeps k hits). That is what
the hybrid query's own `filter` does, which needs neural-search 3.0; `pagination_depth` needs 2.19.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from neurank.errors import InputError, PlanError
from neurank.mappings.index import CONTENT_FIELD, EMBEDDING_FIELD
from neurank.query.plan import MAX_SUB_QUERIES, RetrievalPlan, Stage
from neurank.stores.protocol import SPARSE_FIELDS

Query = dict[str, Any]
FilterValue = str | int | float | bool
MAX_TOKEN_WEIGHT = 64.0
"""Lucene `FeatureField.newLinearQuery` refuses query weights outside (0, 64]; neural_sparse uses it."""


def term_filter(field: str, value: FilterValue | Sequence[FilterValue]) -> Query:
    """`term` for one value, `terms` for several (any of them matches)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return {"terms": {field: list(value)}}
    return {"term": {field: value}}


def bm25_query(text: str, *, filters: Sequence[Query] = ()) -> Query:
    return _filtered({"match": {CONTENT_FIELD: {"query": text}}}, filters)


def sparse_query(
    field: str, tokens: Mapping[str, float], *, neural_sparse: bool, filters: Sequence[Query] = ()
) -> Query:
    """Score Σ w_t · S_d,t over a `rank_features` field, with or without the neural-search plugin."""
    if field not in SPARSE_FIELDS:
        raise PlanError(f"{field!r} is not a sparse field; choose one of {', '.join(SPARSE_FIELDS)}")
    for token, weight in tokens.items():
        if not (math.isfinite(weight) and 0 < weight <= MAX_TOKEN_WEIGHT):
            raise InputError(f"query token {token!r} has weight {weight}; weights must be in (0, 64]", field=field)
        if not neural_sparse and "." in token:
            raise InputError(
                f"query token {token!r} contains '.', which rank_feature cannot address (it splits the field "
                "path at the last '.'); escape tokens when encoding", field=field,
            )
    if not tokens:
        # An empty bool.should would match every document; an empty neural_sparse matches none.
        return {"match_none": {}}
    if neural_sparse:
        query: Query = {"neural_sparse": {field: {"query_tokens": {t: float(w) for t, w in tokens.items()}}}}
    else:
        query = {"bool": {"should": [
            {"rank_feature": {"field": f"{field}.{token}", "linear": {}, "boost": float(weight)}}
            for token, weight in tokens.items()
        ]}}
    return _filtered(query, filters)


def knn_query(vector: Sequence[float], k: int, *, filters: Sequence[Query] = ()) -> Query:
    if k < 1:
        raise PlanError(f"knn needs k >= 1, got {k}")
    if len(vector) == 0:
        raise InputError("empty query vector", field=EMBEDDING_FIELD)
    knn: dict[str, Any] = {"vector": [float(x) for x in vector], "k": k}
    if filters:
        knn["filter"] = {"bool": {"filter": list(filters)}}
    return {"knn": {EMBEDDING_FIELD: knn}}


def sub_queries(
    plan: RetrievalPlan,
    *,
    query_text: str,
    sparse_tokens: Mapping[str, Mapping[str, float]] | None,
    vector: Sequence[float] | None,
    neural_sparse: bool,
    filters: Sequence[Query] = (),
) -> list[Query]:
    """One query per stage, in the plan's order (fusion weights follow it). `sparse_tokens`: field → tokens."""
    return [_stage_query(stage, query_text, sparse_tokens or {}, vector, neural_sparse, filters)
            for stage in plan.stages]


def _stage_query(
    stage: Stage,
    query_text: str,
    sparse_tokens: Mapping[str, Mapping[str, float]],
    vector: Sequence[float] | None,
    neural_sparse: bool,
    filters: Sequence[Query],
) -> Query:
    if stage.name == "bm25":
        return bm25_query(query_text, filters=filters)
    if stage.name == "sparse":
        if stage.field not in sparse_tokens:
            raise PlanError(f"the plan has a sparse stage on {stage.field!r} but no query tokens for it")
        return sparse_query(stage.field, sparse_tokens[stage.field], neural_sparse=neural_sparse, filters=filters)
    if vector is None:
        raise PlanError("the plan has a dense stage but no query vector")
    return knn_query(vector, stage.k, filters=filters)


def search_body(query: Query, size: int, source_fields: Sequence[str] = ()) -> dict[str, Any]:
    """A `_search` body; without `source_fields` only ids and scores come back."""
    if size < 0:
        raise PlanError(f"size must be >= 0, got {size}")
    return {"query": query, "size": size, "_source": list(source_fields) if source_fields else False}


def hybrid_body(
    sub_queries: Sequence[Query],
    size: int,
    pagination_depth: int,
    from_: int = 0,
    source_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """A `hybrid` search: each sub-query collects `pagination_depth` hits per shard; `from_` pages the fused list.

    The request must name a fusion pipeline (`search_pipeline`), or the scores are never combined.
    """
    if not 1 <= len(sub_queries) <= MAX_SUB_QUERIES:
        raise PlanError(f"a hybrid query has 1 to {MAX_SUB_QUERIES} sub-queries, got {len(sub_queries)}")
    if pagination_depth < 1:
        raise PlanError(f"pagination_depth must be >= 1, got {pagination_depth}")
    if from_ < 0:
        raise PlanError(f"from must be >= 0, got {from_}")
    hybrid = {"hybrid": {"queries": list(sub_queries), "pagination_depth": pagination_depth}}
    return {**search_body(hybrid, size, source_fields), "from": from_}


def msearch_lines(index: str, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`_msearch` lines (header, body, ...) running each body on `index`, for clusters without neural-search."""
    return [line for body in bodies for line in ({"index": index}, dict(body))]


def _filtered(query: Query, filters: Sequence[Query]) -> Query:
    """`query` restricted to documents matching every filter; the score stays the query's own."""
    if not filters:
        return query
    return {"bool": {"must": [query], "filter": list(filters)}}
