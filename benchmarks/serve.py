"""`neurank serve` under load: throughput and latency per number of concurrent clients, two servers side by side.

    NEURANK_HOME=/tmp/nh-serve-bench python benchmarks/serve.py --dataset ../shared/data/scifact --index scifact
    ... --compare NEURANK_SERVE_GC_FREEZE=false    # the second server with this environment on top

The two settings are batching on and off, or with `--compare` the configured server and one with more
environment. Each setting has its own `neurank serve` process on the loopback (query cache off, so every request encodes
its query); closed-loop clients (httpx, asyncio, at most 16 to a process) search for `--seconds` per client
count and setting, the two settings taking turns in `--rounds` slices so that a shared machine's changing load
falls on both alike. A client sends its next query as soon as the last one is answered, and after a 429 waits
the Retry-After the server gave. The index must exist (`neurank ingest DATASET --index NAME`). Besides the
rows: the errors by kind, and per row the encoder calls the servers' `/metrics` counted (texts per call, time
per call, a text's wait for its call). `--soak-seconds` then samples a server's resident memory every 10 s
under `--soak-clients` clients (`--clients ''` for the soak alone) on the `--soak-setting` server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from common import header
from neurank.eval.datasets import load_qrels, load_queries


@dataclass
class Cell:
    """What the clients saw in one run: latencies of the answered searches, and the other statuses."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    rejected: int = 0
    cpu_s: float = 0.0
    """CPU time the server process used meanwhile (all its threads): what a search costs, however busy the
    machine is."""
    errors: Counter[str] = field(default_factory=Counter)
    """By kind: the HTTP status, or the transport error's class and message."""

    def absorb(self, other: Cell) -> None:
        self.seconds += other.seconds
        self.latencies_ms += other.latencies_ms
        self.rejected += other.rejected
        self.cpu_s += other.cpu_s
        self.errors += other.errors

    def row(self, label: str, clients: int, rss_mib: float) -> str:
        answered, errors = len(self.latencies_ms), self.errors.total()
        total = answered + self.rejected + errors
        p50, p95, p99 = (np.percentile(self.latencies_ms, q) if answered else float("nan") for q in (50, 95, 99))
        return (f"| {label} | {clients} | {answered / self.seconds:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | "
                f"{p99 / p50:.1f} | {self.rejected / max(total, 1):.0%} | {errors / max(total, 1):.1%} | "
                f"{1000 * self.cpu_s / max(answered, 1):.0f} | {rss_mib:.0f} |")


SERVER_METRICS = {"neurank_serve_encoder_batch_size": "encoder", "neurank_serve_encoder_seconds": "encoder",
                  "neurank_serve_encoder_queue_seconds": "encoder", "neurank_serve_gc_seconds": "generation"}
"""Histograms read from the servers' /metrics, each with the label that splits it."""


def server_totals(url: str) -> Counter[tuple[str, str]]:
    """(sample name, encoder or GC generation) → value of the server's encoder calls and waits and its garbage
    collections, as /metrics counts them so far."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return Counter({(sample.name, sample.labels[SERVER_METRICS[family.name]]): sample.value
                    for family in text_string_to_metric_families(text) if family.name in SERVER_METRICS
                    for sample in family.samples if sample.name.endswith(("_sum", "_count"))})


def gc_row(label: str, clients: int, seconds: float, totals: Counter[tuple[str, str]]) -> str:
    """Full (generation 2) and young collections: how often, and how long each stopped the server."""
    cells = []
    for generation in ("2", "0"):
        count = totals["neurank_serve_gc_seconds_count", generation]
        each_ms = 1000 * totals["neurank_serve_gc_seconds_sum", generation] / count if count else 0.0
        cells.append(f"{60 * count / seconds:.1f} | {each_ms:.1f}")
    return f"| {label} | {clients} | " + " | ".join(cells) + " |"


def encoder_rows(label: str, clients: int, seconds: float, totals: Counter[tuple[str, str]]) -> list[str]:
    """Per encoder: calls per second, texts per call, ms per call and per text, and a text's mean wait."""
    rows = []
    for encoder in sorted({label for name, label in totals if name.startswith("neurank_serve_encoder")}):
        calls = totals["neurank_serve_encoder_batch_size_count", encoder]
        texts = totals["neurank_serve_encoder_batch_size_sum", encoder]
        busy_s = totals["neurank_serve_encoder_seconds_sum", encoder]
        waited = totals["neurank_serve_encoder_queue_seconds_count", encoder]
        wait_ms = 1000 * totals["neurank_serve_encoder_queue_seconds_sum", encoder] / waited if waited else 0.0
        if calls:
            rows.append(f"| {label} | {clients} | {encoder} | {calls / seconds:.1f} | {texts / calls:.2f} | "
                        f"{1000 * busy_s / calls:.1f} | {1000 * busy_s / texts:.1f} | {busy_s / seconds:.0%} | "
                        f"{wait_ms:.1f} |")
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User and system time of process `pid` so far."""
    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024


@contextmanager
def server(index: str, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """`neurank serve` with `env` on top of ours; (URL, pid) once /readyz says ready."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", "from neurank.cli import app; app()", "serve", "--index", index,
                                "--port", str(port)], env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"neurank serve did not get ready (exit status {process.returncode})")
            time.sleep(0.5)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=30).status_code == 200
    except httpx.TransportError:
        return False


