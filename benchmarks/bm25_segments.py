"""SciFact test BM25 on a local store written in batches (a search after each, so that it ends in several
segments, the large ones persisted), then read again by a new store object from its segment files.

    python benchmarks/bm25_segments.py --dataset ../shared/data/scifact --dir /tmp/neurank-bm25-segments

Lucene's BM25 scores do not depend on how the corpus was written, so both rows must give Pyserini's flat BM25
(nDCG@10 0.6789, R@100 0.9253); the new store object must parse only the rows no segment file covers.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import header
from neurank.documents import Document, read_corpus
from neurank.eval.datasets import load_qrels, load_queries
from neurank.eval.metrics import evaluate
from neurank.index_spec import IndexSpec
from neurank.retrieval import TextQuery
from neurank.stores import LocalStore
from neurank.stores.protocol import EncodedDocument

INDEX = "bm25-segments"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--dir", type=Path, default=Path("/tmp/neurank-bm25-segments"))
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    documents = [doc for doc in read_corpus(args.dataset) if isinstance(doc, Document)]
    qrels, queries = load_qrels(args.dataset, "test"), load_queries(args.dataset)
    shutil.rmtree(args.dir, ignore_errors=True)
    writer = LocalStore(args.dir)
    writer.create_index(INDEX, IndexSpec())
    for start in range(0, len(documents), args.batch):
        writer.upsert(INDEX, [EncodedDocument(doc, {}, None, {}) for doc in documents[start : start + args.batch]])
        writer.search(INDEX, [TextQuery("cell", 10)])
    print(header(f"{len(documents)} documents in batches of {args.batch}, a search after each; {len(qrels)} queries"))
    print()
    print("| store | segments (rows; * = from a file) | rows parsed | nDCG@10 | R@100 | MRR@10 |")
    print("|---|---|---|---|---|---|")
    for label, store in (("writer", writer), ("new store object", LocalStore(args.dir))):
        run = {qid: dict(store.search(INDEX, [TextQuery(queries[qid], 100)])[0]) for qid in qrels}
        metrics = evaluate(qrels, run)
        index = store._searcher(INDEX)
        segments = ", ".join(f"{len(s):,}{'*' if s.file else ''}" for s in index.segments)
        parsed = next(iter(store._caches.values())).rows_read
        print(f"| {label} | {segments} | {parsed:,} | {metrics['ndcg@10']:.4f} | {metrics['recall@100']:.4f} | "
              f"{metrics['mrr@10']:.4f} |")


if __name__ == "__main__":
    main()
