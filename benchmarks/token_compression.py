"""What each local-store compression of token vectors costs and keeps (SCORING.md §7).

    python benchmarks/token_compression.py [--docs 1000] [--queries 50] [--dim 128] [--candidates 100]

For float32 (the reference, computed with `scoring.maxsim` on the vectors as encoded) and each
`IndexSpec.token_compression`, through a real LocalStore: bytes per document (records only), agreement of the
MaxSim ranking of `--candidates` candidates with float32's (overlap@10, the share of queries with the same top 1,
and Kendall's tau over all candidates), and the median time of one `LateInteractionQuery` over the candidates
(decoding their records included; float32: `scoring.maxsim` on ready arrays).

The vectors are random but shaped like ColBERT's: tokens drawn from a Zipf-distributed vocabulary of
prototype vectors that share a common direction (late-interaction token vectors are far from isotropic), plus
per-occurrence noise, L2-normalized; 40 to 180 tokens per document. A query takes a few tokens from one
document of its candidates, a few others from the vocabulary, and fills up to 32 rows with `[MASK]`-like rows
near the query's mean, as ColBERT's query augmentation does.

    python benchmarks/token_compression.py --model DIR --dataset ../shared/data/scifact [--split test]

measures the same on real vectors: every document of the dataset encoded by the late-interaction model DIR
(ONNX Runtime int8 unless NEURANK_RUNTIME / NEURANK_INT8 say otherwise), each judged query's candidates are its
BM25 top `--candidates` from the local store, and a last column gives the nDCG@10 of MaxSim alone over those
candidates — what each form costs in quality, with no first-stage interpolation to hide it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from common import header
from neurank.config import Settings
from neurank.documents import Document, read_corpus
from neurank.eval.datasets import BeirDataset, Qrels
from neurank.eval.metrics import evaluate
from neurank.index_spec import TOKEN_COMPRESSIONS, IndexSpec, TokenCompression
from neurank.onnx_models.bundle import EncoderBundle
from neurank.retrieval import LateInteractionQuery, TextQuery
from neurank.stores import LocalStore, scoring
from neurank.stores.protocol import EncodedDocument
from neurank.stores.tokens import record_size

INDEX = "tokens"
QUERY_LENGTH = 32


def normalized(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


class Corpus:
    """Prototype vocabulary, documents and queries as the module docstring describes."""

    def __init__(self, rng: np.random.Generator, dim: int, vocabulary: int = 5000) -> None:
        self.rng, self.dim = rng, dim
        shared = normalized(rng.standard_normal(dim))
        self.prototypes = normalized(rng.standard_normal((vocabulary, dim)) + 1.5 * shared)
        weights = 1.0 / np.arange(1, vocabulary + 1)
        self.frequency = weights / weights.sum()

    def tokens(self, n: int) -> np.ndarray:
        ids = self.rng.choice(len(self.prototypes), size=n, p=self.frequency)
        return normalized(self.prototypes[ids] + 0.35 * self.rng.standard_normal((n, self.dim)))

    def document(self) -> np.ndarray:
        return self.tokens(int(self.rng.integers(40, 181)))

    def query(self, relevant: np.ndarray) -> np.ndarray:
        taken = relevant[self.rng.choice(len(relevant), size=min(6, len(relevant)), replace=False)]
        words = np.vstack([normalized(taken + 0.3 * self.rng.standard_normal(taken.shape)), self.tokens(4)])
        masks = normalized(words.mean(axis=0) + 0.5 * self.rng.standard_normal((QUERY_LENGTH - len(words), self.dim)))
        return np.vstack([words, masks])


def median_ms(run: Callable[[], object], repeat: int) -> float:
    """Median wall time of `repeat` runs after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


@dataclass
class Workload:
    """Documents with their float32 token vectors, and per query its matrix and the candidates MaxSim orders."""

    documents: list[EncodedDocument]
    trials: dict[str, tuple[np.ndarray, list[str]]]
    qrels: Qrels | None = None

    def vectors(self, doc_id: str) -> np.ndarray:
        return self._by_id[doc_id]

    def __post_init__(self) -> None:
        self._by_id = {doc.document.id: doc.token_vectors for doc in self.documents}


def synthetic(args: argparse.Namespace) -> Workload:
    rng = np.random.default_rng(args.seed)
    corpus = Corpus(rng, args.dim)
    vectors = {f"d{i:05}": corpus.document() for i in range(args.docs)}
    ids = list(vectors)
    trials = {}
    for number in range(args.queries):
        candidates = [ids[i] for i in rng.choice(len(ids), size=args.candidates, replace=False)]
        trials[f"q{number}"] = (corpus.query(vectors[candidates[0]]), candidates)
    return Workload([EncodedDocument(Document(id=doc_id, text="t"), token_vectors=v) for doc_id, v in vectors.items()],
                    trials)


