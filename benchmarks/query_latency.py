"""Query latency per mode on an indexed BEIR dataset, ONNX int8 query encoders against PyTorch fp32 ones.

    NEURANK_HOME=/tmp/eval-onnx python benchmarks/query_latency.py --dataset ../shared/data/scifact

The index must exist (`neurank eval --dataset DIR` builds it). Latency covers a whole query: encoding,
every stage on the local store, fusion; documents are not fetched (as in `neurank eval`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from common import header
from neurank.config import Settings
from neurank.eval.datasets import load_qrels, load_queries
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.plan import RetrievalPlan
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.stores import open_store

MODES = ("bm25", "sparse", "dense", "hybrid")


def latencies(searcher: Searcher, plan: RetrievalPlan, queries: list[str], warmup: int) -> list[float]:
    for text in queries[:warmup]:
        searcher.search(text, plan, with_documents=False)
    timings = []
    for text in queries:
        start = time.perf_counter()
        searcher.search(text, plan, with_documents=False)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    base = Settings()
    store = open_store(base)
    index = f"beir-{args.dataset.name}"
    qrels = load_qrels(args.dataset, args.split)
    queries = [text for qid, text in load_queries(args.dataset).items() if qid in qrels]
    runtimes = {"ONNX int8": base.model_copy(update={"runtime": "onnx", "int8": True}),
                "PyTorch fp32": base.model_copy(update={"runtime": "torch", "int8": False})}
    rows = []
    for label, settings in runtimes.items():
        encoders = EncoderBundle.from_settings(settings)
        encoders.warm_up()
        # The index was built by one runtime; the other encodes queries for their latency alone.
        searcher = SearchTarget(store, index, encoders).searcher(check_models=False)
        for mode in MODES:
            plan = searcher.plan(mode, k=100, depth=100)
            timings = latencies(searcher, plan, queries, args.warmup)
            rows.append((mode, label, statistics.median(timings), float(np.percentile(timings, 95))))
    print(header(f"dataset {args.dataset.name} ({args.split}, {len(queries)} queries), k=depth=100, "
                 f"{args.warmup} warm-up queries, local store, load average {os.getloadavg()[0]:.1f}"))
    print("\n| mode | query encoders | p50 ms | p95 ms |\n|---|---|---:|---:|")
    for mode, label, p50, p95 in sorted(rows, key=lambda r: (MODES.index(r[0]), r[1])):
        print(f"| {mode} | {label} | {p50:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
