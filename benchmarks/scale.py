"""The embedded store at scale: write throughput, first answer in a new process, search after one write.

    python benchmarks/scale.py --docs 10000 100000 [--dir /tmp/scale] [--queries 200] [--bm25s]

For each size, a deterministic synthetic corpus (seeded; no encoders): ~200 words a document drawn with a Zipf
law from SciFact's vocabulary, a `splade` field of 80 weighted tokens, a `deepct` field of the document's first
40 distinct words, and a 384-dim unit vector. It is written through `LocalStore.upsert` in batches of 1,000
(write time alone). This process's first hybrid search then times its searcher build (and the HNSW graph's,
past the threshold). A *new process* opens the store and times its first BM25 answer (store opening and
searcher build included, interpreter start-up excluded), then its first dense answer (loading the saved graph),
and reports its peak RSS and its RSS then, per document. Back here: a hybrid search right after writing one
document (median of 5), p50/p95 per mode (bm25, sparse, dense, hybrid = the three in one call; query encoding
excluded) with the mean CPU time per query (which the machine's other load inflates less than wall time), this
process's RSS and the bytes on disk. With `--bm25s`, bm25s builds and queries the same analyzed
terms (top 100).

With `--ingest-docs N`, the real-encoder slice: the first N SciFact documents encoded with the default encoders
(as `neurank ingest` runs them) and written into fresh local stores, inline in one process (2 encoder threads)
and through Celery (Redis broker `--broker`, flushed) with each of `--workers` single-thread worker processes;
model loading excluded. `--docs` may then be empty (`--docs` with no value) for the slice alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common import header
from neurank.documents import Document
from neurank.index_spec import IndexSpec
from neurank.retrieval import SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores import LocalStore
from neurank.stores.protocol import EncodedDocument

INDEX = "scale"
DIMENSION = 384
BATCH = 1000


def vocabulary(dataset: Path, size: int = 30_000) -> list[str]:
    """The dataset's most frequent lowercase words (real English, as the analyzer meets it)."""
    counts: Counter[str] = Counter()
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            counts.update(word for word in f"{record['title']} {record['text']}".lower().split() if word.isalpha())
    return [word for word, _ in counts.most_common(size)]


def corpus(words: list[str], start: int, stop: int, seed: int = 17) -> Iterator[EncodedDocument]:
    """Documents start..stop-1, each drawn from its own seed so that any slice is the same documents."""
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    zipf = 1.0 / ranks
    zipf /= zipf.sum()
    for number in range(start, stop):
        rng = np.random.default_rng([seed, number])
        picks = rng.choice(len(words), size=int(rng.integers(150, 250)), p=zipf)
        text = " ".join(words[i] for i in picks)
        splade = {words[i]: float(w) for i, w in zip(rng.choice(len(words), 80, replace=False),
                                                     rng.uniform(0.05, 3.0, 80), strict=True)}
        deepct = {words[i]: float(w) for i, w in zip(dict.fromkeys(picks.tolist()), rng.uniform(0.1, 5.0, 40),
                                                     strict=False)}
        vector = rng.standard_normal(DIMENSION).astype(np.float32)
        yield EncodedDocument(Document(id=f"d{number}", text=text), {"splade": splade, "deepct": deepct},
                              vector / np.linalg.norm(vector))