def real(args: argparse.Namespace, folder: Path) -> Workload:
    """The dataset encoded by the model; candidates: each judged query's BM25 top `--candidates`."""
    dataset = BeirDataset.load(args.dataset, args.split)
    documents = [doc for doc in read_corpus(dataset.corpus) if isinstance(doc, Document)]
    settings = Settings(sparse_model="none", dense_model="none", colbert_model=args.model)
    encoders = EncoderBundle.from_settings(settings)
    bm25 = LocalStore(folder / "bm25")
    bm25.create_index(INDEX, IndexSpec())
    encoded = []
    for start in range(0, len(documents), 256):
        batch = encoders.encode(documents[start : start + 256])
        bm25.upsert(INDEX, [EncodedDocument(doc.document) for doc in batch])
        encoded.extend(batch)
        print(f"encoded {len(encoded)}/{len(documents)} documents", file=sys.stderr)
    query_ids = list(dataset.queries)[: args.queries] if args.queries else list(dataset.queries)
    assert encoders.colbert is not None
    matrices = encoders.colbert.encode_queries([dataset.queries[q] for q in query_ids])
    trials = {}
    for query_id, matrix in zip(query_ids, matrices, strict=True):
        hits = bm25.search(INDEX, [TextQuery(dataset.queries[query_id], args.candidates)])[0]
        if hits:
            trials[query_id] = (matrix, [doc_id for doc_id, _ in hits])
    return Workload(encoded, trials, {q: dataset.qrels[q] for q in query_ids})


Row = tuple[str, float, float, float, float, float, float | None]


def measure(workload: Workload, folder: Path, args: argparse.Namespace) -> list[Row]:
    reference = {query_id: dict(zip(candidates, scoring.maxsim(query, [workload.vectors(c) for c in candidates])
                                    .tolist(), strict=True))
                 for query_id, (query, candidates) in workload.trials.items()}
    tokens_per_doc = statistics.mean(len(doc.token_vectors) for doc in workload.documents
                                     if doc.token_vectors is not None)
    query, candidates = next(iter(workload.trials.values()))
    float_ms = median_ms(lambda: scoring.maxsim(query, [workload.vectors(c) for c in candidates]), args.repeat)
    dim = query.shape[1]
    rows: list[Row] = [("float32 (reference)", tokens_per_doc * 4 * dim, 1.0, 1.0, 1.0, float_ms,
                        _ndcg(workload, reference))]
    for compression in TOKEN_COMPRESSIONS:
        rows.append(_compressed(folder / compression, compression, workload, reference, tokens_per_doc, dim, args))
    return rows


def _ndcg(workload: Workload, run: dict[str, dict[str, float]]) -> float | None:
    return None if workload.qrels is None else evaluate(workload.qrels, run, ["nDCG@10"])["ndcg@10"]


def _compressed(
    path: Path, compression: TokenCompression, workload: Workload, reference: dict[str, dict[str, float]],
    tokens_per_doc: float, dim: int, args: argparse.Namespace,
) -> Row:
    store = LocalStore(path)
    store.create_index(INDEX, IndexSpec(colbert_dimension=dim, token_compression=compression))
    for start in range(0, len(workload.documents), 500):
        store.upsert(INDEX, workload.documents[start : start + 500])
    overlap, top1, taus, run = [], [], [], {}
    for query_id, (query, candidates) in workload.trials.items():
        expected = reference[query_id]
        hits = store.search(INDEX, [LateInteractionQuery(query, tuple(candidates), len(candidates))])[0]
        truth = sorted(expected, key=lambda c: -expected[c])
        got = [doc_id for doc_id, _ in hits]
        overlap.append(len(set(got[:10]) & set(truth[:10])) / min(10, len(truth)))
        top1.append(got[0] == truth[0])
        scores = run[query_id] = dict(hits)
        taus.append(kendalltau([expected[c] for c in candidates], [scores[c] for c in candidates]).statistic)
    query, candidates = next(iter(workload.trials.values()))
    late = LateInteractionQuery(query, tuple(candidates), 10)
    milliseconds = median_ms(lambda: store.search(INDEX, [late]), args.repeat)
    size = tokens_per_doc * record_size(compression, dim)
    return (compression, size, statistics.mean(overlap), statistics.mean(top1), float(np.nanmean(taus)),
            milliseconds, _ndcg(workload, run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="synthetic documents")
    parser.add_argument("--queries", type=int, default=50, help="queries (with --dataset, 0: every judged query)")
    parser.add_argument("--dim", type=int, default=128, help="synthetic vectors' dimension")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per form (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="late-interaction model folder: real vectors instead of synthetic ones")
    parser.add_argument("--dataset", type=Path, help="BEIR folder (with --model)")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    if bool(args.model) != bool(args.dataset):
        parser.error("--model and --dataset go together")
    with tempfile.TemporaryDirectory() as folder:
        workload = real(args, Path(folder)) if args.model else synthetic(args)
        rows = measure(workload, Path(folder), args)
    source = (f"{args.model} on {args.dataset} ({args.split}), {len(workload.documents)} documents, "
              f"{len(workload.trials)} queries, candidates: BM25 top {args.candidates}" if args.model else
              f"synthetic: {args.docs} documents, {args.queries} queries of {QUERY_LENGTH} rows, dim {args.dim}, "
              f"{args.candidates} candidates, seed {args.seed}")
    print(header(f"{source}; timings: median of {args.repeat} runs after a warm-up, one thread"))
    print()
    ndcg = " nDCG@10 (MaxSim alone) |" if workload.qrels else ""
    print("| form | bytes / document | overlap@10 with float32 | same top 1 | Kendall tau | ms / "
          f"{args.candidates} candidates |{ndcg}")
    print("|---|---|---|---|---|---|" + ("---|" if ndcg else ""))
    for form, size, overlap, top1, tau, milliseconds, quality in rows:
        extra = f" {quality:.4f} |" if quality is not None else ""
        print(f"| {form} | {size:,.0f} | {overlap:.3f} | {top1:.2f} | {tau:.3f} | {milliseconds:.2f} |{extra}")


if __name__ == "__main__":
    main()
