"""The body of `PUT /<index>` in the Elasticsearch dialect: the fields of `neurank.mappings.index`, typed for ES.

- `splade`, `deepct`: `sparse_vector` on clusters that can query it with raw weights (8.15+; the field exists from
  8.11, queried only through an inference model before 8.15), else `rank_features`; both store the same 9-bit
  quantized weights (SCORING.md §2) and score the same linear sum.
- `embedding`: `dense_vector` with the model's `dims` and the similarity that scores like OpenSearch's space type
  (cosinesimil → cosine, l2 → l2_norm, innerproduct → max_inner_product: the same score translations, ENGINES.md);
  `index_options` as configured, else the engine's default (int8_hnsw from 8.14, bbq_hnsw for ≥ 384 dims on 9.1).
- `colbert`: `rank_vectors` where version (8.18+) and licence allow it; else an unindexed `object`, as on
  OpenSearch, and neurank scores MaxSim itself.
- `metadata`: `flattened` (ES's counterpart of OpenSearch's `flat_object`).
- `content`: written by the store (title, a line break, text) instead of `copy_to`: the same tokens and field
  length, so the same BM25, on every server of the API (noida-db has no `copy_to`); `_source` holds it twice.
BM25 k1/b go in the index's default similarity, as on OpenSearch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neurank.index_spec import COLBERT_ROLE, SPARSE_FIELDS, IndexSpec, SpaceType
from neurank.mappings.index import (
    EMBEDDING_FIELD,
    TOKEN_COUNT_FIELD,
    shards_and_similarity,
    shared_properties,
    strict_mappings,
    unindexed_token_vectors,
)

SIMILARITY: Mapping[SpaceType, str] = {"cosinesimil": "cosine", "l2": "l2_norm", "innerproduct": "max_inner_product"}
"""OpenSearch space type → the `dense_vector` similarity with the same score (ENGINES.md, SCORING.md §4)."""


@dataclass(frozen=True, slots=True)
class FieldTypes:
    """What the cluster's version and licence allow a new index to use."""

    sparse_vector: bool = True
    """`sparse_vector` (8.15+); else `rank_features`."""
    rank_vectors: bool = False
    """`rank_vectors` for token vectors (8.18+, Enterprise); else an unindexed object."""
    dense_index_options: Mapping[str, Any] | None = field(default=None)
    """`dense_vector.index_options` (e.g. `{"type": "hnsw", "m": 16}`); None: the engine's default."""


def elasticsearch_index_body(spec: IndexSpec, *, version: str, types: FieldTypes) -> dict[str, Any]:
    """Settings, mappings and `_meta` (neurank `version`, model fingerprints, the spec) for a new ES index."""
    sparse = "sparse_vector" if types.sparse_vector else "rank_features"
    properties: dict[str, Any] = {
        **shared_properties(spec, copy_to=False),
        **{name: {"type": sparse} for name in SPARSE_FIELDS},
        "metadata": {"type": "flattened"},
    }
    if spec.dense_dimension is not None:
        dense: dict[str, Any] = {"type": "dense_vector", "dims": spec.dense_dimension, "index": True,
                                 "similarity": SIMILARITY[spec.space_type]}
        if types.dense_index_options is not None:
            dense["index_options"] = dict(types.dense_index_options)
        properties[EMBEDDING_FIELD] = dense
    if spec.colbert_dimension is not None:
        if types.rank_vectors:
            properties[COLBERT_ROLE] = {"type": "rank_vectors", "dims": spec.colbert_dimension}
            properties[TOKEN_COUNT_FIELD] = {"type": "integer"}
        else:
            properties |= unindexed_token_vectors()
    return {"settings": {"index": shards_and_similarity(spec)}, "mappings": strict_mappings(spec, version, properties)}
