"""Stores: where documents are written and searched, behind one `Store` protocol.

`open_store(settings)` picks the implementation from the store URL: `local:PATH` (embedded, SQLite + in-memory
search) or `http(s)://host:port` (an OpenSearch cluster, needs the `opensearch` extra, or an Elasticsearch cluster,
needs the `elasticsearch` extra: one `GET /` tells them apart unless `engine` says; credentials, TLS and timeouts
come from `Settings`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from neurank.config import STORE_URL_FORMS, Settings
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

_ENGINES = {
    "opensearch": ("neurank.stores.opensearch", "OpenSearchStore", "opensearchpy", "opensearch-py", "opensearch"),
    "elasticsearch": ("neurank.stores.elasticsearch", "ElasticsearchStore", "elasticsearch", "elasticsearch",
                      "elasticsearch"),
}
"""engine → (module, class, the client's import name, its distribution, the neurank extra)."""


def _cluster_store(url: str, settings: Settings) -> Store:
    """The store for the engine at `url`: `settings.engine`, else what one `GET /` says. The engine's module is
    imported only now, so the embedded store needs no client library."""
    engine, extra_args = settings.engine, {}
    if engine is None:
        from neurank.stores.cluster.connection import connection
        from neurank.stores.cluster.detect import detect

        server = detect(connection(url.rstrip("/"), settings))
        engine = server.engine
        if engine == "elasticsearch":
            extra_args["server_version"] = server.version
    module_name, class_name, client, distribution, extra = _ENGINES[engine]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] in (client, "elastic_transport"):
            raise MissingExtraError(distribution, extra) from exc
        if exc.name == module_name:
            raise ConfigError(f"cannot open {url}: this installation has no {class_name.removesuffix('Store')} "
                              "store") from exc
        raise
    store: Store = getattr(module, class_name)(url, settings, **extra_args)
    return store


def open_store(settings: Settings, url: str | None = None) -> Store:
    """The store at `url` (default: `settings.store_url()`). A cluster URL costs one `GET /` (unless `engine`
    is set) to pick the engine; nothing else is opened yet: stores connect on first use.

    A store reads its timeouts (and a cluster store its credentials and TLS options) from `settings`,
    never from the environment behind the caller's back.
    """
    url = settings.store_url() if url is None else url
    if url.startswith("local:"):
        path = url.removeprefix("local:")
        if not path:
            raise ConfigError(f"store URL {url!r} names no folder; expected {STORE_URL_FORMS}")
        return LocalStore(Path(path).expanduser(), busy_timeout_s=settings.local_busy_timeout_s)
    if url.startswith(("http://", "https://")):
        return _cluster_store(url, settings)
    raise ConfigError(f"unsupported store URL {url!r}; expected {STORE_URL_FORMS}")
