"""nDCG@10 of BM25 and hybrid on clean and typo'd queries, with BM25 matching exactly and fuzzily.

    python benchmarks/typo_queries.py --dataset ../shared/data/scifact --out /tmp/typos/scifact --rate 0.2
    python benchmarks/typo_robustness.py --dataset ../shared/data/scifact --typos /tmp/typos/scifact \
      --fuzzy AUTO --fuzzy AUTO,1,3

The index is built (or reused) from the clean dataset under the configured store; every stage runs once per query
set, and the hybrid runs are fused offline with the searcher's own fusion (z_score + arithmetic mean by default),
so exact and fuzzy BM25 are fused with the same sparse and dense results. Without sparse and dense models
(`NEURANK_SPARSE_MODEL=none NEURANK_DENSE_MODEL=none`) only BM25 is measured. `--spelling` adds both query sets
corrected against the index (`neurank.query.spelling`) before every stage, as `--spelling` searches do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from rich.progress import track

from common import header
from neurank.config import Settings
from neurank.eval.datasets import load_qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.eval.runner import index_dataset
from neurank.query.fusion import fuse
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.retrieval import DEFAULT_HYBRID_FUSION, Fuzzy, ScoredIds

Run = dict[str, dict[str, float]]


def fuzzy_option(text: str) -> Fuzzy:
    """`FUZZINESS[,PREFIX_LENGTH[,MAX_EXPANSIONS]]`, e.g. `AUTO,1,3`."""
    parts = text.split(",")
    return Fuzzy(parts[0], *(int(part) for part in parts[1:3]))


def label(fuzzy: Fuzzy) -> str:
    return f"bm25 fuzzy {fuzzy.fuzziness}/{fuzzy.prefix_length}/{fuzzy.max_expansions}"


def stage_runs(searcher: Searcher, queries: dict[str, str], depth: int, fuzzies: list[Fuzzy], title: str
               ) -> tuple[dict[str, Run], dict[str, float]]:
    """Per run name (bm25, bm25 with each fuzzy setting, bm25 ngram when the index has n-grams, and hybrid with each
    when the index has more stages) the run; and the median BM25 milliseconds per query of each, timed side by
    side."""
    stages = searcher.available_stages()
    plans = {"bm25": searcher.plan("bm25", k=depth, depth=depth, implied=False)}
    for fuzzy in fuzzies:
        plans[label(fuzzy)] = searcher.plan("bm25", k=depth, depth=depth, implied=False, fuzzy=fuzzy)
    if searcher.spec.ngram:
        plans["bm25 ngram"] = searcher.plan("bm25", k=depth, depth=depth, implied=False, ngram=True)
    others = searcher.plan("+".join(stages[1:]), k=depth, depth=depth, implied=False) if len(stages) > 1 else None
    results: dict[str, dict[str, list[ScoredIds]]] = {name: {} for name in plans}
    times: dict[str, list[float]] = {name: [] for name in plans}
    rest: dict[str, list[ScoredIds]] = {}
    for qid, text in track(queries.items(), description=title):
        for name, plan in plans.items():
            start = time.perf_counter()
            results[name][qid] = searcher.stage_results(text, plan)
            times[name].append((time.perf_counter() - start) * 1000)
        if others is not None:
            rest[qid] = searcher.stage_results(text, others)
    runs = {name: {qid: dict(found[0]) for qid, found in per_query.items()} for name, per_query in results.items()}
    if others is not None:
        for name, per_query in results.items():
            runs[f"hybrid ({name})"] = {qid: {hit.id: hit.score for hit in fuse(found + rest[qid],
                                                                               DEFAULT_HYBRID_FUSION)[:depth]}
                                        for qid, found in per_query.items()}
    return runs, {name: statistics.median(values) for name, values in times.items()}


def corrected(searcher: Searcher, queries: dict[str, str]) -> tuple[dict[str, str], float]:
    """The queries as the searcher's spelling correction rewrites them, and its median milliseconds per query."""
    out, times = {}, []
    for qid, text in queries.items():
        start = time.perf_counter()
        out[qid] = searcher.speller.correct(text).text
        times.append((time.perf_counter() - start) * 1000)
    return out, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="the clean BEIR folder (indexed)")
    parser.add_argument("--typos", type=Path, required=True, help="its typo'd copy (benchmarks/typo_queries.py)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--fuzzy", type=fuzzy_option, action="append",
                        help="FUZZINESS[,PREFIX_LENGTH[,MAX_EXPANSIONS]], repeatable (default: AUTO,0,50)")
    parser.add_argument("--spelling", action="store_true",
                        help="also both query sets with their spelling corrected against the index first")
    args = parser.parse_args()
    fuzzies = args.fuzzy or [Fuzzy()]

    settings = Settings()
    target = SearchTarget.from_settings(settings, f"beir-{args.dataset.name}")
    index_dataset(args.dataset, target, settings)
    qrels = load_qrels(args.dataset, args.split)
    searcher = target.searcher()
    table: dict[str, dict[str, float]] = {}
    timings: dict[str, dict[str, float]] = {}
    spelling_ms: dict[str, float] = {}
    sets = [("clean", args.dataset, False), ("typo'd", args.typos, False)]
    if args.spelling:
        sets += [("clean, spelling corrected", args.dataset, True), ("typo'd, spelling corrected", args.typos, True)]
    for title, folder, correct in sets:
        queries = {qid: text for qid, text in load_queries(folder).items() if qid in qrels}
        if correct:
            queries, spelling_ms[title] = corrected(searcher, queries)
        runs, timings[title] = stage_runs(searcher, queries, args.depth, fuzzies, title)
        table[title] = {name: evaluate(qrels, run)["ndcg@10"] for name, run in runs.items()}
    names = list(table["clean"])
    print(header(f"dataset {args.dataset.name} ({args.split}, {len(qrels)} judged queries), typo'd queries "
                 f"{args.typos}, fuzzy as fuzziness/prefix_length/max_expansions, depth {args.depth}, hybrid "
                 f"fusion {DEFAULT_HYBRID_FUSION.technique}, load average {os.getloadavg()[0]:.2f}"))
    print("\n| queries | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for title, row in table.items():
        print(f"| {title} | " + " | ".join(f"{row[name]:.4f}" for name in names) + " |")
    clean, typo = table["clean"], table["typo'd"]
    loss = clean["bm25"] - typo["bm25"]
    print(f"\nBM25 loss to typos {loss:.4f}")
    for name in names[1:]:
        if name.startswith("bm25 ") and loss > 0:
            print(f"{name} recovers {(typo[name] - typo['bm25']) / loss:.0%} of it")
        elif name.startswith("hybrid (bm25 "):
            print(f"{name} on typo'd queries vs hybrid on clean ones: {typo[name] - clean['hybrid (bm25)']:+.4f}")
    for title, median_ms in spelling_ms.items():
        print(f"{title}: " + ", ".join(f"{name} {table[title][name] - clean[name]:+.4f}" for name in names)
              + f" against clean queries; correction p50 {median_ms:.2f} ms per query")
    for title, medians in timings.items():
        print(f"BM25 p50 per query ({title}): " + ", ".join(
            f"{name} {ms:.2f} ms (× {ms / medians['bm25']:.1f})" for name, ms in medians.items()))


if __name__ == "__main__":
    main()
