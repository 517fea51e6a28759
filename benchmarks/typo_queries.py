"""Write a typo-perturbed copy of a BEIR dataset's queries (seeded, at a set share of words) for `neurank eval`.

    python benchmarks/typo_queries.py --dataset ../shared/data/scifact --out /tmp/typos/scifact --rate 0.2 --seed 13

`neurank eval` names its index after the folder (`beir-<name>`): an `--out` folder named like the source reuses
the index already built for the clean queries instead of encoding the corpus again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neurank.eval.typos import write_typo_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="BEIR folder whose queries.jsonl is perturbed")
    parser.add_argument("--out", type=Path, required=True, help="the new dataset folder")
    parser.add_argument("--rate", type=float, default=0.2, help="share of eligible words that get one typo")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--min-length", type=int, default=4, help="shortest word (in letters) that may get a typo")
    args = parser.parse_args()
    report = write_typo_dataset(args.dataset, args.out, rate=args.rate, seed=args.seed, min_length=args.min_length)
    print(json.dumps({"out": str(args.out), **report.to_dict()}, indent=2))


if __name__ == "__main__":
    main()
