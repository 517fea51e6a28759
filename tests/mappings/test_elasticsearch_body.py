"""The Elasticsearch dialect: index bodies and query bodies valid for the Elasticsearch spec (strict, tests/es_spec.py)
in every variant, including those noida-db cannot run (`rank_vectors`, the `linear` retriever, weighted `rrf`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.es_spec import ELASTICSEARCH

from neurank.index_spec import IndexSpec
from neurank.mappings import EXPANSION_TERMS_FIELD, FieldTypes, elasticsearch_index_body, index_body, spec_from_meta
from neurank.retrieval import Fusion, Fuzzy, LateInteractionQuery, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores.elasticsearch.dsl import fused_body, num_candidates, search_body

VARIANTS = [
    (IndexSpec(language="english"), FieldTypes()),
    (IndexSpec(language="standard", dense_dimension=384, space_type="cosinesimil"), FieldTypes(sparse_vector=False)),
    (IndexSpec(dense_dimension=384, space_type="innerproduct", colbert_dimension=128), FieldTypes(rank_vectors=True)),
    (IndexSpec(language="russian", dense_dimension=8, space_type="l2", colbert_dimension=4),
     FieldTypes(dense_index_options={"type": "int8_hnsw", "m": 32, "ef_construction": 200})),
]
"""Each dialect choice once (validating a mapping against the spec takes about a second)."""


@pytest.mark.parametrize(("spec", "types"), VARIANTS, ids=repr)
def test_every_variant_is_a_valid_create_index_body(spec: IndexSpec, types: FieldTypes) -> None:
    body = elasticsearch_index_body(spec, version="0.1.0", types=types)
    ELASTICSEARCH.validate("indices.create", body)
    assert spec_from_meta(body["mappings"]["_meta"]) == spec


def test_field_types_follow_what_the_cluster_allows() -> None:
    spec = IndexSpec(dense_dimension=8, space_type="innerproduct", colbert_dimension=4)
    allowed = elasticsearch_index_body(spec, version="0", types=FieldTypes(rank_vectors=True))["mappings"]
    older = elasticsearch_index_body(spec, version="0", types=FieldTypes(sparse_vector=False))["mappings"]
    assert allowed["properties"]["splade"] == {"type": "sparse_vector"}
    assert older["properties"]["deepct"] == {"type": "rank_features"}
    assert allowed["properties"]["embedding"] == {"type": "dense_vector", "dims": 8, "index": True,
                                                  "similarity": "max_inner_product"}
    assert allowed["properties"]["colbert"] == {"type": "rank_vectors", "dims": 4}
    assert older["properties"]["colbert"] == {"type": "object", "enabled": False}
    assert allowed["properties"]["metadata"] == {"type": "flattened"}
    assert "copy_to" not in allowed["properties"]["title"]


@pytest.mark.parametrize("body", [
    elasticsearch_index_body(IndexSpec(), version="0", types=FieldTypes()),
    index_body(IndexSpec(), version="0"),
], ids=["elasticsearch", "opensearch"])
def test_both_dialects_map_the_expansion_terms_as_keywords(body: dict[str, Any]) -> None:
    assert body["mappings"]["properties"][EXPANSION_TERMS_FIELD] == {"type": "keyword"}


QUERIES: list[SubQuery] = [
    TextQuery("statins and cholesterol", 10),
    SparseQuery("splade", {"statin": 1.25, "cholesterol": 0.5}, 10),
    VectorQuery(np.array([0.5, -0.25, 1.0], dtype=np.float32), 10),
]
FUZZY = TextQuery("statnis and cholestrol", 10, Fuzzy("2", prefix_length=1, max_expansions=10, transpositions=False))


@pytest.mark.parametrize("sparse_vector", [True, False])
@pytest.mark.parametrize("query", [*QUERIES, FUZZY, LateInteractionQuery(np.eye(2, 4, dtype=np.float32), ("a", "b"),
                                                                          5)], ids=lambda q: type(q).__name__)
def test_every_sub_query_is_a_valid_search_body(query: SubQuery, sparse_vector: bool) -> None:
    body = search_body(query, sparse_vector=sparse_vector, candidates=None)
    ELASTICSEARCH.validate("search", body)
    ELASTICSEARCH.validate_msearch([{"index": "docs"}, body])


def test_sparse_queries_name_the_field_and_weights() -> None:
    sparse = QUERIES[1]
    assert search_body(sparse, sparse_vector=True, candidates=None)["query"] == {"sparse_vector": {
        "field": "splade", "query_vector": {"statin": 1.25, "cholesterol": 0.5}, "prune": False}}
    clauses = search_body(sparse, sparse_vector=False, candidates=None)["query"]["bool"]["should"]
    assert clauses[0] == {"rank_feature": {"field": "splade.statin", "linear": {}, "boost": 1.25}}


@pytest.mark.parametrize(("k", "configured", "expected"), [(10, None, 100), (100, None, 150), (10, 40, 40),
                                                           (50, 20, 50), (9000, None, 10_000)])
def test_num_candidates(k: int, configured: int | None, expected: int) -> None:
    assert num_candidates(k, configured) == expected


@pytest.mark.parametrize(("fusion", "kind"), [
    (Fusion("rrf"), "rrf"), (Fusion("rrf", weights=(0.2, 0.3, 0.5), rank_constant=20), "rrf"),
    (Fusion("min_max"), "linear"), (Fusion("l2", weights=(0.2, 0.3, 0.5)), "linear"),
])
def test_fusing_retrievers_are_valid_and_name_their_window(fusion: Fusion, kind: str) -> None:
    body = fused_body(QUERIES, fusion, 20, sparse_vector=True, candidates=None, kind=kind)  # type: ignore[arg-type]
    ELASTICSEARCH.validate("search", body)
    assert body["retriever"][kind]["rank_window_size"] == 20
    if kind == "linear":
        weights = [part["weight"] for part in body["retriever"]["linear"]["retrievers"]]
        assert weights == list(fusion.weights or (1 / 3,) * 3)