CLIENTS_PER_PROCESS = 16
"""Client coroutines per load process: one Python process running 64 httpx clients on the server's two cores
answered its own coroutines late, so its p99 (3.3 s) was its event loop's, not the server's (the server's
own histogram had every search under 0.5 s; the same 64 clients in four processes saw a p99 of 0.4 s)."""


def load_in_processes(url: str, queries: list[str], mode: str, clients: int, seconds: float) -> Cell:
    """`clients` closed-loop clients, at most CLIENTS_PER_PROCESS to a process, their cells absorbed into one."""
    firsts = range(0, clients, CLIENTS_PER_PROCESS)
    if len(firsts) == 1:
        return asyncio.run(load(url, queries, mode, clients, seconds))
    with ProcessPoolExecutor(len(firsts)) as pool:
        parts = [pool.submit(_load_part, url, queries, mode, min(CLIENTS_PER_PROCESS, clients - first), seconds,
                             first, clients) for first in firsts]
        cell = Cell(seconds)
        for part in parts:
            cell.absorb(dataclasses.replace(part.result(), seconds=0.0))
    return cell


def _load_part(url: str, queries: list[str], mode: str, clients: int, seconds: float, first: int,
               stride: int) -> Cell:
    return asyncio.run(load(url, queries, mode, clients, seconds, first=first, stride=stride))


async def load(url: str, queries: list[str], mode: str, clients: int, seconds: float, *, first: int = 0,
               stride: int | None = None) -> Cell:
    """Closed-loop clients `first`.. of `stride` in all (the queries they send interleave with the others')."""
    cell = Cell(seconds)
    stop = time.perf_counter() + seconds
    step = stride or clients

    async def client(number: int, http: httpx.AsyncClient) -> None:
        i = first + number
        while time.perf_counter() < stop:
            start = time.perf_counter()
            try:
                response = await http.post("/search", json={"query": queries[i % len(queries)], "mode": mode,
                                                            "k": 10})
            except httpx.TransportError as exc:  # a dropped connection is an error the client saw, not a crash here
                cell.errors[f"{type(exc).__name__}: {exc}"] += 1
                continue
            finally:
                i += step
            if response.status_code == 200:
                cell.latencies_ms.append((time.perf_counter() - start) * 1000)
            elif response.status_code == 429:
                cell.rejected += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
            else:
                cell.errors[f"HTTP {response.status_code}"] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(number, http) for number in range(clients)))
    return cell


