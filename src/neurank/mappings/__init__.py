"""Index bodies and search pipelines for OpenSearch and Elasticsearch: pure functions that return request bodies."""

from neurank.mappings.elasticsearch import FieldTypes, elasticsearch_index_body
from neurank.mappings.index import EXPANSION_TERMS_FIELD, index_body, spec_from_meta
from neurank.mappings.pipelines import pipeline_id, search_pipeline_body

__all__ = [
    "EXPANSION_TERMS_FIELD",
    "FieldTypes",
    "elasticsearch_index_body",
    "index_body",
    "pipeline_id",
    "search_pipeline_body",
    "spec_from_meta",
]
