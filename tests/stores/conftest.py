"""Fixtures for the OpenSearch store: a real osmem-server (one per session, a clone per test) and a recorder that
checks every request body the store sends against the OpenSearch API spec (tests/spec.py, strict)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opensearchpy import OpenSearch
from tests.es_spec import ELASTICSEARCH
from tests.spec import validate, validate_bulk, validate_msearch

from neurank.config import Settings
from neurank.stores.cluster import BulkPolicy
from neurank.stores.cluster.connection import Connection
from neurank.stores.elasticsearch import ElasticsearchStore
from neurank.stores.elasticsearch.client import ServerCompatibleClient, new_client
from neurank.stores.opensearch import OpenSearchStore

FAST_RETRIES = BulkPolicy(max_retries=2, initial_backoff_s=0.0, max_backoff_s=0.0, attempts=3)
"""Retries without waiting, so that fault-injection tests stay fast."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    params: dict[str, Any]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def lines(self) -> list[Any]:
        """An NDJSON body (`_bulk`, `_msearch`) as its decoded lines."""
        if isinstance(self.body, list | tuple):  # elasticsearch-py passes NDJSON lines unserialized
            return [json.loads(line) if isinstance(line, str | bytes) else line for line in self.body]
        text = self.body.decode() if isinstance(self.body, bytes) else self.body
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def spec_kind(request: Request) -> str | None:
    """Which spec schema a request body is checked against; None for bodies outside neurank's list."""
    path = request.url.split("?")[0].strip("/").split("/")
    if request.body is None:
        return None
    if path[-1] == "_bulk":
        return "bulk"
    if path[-1] == "_msearch":
        return "msearch"
    if path[-1] == "_search":
        return "search"
    if path[:2] == ["_search", "pipeline"] and request.method == "PUT":
        return "search_pipeline.put"
    if len(path) == 1 and request.method == "PUT" and not path[0].startswith("_"):
        return "indices.create"
    return None


_VALID: set[str] = set()
"""Bodies already found valid in this session (many tests send the same index body)."""


def validate_request(request: Request) -> None:
    kind = spec_kind(request)
    key = f"{kind}:{request.body if isinstance(request.body, str | bytes) else json.dumps(request.body)}"
    if kind is None or key in _VALID:
        return
    if kind == "bulk":
        validate_bulk(request.lines)
    elif kind == "msearch":
        validate_msearch(request.lines)
    else:
        validate(kind, request.body)
    _VALID.add(key)


_VALID_ES: set[str] = set()


def validate_es_request(request: Request) -> None:
    """The body of a request to Elasticsearch, against the Elasticsearch spec (tests/es_spec.py, strict)."""
    kind = spec_kind(request)
    if kind is None:
        return
    key = f"{kind}:{json.dumps(request.body, default=str)}"
    if key in _VALID_ES:
        return
    if kind == "bulk":
        ELASTICSEARCH.validate_bulk(request.lines)
    elif kind == "msearch":
        ELASTICSEARCH.validate_msearch(request.lines)
    else:
        ELASTICSEARCH.validate(kind, request.body)
    _VALID_ES.add(key)


@dataclass(slots=True)
class Recorder:
    """Wraps a client's transport: records each request, then answers it with `respond` (the real node when
    None). `fail` may raise instead, to inject errors at chosen calls."""

    requests: list[Request] = field(default_factory=list)
    fail: Callable[[Request], None] | None = None

    def attach(self, client: OpenSearch, respond: Callable[..., Any] | None = None) -> OpenSearch:
        send = respond or client.transport.perform_request

        def perform_request(method: str, url: str, headers: Any = None, params: Any = None, body: Any = None) -> Any:
            request = Request(method, url, dict(params or {}), body)
            self.requests.append(request)
            if self.fail is not None:
                self.fail(request)
            return send(method, url, headers=headers, params=params, body=body)

        client.transport.perform_request = perform_request  # type: ignore[method-assign]
        return client

    def attach_es(self, client: ServerCompatibleClient) -> ServerCompatibleClient:
        """The same for an elasticsearch-py client: its transport sees bodies before serialization."""
        transport = client.transport
        send = transport.perform_request

        def perform_request(method: str, target: str, *, body: Any = None, headers: Any = None,
                            **options: Any) -> Any:
            path, _, query = target.partition("?")
            request = Request(method, path, dict(p.split("=", 1) for p in query.split("&") if "=" in p), body,
                              dict(headers or {}))
            self.requests.append(request)
            if self.fail is not None:
                self.fail(request)
            return send(method, target, body=body, headers=headers, **options)

        transport.perform_request = perform_request  # type: ignore[method-assign]
        return client

    def kinds(self) -> list[str]:
        return [kind for kind in map(spec_kind, self.requests) if kind is not None]

    def validate_all(self) -> None:
        for request in self.requests:
            validate_request(request)

    def validate_all_es(self) -> None:
        for request in self.requests:
            validate_es_request(request)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def osmem_store(osmem_url: str, recorder: Recorder) -> Iterator[OpenSearchStore]:
    """An OpenSearch store on a fresh osmem clone; after the test, every body it sent must satisfy the spec."""
    client = recorder.attach(OpenSearch(hosts=[osmem_url], timeout=30))
    store = OpenSearchStore(osmem_url, Settings(opensearch_neural_plugin=None), client=client, bulk=FAST_RETRIES)
    yield store
    recorder.validate_all()


# -- Elasticsearch: the session's noida-db (tests/conftest.py) -----------------------------------------------------

EXACT_HNSW = {"type": "hnsw"}
"""Float vectors in the graph: exact scores (the default, int8_hnsw from 8.14, scores quantized vectors)."""


def es_client(url: str, recorder: Recorder) -> ServerCompatibleClient:
    """A client for noida-db (8.15.3) whose requests the recorder sees."""
    client = new_client(Connection(url, 30.0, True, None, None, None), server_major=8)
    return recorder.attach_es(client)


@pytest.fixture
def es_store(noida_url: str, recorder: Recorder) -> Iterator[ElasticsearchStore]:
    """An Elasticsearch store on noida-db, licensed as Basic (what `GET _license` gives there); after the test,
    every body it sent must satisfy the Elasticsearch spec."""
    settings = Settings(elasticsearch_dense_index_options=EXACT_HNSW)
    store = ElasticsearchStore(noida_url, settings, client=es_client(noida_url, recorder), bulk=FAST_RETRIES,
                               server_version="8.15.3")
    yield store
    recorder.validate_all_es()
