"""The OpenSearch store (`http(s)://host:port`): store, `_bulk` writes, error mapping, `_source` and query DSL."""

from neurank.stores.opensearch.store import Capabilities, OpenSearchStore, client_options

__all__ = ["Capabilities", "OpenSearchStore", "client_options"]