def environment(text: str) -> dict[str, str]:
    """`NAME=VALUE[,NAME=VALUE]` → the variables."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE], got {text!r}")
    return dict(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder: its test queries are sent")
    parser.add_argument("--index", required=True)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--clients", default="1,4,16,64", help="client counts, one row each; '' for a soak alone")
    parser.add_argument("--seconds", type=float, default=30.0, help="per client count and setting")
    parser.add_argument("--rounds", type=int, default=3, help="turns the two settings take within those seconds")
    parser.add_argument("--max-in-flight", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16, help="batching on; off is 1")
    parser.add_argument("--soak-seconds", type=float, default=0.0)
    parser.add_argument("--soak-clients", type=int, default=16)
    parser.add_argument("--soak-setting", choices=("first", "second"), default="first")
    parser.add_argument("--compare", type=environment, default=None, metavar="NAME=VALUE[,NAME=VALUE]",
                        help="the second server's environment on top of the first's (default: batching off, "
                             "NEURANK_SERVE_BATCH_SIZE=1)")
    args = parser.parse_args()

    qrels = load_qrels(args.dataset, "test")
    queries = [text for qid, text in load_queries(args.dataset).items() if qid in qrels]
    counts = [int(count) for count in args.clients.split(",") if count]
    first = {"NEURANK_SERVE_BATCH_SIZE": str(args.batch_size), "NEURANK_SERVE_CACHE_SIZE": "0",
             "NEURANK_SERVE_MAX_IN_FLIGHT": str(args.max_in_flight)}
    if args.compare is None:
        settings = {"batching on": first, "batching off": {**first, "NEURANK_SERVE_BATCH_SIZE": "1"}}
    else:
        settings = {"as configured": first,
                    ", ".join(f"{k}={v}" for k, v in args.compare.items()): {**first, **args.compare}}
    cells: dict[tuple[str, int], Cell] = {}
    counted: dict[tuple[str, int], Counter[tuple[str, str]]] = {}
    memory: dict[tuple[str, int], float] = {}
    soak: list[tuple[float, float]] = []
    load_before = os.getloadavg()
    with ExitStack() as servers:
        running = {label: servers.enter_context(server(args.index, env)) for label, env in settings.items()}
        for url, _ in running.values():
            asyncio.run(load(url, queries, args.mode, 4, 5.0))  # warm-up: the first calls of each session
        for clients in counts:
            for _ in range(args.rounds):  # the settings take turns, so a change in the machine's load hits both
                for label, (url, pid) in running.items():
                    before, cpu_before = server_totals(url), cpu_seconds(pid)
                    cell = load_in_processes(url, queries, args.mode, clients, args.seconds / args.rounds)
                    cell.cpu_s = cpu_seconds(pid) - cpu_before
                    counted.setdefault((label, clients), Counter()).update(server_totals(url) - before)
                    cells.setdefault((label, clients), Cell(0.0)).absorb(cell)
                    memory[label, clients] = rss_mib(pid)
        load_rows = os.getloadavg()
        if args.soak_seconds:
            soak_label = list(settings)[0 if args.soak_setting == "first" else 1]
            soak = asyncio.run(soaked(*running[soak_label], queries, args))
    load_after = os.getloadavg()
    print(header(f"mode {args.mode}, {len(queries)} queries cycled, {args.seconds:g} s per row in {args.rounds} "
                 f"turns, query cache off, max in flight {args.max_in_flight}, batch size {args.batch_size} (off: 1)"))
    print(f"- load average (1, 5, 15 min): {_load(load_before)} before, {_load(load_rows)} after the rows"
          + (f", {_load(load_after)} after the soak" if soak else ""))
    if counts:
        print_tables(list(settings), counts, cells, counted, memory)
    if soak:
        print_soak(args, soak)


def print_tables(labels: list[str], counts: list[int], cells: dict[tuple[str, int], Cell],
                 counted: dict[tuple[str, int], Counter[tuple[str, str]]], memory: dict[tuple[str, int], float]
                 ) -> None:
    """The rows per setting and client count, the errors by kind, and the encoder calls behind the rows."""
    print("\n| server | clients | searches/s | p50 ms | p95 ms | p99 ms | p99/p50 | 429 | errors | "
          "server CPU ms per search | RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(cells[label, clients].row(label, clients, memory[label, clients]) for label in labels
                    for clients in counts))
    failures = [f"{label}, {clients} clients: {count} × {kind}" for label in labels for clients in counts
                for kind, count in cells[label, clients].errors.most_common()]
    if failures:
        print("\nerrors:\n" + "\n".join(f"- {failure}" for failure in failures))
    print("\nencoder calls (the servers' /metrics):\n")
    print("| server | clients | encoder | calls/s | texts per call | ms per call | ms per text | busy | "
          "text's wait ms |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(row for label in labels for clients in counts
                    for row in encoder_rows(label, clients, cells[label, clients].seconds, counted[label, clients])))
    print("\ngarbage collections (the servers' /metrics):\n")
    print("| server | clients | full per minute | ms each | young per minute | ms each |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(gc_row(label, clients, cells[label, clients].seconds, counted[label, clients])
                    for label in labels for clients in counts))


def print_soak(args: argparse.Namespace, soak: list[tuple[float, float]]) -> None:
    rss = [mib for _, mib in soak]
    print(f"\nsoak, {args.soak_clients} clients for {args.soak_seconds:g} s, {args.soak_setting}: RSS first "
          f"{rss[0]:.0f} MiB, median {statistics.median(rss):.0f}, last {rss[-1]:.0f}, max {max(rss):.0f} "
          f"({len(rss)} samples)")
    print("RSS MiB every 10 s: " + " ".join(f"{mib:.0f}" for mib in rss))


def _load(averages: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.1f}" for value in averages)


async def soaked(url: str, pid: int, queries: list[str], args: argparse.Namespace) -> list[tuple[float, float]]:
    """(seconds since start, RSS MiB) every 10 s while `soak_clients` clients search."""
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    running = asyncio.ensure_future(load(url, queries, args.mode, args.soak_clients, args.soak_seconds))
    while not running.done():
        samples.append((time.perf_counter() - start, rss_mib(pid)))
        await asyncio.wait([running], timeout=10)
    samples.append((time.perf_counter() - start, rss_mib(pid)))
    return samples


if __name__ == "__main__":
    main()
