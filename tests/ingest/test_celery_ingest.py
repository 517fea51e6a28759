"""Queued ingest end to end: real Redis, real `celery worker` processes, the local store, real encoders.

Faults are real too: a worker killed with SIGKILL, a store whose database another process holds locked, a
document the store refuses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection
from opensearchpy import OpenSearch
from tests.ingest.conftest import AMQP_URL, BROKERS, BrokerQueue
from tests.stores.conftest import Recorder
from typer.testing import CliRunner

from neurank.cli import app as cli
from neurank.config import IngestOptions, Settings, broker_kind
from neurank.documents import Document, read_corpus
from neurank.errors import ConfigError, redact
from neurank.ingest.core import IngestSummary
from neurank.ingest.dead_letters import DeadLetters
from neurank.ingest.inline import ensure_index
from neurank.ingest.ledger import Ledger, broker_display, namespace
from neurank.ingest.messages import BatchMessage
from neurank.ingest.producer import ingest_via_celery, retry_dead_letters
from neurank.ingest.status import ingest_status
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.registry import resolve_model
from neurank.stores import open_store
from neurank.stores.local import DATABASE_FILE
from neurank.stores.opensearch import OpenSearchStore

pytestmark = pytest.mark.integration


def source_ids(path: Path) -> list[str]:
    records = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return [record["_id"] for record in records]


def in_background(work: Callable[[], IngestSummary]) -> Future[IngestSummary]:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="producer").submit(work)


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.3)


def cli_json(*args: str, exit_code: int = 0) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == exit_code, result.output
    return json.loads(result.stdout)


def counts(summary: IngestSummary) -> tuple[int, int, int, int]:
    return summary.indexed, summary.skipped, summary.failed, len(summary.dead)


@contextmanager
def write_lock(store_url: str, *, until: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold the store's SQLite write lock from another connection, as a long transaction elsewhere would,
    until `until()` holds or the block ends. The producer must reuse a store whose connection is open."""
    db = sqlite3.connect(Path(store_url.removeprefix("local:")) / DATABASE_FILE, isolation_level=None,
                         check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    done = threading.Event()

    def hold() -> None:
        while not done.is_set() and not until():
            time.sleep(0.2)
        db.execute("ROLLBACK")
        db.close()

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    try:
        yield
    finally:
        done.set()
        holder.join()


@pytest.mark.slow
def test_thousand_documents_through_two_workers_with_one_killed(
    celery_env: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], queue: BrokerQueue
) -> None:
    corpus = corpus_slice(1000)
    ids = source_ids(corpus)
    first, second = workers.start_ready("w1", "w2")
    settings = Settings()
    assert settings.sparse_model == "splade-tiny" and settings.dense_model == "minilm-l6" and settings.deepct

    run = in_background(lambda: ingest_via_celery(read_corpus(corpus), settings))
    wait_for(lambda: (s := ingest_status(settings)).done >= 2 and s.in_flight == 2, "both workers busy")
    first.kill()
    (third,) = workers.start_ready("w3")
    summary = run.result(timeout=900)

    assert counts(summary) == (1000, 0, 0, 0), summary.to_dict()
    store = open_store(settings)
    assert store.count(settings.index) == len(set(ids)) == 1000
    stored = store.get(settings.index, ids)
    assert [doc.document.id for doc in stored] == ids
    assert all(doc.content_hash == doc.document.content_hash and doc.embedding is not None for doc in stored)
    assert "the worker process died during 1 of its deliveries; sending it again as 2 halves" in (
        second.text() + third.text())

    again = ingest_via_celery(read_corpus(corpus), settings)
    assert counts(again) == (0, 1000, 0, 0)
    status = ingest_status(settings)
    assert (status.documents, status.done, status.queued, status.in_flight) == (0, 0, 0, 0)
    assert queue.length() == 0


