"""Stores: where documents are written and searched, behind one `Store` protocol.

`open_store(settings)` picks the implementation from the store URL: `local:PATH` (embedded, SQLite + in-memory
search) or `http(s)://host:port` (an OpenSearch cluster, needs the `opensearch` extra; credentials, TLS and
timeouts come from `Settings`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from neurank.config import Settings
from neurank.errors import ConfigError, MissingExtraError
from neurank.stores.analysis import Analyzer, get_analyzer
from neurank.stores.local import LocalStore
from neurank.stores.protocol import (
    EncodedDocument,
    FusingStore,
    Store,
    StoredDocument,
    VersionedStore,
    WriteFailure,
    WriteResult,
)

__all__ = [
    "Analyzer",
    "EncodedDocument",
    "FusingStore",
    "LocalStore",
    "Store",
    "StoredDocument",
    "VersionedStore",
    "WriteFailure",
    "WriteResult",
    "get_analyzer",
    "open_store",
]

_ACCEPTED = "local:PATH (a folder for the embedded store) or http(s)://host:port (an OpenSearch cluster)"


def _opensearch_store(url: str, settings: Settings) -> Store:
    """Import the OpenSearch store only when asked for, so the embedded store needs no client library."""
    try:
        module = importlib.import_module("neurank.stores.opensearch")
    except ModuleNotFoundError as exc:
        if exc.name == "opensearchpy":
            raise MissingExtraError("opensearch-py", "opensearch") from exc
        if exc.name == "neurank.stores.opensearch":
            raise ConfigError(f"cannot open {url}: this installation has no OpenSearch store") from exc
        raise
    return module.OpenSearchStore(url, settings)


def open_store(settings: Settings, url: str | None = None) -> Store:
    """The store at `url` (default: `settings.store_url()`). Nothing is opened yet: stores connect on first use.

    A store reads its timeouts (and an OpenSearch store its credentials and TLS options) from `settings`,
    never from the environment behind the caller's back.
    """
    url = settings.store_url() if url is None else url
    if url.startswith("local:"):
        path = url.removeprefix("local:")
        if not path:
            raise ConfigError(f"store URL {url!r} names no folder; expected {_ACCEPTED}")
        return LocalStore(Path(path).expanduser(), busy_timeout_s=settings.local_busy_timeout_s)
    if url.startswith(("http://", "https://")):
        return _opensearch_store(url, settings)
    raise ConfigError(f"unsupported store URL {url!r}; expected {_ACCEPTED}")
