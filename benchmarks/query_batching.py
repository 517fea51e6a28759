"""What batching can save per query: CPU time to encode the test queries in calls of 1, 4 and 16 queries.

    NEURANK_HOME=/tmp/nh-serve python benchmarks/query_batching.py --dataset ../shared/data/scifact

The encoders `neurank serve` runs (the configured models, runtime and precision) with one intra-op thread,
as a batched server runs them. CPU time (the process's, `time.process_time`) does not depend on how busy a
shared machine is; the best of `--repeats` counts, the batch sizes taking turns within each repeat.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import header
from neurank.config import Settings
from neurank.eval.datasets import load_qrels, load_queries
from neurank.onnx_models.bundle import EncoderBundle


def cpu_ms_per_query(encode: object, queries: list[str], size: int) -> float:
    start = time.process_time()
    for first in range(0, len(queries), size):
        encode(queries[first:first + size])  # type: ignore[operator]
    return 1000 * (time.process_time() - start) / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder: its test queries are encoded")
    parser.add_argument("--sizes", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    qrels = load_qrels(args.dataset, "test")
    queries = [text for qid, text in load_queries(args.dataset).items() if qid in qrels]
    sizes = [int(size) for size in args.sizes.split(",")]
    bundle = EncoderBundle.from_settings(Settings().model_copy(update={"threads": 1}))
    bundle.warm_up()
    encoders = {"splade": bundle.splade, "dense": bundle.dense}
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.repeats):
        for name, encoder in encoders.items():
            for size in sizes:
                ms = cpu_ms_per_query(encoder.encode_queries, queries, size)
                best[name, size] = min(best.get((name, size), ms), ms)
    print(header(f"{len(queries)} queries, {bundle.dense!r}, {bundle.splade!r}, 1 intra-op thread, best of "
                 f"{args.repeats}"))
    print("\n| encoder | " + " | ".join(f"CPU ms per query, calls of {size}" for size in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in encoders:
        print(f"| {name} | " + " | ".join(f"{best[name, size]:.2f}" for size in sizes) + " |")


if __name__ == "__main__":
    main()
