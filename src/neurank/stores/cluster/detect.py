"""Which engine answers at a URL, and its version: one `GET /`, before any client library is chosen.

The request goes through the standard library with the same connection settings as the stores (TLS, CA bundle,
basic auth or API key, timeout), so that detecting needs neither client, and the answer picks the one to import.
OpenSearch says `version.distribution: opensearch`; Elasticsearch has no distribution (or `elasticsearch`).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from neurank.config import Engine
from neurank.errors import ConfigError, StoreError, StoreUnavailableError
from neurank.stores.cluster.connection import Connection
from neurank.stores.cluster.errors import CREDENTIALS


@dataclass(frozen=True, slots=True)
class Server:
    """What `GET /` says: the engine and its version number (`8.15.3`)."""

    engine: Engine
    version: str


def auth_headers(conn: Connection) -> dict[str, str]:
    if conn.basic_auth is not None:
        token = base64.b64encode(":".join(conn.basic_auth).encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if conn.api_key is not None:
        return {"Authorization": f"ApiKey {conn.api_key}"}
    return {}


def _tls(conn: Connection) -> ssl.SSLContext | None:
    if not conn.url.startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=conn.ca_certs)
    if not conn.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def get_json(conn: Connection, path: str) -> tuple[int, Any]:
    """(status, decoded body) of `GET path`; an error status is returned, not raised; no answer raises
    StoreUnavailableError, a TLS failure ConfigError."""
    request = urllib.request.Request(conn.url + path, headers={"Accept": "application/json", **auth_headers(conn)})
    try:
        with urllib.request.urlopen(request, timeout=conn.timeout_s, context=_tls(conn)) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise ConfigError(
                f"TLS handshake with {conn.url} failed ({exc.reason}): set NEURANK_OPENSEARCH_CA_CERTS to the "
                "cluster's CA bundle (or NEURANK_OPENSEARCH_VERIFY_CERTS=false for a test cluster)"
            ) from exc
        raise StoreUnavailableError(f"cannot reach {conn.url} ({exc.reason}); retry later") from exc
    except TimeoutError as exc:
        raise StoreUnavailableError(f"{conn.url} did not answer in {conn.timeout_s:g} s; retry later") from exc
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")[:200]


def detect(conn: Connection) -> Server:
    """The engine and version at `conn.url`, from `GET /`."""
    status, body = get_json(conn, "/")
    if status == 401:
        raise ConfigError(f"{conn.url} rejected the credentials (401): check {CREDENTIALS}")
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("version"), dict):
        if status >= 500 or status == 429:
            raise StoreUnavailableError(f"{conn.url} answered {status} to GET /; retry later")
        raise StoreError(f"{conn.url} does not look like OpenSearch or Elasticsearch (GET / answered {status}: "
                         f"{str(body)[:200]}); set NEURANK_ENGINE=opensearch|elasticsearch if it is one")
    version = body["version"]
    distribution = version.get("distribution", "elasticsearch")
    if distribution not in ("opensearch", "elasticsearch"):
        raise StoreError(f"{conn.url} runs {distribution!r}, neither OpenSearch nor Elasticsearch")
    engine: Engine = "opensearch" if distribution == "opensearch" else "elasticsearch"
    return Server(engine, str(version.get("number", "")))
