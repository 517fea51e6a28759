"""The strict Elasticsearch spec validator (tests/es_spec.py): it can fail, and each local patch is needed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.es_spec import ELASTICSEARCH, KNOWN_GAPS

from neurank.index_spec import IndexSpec
from neurank.mappings import FieldTypes, elasticsearch_index_body
from neurank.retrieval import LateInteractionQuery, SparseQuery, TextQuery
from neurank.stores.cluster.dsl import explain_term_body
from neurank.stores.elasticsearch.dsl import search_body

INDEX_BODY = elasticsearch_index_body(IndexSpec(), version="0.1.0", types=FieldTypes())
GAP_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "user-defined values": ("search", search_body(
        LateInteractionQuery(np.eye(1, 2, dtype=np.float32), ("a",), 1), sparse_vector=True, candidates=None)),
    "sparse_vector query": ("search", search_body(SparseQuery("splade", {"t": 1.0}, 5), sparse_vector=True,
                                                  candidates=None)),
    "field value": ("search", explain_term_body("statin", 1, "doc-1")),
    "shards and replicas": ("indices.create", {"settings": INDEX_BODY["settings"]}),
}


def test_known_gaps_have_a_one_line_reason() -> None:
    for name, gap in KNOWN_GAPS.items():
        print(f"known gap: {name}: {gap.reason}")
        assert gap.reason and "\n" not in gap.reason


def test_every_gap_has_an_example() -> None:
    assert set(GAP_EXAMPLES) == set(KNOWN_GAPS)


@pytest.mark.parametrize("name", sorted(KNOWN_GAPS))
def test_each_patch_is_needed(name: str) -> None:
    kind, body = GAP_EXAMPLES[name]
    assert ELASTICSEARCH.errors(kind, body, mode="unpatched"), f"{name}: the spec accepts this without the patch"
    ELASTICSEARCH.validate(kind, body)


@pytest.mark.parametrize(("kind", "body", "problem"), [
    ("search", {"query": {"match": {"content": {"qeury": "x"}}}, "size": 1}, "qeury"),
    ("search", {**search_body(TextQuery("x", 5), sparse_vector=True, candidates=None), "sise": 5}, "sise"),
    ("search", {"retriever": {"rrf": {"retrievers": [], "rank_windowsize": 10}}}, "rank_windowsize"),
    ("indices.create", {"mappings": {"properties": {"v": {"type": "dense_vector", "dim": 3}}}}, "dim"),
])
def test_a_misspelled_key_is_rejected(kind: str, body: dict[str, Any], problem: str) -> None:
    assert any(problem in found for found in ELASTICSEARCH.errors(kind, body)), ELASTICSEARCH.errors(kind, body)