def queries(words: list[str], count: int, seed: int = 99) -> list[list[SubQuery]]:
    """Per query: BM25 (3-6 words of the top 5,000), splade (12 tokens), a dense vector."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        text = " ".join(words[i] for i in rng.integers(0, 5000, int(rng.integers(3, 7))))
        tokens = {words[i]: float(w) for i, w in zip(rng.integers(0, 5000, 12), rng.uniform(0.1, 2, 12), strict=True)}
        vector = rng.standard_normal(DIMENSION).astype(np.float32)
        out.append([TextQuery(text, k=100), SparseQuery("splade", tokens, k=100), VectorQuery(vector, k=100)])
    return out


def rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        line = next(line for line in handle if line.startswith(field))
    return int(line.split()[1]) / 1024


def first_answer(path: Path) -> None:
    """Run in a new process: open the store and time its first BM25 answer, then its first dense one."""
    store = LocalStore(path)
    start = time.perf_counter()
    store.search(INDEX, [TextQuery("cell protein expression", k=100)])
    bm25_s = time.perf_counter() - start
    start = time.perf_counter()
    store.search(INDEX, [VectorQuery(np.full(DIMENSION, 0.05, np.float32), k=100)])
    print(json.dumps({"seconds": bm25_s, "dense_s": time.perf_counter() - start, "rss_mib": rss_mib("VmHWM"),
                      "rss_after_mib": rss_mib()}))


def percentiles(timings: list[float]) -> str:
    ordered = sorted(timings)
    return f"{statistics.median(ordered):.1f} / {ordered[int(0.95 * (len(ordered) - 1))]:.1f}"


def written(path: Path, size: int, words: list[str], reuse: bool) -> tuple[LocalStore, str]:
    """The store of `size` documents, and its write throughput (docs/s); with `reuse`, a store an earlier run
    wrote (of this size, the single documents written after it deleted) is measured as it is."""
    store = LocalStore(path)
    if reuse and store.index_spec(INDEX) is not None:
        store.delete(INDEX, [f"d{number}" for number in range(size, size + 5)])
        if store.count(INDEX) == size:
            return store, "(reused)"
    shutil.rmtree(path, ignore_errors=True)
    store = LocalStore(path)  # a new object: the one above may hold a connection to the files just removed
    store.create_index(INDEX, IndexSpec(dense_dimension=DIMENSION))
    write_s = 0.0
    for first in range(0, size, BATCH):
        batch = list(corpus(words, first, min(first + BATCH, size)))
        start = time.perf_counter()
        store.upsert(INDEX, batch)
        write_s += time.perf_counter() - start
    return store, f"{size / write_s:,.0f}"


def run(size: int, root: Path, words: list[str], query_list: list[list[SubQuery]], with_bm25s: bool,
        reuse: bool) -> Iterator[str]:
    """The row of `size` documents as soon as it is measured, then bm25s's."""
    path = root / f"n{size}"
    store, throughput = written(path, size, words, reuse)

    start = time.perf_counter()
    store.search(INDEX, query_list[0])  # this process's searcher (and the HNSW graph past the threshold)
    build_s = time.perf_counter() - start
    child = subprocess.run([sys.executable, __file__, "--first-answer", str(path)], capture_output=True,
                           text=True, check=True)
    first = json.loads(child.stdout)

    after_write = []
    for extra in range(5):
        store.upsert(INDEX, list(corpus(words, size + extra, size + extra + 1)))
        begin = time.perf_counter()
        store.search(INDEX, query_list[extra])
        after_write.append((time.perf_counter() - begin) * 1000)

    per_mode: dict[str, list[float]] = {"bm25": [], "sparse": [], "dense": [], "hybrid": []}
    cpu = dict.fromkeys(per_mode, 0.0)
    for subqueries in query_list:
        for mode, batch in zip(per_mode, ([subqueries[0]], [subqueries[1]], [subqueries[2]], subqueries),
                               strict=True):
            begin, begin_cpu = time.perf_counter(), time.process_time()
            store.search(INDEX, batch)
            per_mode[mode].append((time.perf_counter() - begin) * 1000)
            cpu[mode] += time.process_time() - begin_cpu
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    row = (f"| {size:,} | {throughput} | {build_s:.1f} | {first['seconds']:.2f} | {first['dense_s']:.2f} | "
           f"{first['rss_mib'] / 1024:.2f} | {first['rss_after_mib'] * 1024 * 1024 / size / 1000:.1f} | "
           f"{statistics.median(after_write):.0f} | "
           + " | ".join(percentiles(t) for t in per_mode.values())
           + f" | {rss_mib() / 1024:.2f} | {disk / size / 1024:.1f} | "
           + " / ".join(f"{total * 1000 / len(query_list):.2f}" for total in cpu.values()) + " |")
    yield row
    if with_bm25s:
        yield bm25s_row(store, size, query_list)


