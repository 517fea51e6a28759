"""neurank: neural ranking (learned sparse, dense, cross-encoder) for OpenSearch, with an embedded store."""

__version__ = "0.1.0"
