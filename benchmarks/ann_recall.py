"""Recall@100 of the local store's HNSW graph against exact search, on real embeddings.

    python benchmarks/ann_recall.py --dataset ../shared/data/scifact [--ef-search 64 128 256 512]

Every document of the dataset is encoded by the configured dense model (the bundled MiniLM, ONNX int8 unless
NEURANK_RUNTIME / NEURANK_INT8 say otherwise; cached in `--cache` for reruns), and so is every query. Each
vector goes into a LocalStore searched exactly (threshold above the corpus size) and one per `--ef-search`
value searched through the graph (threshold 0, `hnsw_m` and `hnsw_ef_construction` at their defaults). Recall@100
is the share of the exact top 100 the graph returns, averaged over the queries; p50 times one kNN query.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header
from neurank.config import Settings
from neurank.documents import Document, read_jsonl
from neurank.eval.datasets import load_queries
from neurank.index_spec import IndexSpec
from neurank.onnx_models.bundle import EncoderBundle
from neurank.retrieval import VectorQuery
from neurank.stores import LocalStore
from neurank.stores.protocol import EncodedDocument

K = 100


def embeddings(dataset: Path, cache: Path) -> tuple[list[str], np.ndarray, np.ndarray, str]:
    """(document ids, document vectors, query vectors, space type), encoded once and cached."""
    if cache.is_file():
        saved = np.load(cache, allow_pickle=False)
        return saved["ids"].tolist(), saved["documents"], saved["queries"], str(saved["space"])
    dense = EncoderBundle.from_settings(Settings()).dense
    documents = [doc for doc in read_jsonl(dataset / "corpus.jsonl") if isinstance(doc, Document)]
    vectors = dense.encode_documents([doc.passage for doc in documents])
    queries = dense.encode_queries(list(load_queries(dataset).values()))
    ids = [doc.id for doc in documents]
    np.savez(cache, ids=np.array(ids), documents=vectors, queries=queries, space=np.array(dense.space_type))
    return ids, vectors, queries, dense.space_type


def searched(root: Path, spec: IndexSpec, ids: list[str], vectors: np.ndarray, queries: np.ndarray,
             ) -> tuple[list[list[str]], list[float]]:
    store = LocalStore(root)
    store.create_index("ann", spec)
    for start in range(0, len(ids), 1000):
        store.upsert("ann", [EncodedDocument(Document(id=doc_id, text="x"), embedding=vector)
                             for doc_id, vector in zip(ids[start:start + 1000], vectors[start:start + 1000],
                                                       strict=True)])
    store.search("ann", [VectorQuery(queries[0], K)])  # the searcher and graph, built before timing
    hits, timings = [], []
    for query in queries:
        begin = time.perf_counter()
        (found,) = store.search("ann", [VectorQuery(query, K)])
        timings.append((time.perf_counter() - begin) * 1000)
        hits.append([doc_id for doc_id, _ in found])
    return hits, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--cache", type=Path, help="embeddings file (default: /tmp/neurank-ann-DATASET.npz)")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256, 512])
    args = parser.parse_args()
    cache = args.cache or Path(f"/tmp/neurank-ann-{args.dataset.name}.npz")
    ids, vectors, queries, space = embeddings(args.dataset, cache)
    exact_spec = IndexSpec(dense_dimension=vectors.shape[1], space_type=space, knn_approximate_threshold=len(ids))
    print(header(f"{args.dataset.name}: {len(ids)} documents, {len(queries)} queries, {space}, top {K}"))
    print()
    print("| search | hnsw_m | ef_construction | ef_search | recall@100 | p50 (ms) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        exact, timings = searched(Path(root) / "exact", exact_spec, ids, vectors, queries)
        print(f"| exact | | | | 1.0000 | {statistics.median(timings):.2f} |", flush=True)
        for ef in args.ef_search:
            spec = dataclasses.replace(exact_spec, knn_approximate_threshold=0, hnsw_ef_search=ef)
            found, timings = searched(Path(root) / f"ef{ef}", spec, ids, vectors, queries)
            recall = np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(found, exact, strict=True)])
            print(f"| HNSW (faiss) | {spec.hnsw_m} | {spec.hnsw_ef_construction} | {ef} | {recall:.4f} | "
                  f"{statistics.median(timings):.2f} |", flush=True)


if __name__ == "__main__":
    main()