def bm25s_row(store: LocalStore, size: int, query_list: list[list[SubQuery]]) -> str:
    """bm25s on the same analyzed terms (our analyzer's output), its build and top-100 query times.

    The documents are read and analyzed a thousand at a time, and each becomes a list of token ids that share
    one int object per id, so that a million of them fit in memory (lists of strings took more than 24 GiB)."""
    import bm25s
    from bm25s.tokenization import Tokenized

    index = store._searcher(INDEX)  # the analyzed corpus, reused as is
    analyzer = index.analyzer
    vocab: dict[str, int] = {}
    shared: list[int] = []

    def token_ids(text: str) -> list[int]:
        out = []
        for term in analyzer.analyze(text):
            if term not in vocab:
                vocab[term] = len(shared)
                shared.append(len(shared))
            out.append(shared[vocab[term]])
        return out

    doc_ids = list(index.row_of)
    corpus = [token_ids(doc.document.passage) for start in range(0, len(doc_ids), BATCH)
              for doc in store.get(INDEX, doc_ids[start : start + BATCH])]
    start = time.perf_counter()
    retriever = bm25s.BM25(k1=index.spec.bm25_k1, b=index.spec.bm25_b)
    retriever.index(Tokenized(ids=corpus, vocab=vocab), show_progress=False)
    build_s = time.perf_counter() - start
    timings = []
    for subqueries in query_list:
        terms = [t for t in analyzer.analyze(subqueries[0].text) if t in retriever.vocab_dict]
        begin = time.perf_counter()
        retriever.retrieve([terms], k=100, show_progress=False, n_threads=1)
        timings.append((time.perf_counter() - begin) * 1000)
    return f"| bm25s, {size:,} | | build {build_s:.1f} | | | | | | {percentiles(timings)} | | | | | | |"


def ingest_rows(docs: int, workers: list[int], broker: str) -> Iterator[str]:
    """docs/s of real encoders inline and through Celery, one row each as measured."""
    import redis

    import ingest_celery as celery_bench

    client = redis.Redis.from_url(broker, decode_responses=True)
    client.flushdb()
    with tempfile.TemporaryDirectory(prefix="neurank-scale-ingest-") as tmp:
        folder = Path(tmp)
        celery_bench.configure(folder, broker, {}, torch_fp32=False)
        corpus_path = celery_bench.write_slice(docs, folder)
        yield header(celery_bench.queue_versions(client))
        yield celery_bench.encoders_line(docs) + "\n"
        yield "| path | processes × encoder threads | docs/s | vs inline |"
        yield "|---|---|---:|---:|"
        inline_env = {**os.environ, "NEURANK_STORE": f"local:{folder / 'inline'}"}
        inline = celery_bench.run_inline(corpus_path, inline_env, threads=2)
        yield f"| inline | 1 × 2 | {inline:.1f} | — |"
        for count in workers:
            store = f"local:{folder / f'celery-{count}'}"
            rate, _ = celery_bench.run_celery(corpus_path, store, folder, workers=count, threads=1)
            yield f"| celery (redis) | {count} × 1 | {rate:.1f} | {rate / inline:.2f}× |"
    client.flushdb()
    yield f"\nload average at the end {celery_bench.load_average()}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, nargs="*", default=[10_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/neurank-scale"))
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"), help="words drawn from")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bm25s", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="measure the stores an earlier run left in --dir")
    parser.add_argument("--ingest-docs", type=int, default=0, help="real-encoder slice: SciFact documents")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="Celery worker processes")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--first-answer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_answer:
        first_answer(args.first_answer)
        return
    if args.bm25s and importlib.util.find_spec("bm25s") is None:
        raise SystemExit("--bm25s needs bm25s: pip install 'neurank[bench]'")
    if args.ingest_docs:
        for line in ingest_rows(args.ingest_docs, args.workers, args.broker):
            print(line, flush=True)
    if not args.docs:
        return
    words = vocabulary(args.dataset)
    query_list = queries(words, args.queries)
    print(header(f"corpus: synthetic, seed 17, batches of {BATCH}; {args.queries} queries, top 100"))
    print()
    print("| documents | writes docs/s | first hybrid search, writer (s) | new process: first bm25 answer (s) | "
          "then first dense (s) | its peak RSS (GiB) | its RSS after, KB/doc | hybrid search after one write (ms) | "
          "bm25 p50/p95 (ms) | "
          "sparse p50/p95 | dense p50/p95 | hybrid p50/p95 | RSS (GiB) | disk KiB/doc | "
          "CPU ms/query bm25 / sparse / dense / hybrid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size in args.docs:
        for row in run(size, args.dir, words, query_list, args.bm25s, args.reuse):
            print(row, flush=True)


if __name__ == "__main__":
    main()
