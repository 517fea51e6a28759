"""The strict spec validator itself: it can fail, and each local patch of the spec is needed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from tests.spec import KNOWN_GAPS, SpecViolation, errors, validate, validate_bulk, validate_msearch

from neurank.index_spec import IndexSpec
from neurank.mappings import index_body, search_pipeline_body
from neurank.retrieval import Fusion
from neurank.stores.opensearch.dsl import bm25_query, hybrid_body, msearch_lines, search_body

GAP_EXAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "z_score normalization": ("search_pipeline.put", search_pipeline_body(Fusion("z_score"), 2)),
    "min_max bounds": ("search_pipeline.put", {"phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max", "parameters": {
            "lower_bounds": [{"mode": "clip", "min_score": 0.1}, {"mode": "apply"}],
            "upper_bounds": [{"mode": "ignore"}, {"max_score": 0.9}],
        }},
    }}]}),
    "rrf weights": ("search_pipeline.put", search_pipeline_body(Fusion("rrf", weights=(0.4, 0.6)), 2)),
    "similarity by name": ("indices.create", index_body(IndexSpec(), version="0.1.0")),
}


def test_known_gaps_have_a_one_line_reason() -> None:
    for name, gap in KNOWN_GAPS.items():
        print(f"known gap: {name}: {gap.reason}")
        assert gap.reason and "\n" not in gap.reason


@pytest.mark.parametrize("name", sorted(KNOWN_GAPS))
def test_each_patch_is_needed(name: str) -> None:
    kind, body = GAP_EXAMPLES[name]
    assert errors(kind, body, mode="unpatched"), f"{name}: the spec accepts this without the patch"
    validate(kind, body)


def test_every_gap_has_an_example() -> None:
    assert set(GAP_EXAMPLES) == set(KNOWN_GAPS)


def test_the_published_spec_rejects_z_score() -> None:
    kind, body = GAP_EXAMPLES["z_score normalization"]
    assert any("z_score" in problem for problem in errors(kind, body, mode="raw"))


def _renamed(body: dict[str, Any], path: list[Any], old: str, new: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    node = changed
    for step in path:
        node = node[step]
    node[new] = node.pop(old)
    return changed


MISSPELLED = [
    ("indices.create", index_body(IndexSpec(dense_dimension=4), version="0.1.0"),
     ["mappings", "properties", "embedding", "method"], "parameters", "paramters"),
    ("indices.create", index_body(IndexSpec(), version="0.1.0"), ["mappings", "properties", "title"],
     "analyzer", "anlyzer"),
    ("search", search_body(bm25_query("q"), 10), [], "size", "szie"),
    ("search", hybrid_body([bm25_query("q")], 10, 10), ["query", "hybrid"], "pagination_depth", "pagination_dept"),
    ("search_pipeline.put", search_pipeline_body(Fusion("l2"), 2),
     ["phase_results_processors", 0, "normalization-processor"], "combination", "combinaton"),
]


@pytest.mark.parametrize(("kind", "body", "path", "old", "new"), MISSPELLED, ids=[case[-1] for case in MISSPELLED])
def test_strict_mode_rejects_a_misspelled_key(kind: str, body: dict[str, Any], path: list[Any], old: str,
                                              new: str) -> None:
    validate(kind, body)
    wrong = _renamed(body, path, old, new)
    assert not errors(kind, wrong, mode="raw"), "the published spec already catches this: the test proves nothing"
    with pytest.raises(SpecViolation, match=new):
        validate(kind, wrong)


def test_msearch_needs_header_body_pairs() -> None:
    lines = msearch_lines("docs", [search_body(bm25_query("q"), 5)])
    validate_msearch(lines)
    with pytest.raises(SpecViolation, match="pairs"):
        validate_msearch(lines[:1])
    with pytest.raises(SpecViolation, match="indx"):
        validate_msearch([{"indx": "docs"}, lines[1]])


def test_bulk_lines_are_checked_by_operation() -> None:
    lines = [
        {"index": {"_index": "docs", "_id": "1"}}, {"doc_id": "1", "text": "a"},
        {"update": {"_index": "docs", "_id": "2"}}, {"doc": {"text": "b"}, "doc_as_upsert": True},
        {"delete": {"_index": "docs", "_id": "3"}},
    ]
    validate_bulk(lines)
    with pytest.raises(SpecViolation, match="_indx"):
        validate_bulk([{"index": {"_indx": "docs"}}, {"text": "a"}])
    with pytest.raises(SpecViolation, match="no source"):
        validate_bulk([{"create": {"_index": "docs", "_id": "1"}}])
    with pytest.raises(SpecViolation, match="upsrt"):
        validate_bulk([{"update": {"_id": "1"}}, {"doc": {}, "upsrt": {}}])


def test_spec_is_read_as_yaml_1_2() -> None:
    """`no` is a term_vector option, not a boolean (PyYAML's default YAML 1.1 would read it as False)."""
    mapping = {"mappings": {"properties": {"body": {"type": "text", "term_vector": "no"}}}}
    validate("indices.create", mapping)
