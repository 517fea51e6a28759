"""One `GET /` tells OpenSearch from Elasticsearch, and one `GET _license` says what an Elasticsearch cluster may
do: against osmem-server, noida-db, and a local HTTP server that answers as we tell it (and records requests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from neurank.config import Settings
from neurank.errors import ConfigError, StoreError, StoreUnavailableError
from neurank.stores import open_store
from neurank.stores.elasticsearch import Capabilities, ElasticsearchStore
from neurank.stores.opensearch import OpenSearchStore

PASSWORD = "s3cret-Pa55"
ES_ROOT = {"version": {"number": "9.1.4", "build_flavor": "default"}, "tagline": "You Know, for Search"}


class Cluster:
    """A local HTTP server: `answers[path]` is (status, JSON body); every request's path and headers are kept."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cluster.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, body = cluster.answers.get(self.path.split("?")[0], (404, {"error": "no such path"}))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    fake = Cluster()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()


@pytest.mark.integration
def test_osmem_is_opensearch_and_noida_is_elasticsearch(osmem_url: str, noida_url: str) -> None:
    assert isinstance(open_store(Settings(), osmem_url), OpenSearchStore)
    assert isinstance(open_store(Settings(), noida_url), ElasticsearchStore)


def test_the_engine_setting_skips_the_question(cluster: Cluster) -> None:
    store = open_store(Settings(engine="elasticsearch"), cluster.url)
    assert isinstance(store, ElasticsearchStore) and cluster.requests == []


@pytest.mark.parametrize(("license_answer", "expected"), [
    ((200, {"license": {"type": "enterprise", "status": "active"}}), "enterprise"),
    ((200, {"license": {"type": "platinum", "status": "expired"}}), "basic"),
    ((403, {"error": {"type": "security_exception", "reason": "no"}, "status": 403}), "basic"),
    ((404, {"error": "no handler"}), "basic"),
])
def test_the_licence_is_asked_once(cluster: Cluster, license_answer: tuple[int, Any], expected: str) -> None:
    cluster.answers = {"/": (200, ES_ROOT), "/_license": license_answer}
    store = open_store(Settings(opensearch_api_key=PASSWORD), cluster.url)
    assert isinstance(store, ElasticsearchStore)
    assert store.capabilities() == Capabilities((9, 1, 4), expected)  # type: ignore[arg-type]
    assert store.capabilities() is store.capabilities()
    assert [path for path, _ in cluster.requests] == ["/", "/_license"]
    assert all(headers["authorization"] == f"ApiKey {PASSWORD}" for _, headers in cluster.requests)
    license_accept = cluster.requests[1][1]["accept"]
    assert license_accept == "application/vnd.elasticsearch+json; compatible-with=9"


def test_rejected_credentials_name_the_settings_not_the_password(cluster: Cluster) -> None:
    cluster.answers = {"/": (401, {"error": "unauthorized"})}
    with pytest.raises(ConfigError, match="NEURANK_OPENSEARCH_USER") as raised:
        open_store(Settings(opensearch_user="neurank", opensearch_password=PASSWORD), cluster.url)
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(("answer", "error", "message"), [
    ((200, {"hello": "world"}), StoreError, "NEURANK_ENGINE"),
    ((200, {"version": {"number": "1.0", "distribution": "otherdb"}}), StoreError, "otherdb"),
    ((503, {"error": "starting"}), StoreUnavailableError, "retry later"),
])
def test_what_is_not_a_search_engine_is_named(cluster: Cluster, answer: tuple[int, Any], error: type,
                                              message: str) -> None:
    cluster.answers = {"/": answer}
    with pytest.raises(error, match=message):
        open_store(Settings(), cluster.url)


def test_a_cluster_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError, match="cannot reach"):
        open_store(Settings(opensearch_timeout_s=2), "http://127.0.0.1:9")


def test_an_8x_server_is_asked_in_its_own_media_type(cluster: Cluster) -> None:
    """The 9.x client would send `compatible-with=9`, which Elasticsearch 8 refuses (media_type_header_exception)."""
    cluster.answers = {"/": (200, {"version": {"number": "8.17.2"}}), "/_license": (200, {"license": {
        "type": "basic", "status": "active"}})}
    store = open_store(Settings(), cluster.url)
    assert isinstance(store, ElasticsearchStore) and store.capabilities() == Capabilities((8, 17, 2), "basic")
    assert cluster.requests[1][1]["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
