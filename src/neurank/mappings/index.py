"""The body of `PUT /<index>`: one index for BM25 text, learned-sparse `rank_features` and a dense `knn_vector`.

Field layout (the local store mirrors it):
- `title`, `text`: text fields, both copied into `content`, the one BM25 field (title + text as one field,
  like BEIR "flat"); all three use the built-in analyzer named by `IndexSpec.language`.
- `splade`, `deepct`: `rank_features` (term → weight > 0), queried with `neural_sparse` or `rank_feature`.
- `embedding`: `knn_vector` HNSW (only when the spec has a dense model).
- `colbert`: late-interaction token vectors as a list of float lists, an `object` with `enabled: false` (kept in
  `_source`, not indexed: what k-NN's `lateInteractionScore` reads), and `colbert_tokens`, their count, an
  `integer` so that a search can keep to documents that have any (only when the spec has `colbert_dimension`).
- `doc_id`, `content_hash`, `source`, `models.<role>`: keywords, for idempotent re-ingest and filters.
- `expansion_terms`: keywords, each document's top terms of the expansion model (`splade`), so that Dashboards /
  Kibana show them and a terms aggregation counts them (neither shows `rank_features`).
- `metadata`: a `flat_object`, so any document metadata fits without growing the mapping, and every leaf
  stays filterable with `term` on `metadata.<path>`.
`dynamic: strict` makes any other top-level field a per-document 400 (a dead letter naming the field) instead of
a silent mapping change.

The default similarity is BM25 with the spec's k1/b, so the cluster scores like the local store
(SCORING.md §1; OpenSearch 2.x serves type `BM25` as LegacyBM25, ×(k1+1): same ranking, scaled scores).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from neurank.errors import ConfigError, StoreError
from neurank.index_spec import COLBERT_ROLE, MODEL_ROLES, SPARSE_FIELDS, IndexSpec

CONTENT_FIELD = "content"
EMBEDDING_FIELD = "embedding"
TOKEN_COUNT_FIELD = f"{COLBERT_ROLE}_tokens"
NGRAM_SUBFIELD = "ngram"
"""`content.ngram`: the text's character n-grams, when the index spec asks for them."""
EXPANSION_TERMS_FIELD = "expansion_terms"
"""A `keyword` array: the document's top terms of the expansion model, highest weight first."""


def index_body(spec: IndexSpec, *, version: str) -> dict[str, Any]:
    """Settings, mappings and `_meta` (neurank `version`, model fingerprints, the spec) for a new index."""
    return {"settings": _settings(spec), "mappings": _mappings(spec, version)}


def spec_from_meta(meta: Mapping[str, Any] | None) -> IndexSpec | None:
    """The IndexSpec stored in an index's `_meta` by `index_body`; None for an index neurank did not create."""
    if not meta or "index_spec" not in meta:
        return None
    try:
        return IndexSpec.from_dict({**meta["index_spec"], "models": dict(meta.get("models", {}))})
    except (TypeError, ConfigError) as exc:
        raise StoreError(
            f"the index was made by neurank {meta.get('version', '?')} with a spec this version cannot read "
            f"({exc}); re-create it with `neurank ingest`"
        ) from exc


def shards_and_similarity(spec: IndexSpec) -> dict[str, Any]:
    """`settings.index` both engines share: shards, replicas, BM25 with the spec's k1/b as the default, and the
    n-gram analyzer when the spec has one."""
    settings: dict[str, Any] = {
        "number_of_shards": spec.shards,
        "number_of_replicas": spec.replicas,
        "similarity": {
            "default": {"type": "BM25", "k1": spec.bm25_k1, "b": spec.bm25_b, "discount_overlaps": True},
        },
    }
    if spec.ngram:
        settings["analysis"] = ngram_analysis(spec)
    return settings


NGRAM_ANALYZER = "neurank_ngram"
_LANGUAGE_FILTERS: Mapping[str, Mapping[str, dict[str, str] | None]] = {
    # the built-in analyzers' chains, filter by filter (None: a built-in filter used by name)
    "english": {"neurank_possessive": {"type": "stemmer", "language": "possessive_english"}, "lowercase": None,
                "neurank_stop": {"type": "stop", "stopwords": "_english_"},
                "neurank_stemmer": {"type": "stemmer", "language": "english"}},
    "russian": {"lowercase": None, "neurank_stop": {"type": "stop", "stopwords": "_russian_"},
                "neurank_stemmer": {"type": "stemmer", "language": "russian"}},
    "standard": {"lowercase": None},
}


