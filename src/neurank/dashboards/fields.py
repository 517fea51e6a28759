"""The index pattern's view of an index mapping: which fields Discover lists, and which raw ones it hides.

Dashboards and Kibana read these from `_field_caps`; writing them into the saved object lets an imported index
pattern work before its first refresh. The walk follows what `_field_caps` reports: leaves only (an `object`'s
properties as `parent.child`), nothing of an `object` with `enabled: false`, and the metadata fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from neurank.errors import ConfigError

RAW_TYPES = frozenset({"rank_features", "rank_feature", "sparse_vector", "knn_vector", "dense_vector",
                       "rank_vectors"})
"""Vector and term-weight fields: unreadable in a table (OpenSearch-Dashboards #1712, Kibana #183782)."""
_NUMBER_TYPES = ("long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float", "unsigned_long",
                 "token_count")
_KINDS: dict[str, tuple[str, bool]] = {
    **{number: ("number", True) for number in _NUMBER_TYPES},
    # engine type: (UI type, aggregatable); all are searchable
    "keyword": ("string", True),
    "constant_keyword": ("string", True),
    "wildcard": ("string", True),
    "text": ("string", False),
    "match_only_text": ("string", False),
    # both answer `term` on `field.path`; only Elasticsearch aggregates the root of a `flattened` field
    "flattened": ("string", True),
    "flat_object": ("string", False),
    "boolean": ("boolean", True),
    "date": ("date", True),
    "date_nanos": ("date", True),
}
_META_FIELDS: tuple[tuple[str, str, str, bool, bool], ...] = (
    # name, UI type, engine type, searchable, aggregatable
    ("_id", "string", "_id", True, False),
    ("_index", "string", "_index", True, True),
    ("_score", "number", "_score", False, False),
    ("_source", "_source", "_source", False, False),
)


@dataclass(frozen=True, slots=True)
class IndexField:
    """One entry of an index pattern's `fields`: the shape both products store (Kibana 7.10's field spec)."""

    name: str
    type: str
    """the UI's type: string, number, boolean, date, _source or unknown"""
    es_type: str
    searchable: bool
    aggregatable: bool

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "esTypes": [self.es_type], "count": 0, "scripted": False,
                "searchable": self.searchable, "aggregatable": self.aggregatable,
                "readFromDocValues": self.aggregatable and not self.es_type.startswith("_")}  # metadata: no


def index_fields(properties: Mapping[str, Any]) -> list[IndexField]:
    """The metadata fields and every leaf of `properties`, as `_field_caps` would list them."""
    fields = [IndexField(*meta) for meta in _META_FIELDS]
    fields.extend(_field(name, mapping) for name, mapping in _leaves(properties, ""))
    return fields


def hidden_fields(properties: Mapping[str, Any]) -> list[str]:
    """Top-level fields to keep out of Discover's `_source`: vectors, term weights, unindexed token vectors."""
    return [name for name, mapping in properties.items()
            if mapping.get("type") in RAW_TYPES or mapping.get("enabled") is False]


def _leaves(properties: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, mapping in properties.items():
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"mapping of field {prefix + name!r} is {type(mapping).__name__}, not an object")
        if mapping.get("enabled") is False:
            continue
        if "properties" in mapping:
            yield from _leaves(mapping["properties"], f"{prefix}{name}.")
        else:
            yield prefix + name, mapping


def _field(name: str, mapping: Mapping[str, Any]) -> IndexField:
    es_type = mapping.get("type")
    if not isinstance(es_type, str):
        raise ConfigError(f"mapping of field {name!r} has no type")
    if es_type in _KINDS:
        ui_type, aggregatable = _KINDS[es_type]
        return IndexField(name, ui_type, es_type, True, aggregatable)
    return IndexField(name, "unknown", es_type, es_type in RAW_TYPES, False)
