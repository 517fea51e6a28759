"""Queued vs inline ingest at the same core count, and worker memory over a long run.

Inline: one process, torch with 2 threads. Celery: 2 `celery worker` processes (prefork, one pool process
each, torch with 1 thread) on a Redis broker, fed by the producer in this process; then 1 worker with 2
threads, which isolates the cost of the queue from the gain of process parallelism. All index the same
SciFact slice into fresh local stores; model loading is left out of every timing. Worker memory (RSS of
each pool process and its parent) is sampled every 0.5 s during the Celery run.

    python benchmarks/ingest_celery.py --docs 5000
    python benchmarks/ingest_celery.py --docs 5000 --sparse-model none --max-length 64   # faster encoders

Needs Redis (default redis://127.0.0.1:6379/13, flushed) and ../shared/data/scifact.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import redis

from common import header

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def rss_bytes(pid: int) -> int | None:
    """Resident memory of `pid` (psutil when installed, else /proc); None once the process is gone."""
    try:
        import psutil
    except ImportError:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        line = next((row for row in status.splitlines() if row.startswith("VmRSS:")), None)
        return int(line.split()[1]) * 1024 if line else None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


def rss_source() -> str:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return "/proc/PID/status VmRSS"
    return "psutil"


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def queue_versions(client: redis.Redis) -> str:
    names = ("celery", "kombu", "redis")
    found = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)
    return f"queue: {found}, redis-server {client.info()['redis_version']}"


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class Sampler:
    """RSS of each worker's processes, sampled in a thread while the Celery run lasts."""

    pids: dict[str, int]
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for name, pid in self.pids.items():
                for role, process in [("main", pid), *(("pool", child) for child in children(pid))]:
                    rss = rss_bytes(process)
                    if rss is not None:
                        self.samples.setdefault(f"{name} {role}", []).append((now, rss))
            self.stop.wait(0.5)


def write_slice(count: int, folder: Path) -> Path:
    path = folder / f"scifact-{count}.jsonl"
    with SCIFACT.open(encoding="utf-8") as handle:
        path.write_text("".join(islice(handle, count)), encoding="utf-8")
    return path


