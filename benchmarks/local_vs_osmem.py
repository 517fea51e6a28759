"""Do the OpenSearch store (on osmem-server) and the local store rank alike? Top-10 agreement on SciFact.

    python benchmarks/local_vs_osmem.py --dataset ../shared/data/scifact --sparse-docs 1000

BM25 runs over the whole corpus; the sparse plan over the first `--sparse-docs` documents (0: all), encoded
once with splade-tiny on PyTorch. Agreement: the share of test queries whose osmem top 10 is the local top 10
up to the order of equal local scores (`neurank.stores.agreement`); overlap@10: the mean share of common ids.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from osmem_server import OsmemServer

from common import header
from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.eval.datasets import load_qrels, load_queries
from neurank.index_spec import IndexSpec
from neurank.onnx_models import SparseEncoder
from neurank.retrieval import ScoredIds, SparseQuery, TextQuery
from neurank.stores import LocalStore
from neurank.stores.agreement import same_top_k
from neurank.stores.opensearch import OpenSearchStore
from neurank.stores.protocol import EncodedDocument, Store

K = 10
SPEC = IndexSpec(language="english", bm25_k1=1.2, bm25_b=0.75)
"""osmem ignores k1/b; the local store uses what a cluster would read from the index settings."""


def fill(stores: tuple[Store, ...], index: str, documents: list[EncodedDocument]) -> None:
    for store in stores:
        store.create_index(index, SPEC)
        for start in range(0, len(documents), 256):
            result = store.upsert(index, documents[start : start + 256])
            if result.failed:
                raise SystemExit(f"{store.url}: {result.failed[0].id}: {result.failed[0].reason}")


def compare(queries: list[object], local: Callable[[object], ScoredIds],
            osmem: Callable[[object], ScoredIds]) -> dict[str, float]:
    agree, overlap, local_ms, osmem_ms = 0, 0.0, [], []
    for query in queries:
        start = time.perf_counter()
        reference = local(query)
        local_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        got = [doc_id for doc_id, _ in osmem(query)]
        osmem_ms.append((time.perf_counter() - start) * 1000)
        agree += same_top_k(reference, got, K)
        overlap += len(set(got) & {doc_id for doc_id, _ in reference[:K]}) / K
    return {"agreement": agree / len(queries), "overlap": overlap / len(queries),
            "local_ms": statistics.median(local_ms), "osmem_ms": statistics.median(osmem_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--sparse-docs", type=int, default=1000, help="documents encoded for the sparse plan")
    args = parser.parse_args()

    qrels = load_qrels(args.dataset, args.split)
    queries = [text for qid, text in load_queries(args.dataset).items() if qid in qrels]
    documents = [doc for doc in read_corpus(args.dataset) if isinstance(doc, Document)]
    sliced = documents[: args.sparse_docs or len(documents)]
    with tempfile.TemporaryDirectory() as tmp, OsmemServer.start(japanese=False) as server:
        local, osmem = LocalStore(Path(tmp) / "local"), OpenSearchStore(server.url, Settings())
        fill((local, osmem), "bm25", [EncodedDocument(doc) for doc in documents])
        encoder = SparseEncoder("splade-tiny", home=Path(tmp) / "home", runtime="torch")
        weights = encoder.encode_documents([doc.passage for doc in sliced])
        fill((local, osmem), "sparse", [EncodedDocument(doc, sparse={"splade": w}) for doc, w in
                                        zip(sliced, weights, strict=True)])
        tokens = encoder.encode_queries(queries)
        rows = [
            ("bm25", len(documents), compare(queries, lambda q: local.search("bm25", [TextQuery(q, 100)])[0],
                                             lambda q: osmem.search("bm25", [TextQuery(q, K)])[0])),
            ("sparse (rank_feature)", len(sliced),
             compare(tokens, lambda t: local.search("sparse", [SparseQuery("splade", t, 100)])[0],
                     lambda t: osmem.search("sparse", [SparseQuery("splade", t, K)])[0])),
        ]
    print(header(f"osmem-server {version('osmem-server')}, {len(queries)} {args.split} queries, top {K}, "
                 "no warm-up, one run"))
    print()
    print(f"| plan | documents | top-{K} agreement (ties aside) | overlap@{K} | local p50 ms | osmem p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n_docs, row in rows:
        print(f"| {name} | {n_docs:,} | {row['agreement']:.1%} | {row['overlap']:.1%} | {row['local_ms']:.1f} | "
              f"{row['osmem_ms']:.1f} |")


if __name__ == "__main__":
    main()
