"""Training throughput per trainer and max length, to size `--steps` for a time budget.

    python benchmarks/train_throughput.py --dataset ../shared/data/scifact --kinds cross --lengths 128,256

Each row times `--repeat` optimizer steps (after `--warmup` untimed ones) on real batches of the dataset's
train split: forward, backward and AdamW, as `neurank train` runs them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import header
from neurank.config import Settings
from neurank.onnx_models import resolve_model
from neurank.train.cross_encoder import DEFAULTS as CROSS
from neurank.train.cross_encoder import CrossEncoderOptions, CrossEncoderTrainee
from neurank.train.data import load_training_data
from neurank.train.dense import DEFAULTS as DENSE
from neurank.train.dense import DenseOptions, DenseTrainee
from neurank.train.recipe import Trainee
from neurank.train.sparse import DEFAULTS as SPARSE
from neurank.train.sparse import SparseOptions, SparseTrainee

DEFAULTS = {"cross": CROSS, "dense": DENSE, "sparse": SPARSE}


def trainee(kind: str, base: Path, max_length: int) -> Trainee:
    if kind == "cross":
        return CrossEncoderTrainee(base, max_length=max_length, options=CrossEncoderOptions())
    if kind == "dense":
        return DenseTrainee(base, max_length=max_length, options=DenseOptions(), teacher=None)
    return SparseTrainee(base, max_length=max_length, options=SparseOptions(), warmup_steps=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--kinds", default="cross,dense,sparse")
    parser.add_argument("--lengths", default="128,256")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="neurank-bench-")))
    print(header(f"threads: {torch.get_num_threads()}, warm-up {args.warmup} steps, {args.repeat} timed steps"))
    print("\n| trainer | base | max length | batch (queries × texts) | s/step | texts/s |")
    print("|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        config = DEFAULTS[kind]
        data = load_training_data(args.dataset, settings, replace(config, eval_split=None))
        base = resolve_model(config.base, settings.home).path
        for max_length in (int(length) for length in args.lengths.split(",")):
            model = trainee(kind, base, max_length)
            optimizer = torch.optim.AdamW(model.module.parameters(), lr=1e-5)
            times = []
            for step in range(args.warmup + args.repeat):
                batch = data.batch(step, batch_size=config.batch_size, n_negatives=config.n_negatives)
                started = time.perf_counter()
                model.loss(batch, step).backward()
                optimizer.step()
                optimizer.zero_grad()
                if step >= args.warmup:
                    times.append(time.perf_counter() - started)
            texts = config.batch_size * (config.n_negatives + (1 if kind == "cross" else 2))
            seconds = statistics.median(times)
            print(f"| {kind} | {config.base} | {max_length} | {config.batch_size} × {texts // config.batch_size} "
                  f"| {seconds:.2f} | {texts / seconds:.1f} |")


if __name__ == "__main__":
    main()
