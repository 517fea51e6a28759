"""The API of a real `neurank serve` process on the loopback, over the local store and the real bundled encoders."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.serve.conftest import API_KEY, Server
from typer.testing import CliRunner

from neurank.cli import app
from neurank.config import Settings
from neurank.query.rerank import RERANK_OFF_NOTE

pytestmark = pytest.mark.integration


def search(server: Server, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/search", json=body, timeout=60)


def samples(server: Server, name: str, headers: dict[str, str] | None = None) -> dict[tuple, float]:
    """Every sample of the metric family `name`: (sample name, sorted labels) → value."""
    text = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) if family.name == name
            for sample in family.samples}


def test_health_readiness_and_the_schema(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "alive"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready", "index": "tiny"}
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/search", "/documents/{doc_id}", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["SearchBody"]["properties"]["k"]["maximum"] == 100


def test_search_answers_the_json_of_the_cli(server: Server, served_settings: Settings) -> None:
    response = search(server, query="what do statins do", mode="hybrid", k=3, explain=True)
    assert response.status_code == 200
    served = response.json()
    cli = CliRunner().invoke(app, ["search", "what do statins do", "--mode", "hybrid", "--k", "3", "--explain",
                                   "--json", "--store", served_settings.store_url(), "--index", "tiny",
                                   "--runtime", "torch"], env={"NEURANK_HOME": str(served_settings.home),
                                                               "NEURANK_INT8": "false"})
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout)
    assert set(served) == set(printed) == {"query", "hits", "timings_ms", "notes"}
    assert [hit["id"] for hit in served["hits"]] == [hit["id"] for hit in printed["hits"]]
    assert served["hits"][0]["id"] == "d1" and set(served["hits"][0]["stages"]) == {"bm25", "sparse", "dense"}
    for ours, theirs in zip(served["hits"], printed["hits"], strict=True):
        assert set(ours["stages"]) == set(theirs["stages"])
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
        assert ours["explain"]["bm25_terms"] == theirs["explain"]["bm25_terms"]
        assert [t["token"] for t in ours["explain"]["sparse_tokens"]] == [
            t["token"] for t in theirs["explain"]["sparse_tokens"]]
    assert served["hits"][0]["explain"]["bm25_terms"][0]["term"] == "statin"


def test_spelling_is_corrected_when_asked_and_the_answer_says_what_was_searched(server: Server) -> None:
    corrected = search(server, query="aspirn and bloood", mode="hybrid", k=2, spelling=True).json()
    assert corrected["query"] == "aspirn and bloood"
    assert corrected["spelling"] == {"query": "aspirin and blood", "corrections": [
        {"word": "aspirn", "replacement": "aspirin"}, {"word": "bloood", "replacement": "blood"}]}
    clean = search(server, query="aspirin and blood", mode="hybrid", k=2).json()
    assert [(hit["id"], hit["score"]) for hit in corrected["hits"]] == [
        (hit["id"], hit["score"]) for hit in clean["hits"]]
    assert "spelling" not in search(server, query="aspirn and bloood", mode="bm25", k=2).json()  # off by default


def test_rerank_can_be_asked_for_and_says_when_no_cross_encoder_is_served(server: Server) -> None:
    asked = search(server, query="vitamin d", mode="bm25", k=2, rerank=True).json()
    assert asked["notes"] == [RERANK_OFF_NOTE] and asked["hits"][0]["id"] == "d2"
    assert search(server, query="vitamin d", mode="bm25", k=2, rerank=False).json()["notes"] == []
    assert search(server, query="vitamin d", mode="bm25+rerank", k=2).json()["notes"] == [RERANK_OFF_NOTE]


def test_a_document_by_id(server: Server) -> None:
    assert httpx.get(f"{server.url}/documents/d2").json() == {
        "id": "d2", "title": "Vitamin D", "text": "Vitamin D supports bone density in older adults.", "metadata": {}}
    missing = httpx.get(f"{server.url}/documents/nope")
    assert missing.status_code == 404 and "no document 'nope'" in missing.json()["error"]


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"query": ""}, 422, "query: String should have at least 1 character"),
    ({"query": "   "}, 422, "the query is empty"),
    ({"query": "x" * 1001}, 422, "above the limit of 1,000"),
    ({"query": "statins", "mode": "fuzzy"}, 422, "fuzzy"),
    ({"query": "statins", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"query": "statins", "k": 101}, 422, "k: Input should be less than or equal to 100"),
    ({"query": "statins", "index": "absent"}, 404, "index 'absent' does not exist"),
    ({"query": "statins", "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
    ({"mode": "bm25"}, 422, "query: Field required"),
    ({"query": "statins", "fusion": "learned"}, 422, "no learned fusion model: start it with NEURANK_SERVE_FUSION"),
    ({"query": "statins", "fusion": "wsum"}, 422, "fusion: Input should be 'rrf'"),
])
def test_bad_input_gets_a_4xx_that_says_why(server: Server, body: dict, status: int, message: str) -> None:
    response = httpx.post(f"{server.url}/search", json=body, timeout=60)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_query_syntax_is_searched_as_text(server: Server) -> None:
    response = search(server, query='statins AND title:(heart) OR "unclosed ~2 \\', mode="bm25", k=2)
    assert response.status_code == 200
    assert response.json()["hits"][0]["id"] == "d1"


def test_concurrent_searches_are_all_answered_and_share_encoder_batches(server: Server) -> None:
    queries = [f"risk factor number {i} for the heart" for i in range(16)]

    async def all_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/search", json={"query": q, "k": 3}) for q in queries))

    before = samples(server, "neurank_serve_encoder_batch_size")
    responses = asyncio.run(all_at_once())
    assert [response.status_code for response in responses] == [200] * len(queries)
    assert [response.json()["query"] for response in responses] == queries
    after = samples(server, "neurank_serve_encoder_batch_size")
    for encoder in ("splade", "dense"):
        count = ("neurank_serve_encoder_batch_size_count", (("encoder", encoder),))
        total = ("neurank_serve_encoder_batch_size_sum", (("encoder", encoder),))
        batches, texts = after[count] - before.get(count, 0), after[total] - before.get(total, 0)
        assert texts == len(queries) and batches < len(queries), (encoder, batches, texts)
    latency = samples(server, "neurank_serve_request_seconds")
    assert latency[("neurank_serve_request_seconds_count", (("mode", "hybrid"), ("status", "200")))] >= 16
    stages = samples(server, "neurank_serve_stage_seconds")
    assert {dict(labels)["stage"] for _, labels in stages} >= {"search", "fusion"}


def test_what_the_warm_up_loaded_is_left_out_of_collections_and_collections_are_timed(server: Server) -> None:
    frozen = samples(server, "neurank_serve_gc_frozen_objects")[("neurank_serve_gc_frozen_objects", ())]
    assert frozen > 50_000  # the models' tokenizers and the index's structures
    timed = samples(server, "neurank_serve_gc_seconds")
    for generation in ("0", "2"):  # loading the models and the index ran young and full collections
        labels = (("generation", generation),)
        assert timed["neurank_serve_gc_seconds_count", labels] >= 1
        assert timed["neurank_serve_gc_seconds_sum", labels] > 0


def test_a_repeated_query_is_encoded_once(server: Server) -> None:
    hits = ("neurank_serve_cache_hits_total", (("encoder", "dense"),))
    queued = ("neurank_serve_encoder_queue_seconds_count", (("encoder", "dense"),))
    before = samples(server, "neurank_serve_cache_hits").get(hits, 0)
    first = search(server, query="blood clots and aspirin", mode="dense", k=2).json()
    waits = samples(server, "neurank_serve_encoder_queue_seconds")[queued]
    second = search(server, query="blood clots and aspirin", mode="dense", k=2).json()
    assert samples(server, "neurank_serve_cache_hits")[hits] == before + 1
    assert samples(server, "neurank_serve_encoder_queue_seconds")[queued] == waits  # the hit skipped the queue
    assert first["hits"] == second["hits"]


def test_the_api_key_is_required_and_never_shown(guarded: Server) -> None:
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200
    refused = httpx.post(f"{guarded.url}/search", json={"query": "statins"})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.get(f"{guarded.url}/metrics", headers={"X-API-Key": API_KEY[:-1]})
    assert wrong.status_code == 401 and API_KEY not in wrong.text
    metrics = httpx.get(f"{guarded.url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert metrics.status_code == 200 and API_KEY not in metrics.text
    document = httpx.get(f"{guarded.url}/documents/d1", headers={"X-API-Key": API_KEY})
    assert document.status_code == 200 and API_KEY not in document.text


def test_a_search_past_its_deadline_is_answered_504(guarded: Server) -> None:
    response = httpx.post(f"{guarded.url}/search", json={"query": "vitamin d for the bones", "explain": True},
                          headers={"X-API-Key": API_KEY}, timeout=60)
    assert response.status_code == 504
    assert "did not finish within the deadline of 1 ms" in response.json()["error"]


def test_beyond_the_in_flight_limit_searches_get_429_at_once(guarded: Server) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=guarded.url, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            return await asyncio.gather(*(client.post("/search", json={"query": f"sleep and blood pressure {i}",
                                                                       "explain": True}) for i in range(12)))

    responses = asyncio.run(burst())
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {429, 504} and statuses.count(429) >= 1, statuses
    rejected = next(response for response in responses if response.status_code == 429)
    assert rejected.headers["Retry-After"] == "1"
    assert "all 1 search slots are busy" in rejected.json()["error"]
    counted = samples(guarded, "neurank_serve_rejected", {"X-API-Key": API_KEY})
    assert counted[("neurank_serve_rejected_total", (("reason", "overload"),))] == statuses.count(429)


def test_an_idle_connection_outlives_the_clients_keep_alive(server: Server) -> None:
    """httpx drops an idle connection after 5 s; a server that closed it at the same moment could drop a request
    the client was just sending on it, so the server keeps it longer (NEURANK_SERVE_KEEP_ALIVE_S)."""
    host, port = httpx.URL(server.url).host, httpx.URL(server.url).port
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=30) as connection:
        for pause_s in (0.0, 6.0):
            time.sleep(pause_s)
            connection.sendall(request)
            answer = b""
            while not answer.endswith(b'{"status":"alive"}') and (chunk := connection.recv(65536)):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"status":"alive"}'), answer
