"""Recovery from `kill -9` of a Celery worker, and docs/s through RabbitMQ vs Redis with the same workers.

Per broker, two runs into fresh local stores, each with 2 `celery worker` processes (prefork, one pool process
and one torch thread each): an undisturbed run, which gives the docs/s, then a run in which one worker is
killed with SIGKILL (with its pool process) once a fraction of the documents is indexed, and a replacement
starts at once. Reported: the time from the kill to the end of the run (the last document stored, the store
refreshed), and how much of it goes beyond the work itself, i.e. beyond the documents left at the kill at the
undisturbed rate. Model loading is left out of the docs/s but not out of the recovery: the replacement loads
its models on the clock, as it would in production. Both runs must index every document exactly once.

    python benchmarks/ingest_recovery.py --docs 3000
    python benchmarks/ingest_recovery.py --docs 3000 --sparse-model none --max-length 64 \\
        --task-time-limit 60 --visibility-timeout 130      # Redis' wait shortened to fit a session
    python benchmarks/ingest_recovery.py --docs 3000 --sparse-model none --max-length 64 --kill-at 0 --rounds 3

Needs Redis (database 13, flushed: the Redis broker and the run records of both), RabbitMQ (a queue of its
own, deleted at the end) and ../shared/data/scifact.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis
from kombu import Connection

from common import header
from ingest_celery import start_worker, wait_ready, write_slice

REDIS_URL = "redis://127.0.0.1:6379/13"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


@dataclass(frozen=True)
class Recovery:
    kill_after_s: float
    indexed_at_kill: int
    kill_to_end_s: float


def ingest(corpus: Path, store: str) -> tuple[float, int]:
    """Seconds for a queued ingest of `corpus` into `store`, and the number indexed."""
    from neurank.config import Settings
    from neurank.documents import read_corpus
    from neurank.ingest.producer import ingest_via_celery

    start = time.perf_counter()
    summary = ingest_via_celery(read_corpus(corpus), Settings(store=store))
    return time.perf_counter() - start, summary.indexed


def check_exact(store: str, indexed: int, docs: int) -> None:
    from neurank.config import Settings
    from neurank.stores import open_store

    settings = Settings(store=store)
    stored = open_store(settings).count(settings.index)
    if (indexed, stored) != (docs, docs):
        raise RuntimeError(f"{store}: {indexed} indexed, {stored} stored, expected {docs}")


def indexed_so_far(store: str) -> Callable[[], int]:
    """A probe of how many documents the latest run into `store` has indexed, from its run records."""
    from neurank.config import Settings
    from neurank.ingest.ledger import Ledger, namespace, redis_client
    from neurank.stores import open_store

    settings = Settings(store=store)
    client = redis_client(settings.ledger_redis_url())
    prefix = namespace(open_store(settings).url, settings.index)

    def probe() -> int:
        ledger = Ledger.latest(client, prefix, settings.ingest_options().ledger_ttl_s)
        return ledger.snapshot().indexed if ledger else 0

    return probe


class Workers:
    """Single-process workers for one store, each in its own process group, killed together at the end."""

    def __init__(self, store: str, folder: Path, tag: str) -> None:
        self.env = {**os.environ, "NEURANK_STORE": store}
        self.folder = folder
        self.tag = tag
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *names: str) -> list[tuple[subprocess.Popen[bytes], Path]]:
        started = []
        for name in names:
            process, log = start_worker(f"{self.tag}-{name}", self.env, self.folder, threads=1)
            self.processes[name] = process
            started.append((process, log))
        return started

    def kill(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def stop(self) -> None:
        for name in self.processes:
            self.kill(name)


def undisturbed(corpus: Path, docs: int, folder: Path, tag: str) -> float:
    """docs/s of 2 workers whose models are loaded."""
    store = f"local:{folder / f'{tag}-undisturbed'}"
    workers = Workers(store, folder, f"{tag}-u")
    try:
        wait_ready(workers.start("w1", "w2"))
        seconds, indexed = ingest(corpus, store)
    finally:
        workers.stop()
    check_exact(store, indexed, docs)
    return docs / seconds


def killed(corpus: Path, docs: int, folder: Path, tag: str, fraction: float) -> Recovery:
    """A run in which one of 2 workers is killed once `fraction` of the documents is indexed, and replaced."""
    store = f"local:{folder / f'{tag}-killed'}"
    workers = Workers(store, folder, f"{tag}-k")
    try:
        wait_ready(workers.start("w1", "w2"))
        with ThreadPoolExecutor(max_workers=1) as producer:
            start = time.perf_counter()
            run = producer.submit(ingest, corpus, store)
            probe = indexed_so_far(store)
            while (indexed := probe()) < fraction * docs:
                if run.done():
                    raise RuntimeError(f"the run ended before the kill: {run.result()}")
                time.sleep(0.2)
            workers.kill("w1")
            kill = time.perf_counter()
            workers.start("w3")
            _, total = run.result()
            end = time.perf_counter()
    finally:
        workers.stop()
    check_exact(store, total, docs)
    return Recovery(kill - start, indexed, end - kill)


def use_broker(url: str, queue: str) -> None:
    """Point this process and the workers it starts at a broker (run records in Redis either way)."""
    os.environ.update({"NEURANK_BROKER_URL": url, "NEURANK_LEDGER_URL": REDIS_URL, "NEURANK_INGEST_QUEUE": queue})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--kill-at", type=float, default=0.3,
                        help="fraction of the documents indexed at the kill; 0: no kill runs")
    parser.add_argument("--rounds", type=int, default=1,
                        help="undisturbed runs per broker, the brokers taking turns; the median is reported")
    parser.add_argument("--brokers", default="redis,amqp")
    parser.add_argument("--sparse-model", default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--task-time-limit", type=float, default=None, help="NEURANK_INGEST_TASK_TIME_LIMIT_S")
    parser.add_argument("--visibility-timeout", type=float, default=None,
                        help="NEURANK_INGEST_VISIBILITY_TIMEOUT_S (Redis)")
    parser.add_argument("--amqp", default=AMQP_URL)
    args = parser.parse_args()

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    queue = f"neurank.bench.{uuid.uuid4().hex[:8]}"
    urls = {"redis": REDIS_URL, "amqp": args.amqp}
    brokers = args.brokers.split(",")
    rates: dict[str, list[float]] = {broker: [] for broker in brokers}
    recoveries: dict[str, Recovery] = {}
    with tempfile.TemporaryDirectory(prefix="neurank-recovery-") as tmp:
        folder = Path(tmp)
        os.environ.update({"NEURANK_HOME": str(folder / "home"), "NEURANK_RUNTIME": "torch", "NEURANK_INT8": "false",
                           "NEURANK_INDEX": "bench", "TOKENIZERS_PARALLELISM": "false"})
        for value, key in ((args.sparse_model, "NEURANK_SPARSE_MODEL"), (args.max_length, "NEURANK_MAX_LENGTH"),
                           (args.task_time_limit, "NEURANK_INGEST_TASK_TIME_LIMIT_S"),
                           (args.visibility_timeout, "NEURANK_INGEST_VISIBILITY_TIMEOUT_S")):
            if value is not None:
                os.environ[key] = str(value)
        from neurank.config import load_settings

        load_settings().ingest_options()  # a bad knob stops here, not in each worker
        corpus = write_slice(args.docs, folder)
        try:
            for turn in range(args.rounds):
                for broker in brokers:
                    use_broker(urls[broker], queue)
                    rates[broker].append(undisturbed(corpus, args.docs, folder, f"{broker}{turn}"))
            for broker in brokers if args.kill_at > 0 else []:
                use_broker(urls[broker], queue)
                recoveries[broker] = killed(corpus, args.docs, folder, broker, args.kill_at)
        finally:
            with Connection(args.amqp) as connection:
                connection.default_channel.queue_delete(queue)
                connection.default_channel.exchange_delete(queue)
            client.flushdb()

    from neurank.config import Settings

    settings = Settings()
    options = settings.ingest_options()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(header(f"brokers: redis-server {client.info()['redis_version']}, RabbitMQ at {args.amqp.split('@')[-1]}; "
                 f"load average at the end {load}"))
    sparse = "none" if settings.sparse_model == "none" else f"{settings.sparse_model} (deepct {settings.deepct})"
    print(f"- {args.docs} SciFact documents; encoders: sparse {sparse}, dense {settings.dense_model}, torch fp32, "
          f"max_length {settings.max_length}; 2 workers × 1 process × 1 torch thread; "
          + (f"kill -9 of one worker once {args.kill_at:.0%} of the documents are indexed, a replacement started at "
             "once; " if args.kill_at > 0 else "no kill runs; ")
          + "task time limit "
          f"{options.task_time_limit_s:g} s, Redis visibility timeout {options.visibility_timeout_s:g} s; "
          f"{args.rounds} undisturbed run(s) per broker, taking turns\n")
    print("| broker | docs/s undisturbed (median; runs) | vs redis | kill after s (docs indexed) "
          "| kill → last stored s | work left at kill s | beyond the work s |")
    print("|---|---|---|---|---|---|---|")
    medians = {broker: statistics.median(values) for broker, values in rates.items()}
    base = medians.get("redis")
    for broker, rate in medians.items():
        runs = ", ".join(f"{value:.1f}" for value in rates[broker])
        ratio = f"{(rate / base - 1) * 100:+.1f}%" if base else "—"
        recovery = recoveries.get(broker)
        if recovery is None:
            print(f"| {broker} | {rate:.1f} ({runs}) | {ratio} | — | — | — | — |")
            continue
        left = (args.docs - recovery.indexed_at_kill) / rate
        print(f"| {broker} | {rate:.1f} ({runs}) | {ratio} | {recovery.kill_after_s:.0f} ({recovery.indexed_at_kill}) "
              f"| {recovery.kill_to_end_s:.1f} | {left:.1f} | {recovery.kill_to_end_s - left:+.1f} |")


if __name__ == "__main__":
    main()
