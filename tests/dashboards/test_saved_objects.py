"""The import file, line by line, against the format Kibana 8.x/9.x and OpenSearch Dashboards 2.x/3.x import."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.dashboards.index_mappings import FULL_SPEC, properties
from tests.dashboards.saved_object_schemas import problems

from neurank.dashboards import PRODUCTS, objects_for_spec, saved_objects
from neurank.dashboards.fields import hidden_fields, index_fields
from neurank.dashboards.objects import EXPANSION_TERMS, SavedObjects
from neurank.errors import ConfigError
from neurank.index_spec import IndexSpec

INDEX = "scifact"


def by_type(saved: SavedObjects) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in saved.objects:
        found.setdefault(obj["type"], []).append(obj)
    return found


def pattern_fields(saved: SavedObjects) -> dict[str, dict[str, Any]]:
    (pattern,) = by_type(saved)["index-pattern"]
    return {field["name"]: field for field in json.loads(pattern["attributes"]["fields"])}


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_line_has_the_products_import_format(product: str, full_properties: dict[str, Any]) -> None:
    saved = saved_objects(INDEX, full_properties, product)  # type: ignore[arg-type]
    assert problems(saved.ndjson(), product) == []
    assert [obj["type"] for obj in saved.objects] == ["index-pattern", "search", "visualization", "visualization"]
    assert saved.left_out == []


@pytest.mark.parametrize("product", PRODUCTS)
def test_the_schemas_refuse_what_the_products_would(product: str, full_properties: dict[str, Any]) -> None:
    """Each schema check can fail: an unknown key, a wrong stamp, a bad embedded string each make a problem."""
    good = saved_objects(INDEX, full_properties, product).objects  # type: ignore[arg-type]
    other = next(p for p in PRODUCTS if p != product)

    def broken(change: Any) -> str:
        objects = copy.deepcopy(good)
        change(objects)
        return "".join(json.dumps(obj) + "\n" for obj in objects)

    def vis_param(objects: list[dict[str, Any]]) -> None:
        state = json.loads(objects[2]["attributes"]["visState"])
        state["params"]["fontSize"] = 12
        objects[2]["attributes"]["visState"] = json.dumps(state)

    assert problems(broken(lambda o: o[0]["attributes"].update(colour="red")), product)
    assert problems(broken(lambda o: o[1].update(attributes={**o[1]["attributes"], "columns": []})), product)
    assert problems(broken(lambda o: o[0]["attributes"].update(sourceFilters='[{"field": "x"}]')), product)
    assert problems(broken(vis_param), product)
    assert problems(saved_objects(INDEX, full_properties, other).ndjson(), product)  # type: ignore[arg-type]


@pytest.mark.parametrize("product", PRODUCTS)
def test_references_resolve_inside_the_file(product: str, full_properties: dict[str, Any]) -> None:
    saved = saved_objects(INDEX, full_properties, product)  # type: ignore[arg-type]
    ids = {(obj["type"], obj["id"]) for obj in saved.objects}
    for obj in saved.objects[1:]:
        source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (reference,) = obj["references"]
        assert reference["name"] == source["indexRefName"]
        assert (reference["type"], reference["id"]) in ids
    (pattern,) = by_type(saved)["index-pattern"]
    assert pattern["attributes"]["title"] == INDEX


def test_the_search_shows_title_terms_models_and_hash(full_properties: dict[str, Any]) -> None:
    saved = saved_objects(INDEX, full_properties, "kibana")
    fields = pattern_fields(saved)
    (search,) = by_type(saved)["search"]
    columns = search["attributes"]["columns"]
    assert columns == ["title", EXPANSION_TERMS, "models.colbert", "models.deepct", "models.dense", "models.splade",
                       "content_hash"]
    assert set(columns) | {name for name, _ in search["attributes"]["sort"]} <= set(fields)


def test_the_visualizations_aggregate_fields_that_can_be_aggregated(full_properties: dict[str, Any]) -> None:
    saved = saved_objects(INDEX, full_properties, "opensearch-dashboards")
    fields = pattern_fields(saved)
    states = {json.loads(v["attributes"]["visState"])["type"]: json.loads(v["attributes"]["visState"])
              for v in by_type(saved)["visualization"]}
    terms = {kind: [agg["params"]["field"] for agg in state["aggs"] if agg["type"] == "terms"]
             for kind, state in states.items()}
    assert terms == {"tagcloud": [EXPANSION_TERMS],
                     "table": ["models.colbert", "models.deepct", "models.dense", "models.splade"]}
    for name in [*terms["tagcloud"], *terms["table"]]:
        assert fields[name]["aggregatable"] is True and fields[name]["esTypes"] == ["keyword"]
    for state in states.values():
        assert {agg["params"]["orderBy"] for agg in state["aggs"] if agg["type"] == "terms"} == {"1"}
        assert any(agg["id"] == "1" and agg["type"] == "count" for agg in state["aggs"])


def test_raw_vectors_and_term_weights_are_hidden(full_properties: dict[str, Any]) -> None:
    saved = saved_objects(INDEX, full_properties, "kibana")
    (pattern,) = by_type(saved)["index-pattern"]
    hidden = {entry["value"] for entry in json.loads(pattern["attributes"]["sourceFilters"])}
    assert hidden == {"splade", "deepct", "embedding", "colbert"}
    fields = pattern_fields(saved)
    assert "colbert" not in fields  # not indexed: _field_caps does not list it either
    assert fields["colbert_tokens"]["type"] == "number"
    assert fields["embedding"]["type"] == fields["splade"]["type"] == "unknown"
    assert json.loads(pattern["attributes"]["fieldFormatMap"]) == {
        "content_hash": {"id": "truncate", "params": {"fieldLength": 12}}}


def test_elasticsearch_field_types_are_read_too() -> None:
    mapping = {"splade": {"type": "sparse_vector"}, "embedding": {"type": "dense_vector", "dims": 8},
               "colbert": {"type": "rank_vectors", "dims": 4}, "metadata": {"type": "flattened"},
               "models": {"properties": {"dense": {"type": "keyword"}}}, "title": {"type": "text"}}
    fields = {f.name: f for f in index_fields(mapping)}
    assert hidden_fields(mapping) == ["splade", "embedding", "colbert"]
    assert fields["metadata"].aggregatable and fields["metadata"].type == "string"
    assert fields["models.dense"].aggregatable and not fields["title"].aggregatable
    assert {fields[name].type for name in ("splade", "embedding", "colbert")} == {"unknown"}


def test_an_empty_index_name_is_refused(full_properties: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="index name is empty"):
        saved_objects(" ", full_properties, "kibana")


def test_a_mapping_without_a_type_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'models\.dense' has no type"):
        index_fields({"models": {"properties": {"dense": {"index": False}}}})


def test_ids_are_the_same_on_every_export_and_differ_per_index(full_properties: dict[str, Any]) -> None:
    first = saved_objects(INDEX, full_properties, "kibana")
    assert first.ndjson() == saved_objects(INDEX, full_properties, "kibana").ndjson()
    ids = [obj["id"] for obj in first.objects]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {obj["id"] for obj in saved_objects("nfcorpus", full_properties, "kibana").objects}


@pytest.mark.parametrize("product", PRODUCTS)
def test_an_index_without_expansion_terms_leaves_their_view_out(product: str) -> None:
    mapping = {name: value for name, value in properties(IndexSpec()).items() if name != EXPANSION_TERMS}
    saved = saved_objects(INDEX, mapping, product)  # type: ignore[arg-type]
    assert problems(saved.ndjson(), product) == []
    assert [obj["attributes"]["title"] for obj in saved.objects] == [
        INDEX, f"{INDEX}: documents as neurank indexed them", f"{INDEX}: documents per model fingerprint"]
    assert saved.left_out == [f"the top expansion terms: the mapping of {INDEX!r} has no 'expansion_terms' field"]


@pytest.mark.parametrize("product", PRODUCTS)
def test_the_mapping_neurank_makes_gives_a_valid_file(product: str) -> None:
    saved = objects_for_spec(INDEX, FULL_SPEC, product)  # type: ignore[arg-type]
    assert problems(saved.ndjson(), product) == []
    assert saved.product == product


@pytest.mark.parametrize(("target", "engine_types"), [
    ("kibana", {"sparse_vector", "dense_vector", "flattened"}),
    ("opensearch-dashboards", {"rank_features", "knn_vector", "flat_object"}),
])
def test_each_product_sees_the_field_types_of_its_engine(target: str, engine_types: set[str]) -> None:
    saved = objects_for_spec("scifact", FULL_SPEC, target)  # type: ignore[arg-type]
    pattern = next(obj for obj in saved.objects if obj["type"] == "index-pattern")
    fields = {field["name"]: field["esTypes"][0] for field in json.loads(pattern["attributes"]["fields"])}
    assert engine_types <= set(fields.values())
    assert fields[EXPANSION_TERMS] == "keyword" and not saved.left_out
    hidden = {entry["value"] for entry in json.loads(pattern["attributes"]["sourceFilters"])}
    assert {"splade", "deepct", "embedding", "colbert"} <= hidden
