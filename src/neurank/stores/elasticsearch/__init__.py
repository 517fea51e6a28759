"""The Elasticsearch store (`http(s)://host:port`): store, client speaking the server's major, error sorting and
query DSL (bulk writes, documents and index versions are shared with OpenSearch in `neurank.stores.cluster`)."""

from neurank.stores.elasticsearch.store import Capabilities, ElasticsearchStore

__all__ = ["Capabilities", "ElasticsearchStore"]
