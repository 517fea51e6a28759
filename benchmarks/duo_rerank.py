"""The duo stage against the ranking it reorders, on the first N judged queries of a BEIR split.

    NEURANK_HOME=/tmp/nh-duo python benchmarks/duo_rerank.py --dataset ../shared/data/scifact \
        --duo-model /tmp/nh-duo/models/scifact-duo --queries 50

Both modes run through `neurank eval`'s path (`evaluate_modes`' planning and `run_mode`), on a BM25 index of
the dataset in the training store, and are scored on the same queries (the first N judged ones by id): a
duo stage costs k(k−1) = 90 model calls a query, so a whole 300-query split takes too long on 2 shared cores.
Latency is a whole query: BM25, fetching the top 10 passages, and the pairwise model.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from common import header
from neurank.config import Settings
from neurank.eval.datasets import load_qrels, load_queries
from neurank.eval.diagnostics import recall_metrics
from neurank.eval.metrics import evaluate
from neurank.eval.runner import mode_plan, run_mode
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.duo import load_duo
from neurank.retrieval import DEFAULT_HYBRID_FUSION
from neurank.train.first_stage import indexed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--duo-model", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()

    settings = Settings()
    qrels = load_qrels(args.dataset, args.split)
    chosen = sorted(qrels, key=lambda qid: (len(qid), qid))[: args.queries]
    texts = load_queries(args.dataset)
    queries = {qid: texts[qid] for qid in chosen}
    judged = {qid: qrels[qid] for qid in chosen}
    target = indexed(args.dataset, EncoderBundle(), settings)
    searcher = target.searcher(duo=load_duo(settings, args.duo_model))
    load = os.getloadavg()
    print(header(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; runtime {settings.runtime}, "
                 f"int8 {settings.int8 if settings.rerank_int8 is None else settings.rerank_int8}; "
                 f"{len(queries)} {args.split} queries"))
    print()
    print("| mode | nDCG@10 | MRR@10 | Recall@10 | micro-recall@10 | p50 ms |")
    print("|---|---|---|---|---|---|")
    for mode in ("bm25", "bm25+duo"):
        plan = mode_plan(searcher, mode, depth=100, rerank_depth=None, fusion=DEFAULT_HYBRID_FUSION)
        run, latencies = run_mode(searcher, plan, queries)
        metrics = {**evaluate(judged, run), **recall_metrics(judged, run, (10,))}
        print(f"| {mode} | {metrics['ndcg@10']:.4f} | {metrics['mrr@10']:.4f} | {metrics['recall@10']:.4f} | "
              f"{metrics['micro_recall@10']:.4f} | {statistics.median(latencies):.0f} |")
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
