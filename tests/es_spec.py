"""Strict validation of request bodies against the Elasticsearch API spec (../shared/elasticsearch-api-spec).

The same machinery as tests/spec.py (OpenSearch): every object schema that defines `properties` is closed where an
instance is checked against it (`additionalProperties: false`, keys of in-place parts listed), and checks run
cheap keywords first. The spec is one OpenAPI JSON file (the serverless one, see its PROVENANCE.md); `KNOWN_GAPS`
patches what a stateful 8.x / 9.x cluster accepts and that file lacks. Each patch first checks that the gap is
still there, so an updated spec makes the patch fail loudly.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from referencing import Registry
from tests.spec import Checker, Docs, Gap, Mode, Target, build_registry

SPEC_FILE = Path(
    os.environ.get("NEURANK_ELASTICSEARCH_SPEC",
                   Path(__file__).resolve().parents[2] / "shared" / "elasticsearch-api-spec")
) / "elasticsearch-serverless-openapi.json"
URI = SPEC_FILE.as_uri()

_REQUESTS: dict[str, str] = {
    "indices.create": "/paths/~1{index}/put/requestBody/content/application~1json/schema",
    "search": "/components/requestBodies/search/content/application~1json/schema",
    "msearch.header": "/components/schemas/_global.msearch.MultisearchHeader",
    "msearch.body": "/components/schemas/_global.search._types.SearchRequestBody",
    "bulk.action": "/components/schemas/_global.bulk.OperationContainer",
}
REQUESTS = tuple(_REQUESTS)


def _schemas(docs: Docs) -> dict[str, Any]:
    return docs[URI]["components"]["schemas"]  # type: ignore[no-any-return]


def _index_settings(docs: Docs) -> None:
    """Serverless manages shards and replicas; a stateful cluster takes them (and neurank sends them)."""
    properties = _schemas(docs)["indices._types.IndexSettings"]["properties"]
    assert "number_of_shards" not in properties, "spec now has number_of_shards: drop this gap"
    properties["number_of_shards"] = {"oneOf": [{"type": "number"}, {"type": "string"}]}
    properties["number_of_replicas"] = {"oneOf": [{"type": "number"}, {"type": "string"}]}


def _user_defined_values(docs: Docs) -> None:
    """`_meta` and script `params` hold any JSON (Dictionary<string, UserDefinedValue>); the file types each value
    as an object, which rejects the strings, numbers and arrays every example in Elasticsearch's docs has."""
    for where in (_schemas(docs)["_types.Metadata"], _schemas(docs)["_types.Script"]["properties"]["params"]):
        assert where.get("additionalProperties") == {"type": "object"}, "UserDefinedValue changed: review this gap"
        where["additionalProperties"] = True


def _sparse_vector_one_of(docs: Docs) -> None:
    """SparseVectorQuery's `query_vector` | `inference_id` choice is drawn as min/maxProperties 1 on an allOf part,
    which then counts every key of the query (field, prune, ...): no valid query passes. It means one of the two."""
    (_, body) = _schemas(docs)["_types.query_dsl.SparseVectorQuery"]["allOf"]
    choice = body["allOf"][1]
    assert choice.pop("maxProperties") == 1 and choice.pop("minProperties") == 1, "SparseVectorQuery changed"
    choice["oneOf"] = [{"required": ["query_vector"]}, {"required": ["inference_id"]}]


def _field_value_any_of(docs: Docs) -> None:
    """FieldValue is a oneOf with duplicate branches (number twice, string and nullable string): every string is
    valid under two of them, so oneOf rejects it. It means any of them."""
    field_value = _schemas(docs)["_types.FieldValue"]
    field_value["anyOf"] = field_value.pop("oneOf")


KNOWN_GAPS: dict[str, Gap] = {
    "sparse_vector query": Gap("query_vector | inference_id drawn as maxProperties 1 on the whole query",
                               _sparse_vector_one_of),
    "field value": Gap("FieldValue oneOf has duplicate branches", _field_value_any_of),
    "user-defined values": Gap("`_meta` and script params values may be any JSON (UserDefinedValue)",
                               _user_defined_values),
    "shards and replicas": Gap(
        "index.number_of_shards / number_of_replicas are stateful-only settings, left out of the serverless file",
        _index_settings,
    ),
}


def _load_docs() -> Docs:
    if not SPEC_FILE.is_file():
        raise FileNotFoundError(f"Elasticsearch API spec not found at {SPEC_FILE}; set NEURANK_ELASTICSEARCH_SPEC")
    return {URI: json.loads(SPEC_FILE.read_text(encoding="utf-8"))}


def _root(kind: str) -> Target:
    if kind not in _REQUESTS:
        raise KeyError(f"unknown request {kind!r}; choose one of {', '.join(REQUESTS)}")
    return URI, _REQUESTS[kind]


@functools.cache
def _registry(mode: Mode) -> Registry:
    return build_registry(_load_docs(), KNOWN_GAPS, [_root(kind) for kind in REQUESTS], mode)


ELASTICSEARCH = Checker("Elasticsearch", _root, _registry)
