"""`index_body`: valid for the OpenSearch spec in every variant, and carrying the spec's analyzer, BM25 and HNSW."""

from __future__ import annotations

import itertools

import pytest
from tests.spec import validate

from neurank.errors import ConfigError, StoreError
from neurank.index_spec import IndexSpec
from neurank.mappings import index_body, spec_from_meta

VARIANTS = [
    IndexSpec(language=language, dense_dimension=dimension, knn_engine=engine, space_type=space)
    for language, dimension, engine, space in itertools.product(
        ("english", "russian", "standard"), (None, 384), ("lucene", "faiss"), ("cosinesimil", "innerproduct", "l2")
    )
]


@pytest.mark.parametrize("spec", VARIANTS, ids=repr)
def test_every_variant_is_a_valid_create_index_body(spec: IndexSpec) -> None:
    validate("indices.create", index_body(spec, version="0.1.0"))


@pytest.mark.parametrize("language", ["english", "russian"])
def test_text_fields_share_the_language_analyzer_and_feed_content(language: str) -> None:
    properties = index_body(IndexSpec(language=language), version="0.1.0")["mappings"]["properties"]
    for name in ("title", "text"):
        assert properties[name] == {"type": "text", "analyzer": language, "copy_to": "content"}
    assert properties["content"] == {"type": "text", "analyzer": language}


def test_default_similarity_is_bm25_with_the_spec_parameters() -> None:
    settings = index_body(IndexSpec(bm25_k1=1.2, bm25_b=0.75), version="0.1.0")["settings"]["index"]
    assert settings["similarity"] == {"default": {"type": "BM25", "k1": 1.2, "b": 0.75, "discount_overlaps": True}}


def test_settings_keys_are_exact() -> None:
    """The spec accepts any index setting (custom settings), so a misspelled one must be caught here."""
    spec = IndexSpec(dense_dimension=8, shards=2, replicas=1, hnsw_ef_search=99)
    settings = index_body(spec, version="0.1.0")["settings"]
    assert settings == {"index": {
        "number_of_shards": 2, "number_of_replicas": 1, "knn": True, "knn.algo_param.ef_search": 99,
        "similarity": {"default": {"type": "BM25", "k1": 0.9, "b": 0.4, "discount_overlaps": True}},
    }}


def test_without_a_dense_model_there_is_no_knn_field_or_setting() -> None:
    body = index_body(IndexSpec(), version="0.1.0")
    assert "embedding" not in body["mappings"]["properties"]
    assert not {"knn", "knn.algo_param.ef_search"} & set(body["settings"]["index"])


@pytest.mark.parametrize(
    ("engine", "method_ef_search"),
    [("lucene", {}), ("faiss", {"ef_search": 300})],  # only faiss's HNSW method takes ef_search
)
def test_knn_field_is_hnsw_with_the_spec_parameters(engine: str, method_ef_search: dict[str, int]) -> None:
    spec = IndexSpec(dense_dimension=384, knn_engine=engine, space_type="innerproduct", hnsw_m=24,
                     hnsw_ef_construction=200, hnsw_ef_search=300)
    field = index_body(spec, version="0.1.0")["mappings"]["properties"]["embedding"]
    assert field == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {"name": "hnsw", "engine": engine, "space_type": "innerproduct",
                   "parameters": {"m": 24, "ef_construction": 200, **method_ef_search}},
    }


def test_sparse_bookkeeping_and_metadata_fields() -> None:
    mappings = index_body(IndexSpec(models={"splade": "f1", "reranker": "f2"}), version="0.1.0")["mappings"]
    properties = mappings["properties"]
    assert mappings["dynamic"] == "strict"
    assert properties["splade"] == properties["deepct"] == {"type": "rank_features"}
    for name in ("doc_id", "content_hash", "source"):
        assert properties[name] == {"type": "keyword"}
    assert properties["metadata"] == {"type": "flat_object"}
    assert set(properties["models"]["properties"]) == {"splade", "deepct", "dense", "colbert", "reranker"}
    assert "colbert" not in properties and "colbert_tokens" not in properties


def test_token_vectors_are_kept_in_source_unindexed_with_their_count_indexed() -> None:
    body = index_body(IndexSpec(colbert_dimension=128, token_compression="binary"), version="0.1.0")
    properties = body["mappings"]["properties"]
    assert properties["colbert"] == {"type": "object", "enabled": False}
    assert properties["colbert_tokens"] == {"type": "integer"}
    assert "knn" not in body["settings"]["index"]
    validate("indices.create", body)
    assert spec_from_meta(body["mappings"]["_meta"]) == IndexSpec(colbert_dimension=128, token_compression="binary")


def test_meta_records_version_and_models_and_round_trips() -> None:
    spec = IndexSpec(language="russian", dense_dimension=768, space_type="l2", models={"dense": "abc"},
                     knn_engine="faiss", bm25_k1=1.2, bm25_b=0.75)
    meta = index_body(spec, version="1.2.3")["mappings"]["_meta"]
    assert meta["version"] == "1.2.3"
    assert meta["models"] == {"dense": "abc"}
    assert spec_from_meta(meta) == spec


def test_meta_of_foreign_or_unreadable_indices() -> None:
    assert spec_from_meta(None) is None
    assert spec_from_meta({"owner": "someone else"}) is None
    with pytest.raises(StoreError, match="re-create"):
        spec_from_meta({"version": "9.0", "index_spec": {"future_field": 1}})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"language": "klingon"}, "english, russian, standard"),
        ({"dense_dimension": 0}, "dimension"),
        ({"bm25_b": 1.5}, "BM25"),
        ({"knn_engine": "nmslib"}, "lucene, faiss"),
    ],
)
def test_bad_specs_are_config_errors(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IndexSpec(**fields)  # type: ignore[arg-type]
