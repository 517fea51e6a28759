"""What the OpenSearch and Elasticsearch stores share: bulk writes, `_source` documents, error sorting, and the
store over index versions behind an alias."""

from neurank.stores.cluster.bulk import DEFAULT_POLICY, BulkDriver, BulkOutcome, BulkPolicy, write
from neurank.stores.cluster.store import ClusterStore

__all__ = ["DEFAULT_POLICY", "BulkDriver", "BulkOutcome", "BulkPolicy", "ClusterStore", "write"]
