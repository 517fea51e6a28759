"""Choose the hybrid fusion on a training split: run each stage once, then fuse offline with every setting.

    python benchmarks/fusion_sweep.py --dataset ../shared/data/scifact --split train
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from rich.progress import track

from common import header
from neurank.config import Settings
from neurank.eval.datasets import load_qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.eval.runner import index_dataset
from neurank.query.fusion import fuse
from neurank.query.target import SearchTarget
from neurank.retrieval import COMBINATIONS, Fusion

WEIGHT_GRID = [None, (0.4, 0.3, 0.3), (0.3, 0.3, 0.4), (0.2, 0.4, 0.4), (0.5, 0.25, 0.25), (0.2, 0.3, 0.5)]


def fusions() -> list[Fusion]:
    candidates = [Fusion("rrf", weights=w, rank_constant=c) for w in WEIGHT_GRID for c in (20, 60)]
    for technique, combination, weights in itertools.product(("min_max", "l2"), COMBINATIONS, WEIGHT_GRID):
        candidates.append(Fusion(technique, combination, weights))  # type: ignore[arg-type]
    candidates += [Fusion("z_score", "arithmetic_mean", w) for w in WEIGHT_GRID]
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--top", type=int, default=12, help="rows to print")
    args = parser.parse_args()

    settings = Settings()
    target = SearchTarget.from_settings(settings, f"beir-{args.dataset.name}")
    index_dataset(args.dataset, target, settings)
    qrels = load_qrels(args.dataset, args.split)
    queries = {qid: text for qid, text in load_queries(args.dataset).items() if qid in qrels}
    searcher = target.searcher()
    plan = searcher.plan("bm25+sparse+dense", k=args.depth, depth=args.depth, implied=False)
    per_query = {qid: searcher.stage_results(text, plan) for qid, text in track(queries.items(), description="stages")}
    rows = []
    for name, i in (("bm25", 0), ("sparse", 1), ("dense", 2)):
        run = {qid: dict(results[i]) for qid, results in per_query.items()}
        rows.append((name, evaluate(qrels, run)["ndcg@10"]))
    for fusion in track(fusions(), description="fusions"):
        run = {qid: {h.id: h.score for h in fuse(results, fusion)[:100]} for qid, results in per_query.items()}
        label = f"{fusion.technique} {fusion.combination if fusion.technique != 'rrf' else ''}"
        label += f" w={fusion.weights} k={fusion.rank_constant if fusion.technique == 'rrf' else ''}"
        rows.append((label.replace("  ", " "), evaluate(qrels, run)["ndcg@10"]))
    print(header(f"dataset: {args.dataset.name} split {args.split}, {len(queries)} queries, depth {args.depth}"))
    print("\n| setting | nDCG@10 |\n|---|---|")
    singles, fused = rows[:3], sorted(rows[3:], key=lambda r: -r[1])
    for label, value in [*singles, *fused[: args.top]]:
        print(f"| {label} | {value:.4f} |")


if __name__ == "__main__":
    main()
