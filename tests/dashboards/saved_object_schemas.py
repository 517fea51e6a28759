"""Strict JSON schemas of the saved objects neurank emits, per product, from the products' documented formats.

Top level: Kibana 8.x/9.x export format (`type`, `id`, `attributes`, `references`, `coreMigrationVersion`,
`typeMigrationVersion`; Kibana docs "Export objects API"), OpenSearch Dashboards 2.x/3.x (Kibana 7.10's: a
per-type `migrationVersion`). Attributes: the saved-object mappings of each type (index-pattern / data view,
search, visualization) in both products. Embedded JSON strings: the index pattern's field spec, field formats
and source filters, a search source, and a visualization state with the params of the two vis types used.
Every object schema rejects unknown keys.
"""

from __future__ import annotations

import json
from typing import Any

STRING_ATTRIBUTES = {
    # per object type: the attributes that are JSON text, and the schema of the decoded value
    "index-pattern": ("fields", "fieldFormatMap", "sourceFilters"),
    "visualization": ("visState", "uiStateJSON"),
}


def strict(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required if required is not None
            else list(properties), "additionalProperties": False}


TEXT = {"type": "string", "minLength": 1}
JSON_TEXT = {"type": "string", "minLength": 2}
UUID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"}
SEARCH_SOURCE_META = strict({"searchSourceJSON": JSON_TEXT})
REFERENCE = strict({"name": TEXT, "type": {"enum": ["index-pattern", "search"]}, "id": UUID})

INDEX_PATTERN = {
    "kibana": strict({"title": TEXT, "name": TEXT, "fields": JSON_TEXT, "fieldFormatMap": JSON_TEXT,
                      "sourceFilters": JSON_TEXT, "fieldAttrs": JSON_TEXT, "runtimeFieldMap": JSON_TEXT,
                      "timeFieldName": TEXT, "typeMeta": JSON_TEXT, "allowNoIndex": {"type": "boolean"}},
                     required=["title", "fields", "fieldFormatMap", "sourceFilters"]),
    "opensearch-dashboards": strict({"title": TEXT, "fields": JSON_TEXT, "fieldFormatMap": JSON_TEXT,
                                     "sourceFilters": JSON_TEXT, "timeFieldName": TEXT, "intervalName": TEXT,
                                     "notExpandable": {"type": "boolean"}, "typeMeta": JSON_TEXT},
                                    required=["title", "fields", "fieldFormatMap", "sourceFilters"]),
}
_SEARCH = {"title": TEXT, "description": {"type": "string"},
           "columns": {"type": "array", "items": TEXT, "minItems": 1},
           "sort": {"type": "array", "items": {"type": "array", "prefixItems": [TEXT, {"enum": ["asc", "desc"]}],
                                               "minItems": 2, "maxItems": 2}},
           "kibanaSavedObjectMeta": SEARCH_SOURCE_META}
SEARCH = {
    "kibana": strict({**_SEARCH, "grid": {"type": "object"}, "hideChart": {"type": "boolean"},
                      "isTextBasedQuery": {"type": "boolean"}, "timeRestore": {"type": "boolean"}},
                     required=["title", "columns", "sort", "kibanaSavedObjectMeta"]),
    "opensearch-dashboards": strict({**_SEARCH, "hits": {"type": "integer"}, "version": {"type": "integer"}},
                                    required=["title", "columns", "sort", "kibanaSavedObjectMeta"]),
}
_VISUALIZATION = strict({"title": TEXT, "description": {"type": "string"}, "visState": JSON_TEXT,
                         "uiStateJSON": JSON_TEXT, "version": {"type": "integer"},
                         "savedSearchRefName": TEXT, "kibanaSavedObjectMeta": SEARCH_SOURCE_META},
                        required=["title", "visState", "uiStateJSON", "kibanaSavedObjectMeta"])
ATTRIBUTES = {"index-pattern": INDEX_PATTERN, "search": SEARCH,
              "visualization": {"kibana": _VISUALIZATION, "opensearch-dashboards": _VISUALIZATION}}

_COMMON = {"type": {"enum": list(ATTRIBUTES)}, "id": UUID, "attributes": {"type": "object"},
           "references": {"type": "array", "items": REFERENCE}}
_OPTIONAL = {"version": TEXT, "updated_at": TEXT, "created_at": TEXT}
SEMVER = {"type": "string", "pattern": r"^\d+\.\d+\.\d+$"}
TOP_LEVEL = {
    "kibana": strict({**_COMMON, **_OPTIONAL, "managed": {"type": "boolean"}, "originId": TEXT,
                      "coreMigrationVersion": {"type": "string", "pattern": r"^8\.\d+\.\d+$"},
                      "typeMigrationVersion": {"type": "string", "pattern": r"^8\.\d+\.\d+$"}},
                     required=[*_COMMON, "coreMigrationVersion", "typeMigrationVersion"]),
    "opensearch-dashboards": strict({**_COMMON, **_OPTIONAL, "namespaces": {"type": "array"},
                                     "migrationVersion": {"type": "object", "additionalProperties": {
                                         "type": "string", "pattern": r"^7\.\d+\.\d+$"}, "minProperties": 1,
                                         "maxProperties": 1}},
                                    required=[*_COMMON, "migrationVersion"]),
}

