"""Learned fusion against the z_score fusion of the same stages: train on train, choose on dev, report on test.

    NEURANK_DEEPCT=false python benchmarks/learned_fusion.py --dataset ../shared/data/scifact --out /tmp/fusion-scifact
    NEURANK_DEEPCT=false python benchmarks/learned_fusion.py --dataset ../shared/data/nfcorpus --out /tmp/fusion-nf

The dataset is indexed in the configured store as `neurank eval` indexes it (`beir-<name>`), so the test figures
are those `neurank eval --fusion learned:OUT` gives. Prints the header, then markdown tables.
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version
from pathlib import Path

from common import header
from neurank.config import Settings
from neurank.eval.runner import index_dataset
from neurank.onnx_models.bundle import ensure_exports
from neurank.query.target import SearchTarget
from neurank.train.fusion import BASELINE, FusionConfig, train_fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--train-queries", type=int, default=None, help="a seeded sample of the train queries")
    parser.add_argument("--threads", type=int, default=None, help="LightGBM threads")
    parser.add_argument("--index", help="an index that already holds the dataset (`neurank ingest DATASET --index "
                                        "NAME`) instead of `beir-<name>`, indexed here when missing")
    args = parser.parse_args()

    settings = Settings()
    ensure_exports([settings])
    target = SearchTarget.from_settings(settings, args.index or f"beir-{args.dataset.name}")
    if not args.index:
        index_dataset(args.dataset, target, settings)
    config = FusionConfig(mode=args.mode, depth=args.depth, train_queries=args.train_queries, threads=args.threads)
    report = train_fusion(args.dataset, args.out, settings, config, target=target)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(header(f"dataset: {args.dataset.name}, mode {args.mode} ({'+'.join(report.lists)}), depth {args.depth}, "
                 f"{report.train_queries} train / {report.dev_queries} dev queries, {report.candidates} train "
                 f"candidates; lightgbm {version('lightgbm')}; load average at the end {load}; "
                 f"{report.seconds / 60:.1f} min"))
    print("\n| tree leaves | iterations | dev nDCG@10 | LightGBM's best iteration | its dev NDCG@10 |\n"
          "|---|---|---|---|---|")
    for row in report.tried:
        chosen = " (chosen)" if row == report.chosen else ""
        print(f"| {row['leaves']}{chosen} | {row['iterations']} | {row['dev_ndcg@10']:.4f} | "
              f"{row['lightgbm_best_iteration']} | {row['lightgbm_dev_ndcg@10']:.4f} |")
    print("\n| iterations | " + " | ".join(map(str, report.curve)) + " |\n|---|" + "---|" * len(report.curve))
    print("| dev nDCG@10 | " + " | ".join(f"{value:.4f}" for value in report.curve.values()) + " |")
    print("\n| split | fusion | nDCG@10 | Recall@100 | MRR@10 |\n|---|---|---|---|---|")
    print(f"| dev | learned | {report.dev['learned']:.4f} | | |\n| dev | {BASELINE} | {report.dev[BASELINE]:.4f} | | |")
    for name, metrics in (report.evaluation or {}).items():
        print(f"| {report.eval_split} | {name} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | "
              f"{metrics['mrr@10']:.4f} |")
    print("\n| feature | gain |\n|---|---|")
    for name, gain in report.importances.items():
        print(f"| {name} | {gain:.1f} |")


if __name__ == "__main__":
    main()
