"""The elasticsearch-py client for one cluster, speaking the cluster's major version.

elasticsearch-py asks for a compatibility media type on every request: the 9.x client sends
`application/vnd.elasticsearch+json; compatible-with=9` (Accept and Content-Type, and `+x-ndjson` for `_bulk` /
`_msearch`), which an 8.x server refuses with 400 `media_type_header_exception`. A client is made for the server's
major version, known from the `GET /` that detected the engine: where the client is newer than the server, each
request's media types name the server's major instead (Elasticsearch serves requests compatible with its own and
the previous major, so an 8.x client needs no rewrite on a 9.x server). This keeps one client release (8.15+ or
9.x) working with both server majors, instead of pinning the client to the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from elastic_transport import ApiResponse
from elasticsearch import Elasticsearch
from elasticsearch import __versionstr__ as client_version

from neurank.stores.cluster.connection import Connection
from neurank.stores.cluster.connection import client_options as cluster_client_options

CLIENT_MAJOR = int(client_version.partition(".")[0])
_MEDIA_TYPE = re.compile(r"application/(?:vnd\.elasticsearch\+)?(json|x-ndjson)(?:;\s*compatible-with=\d+)?")


def compatible_headers(headers: Mapping[str, str], major: int) -> dict[str, str]:
    """`headers` with the JSON / NDJSON media types of Accept and Content-Type asking for `major`'s API."""
    rewritten = dict(headers)
    for name, value in headers.items():
        if name.lower() in ("accept", "content-type"):
            rewritten[name] = _MEDIA_TYPE.sub(rf"application/vnd.elasticsearch+\1; compatible-with={major}", value)
    return rewritten


class ServerCompatibleClient(Elasticsearch):
    """An Elasticsearch client whose requests ask for the API of `server_major` (when older than the client's)."""

    def __init__(self, *args: Any, server_major: int = CLIENT_MAJOR, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_major = server_major

    def perform_request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                        headers: Mapping[str, str] | None = None, body: Any = None, endpoint_id: str | None = None,
                        path_parts: Mapping[str, Any] | None = None) -> ApiResponse[Any]:
        if self.server_major < CLIENT_MAJOR:
            merged = {**dict(self._headers), **dict(headers or {})}
            headers = compatible_headers(merged, self.server_major)
        return super().perform_request(method, path, params=params, headers=headers, body=body,
                                       endpoint_id=endpoint_id, path_parts=path_parts)

    def options(self, **kwargs: Any) -> ServerCompatibleClient:
        client = super().options(**kwargs)
        client.server_major = self.server_major
        return client


def client_options(conn: Connection) -> dict[str, Any]:
    """elasticsearch-py options: TLS, basic auth or API key, CA bundle, timeout."""
    options = cluster_client_options(conn, timeout="request_timeout", basic_auth="basic_auth")
    if conn.api_key is not None:
        options["api_key"] = conn.api_key
    return options


def new_client(conn: Connection, server_major: int) -> ServerCompatibleClient:
    return ServerCompatibleClient(**client_options(conn), server_major=server_major)