FIELD_TYPES = ["string", "number", "boolean", "date", "ip", "geo_point", "geo_shape", "_source", "unknown",
               "conflict", "attachment", "murmur3", "histogram", "nested", "object"]
FIELD_SPEC = strict({"name": TEXT, "type": {"enum": FIELD_TYPES}, "esTypes": {"type": "array", "items": TEXT,
                                                                              "minItems": 1},
                     "count": {"type": "integer", "minimum": 0}, "scripted": {"const": False},
                     "searchable": {"type": "boolean"}, "aggregatable": {"type": "boolean"},
                     "readFromDocValues": {"type": "boolean"}, "subType": {"type": "object"},
                     "customLabel": TEXT},
                    required=["name", "type", "esTypes", "searchable", "aggregatable"])
FIELD_FORMAT_IDS = ["boolean", "bytes", "color", "date", "date_nanos", "duration", "ip", "number", "percent",
                    "relative_date", "static_lookup", "string", "truncate", "url"]
EMBEDDED = {
    "fields": {"type": "array", "items": FIELD_SPEC, "minItems": 1},
    "fieldFormatMap": {"type": "object", "additionalProperties": strict(
        {"id": {"enum": FIELD_FORMAT_IDS}, "params": {"type": "object"}}, required=["id"])},
    "sourceFilters": {"type": "array", "items": strict({"value": TEXT})},
    "searchSourceJSON": strict({
        "query": strict({"query": {"type": "string"}, "language": {"enum": ["kuery", "lucene"]}}),
        "filter": {"type": "array"}, "indexRefName": TEXT}, required=["query", "filter"]),
    "uiStateJSON": {"type": "object"},
}

AGG = strict({"id": TEXT, "enabled": {"type": "boolean"}, "type": {"enum": ["count", "terms"]},
              "schema": {"enum": ["metric", "segment", "bucket", "split"]}, "params": {"type": "object"}})
TERMS_PARAMS = strict({"field": TEXT, "orderBy": TEXT, "order": {"enum": ["asc", "desc"]},
                       "size": {"type": "integer", "minimum": 1}, "otherBucket": {"type": "boolean"},
                       "otherBucketLabel": TEXT, "missingBucket": {"type": "boolean"}, "missingBucketLabel": TEXT},
                      required=["field", "orderBy", "order", "size"])
VIS_PARAMS = {
    "tagcloud": strict({"scale": {"enum": ["linear", "log", "square root"]},
                        "orientation": {"enum": ["single", "right angled", "multiple"]},
                        "minFontSize": {"type": "integer"}, "maxFontSize": {"type": "integer"},
                        "showLabel": {"type": "boolean"}}),
    "table": strict({"perPage": {"type": "integer", "minimum": 1}, "showPartialRows": {"type": "boolean"},
                     "showMetricsAtAllLevels": {"type": "boolean"}, "showTotal": {"type": "boolean"},
                     "totalFunc": {"enum": ["sum", "avg", "min", "max", "count"]},
                     "percentageCol": {"type": "string"}}),
}
VIS_STATE = strict({"title": TEXT, "type": {"enum": list(VIS_PARAMS)}, "aggs": {"type": "array", "items": AGG},
                    "params": {"type": "object"}})


def problems(ndjson: str, product: str) -> list[str]:
    """Everything in an import file that breaks the schemas above, as `line N: path: message`."""
    from jsonschema import Draft202012Validator

    def check(schema: dict[str, Any], value: Any, where: str) -> list[str]:
        return [f"{where}{error.json_path.removeprefix('$')}: {error.message}"
                for error in Draft202012Validator(schema).iter_errors(value)]

    if not ndjson.endswith("\n"):
        return ["the file does not end with a newline"]
    found: list[str] = []
    for number, line in enumerate(ndjson.splitlines(), start=1):
        obj = json.loads(line)
        where = f"line {number}"
        found += check(TOP_LEVEL[product], obj, where)
        if obj.get("type") not in ATTRIBUTES:
            continue
        found += check(ATTRIBUTES[obj["type"]][product], obj["attributes"], f"{where} attributes")
        if product == "opensearch-dashboards" and list(obj.get("migrationVersion", [obj["type"]])) != [obj["type"]]:
            found.append(f"{where}: migrationVersion names {list(obj['migrationVersion'])}, not {obj['type']}")
        for name, text in embedded(obj).items():
            schema = VIS_STATE if name == "visState" else EMBEDDED[name]
            found += check(schema, json.loads(text), f"{where} {name}")
        if obj["type"] == "visualization":
            state = json.loads(obj["attributes"]["visState"])
            found += check(VIS_PARAMS[state["type"]], state["params"], f"{where} visState.params")
            for agg in state["aggs"]:
                if agg["type"] == "terms":
                    found += check(TERMS_PARAMS, agg["params"], f"{where} visState.aggs[{agg['id']}].params")
    return found


def embedded(obj: dict[str, Any]) -> dict[str, str]:
    """The attributes of `obj` that hold JSON as text, by name."""
    attributes = obj["attributes"]
    texts = {name: attributes[name] for name in STRING_ATTRIBUTES.get(obj["type"], ()) if name in attributes}
    if "kibanaSavedObjectMeta" in attributes:
        texts["searchSourceJSON"] = attributes["kibanaSavedObjectMeta"]["searchSourceJSON"]
    return texts
