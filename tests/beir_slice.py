"""A small BEIR folder cut from a real one, for tests that train or evaluate on a few queries."""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_beir_slice(source: Path, folder: Path, *, train_queries: int, test_queries: int, other_docs: int) -> Path:
    """The first `train_queries` train and `test_queries` test queries of `source` (by id), their judged documents
    and `other_docs` others drawn with a fixed seed, as a BEIR folder at `folder`."""
    (folder / "qrels").mkdir(parents=True)
    judged: set[str] = set()
    kept_queries: set[str] = set()
    for split, count in (("train", train_queries), ("test", test_queries)):
        header, *rows = (source / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        queries = sorted({row.split("\t")[0] for row in rows})[:count]
        kept = [row for row in rows if row.split("\t")[0] in queries]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *kept]) + "\n", encoding="utf-8")
        judged |= {row.split("\t")[1] for row in kept}
        kept_queries |= set(queries)
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    others = set(random.Random(0).sample(range(len(lines)), other_docs))
    corpus = [line for i, line in enumerate(lines) if i in others or json.loads(line)["_id"] in judged]
    (folder / "corpus.jsonl").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    query_lines = [line for line in (source / "queries.jsonl").read_text(encoding="utf-8").splitlines()
                   if json.loads(line)["_id"] in kept_queries]
    (folder / "queries.jsonl").write_text("\n".join(query_lines) + "\n", encoding="utf-8")
    return folder