def ngram_analysis(spec: IndexSpec) -> dict[str, Any]:
    """The `content.ngram` analyzer: the index language's own chain (standard tokenizer, then the filters of the
    built-in analyzer), then n-grams of each term (min = max = `spec.ngram`, so the default `max_ngram_diff`
    holds). The local store derives the same terms from its `content` postings (`stores/local/ngrams.py`)."""
    chain = _LANGUAGE_FILTERS[spec.language]
    filters: dict[str, dict[str, Any]] = {name: definition for name, definition in chain.items()
                                          if definition is not None}
    filters[NGRAM_ANALYZER] = {"type": "ngram", "min_gram": spec.ngram, "max_gram": spec.ngram}
    analyzer = {"type": "custom", "tokenizer": "standard", "filter": [*chain, NGRAM_ANALYZER]}
    return {"filter": filters, "analyzer": {NGRAM_ANALYZER: analyzer}}


def _settings(spec: IndexSpec) -> dict[str, Any]:
    index = shards_and_similarity(spec)
    if spec.dense_dimension is not None:
        # Both engines read this ef_search from k-NN 3.5 (#3037); before, faiss read the mapping's and lucene used k.
        index |= {"knn": True, "knn.algo_param.ef_search": spec.hnsw_ef_search}
    return {"index": index}


def shared_properties(spec: IndexSpec, *, copy_to: bool = True) -> dict[str, Any]:
    """The fields both engines map alike: text, keywords, the expansion terms. Without `copy_to`, documents
    carry `content` themselves: the same tokens and field length, so the same BM25."""
    text = {"type": "text", "analyzer": spec.language}
    copy = {"copy_to": CONTENT_FIELD} if copy_to else {}
    roles = sorted({*MODEL_ROLES, *spec.models})
    return {
        "doc_id": _keyword(),
        "title": {**text, **copy},
        "text": {**text, **copy},
        CONTENT_FIELD: {**text, "fields": {NGRAM_SUBFIELD: {"type": "text", "analyzer": NGRAM_ANALYZER}}}
        if spec.ngram else text,
        "content_hash": _keyword(),
        "models": {"type": "object", "properties": {role: _keyword() for role in roles}},
        "source": _keyword(),
        EXPANSION_TERMS_FIELD: _keyword(),
    }


def unindexed_token_vectors() -> dict[str, Any]:
    """Token vectors kept in `_source` only (an `object` never indexed), and their count, to filter on."""
    return {COLBERT_ROLE: {"type": "object", "enabled": False}, TOKEN_COUNT_FIELD: {"type": "integer"}}


def strict_mappings(spec: IndexSpec, version: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """`dynamic: strict` mappings with `_meta` (neurank version, model fingerprints, the spec)."""
    return {"dynamic": "strict", "_meta": _meta(spec, version), "properties": dict(properties)}


def _mappings(spec: IndexSpec, version: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        **shared_properties(spec),
        **{field: {"type": "rank_features"} for field in SPARSE_FIELDS},
        "metadata": {"type": "flat_object"},
    }
    if spec.dense_dimension is not None:
        properties[EMBEDDING_FIELD] = _knn_field(spec)
    if spec.colbert_dimension is not None:
        properties |= unindexed_token_vectors()
    return strict_mappings(spec, version, properties)


def _keyword() -> dict[str, str]:
    return {"type": "keyword"}


def _knn_field(spec: IndexSpec) -> dict[str, Any]:
    parameters = {"m": spec.hnsw_m, "ef_construction": spec.hnsw_ef_construction}
    if spec.knn_engine == "faiss":
        parameters["ef_search"] = spec.hnsw_ef_search  # the lucene method refuses this parameter
    return {
        "type": "knn_vector",
        "dimension": spec.dense_dimension,
        "method": {"name": "hnsw", "engine": spec.knn_engine, "space_type": spec.space_type, "parameters": parameters},
    }


def _meta(spec: IndexSpec, version: str) -> dict[str, Any]:
    stored = spec.to_dict()
    return {"version": version, "models": stored.pop("models"), "index_spec": stored}