@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_a_killed_workers_batch_comes_back_on_rabbitmq_at_once_and_on_redis_as_the_producer_says(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, ledger: redis.Redis, broker_url: str,
) -> None:
    amqp = broker_kind(broker_url) == "amqp"
    # Twelve batches of 8; a producer with no outcome for 2 s asks which workers still answer. On RabbitMQ the
    # visibility timeout is an hour: the run can only end if the killed worker's batch comes back without it.
    knobs = {"NEURANK_INGEST_BATCH_DOCUMENTS": "8", "NEURANK_INGEST_WORKER_WAIT_S": "2"}
    if amqp:
        knobs["NEURANK_INGEST_VISIBILITY_TIMEOUT_S"] = "3600"
    for key, value in knobs.items():
        monkeypatch.setenv(key, value)
        fast_models[key] = value
    corpus = corpus_slice(96)
    ids = source_ids(corpus)
    first, second = workers.start_ready("w1", "w2")
    settings = Settings()
    prefix = namespace(open_store(settings).url, settings.index)

    def held_by_first() -> list[str]:
        run = Ledger.latest(ledger, prefix, settings.ingest_options().ledger_ttl_s)
        held = run.held() if run else {}
        return [batch_id for batch_id, hold in held.items() if hold.worker == first.node]

    run = in_background(lambda: ingest_via_celery(read_corpus(corpus), settings))
    wait_for(lambda: bool(held_by_first()), "a batch begun by w1")
    first.kill()
    (lost,) = held_by_first()  # begun by w1 and never finished (read before w2 can take it up again)
    summary = run.result(timeout=300)

    assert counts(summary) == (96, 0, 0, 0), summary.to_dict()
    store = open_store(settings)
    assert store.count(settings.index) == 96
    assert [doc.document.id for doc in store.get(settings.index, ids)] == ids
    assert f"batch {lost}: the worker process died during 1 of its deliveries" in second.text()
    if not amqp:
        assert f"are held by workers that no longer answer ({lost} by {first.node}): Redis hands them to another " \
               "worker when the visibility timeout of 30 s expires" in caplog.text


@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_store_outage_is_retried_then_dead_lettered_until_retry_dead(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURANK_INGEST_MAX_RETRIES", "3")
    fast_models["NEURANK_INGEST_MAX_RETRIES"] = "3"
    settings = Settings()
    store = open_store(settings)
    ensure_index(store, settings.index, EncoderBundle.from_settings(settings).index_spec(settings))
    (worker,) = workers.start_ready("w1", busy_timeout_s=1.0)

    first = corpus_slice(24)
    with write_lock(settings.store_url(), until=lambda: "retry 1/3" in worker.text()):
        recovered = ingest_via_celery(read_corpus(first), settings, store=store)
    assert counts(recovered) == (24, 0, 0, 0)
    assert "is locked" in worker.text()

    second = corpus_slice(48)
    with write_lock(settings.store_url()):
        outlasted = ingest_via_celery(read_corpus(second), settings, store=store)
    assert counts(outlasted) == (0, 24, 0, 24)
    assert all("stayed unavailable through 3 retries" in letter.reason for letter in outlasted.dead)
    assert "retry 3/3" in worker.text() and store.count(settings.index) == 24

    retried = retry_dead_letters(settings)
    assert counts(retried) == (24, 0, 0, 0)
    assert store.count(settings.index) == 48
    assert ingest_status(settings).dead == 0


def test_poison_document_is_dead_lettered_and_its_batch_mates_indexed(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], ledger: redis.Redis,
    queue: BrokerQueue, tmp_path: Path,
) -> None:
    poison = {"_id": "poison", "title": "Exported twice", "text": "A record with a NaN in a field."}
    corpus = corpus_slice(30, extra=[json.dumps(poison)[:-1] + ', "score": NaN}', '{"_id": "no-text"}'])
    workers.start_ready("w1")
    settings = Settings()

    summary = cli_json("ingest", str(corpus), "--via", "celery", "--json", exit_code=1)  # some failed or dead
    assert {key: summary[key] for key in ("indexed", "skipped", "failed", "dead")} == {
        "indexed": 30, "skipped": 0, "failed": 1, "dead": 1}
    (letter,) = summary["dead_letters"]
    assert letter["id"] == "poison" and letter["source"] == f"{corpus}:31"
    assert "metadata cannot be stored as JSON" in letter["reason"]
    assert summary["failures"][0]["source"] == f"{corpus}:32"
    store = open_store(settings)
    assert store.count(settings.index) == 30
    kept = DeadLetters(ledger, namespace(store.url, settings.index)).get(["poison"])["poison"]
    assert kept.document.text == poison["text"] and kept.document.source == f"{corpus}:31"

    status = cli_json("ingest", "status", "--json")
    assert {key: status[key] for key in ("queued", "in_flight", "indexed", "dead")} == {
        "queued": 0, "in_flight": 0, "indexed": 30, "dead": 1}

    again = cli_json("ingest", str(corpus), "--via", "celery", "--json", exit_code=1)
    assert (again["indexed"], again["skipped"], again["failed"], again["dead"]) == (0, 30, 1, 1)
    status = ingest_status(settings)
    assert (status.documents, status.done) == (0, 0)
    assert queue.length() == 0

    elsewhere = settings.model_copy(update={"store": f"local:{tmp_path / 'another-store'}"})
    refused = ingest_via_celery(read_corpus(corpus_slice(5)), elsewhere)
    assert counts(refused) == (0, 0, 0, 5)
    assert all(f"this worker serves {store.url}" in letter.reason for letter in refused.dead)
    assert store.count(settings.index) == 30


