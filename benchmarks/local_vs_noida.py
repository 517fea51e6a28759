"""Do the Elasticsearch store (on noida-db) and the local store rank alike, and is bulk writing the bottleneck?

    noida-db start --host 127.0.0.1 --only elasticsearch --elasticsearch-port 19200 --data-dir /tmp/noida &
    python benchmarks/local_vs_noida.py --url http://127.0.0.1:19200 --dataset ../shared/data/scifact --docs 1000

The first `--docs` documents, encoded once (splade-tiny and minilm-l6 on PyTorch), fill both stores. Agreement:
the share of test queries whose noida-db top 10 is the local top 10 up to the order of equal local scores; BM25
over the same slice (noida-db's BM25 is not Lucene's). Ingest: one pass in batches of 64 that encodes a batch and
bulk-writes it into noida-db, timing both, so that encode-only and end-to-end docs/s come from the same run
(the same machine load).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

from common import header
from local_vs_osmem import K, compare, fill
from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.eval.datasets import load_qrels, load_queries
from neurank.index_spec import IndexSpec
from neurank.onnx_models import DenseEncoder, SparseEncoder
from neurank.retrieval import SparseQuery, TextQuery, VectorQuery
from neurank.stores import LocalStore
from neurank.stores.elasticsearch import ElasticsearchStore
from neurank.stores.protocol import EncodedDocument

BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()

    qrels = load_qrels(args.dataset, args.split)
    queries = [text for qid, text in load_queries(args.dataset).items() if qid in qrels]
    documents = [doc for doc in read_corpus(args.dataset) if isinstance(doc, Document)][: args.docs]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        sparse = SparseEncoder("splade-tiny", home=home, runtime="torch")
        dense = DenseEncoder("minilm-l6", home=home, runtime="torch")
        passages = [doc.passage for doc in documents]
        remote = ElasticsearchStore(args.url, Settings(elasticsearch_dense_index_options={"type": "hnsw"}))
        remote.drop_index("neural")
        encode_s = write_s = 0.0
        encoded: list[EncodedDocument] = []
        for at in range(0, len(documents), BATCH):
            chunk = passages[at : at + BATCH]
            start = time.perf_counter()
            batch = [EncodedDocument(doc, sparse={"splade": w}, embedding=v) for doc, w, v in zip(
                documents[at : at + BATCH], sparse.encode_documents(chunk), dense.encode_documents(chunk),
                strict=True)]
            encode_s += time.perf_counter() - start
            start = time.perf_counter()
            if not encoded:
                spec = IndexSpec(language="english", bm25_k1=1.2, bm25_b=0.75,
                                 dense_dimension=len(batch[0].embedding))  # type: ignore[arg-type]
                remote.create_index("neural", spec)
            failed = remote.upsert("neural", batch).failed
            write_s += time.perf_counter() - start
            if failed:
                raise SystemExit(f"{failed[0].id}: {failed[0].reason}")
            encoded += batch
        start = time.perf_counter()
        remote.commit("neural")
        write_s += time.perf_counter() - start

        local = LocalStore(Path(tmp) / "local")
        remote.drop_index("slice")
        fill((local, remote), "slice", [EncodedDocument(e.document) for e in encoded])
        tokens = sparse.encode_queries(queries)
        vectors = [np.asarray(v, dtype=np.float32) for v in dense.encode_queries(queries)]
        local.create_index("neural", spec)
        for at in range(0, len(encoded), 256):
            local.upsert("neural", encoded[at : at + 256])
        rows = [
            ("bm25", compare(queries, lambda q: local.search("slice", [TextQuery(q, 100)])[0],
                             lambda q: remote.search("slice", [TextQuery(q, K)])[0])),
            ("sparse (sparse_vector)",
             compare(tokens, lambda t: local.search("neural", [SparseQuery("splade", t, 100)])[0],
                     lambda t: remote.search("neural", [SparseQuery("splade", t, K)])[0])),
            ("dense (knn)", compare(vectors, lambda v: local.search("neural", [VectorQuery(v, 100)])[0],
                                    lambda v: remote.search("neural", [VectorQuery(v, K)])[0])),
        ]
        remote.drop_index("slice")
        remote.drop_index("neural")
    print(header(f"noida-db {version('noida-db')}, elasticsearch-py {version('elasticsearch')}, {len(documents)} "
                 f"documents, {len(queries)} {args.split} queries, top {K}, no warm-up, one run"))
    print()
    print(f"| plan | top-{K} agreement (ties aside) | overlap@{K} | local p50 ms | noida-db p50 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows:
        print(f"| {name} | {row['agreement']:.1%} | {row['overlap']:.1%} | {row['local_ms']:.1f} | "
              f"{row['osmem_ms']:.1f} |")
    print()
    print("| ingest | docs/s | ratio |")
    print("|---|---:|---:|")
    print(f"| encode only | {len(documents) / encode_s:.1f} | 1.00 |")
    print(f"| encode + bulk into noida-db | {len(documents) / (encode_s + write_s):.1f} | "
          f"{encode_s / (encode_s + write_s):.3f} |")
    print(f"\nbulk writing: {write_s:.1f} s of {encode_s + write_s:.1f} s")


if __name__ == "__main__":
    main()
