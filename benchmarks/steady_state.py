"""Steady-state search latency of a store `scale.py` wrote, for two code versions measured at the same seconds.

    start=$(( $(date +%s) + 30 ))
    PYTHONPATH=OLD/src python benchmarks/steady_state.py /tmp/neurank-scale/n10000 --start-at $start &
    python benchmarks/steady_state.py /tmp/neurank-scale/n10000 --start-at $start; wait

Each process opens the store, answers 20 hybrid queries to warm up, waits until `--start-at` (so that the
versions run side by side and share the machine's other load), then runs `scale.py`'s queries for `--seconds`,
each query in every mode (bm25, sparse, dense, hybrid = the three in one call; no query encoding), and prints
per mode the wall-clock p50 and the mean CPU time per query. On a shared machine the CPU times compare better:
a long call is preempted more often than a short one, which inflates wall-clock time unevenly.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from neurank.stores import LocalStore
from scale import INDEX, queries, vocabulary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="a store folder scale.py wrote (DIR/nSIZE)")
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"), help="words drawn from")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to measure (the same for every version)")
    parser.add_argument("--start-at", type=float, default=0.0, help="Unix time at which to start measuring")
    args = parser.parse_args()
    query_list = queries(vocabulary(args.dataset), args.queries)
    store = LocalStore(args.store)
    for subqueries in query_list[:20]:
        store.search(INDEX, subqueries)
    start = max(time.time(), args.start_at)
    time.sleep(max(0.0, start - time.time()))
    modes = {"bm25": slice(0, 1), "sparse": slice(1, 2), "dense": slice(2, 3), "hybrid": slice(0, 3)}
    wall: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu = dict.fromkeys(modes, 0.0)
    count = 0
    while time.time() < start + args.seconds:
        subqueries = query_list[count % len(query_list)]
        count += 1
        for mode, part in modes.items():
            begin, begin_cpu = time.perf_counter(), time.process_time()
            store.search(INDEX, subqueries[part])
            wall[mode].append((time.perf_counter() - begin) * 1000)
            cpu[mode] += time.process_time() - begin_cpu
    print(" | ".join(f"{mode} {statistics.median(wall[mode]):.2f} / {cpu[mode] * 1000 / count:.2f}" for mode in modes),
          f"(ms: wall p50 / CPU mean, {count} queries)")


if __name__ == "__main__":
    main()