def run_inline(corpus: Path, env: dict[str, str], threads: int) -> float:
    """docs/s of inline ingest in a child process (so that its encoder thread count is its own)."""
    code = (
        "import sys, time, torch; torch.set_num_threads(int(sys.argv[2]))\n"
        "from pathlib import Path\n"
        "from neurank.config import Settings\n"
        "from neurank.documents import read_corpus\n"
        "from neurank.ingest.inline import ingest_records\n"
        "from neurank.onnx_models.bundle import EncoderBundle\n"
        "from neurank.stores import open_store\n"
        "s = Settings(); e = EncoderBundle.from_settings(s); e.encode(list(read_corpus(Path(sys.argv[1])))[:4])\n"
        "store = open_store(s); start = time.perf_counter()\n"
        "summary = ingest_records(read_corpus(Path(sys.argv[1])), store, s.index, e, s)\n"
        "print(summary.indexed / (time.perf_counter() - start))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(corpus), str(threads)],
                         env={**env, "NEURANK_THREADS": str(threads)}, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def start_worker(name: str, env: dict[str, str], folder: Path, threads: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = folder / f"{name}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "neurank.ingest.worker", "worker", "--pool", "prefork",
             "--concurrency", "1", "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            stdout=handle, stderr=subprocess.STDOUT,
            env={**env, "OMP_NUM_THREADS": str(threads), "NEURANK_THREADS": str(threads)},
            start_new_session=True)
    return process, log


def wait_ready(started: list[tuple[subprocess.Popen[bytes], Path]], timeout_s: float = 300.0) -> None:
    """Until every worker's pool process has loaded its models; a worker that exits (or a pool process that
    fails to start) stops the wait at once with its log."""
    deadline = time.monotonic() + timeout_s
    while not all("worker process ready" in log.read_text() for _, log in started):
        failed = [log for process, log in started
                  if process.poll() is not None or "Traceback" in log.read_text()]
        if failed or time.monotonic() > deadline:
            raise RuntimeError("workers not ready: " + " | ".join(log.read_text()[-2000:]
                                                                  for log in failed or [log for _, log in started]))
        time.sleep(0.5)


def run_celery(corpus: Path, store: str, folder: Path, workers: int, threads: int) -> tuple[float, Sampler]:
    """docs/s through `workers` single-process workers whose models are loaded, and their memory samples."""
    from neurank.config import Settings
    from neurank.documents import read_corpus
    from neurank.ingest.producer import ingest_via_celery

    env = {**os.environ, "NEURANK_STORE": store}
    started = [start_worker(f"bench{i}", env, folder, threads) for i in range(1, workers + 1)]
    try:
        wait_ready(started)
        sampler = Sampler({f"worker {i}": p.pid for i, (p, _) in enumerate(started, start=1)})
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        start = time.perf_counter()
        summary = ingest_via_celery(read_corpus(corpus), Settings(store=store))
        elapsed = time.perf_counter() - start
        sampler.stop.set()
        thread.join()
        if summary.indexed != sum(1 for _ in corpus.open()):
            raise RuntimeError(f"celery run indexed {summary.indexed}: {summary.to_dict()}")
        return summary.indexed / elapsed, sampler
    finally:
        for process, _ in started:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def memory_rows(sampler: Sampler) -> list[str]:
    """Peak RSS per process over the run and in each half: a leak shows as a second half above the first."""
    rows = []
    for name, samples in sorted(sampler.samples.items()):
        values = [rss for _, rss in samples]
        half = len(values) // 2
        first, second = max(values[:half] or values), max(values[half:])
        rows.append(f"| {name} | {max(values) / 2**20:.0f} | {first / 2**20:.0f} | {second / 2**20:.0f} | "
                    f"{(second - first) / 2**20:+.0f} | {len(values)} |")
    return rows


def configure(folder: Path, broker: str, models: dict[str, object | None], *, torch_fp32: bool) -> None:
    """The environment every run here reads: broker, index, encoders (None keeps a default). NEURANK_HOME is
    the caller's where set, so that ONNX exports made once are reused; else a fresh one in `folder`."""
    os.environ.update({"NEURANK_BROKER_URL": broker, "NEURANK_INDEX": "bench", "TOKENIZERS_PARALLELISM": "false"})
    os.environ.setdefault("NEURANK_HOME", str(folder / "home"))
    if torch_fp32:
        os.environ.update({"NEURANK_RUNTIME": "torch", "NEURANK_INT8": "false"})
    os.environ.update({key: str(value) for key, value in models.items() if value is not None})


def encoders_line(docs: int) -> str:
    from neurank.config import Settings

    settings = Settings()
    sparse = "none" if settings.sparse_model == "none" else f"{settings.sparse_model} (deepct {settings.deepct})"
    runtime = f"{settings.runtime} {'int8' if settings.int8 and settings.runtime == 'onnx' else 'fp32'}"
    return (f"- {docs} SciFact documents; encoders: sparse {sparse}, dense {settings.dense_model}, {runtime}, "
            f"max_length {settings.max_length}; model loading excluded; 1 run each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--sparse-model", default=None)
    parser.add_argument("--dense-model", default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    client = redis.Redis.from_url(args.broker, decode_responses=True)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="neurank-bench-") as tmp:
        folder = Path(tmp)
        configure(folder, args.broker, {"NEURANK_SPARSE_MODEL": args.sparse_model,
                                        "NEURANK_DENSE_MODEL": args.dense_model,
                                        "NEURANK_MAX_LENGTH": args.max_length}, torch_fp32=True)
        corpus = write_slice(args.docs, folder)
        inline = run_inline(corpus, {**os.environ, "NEURANK_STORE": f"local:{folder / 'inline'}"}, threads=2)
        queued, sampler = run_celery(corpus, f"local:{folder / 'celery'}", folder, workers=2, threads=1)
        one_worker, _ = run_celery(corpus, f"local:{folder / 'celery-1x2'}", folder, workers=1, threads=2)
    client.flushdb()

    print(header(f"{queue_versions(client)}; load average at the end {load_average()}"))
    print(encoders_line(args.docs) + "\n")
    print("| path | processes × torch threads | docs/s | time overhead vs inline |")
    print("|---|---|---|---|")
    print(f"| inline | 1 × 2 | {inline:.1f} | — |")
    for label, rate in (("2 × 1", queued), ("1 × 2", one_worker)):
        print(f"| celery (redis) | {label} | {rate:.1f} | {(inline / rate - 1) * 100:+.1f}% |")
    print(f"\nworker memory during the 2 × 1 run (sampled every 0.5 s with {rss_source()}):\n")
    print("| process | peak RSS MiB | peak, 1st half of run | peak, 2nd half | 2nd − 1st MiB | samples |")
    print("|---|---|---|---|---|---|")
    print("\n".join(memory_rows(sampler)))


if __name__ == "__main__":
    main()
