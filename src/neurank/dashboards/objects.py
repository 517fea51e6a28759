"""The saved objects that show a neurank index in Kibana or OpenSearch Dashboards, as an import `.ndjson`.

An index pattern (Kibana: data view) over the index alias, a saved search of the documents as neurank indexed
them, and two aggregation-based visualizations: the top expansion terms (a tag cloud of a `terms` aggregation on
`expansion_terms`) and the documents per model fingerprint (a table of `terms` on each `models.<role>`).
Aggregation-based `visualization` objects rather than Lens: OpenSearch Dashboards has no Lens, and Kibana 8.x and
9.x still import and edit them, so one shape serves both products.

Object ids are UUIDv5 of the index name and the object's role: importing again with `overwrite` replaces the
objects instead of adding copies.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neurank import __version__
from neurank.dashboards.fields import hidden_fields, index_fields
from neurank.dashboards.products import Product, migration_stamp
from neurank.errors import ConfigError
from neurank.index_spec import IndexSpec
from neurank.mappings import EXPANSION_TERMS_FIELD as EXPANSION_TERMS
from neurank.mappings import index_body
from neurank.mappings.elasticsearch import FieldTypes, elasticsearch_index_body

SEARCH_COLUMNS = ("title", EXPANSION_TERMS, "models.*", "content_hash")
"""The saved search's columns; `models.*` stands for every `models.<role>` field of the mapping."""
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
"""The name both products give the reference from a search source to its index pattern."""
TOP_TERMS = 50
_ID_NAMESPACE = uuid.UUID("6f1c52b0-4f0e-5d43-9a51-2d2f4b1e7c10")


@dataclass(frozen=True, slots=True)
class SavedObjects:
    """The objects to import into `product`, and what was left out because the index mapping lacks its field."""

    objects: list[dict[str, Any]]
    product: Product
    left_out: list[str] = field(default_factory=list)

    def ndjson(self) -> str:
        """One compact JSON object per line, as the import API reads them."""
        return "".join(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n" for obj in self.objects)


def object_id(index: str, role: str) -> str:
    """The same id for the same index and role on every export."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{index}\x00{role}"))


def objects_for_spec(index: str, spec: IndexSpec, target: Product) -> SavedObjects:
    """The objects for an index built for `spec`, from the mapping neurank gives such an index on the engine
    behind `target` (Kibana: Elasticsearch's dialect; OpenSearch Dashboards: OpenSearch's)."""
    if target == "kibana":
        body = elasticsearch_index_body(spec, version=__version__, types=FieldTypes())
    else:
        body = index_body(spec, version=__version__)
    return saved_objects(index, body["mappings"]["properties"], target)


def saved_objects(index: str, properties: Mapping[str, Any], target: Product) -> SavedObjects:
    """The objects for the index (alias) `index` whose mapping has these `properties`."""
    if not index.strip():
        raise ConfigError("the index name is empty; give the index (alias) the objects are for with --index")
    fields = {f.name for f in index_fields(properties)}
    pattern_id = object_id(index, "index-pattern")
    models = sorted(name for name in fields if name.startswith("models."))
    columns = [column for name in SEARCH_COLUMNS
               for column in (models if name == "models.*" else [name]) if column in fields]
    objects = [
        _saved(target, "index-pattern", pattern_id, _index_pattern(index, properties, target), []),
        _saved(target, "search", object_id(index, "search"), _search(index, columns), _index_ref(pattern_id)),
    ]
    left_out = []
    if EXPANSION_TERMS in fields:
        objects.append(_visualization(target, index, "top expansion terms", pattern_id, _top_terms()))
    else:
        left_out.append(f"the top expansion terms: the mapping of {index!r} has no {EXPANSION_TERMS!r} field")
    objects.append(_visualization(target, index, "documents per model fingerprint", pattern_id, _per_model(models)))
    return SavedObjects(objects, target, left_out)


def _saved(target: Product, object_type: str, saved_id: str, attributes: dict[str, Any],
           references: list[dict[str, str]]) -> dict[str, Any]:
    return {"type": object_type, "id": saved_id, "attributes": attributes, "references": references,
            **migration_stamp(target, object_type)}


def _index_ref(pattern_id: str) -> list[dict[str, str]]:
    return [{"name": INDEX_REF, "type": "index-pattern", "id": pattern_id}]


def _index_pattern(index: str, properties: Mapping[str, Any], target: Product) -> dict[str, Any]:
    fields = index_fields(properties)
    formats = {"content_hash": {"id": "truncate", "params": {"fieldLength": 12}}}
    attributes = {
        "title": index,
        "fields": _json([f.spec() for f in fields]),
        "fieldFormatMap": _json({name: fmt for name, fmt in formats.items() if name in {f.name for f in fields}}),
        "sourceFilters": _json([{"value": name} for name in hidden_fields(properties)]),
    }
    if target == "kibana":
        attributes["name"] = f"neurank {index}"  # a data view's display name (Kibana 8.x); the title is the pattern
    return attributes


def _search_source() -> str:
    return _json({"query": {"query": "", "language": "kuery"}, "filter": [], "indexRefName": INDEX_REF})


def _search(index: str, columns: list[str]) -> dict[str, Any]:
    return {
        "title": f"{index}: documents as neurank indexed them",
        "description": "Each document's title, top expansion terms, the fingerprints of the models that encoded "
                       "it and its content hash; vectors and term weights are hidden.",
        "columns": columns,
        "sort": [["doc_id", "asc"]],
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
    }


def _visualization(target: Product, index: str, what: str, pattern_id: str,
                   vis: tuple[str, list[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    vis_type, aggs, params = vis
    title = f"{index}: {what}"
    attributes = {
        "title": title,
        "description": "",
        "visState": _json({"title": title, "type": vis_type, "aggs": aggs, "params": params}),
        "uiStateJSON": "{}",
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source()},
    }
    return _saved(target, "visualization", object_id(index, what), attributes, _index_ref(pattern_id))


def _count() -> dict[str, Any]:
    return {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}}


def _terms(agg_id: str, field_name: str, schema: str, size: int) -> dict[str, Any]:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema,
            "params": {"field": field_name, "orderBy": "1", "order": "desc", "size": size, "otherBucket": False,
                       "otherBucketLabel": "Other", "missingBucket": schema == "bucket",
                       "missingBucketLabel": "none"}}


def _top_terms() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    params = {"scale": "linear", "orientation": "single", "minFontSize": 14, "maxFontSize": 64, "showLabel": True}
    return "tagcloud", [_count(), _terms("2", EXPANSION_TERMS, "segment", TOP_TERMS)], params


def _per_model(models: list[str]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """One row per combination of fingerprints; a role a document has no model for counts as `none`."""
    aggs = [_count(), *(_terms(str(i), name, "bucket", 20) for i, name in enumerate(models, start=2))]
    params = {"perPage": 20, "showPartialRows": False, "showMetricsAtAllLevels": False, "showTotal": True,
              "totalFunc": "sum", "percentageCol": ""}
    return "table", aggs, params


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