def batches_holding(documents: list[Document], doc_id: str) -> set[str]:
    """The ids of the first batch and of each half on the way down to `doc_id` alone (see BatchMessage.halves)."""
    batch = BatchMessage("b0", "", "", "", {}, documents)
    held = {batch.batch_id}
    while len(batch.documents) > 1:
        batch = next(half for half in batch.halves() if doc_id in {doc.id for doc in half.documents})
        held.add(batch.batch_id)
    return held


@pytest.mark.slow
@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_a_document_that_kills_its_worker_every_time_ends_in_dead_letters(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], ledger: redis.Redis
) -> None:
    crasher = {"_id": "crasher", "title": "Kills workers", "text": "Each worker process that encodes this dies."}
    corpus = corpus_slice(2, extra=[json.dumps(crasher)])
    documents = [doc for doc in read_corpus(corpus) if isinstance(doc, Document)]
    doomed = batches_holding(documents, "crasher")
    alone = max(doomed, key=len)
    max_deliveries = IngestOptions().max_deliveries
    (worker,) = workers.start_ready("w1")
    settings = Settings()
    prefix = namespace(open_store(settings).url, settings.index)

    run = in_background(lambda: ingest_via_celery(read_corpus(corpus), settings))
    killed: dict[str, int] = {}
    while not run.done():
        run_id = ledger.get(f"{prefix}:run")
        deliveries = ledger.hgetall(f"{prefix}:run:{run_id}:deliveries") if run_id else {}
        for attempt, delivered in deliveries.items():
            batch_id, count = attempt.rsplit(":", 1)[0], int(delivered)
            encodes = count == 1 or (batch_id == alone and count <= max_deliveries)
            if batch_id in doomed and encodes and count > killed.get(attempt, 0):
                for pid in worker.pool_pids():
                    os.kill(pid, signal.SIGKILL)
                killed[attempt] = count
        time.sleep(0.005)
    summary = run.result()

    assert counts(summary) == (2, 0, 0, 1), summary.to_dict()
    (letter,) = summary.dead
    assert letter.id == "crasher" and letter.source == f"{corpus}:3"
    assert f"died during {max_deliveries} of its deliveries, with this document alone" in letter.reason
    assert killed == {f"{batch_id}:0": 1 for batch_id in doomed} | {f"{alone}:0": max_deliveries}
    assert open_store(settings).count(settings.index) == 2


