"""Index bodies and search pipelines for OpenSearch: pure functions that return request bodies."""

from neurank.mappings.index import index_body, spec_from_meta
from neurank.mappings.pipelines import pipeline_id, search_pipeline_body

__all__ = ["index_body", "pipeline_id", "search_pipeline_body", "spec_from_meta"]
