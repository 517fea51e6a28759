"""Request bodies both engines read alike: term filters, the per-term BM25 explanation, `_msearch` lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neurank.errors import InputError
from neurank.mappings.index import CONTENT_FIELD, NGRAM_SUBFIELD
from neurank.retrieval import Fuzzy, SparseQuery

Body = dict[str, Any]


def bm25_query(text: str, fuzzy: Fuzzy | None = None, *, ngram: bool = False) -> Body:
    """BM25 on the one text field (SCORING.md §1); with `fuzzy`, every option is sent, so that the engine's defaults
    never decide (`fuzzy_rewrite` stays unset: the blended top terms of `FuzzyQuery`, docs/FUZZY.md); with `ngram`,
    a `bool.should` of that and a `match` on the `content.ngram` subfield."""
    match: Body = {"query": text}
    if fuzzy is not None:
        match |= {"fuzziness": fuzzy.fuzziness, "prefix_length": fuzzy.prefix_length,
                  "max_expansions": fuzzy.max_expansions, "fuzzy_transpositions": fuzzy.transpositions}
    words = {"match": {CONTENT_FIELD: match}}
    if not ngram:
        return words
    return {"bool": {"should": [words, {"match": {f"{CONTENT_FIELD}.{NGRAM_SUBFIELD}": {"query": text}}}]}}


def rank_feature_sum(query: SparseQuery) -> Body:
    """Σ w_t · S_d,t over a `rank_features` field as a `bool.should` of linear `rank_feature` clauses with
    boost = query weight: Lucene's `BoostQuery(FeatureQuery(linear), w)` per token, summed (SCORING.md §2, §3)."""
    if not query.tokens:
        return {"match_none": {}}  # an empty bool.should would match every document
    for token in query.tokens:
        if "." in token:
            raise InputError(
                f"query token {token!r} contains '.', which rank_feature cannot address (it splits the field "
                "path at the last '.'); escape tokens when encoding", field=query.field,
            )
    return {"bool": {"should": [
        {"rank_feature": {"field": f"{query.field}.{token}", "linear": {}, "boost": float(weight)}}
        for token, weight in query.tokens.items()
    ]}}


def term_filter(field: str, value: str) -> Body:
    return {"term": {field: {"value": value}}}


def explain_term_body(term: str, count: int, doc_id: str) -> Body:
    """One analyzed query term's BM25 contribution to one document: a `term` query boosted by the term's count
    in the query (what `match` sums for a repeated term), restricted to the document by its `doc_id`."""
    query = {"bool": {
        "must": [{"term": {CONTENT_FIELD: {"value": term, "boost": float(count)}}}],
        "filter": [term_filter("doc_id", doc_id)],
    }}
    return {"query": query, "size": 1, "_source": False}


def count_term_body(term: str) -> Body:
    """How many documents hold one analyzed `content` term: no hits, an exact total."""
    return {"query": {"term": {CONTENT_FIELD: {"value": term}}}, "size": 0, "track_total_hits": True}


def msearch_lines(index: str, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`_msearch` lines (header, body, ...) running each body on `index`."""
    return [line for body in bodies for line in ({"index": index}, dict(body))]