def test_an_interrupted_ingest_run_again_completes_without_duplicates(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    queue: BrokerQueue,
) -> None:
    corpus = corpus_slice(300)
    # 30 small batches, two in flight, no worker yet: once both messages are on the broker the producer can
    # only wait for them, so the interrupt lands mid-run (not mid-publish) however loaded the machine is.
    monkeypatch.setenv("NEURANK_INGEST_BATCH_DOCUMENTS", "10")
    monkeypatch.setenv("NEURANK_INGEST_MAX_IN_FLIGHT", "2")
    settings = Settings()
    command = [str(Path(sys.executable).with_name("neurank")), "ingest", str(corpus), "--via", "celery", "--json"]
    # A runner started in the background (`cmd &`) ignores SIGINT, and children inherit that: give the
    # producer the default disposition, as a terminal's Ctrl-C would find it.
    producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for(lambda: queue.length() >= 2, "two batches on the broker")
    producer.send_signal(signal.SIGINT)
    _, err = producer.communicate(timeout=60)
    assert producer.returncode != 0 and b"run the same command again" in err

    # The batches queued before the interrupt still run on the workers; running again skips what they indexed.
    workers.start_ready("w1")
    wait_for(lambda: ingest_status(settings).done >= 2, "the two queued batches")
    again = ingest_via_celery(read_corpus(corpus), settings)
    assert again.skipped > 0 and again.indexed + again.skipped == 300 and not again.dead and not again.failures
    assert open_store(settings).count(settings.index) == 300


def test_a_queued_run_ends_as_an_inline_one_new_version_searched_and_writes_refreshed(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], osmem_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEURANK_STORE", osmem_url)
    fast_models["NEURANK_STORE"] = osmem_url
    settings = Settings()
    recorder = Recorder()
    store = OpenSearchStore(osmem_url, settings, client=recorder.attach(OpenSearch(hosts=[osmem_url], timeout=30)))
    spec = EncoderBundle.from_settings(settings).index_spec(settings)
    store.create_index(settings.index, dataclasses.replace(spec, models={"dense": "an older model"}))
    workers.start_ready("w1")

    after_model_change = ingest_via_celery(read_corpus(corpus_slice(12)), settings, store=store)
    assert counts(after_model_change) == (12, 0, 0, 0), after_model_change.to_dict()
    aliases = OpenSearch(hosts=[osmem_url]).indices.get_alias(index=f"{settings.index}-v*")
    assert aliases == {f"{settings.index}-v2": {"aliases": {settings.index: {}}}}
    assert store.count(settings.index) == 12

    recorder.requests.clear()
    more = ingest_via_celery(read_corpus(corpus_slice(18)), settings, store=store)
    assert counts(more) == (6, 12, 0, 0), more.to_dict()
    assert [request.url for request in recorder.requests][-1] == f"/{settings.index}/_refresh"
    assert store.count(settings.index) == 18


@pytest.mark.parametrize(("store", "code", "reason"), [
    ("ftp://127.0.0.1", 2, "unsupported store URL 'ftp://127.0.0.1'"),
    ("http://neurank:s3cret@127.0.0.1:9200", 2, "carries credentials"),
    ("http://127.0.0.1:1", 3, "cannot reach http://127.0.0.1:1"),
    ("no weights", 2, "cannot load"),
])
def test_a_worker_that_cannot_serve_refuses_to_start(
    fast_models: dict[str, str], tmp_path: Path, store: str, code: int, reason: str
) -> None:
    if store == "no weights":
        folder = tmp_path / "minilm-without-weights"
        shutil.copytree(resolve_model("minilm-l6", tmp_path).path, folder)
        (folder / "model.safetensors").unlink()
        fast_models["NEURANK_DENSE_MODEL"] = str(folder)
    else:
        fast_models["NEURANK_STORE"] = store
    command = [str(Path(sys.executable).with_name("neurank")), "worker", "--concurrency", "1"]

    worker = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **fast_models})

    output = " ".join((worker.stdout + worker.stderr).split())
    assert worker.returncode == code, output
    assert reason in output and " ready." not in output and "s3cret" not in output


