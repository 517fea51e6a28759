"""Fixtures for queued ingest: a dedicated Redis database, a broker, and real `celery worker` subprocesses.

The broker is Redis (database 15, which also holds the run records) unless a test asks for RabbitMQ with
`@pytest.mark.parametrize("broker_url", BROKERS, indirect=True)`; each test gets a queue of its own (deleted
afterwards on RabbitMQ), so that workers of other runs sharing the broker do not take its batches. Every worker runs
`celery -A neurank.ingest.worker worker` (prefork, one pool process, one torch thread) in its own process
group, so that a test can `kill -9` the whole worker as a crash would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pytest
import redis
from kombu import Connection
from tests.conftest import dies_with_pytest

from neurank.config import IngestOptions, broker_kind

BROKER_URL = "redis://127.0.0.1:6379/15"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
BROKERS = [pytest.param(BROKER_URL, id="redis"), pytest.param(AMQP_URL, id="amqp")]
FAST_MODELS = {"NEURANK_SPARSE_MODEL": "none", "NEURANK_MAX_LENGTH": "64"}


@pytest.fixture
def broker_url(request: pytest.FixtureRequest) -> str:
    """The broker of this test: Redis, unless parametrized with BROKERS."""
    return str(getattr(request, "param", BROKER_URL))


@dataclass
class BrokerQueue:
    """The encode queue of this test on its broker, counted and emptied the broker's own way."""

    url: str
    name: str

    def length(self) -> int:
        with Connection(self.url) as connection:
            if broker_kind(self.url) == "redis":
                return int(connection.default_channel.client.llen(self.name))
            return int(connection.default_channel.queue_declare(self.name, passive=True).message_count)

    def purge(self) -> None:
        with Connection(self.url) as connection:
            connection.default_channel.queue_purge(self.name)

    def delete(self) -> None:
        """Remove the queue and its exchange (RabbitMQ keeps them across runs; a Redis list goes when empty)."""
        if broker_kind(self.url) == "amqp":
            with Connection(self.url) as connection:
                connection.default_channel.queue_delete(self.name)
                connection.default_channel.exchange_delete(self.name)


@pytest.fixture
def queue(broker_url: str, ledger: redis.Redis) -> Iterator[BrokerQueue]:
    name = f"neurank.encode.{uuid.uuid4().hex[:12]}"  # not the default: other runs' workers may consume that
    found = BrokerQueue(broker_url, name)
    yield found
    found.delete()


@pytest.fixture
def ledger() -> Iterator[redis.Redis]:
    """Redis database 15, empty: the broker of the Redis tests, and the run records of all."""
    client = redis.Redis.from_url(BROKER_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is expected at 127.0.0.1:6379; start it with: redis-server --daemonize yes "
                    "--bind 127.0.0.1 --port 6379 --save '' --appendonly no")
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def celery_env(tmp_path: Path, broker_url: str, queue: BrokerQueue, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """NEURANK_* for the workers and for this process alike (so the producer and workers agree)."""
    env = {
        "NEURANK_HOME": str(tmp_path / "home"),
        "NEURANK_STORE": f"local:{tmp_path / 'store'}",
        "NEURANK_INDEX": "scifact",
        "NEURANK_RUNTIME": "torch",
        "NEURANK_INT8": "false",
        "NEURANK_BROKER_URL": broker_url,
        "NEURANK_LEDGER_URL": BROKER_URL,
        "NEURANK_INGEST_QUEUE": queue.name,
        "NEURANK_INGEST_BATCH_TOKENS": "4096",
        "NEURANK_INGEST_MAX_IN_FLIGHT": "6",
        "NEURANK_INGEST_TASK_TIME_LIMIT_S": "20",
        "NEURANK_INGEST_VISIBILITY_TIMEOUT_S": "30",
        "NEURANK_INGEST_RETRY_BACKOFF_S": "0.5",
        "NEURANK_INGEST_RETRY_BACKOFF_MAX_S": "2",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@dataclass
class Worker:
    name: str
    node: str
    """The worker's Celery node name, as the run records and `inspect` give it."""
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until the consumer listens and the pool process has loaded its models."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.text()
            if " ready." in text and "worker process ready" in text:
                return
            if self.process.poll() is not None:
                pytest.fail(f"worker {self.name} exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"worker {self.name} not ready after {timeout_s:.0f} s:\n{self.text()[-3000:]}")

    def pool_pids(self) -> list[int]:
        """The pool processes, which run the tasks."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill(self) -> None:
        """`kill -9` the worker and its pool processes at once, as a crash or an OOM kill of the host would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class Workers:
    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.running: list[Worker] = []

    def start(self, name: str, *, busy_timeout_s: float | None = None) -> Worker:
        node = f"{name}.{os.getpid()}@%h"  # apart from the workers of other runs on a shared RabbitMQ
        args = ["-A", "neurank.ingest.worker", "worker", "--pool", "prefork", "--concurrency", "1",
                "--hostname", node, "--queues", IngestOptions().queue, "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat"]
        # A short busy timeout turns a lock held a few seconds into a store outage.
        busy = {} if busy_timeout_s is None else {"NEURANK_LOCAL_BUSY_TIMEOUT_S": str(busy_timeout_s)}
        log = self.folder / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen([sys.executable, "-m", "celery", *args], stdout=handle,
                                       stderr=subprocess.STDOUT, env={**os.environ, **self.env, **busy},
                                       start_new_session=True, preexec_fn=dies_with_pytest)
        worker = Worker(name, node.replace("%h", socket.gethostname()), process, log)
        self.running.append(worker)
        return worker

    def start_ready(self, *names: str, busy_timeout_s: float | None = None) -> list[Worker]:
        started = [self.start(name, busy_timeout_s=busy_timeout_s) for name in names]
        for worker in started:
            worker.wait_ready()
        return started

    def stop_all(self) -> None:
        for worker in self.running:
            if worker.process.poll() is None:
                worker.kill()


@pytest.fixture
def workers(celery_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(celery_env, tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture
def fast_models(celery_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dense MiniLM over 64 tokens only, for the tests about faults rather than about the encoders."""
    for key, value in FAST_MODELS.items():
        monkeypatch.setenv(key, value)
        celery_env[key] = value
    return celery_env


@pytest.fixture
def corpus_slice(scifact: Path, tmp_path: Path) -> Callable[..., Path]:
    def write(count: int, extra: Sequence[str] = ()) -> Path:
        """The first `count` SciFact documents as a JSONL file, then the `extra` lines."""
        with (scifact / "corpus.jsonl").open(encoding="utf-8") as handle:
            lines = [line.rstrip("\n") for line in islice(handle, count)]
        path = tmp_path / f"scifact-{count}.jsonl"
        path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
        return path

    return write