@pytest.mark.parametrize("broker_url", BROKERS[1:], indirect=True)
def test_a_producer_names_a_rabbitmq_queue_declared_with_other_arguments(
    fast_models: dict[str, str], queue: BrokerQueue, corpus_slice: Callable[..., Path]
) -> None:
    with Connection(AMQP_URL) as connection:
        connection.default_channel.queue_declare(queue.name, durable=True, auto_delete=False)  # a classic queue

    with pytest.raises(ConfigError) as caught:
        ingest_via_celery(read_corpus(corpus_slice(3)), Settings())

    message = str(caught.value)
    assert f"did not take a batch for queue {queue.name!r}" in message
    assert "inequivalent arg 'x-queue-type'" in message and "set NEURANK_INGEST_QUEUE" in message


def test_a_worker_on_rabbitmq_without_a_redis_for_run_records_refuses_to_start(fast_models: dict[str, str]) -> None:
    env = {**os.environ, **fast_models, "NEURANK_BROKER_URL": AMQP_URL}
    del env["NEURANK_LEDGER_URL"]
    command = [str(Path(sys.executable).with_name("neurank")), "worker", "--concurrency", "1"]

    worker = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    output = " ".join((worker.stdout + worker.stderr).split())
    assert worker.returncode == 2, output
    assert "is not Redis: set NEURANK_LEDGER_URL to a Redis" in output and " ready." not in output
    assert "guest:guest" not in output


@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)
def test_a_producer_stops_when_no_worker_consumes_its_queue_and_waits_for_a_busy_one(
    fast_models: dict[str, str], workers: Any, corpus_slice: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, queue: BrokerQueue, broker_url: str,
) -> None:
    monkeypatch.setenv("NEURANK_INGEST_WORKER_WAIT_S", "2")
    corpus = corpus_slice(8)
    command = [str(Path(sys.executable).with_name("neurank")), "ingest", str(corpus), "--via", "celery"]
    alone = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert alone.returncode != 0
    message = " ".join(alone.stderr.split())
    assert f"no live worker consumes queue {queue.name!r} of {redact(broker_display(broker_url))}" in message
    settings = Settings()
    assert queue.length() == 1, "the batch sent stays queued"
    queue.purge()

    store = open_store(settings)
    assert store.index_spec(settings.index) is not None
    workers.start_ready("w1")
    locked_until = time.monotonic() + 6
    with write_lock(settings.store_url(), until=lambda: time.monotonic() > locked_until):
        summary = ingest_via_celery(read_corpus(corpus), settings, store=store)
    assert counts(summary) == (8, 0, 0, 0)
    assert f"consume queue {queue.name!r}" in caplog.text


def test_a_worker_makes_its_missing_onnx_exports_before_it_says_ready(
    fast_models: dict[str, str], workers: Any
) -> None:
    fast_models.update({"NEURANK_RUNTIME": "onnx", "NEURANK_SPARSE_MODEL": "splade-tiny", "NEURANK_DEEPCT": "false",
                        "NEURANK_DENSE_MODEL": "none"})
    home = Path(fast_models["NEURANK_HOME"])
    assert not list(home.glob("exports/*/*.onnx"))

    (worker,) = workers.start_ready("w1")

    assert [path.parent.name.split("-")[:2] for path in home.glob("exports/*/*.onnx")] == [["splade", "tiny"]]
    assert "worker process ready" in worker.text()
