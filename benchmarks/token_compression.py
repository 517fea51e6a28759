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
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from common import header
from neurank.documents import Document
from neurank.index_spec import TOKEN_COMPRESSIONS, IndexSpec, TokenCompression
from neurank.retrieval import LateInteractionQuery
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


def measure(args: argparse.Namespace) -> list[tuple[str, float, float, float, float, float]]:
    rng = np.random.default_rng(args.seed)
    corpus = Corpus(rng, args.dim)
    vectors = {f"d{i:05}": corpus.document() for i in range(args.docs)}
    ids = list(vectors)
    trials = []
    for _ in range(args.queries):
        candidates = [ids[i] for i in rng.choice(len(ids), size=args.candidates, replace=False)]
        trials.append((corpus.query(vectors[candidates[0]]), candidates))
    reference = [dict(zip(candidates, scoring.maxsim(query, [vectors[c] for c in candidates]).tolist(), strict=True))
                 for query, candidates in trials]
    tokens_per_doc = statistics.mean(len(v) for v in vectors.values())
    query, candidates = trials[0]
    float_ms = median_ms(lambda: scoring.maxsim(query, [vectors[c] for c in candidates]), args.repeat)
    rows = [("float32 (reference)", tokens_per_doc * 4 * args.dim, 1.0, 1.0, 1.0, float_ms)]
    documents = [EncodedDocument(Document(id=doc_id, text="t"), token_vectors=v) for doc_id, v in vectors.items()]
    with tempfile.TemporaryDirectory() as folder:
        for compression in TOKEN_COMPRESSIONS:
            rows.append(_compressed(Path(folder) / compression, compression, documents, trials, reference,
                                    tokens_per_doc, args))
    return rows


def _compressed(
    path: Path, compression: TokenCompression, documents: list[EncodedDocument],
    trials: list[tuple[np.ndarray, list[str]]], reference: list[dict[str, float]], tokens_per_doc: float,
    args: argparse.Namespace,
) -> tuple[str, float, float, float, float, float]:
    store = LocalStore(path)
    store.create_index(INDEX, IndexSpec(colbert_dimension=args.dim, token_compression=compression))
    for start in range(0, len(documents), 500):
        store.upsert(INDEX, documents[start : start + 500])
    overlap, top1, taus = [], [], []
    for (query, candidates), expected in zip(trials, reference, strict=True):
        hits = store.search(INDEX, [LateInteractionQuery(query, tuple(candidates), len(candidates))])[0]
        truth = sorted(expected, key=lambda c: -expected[c])
        got = [doc_id for doc_id, _ in hits]
        overlap.append(len(set(got[:10]) & set(truth[:10])) / 10)
        top1.append(got[0] == truth[0])
        scores = dict(hits)
        taus.append(kendalltau([expected[c] for c in candidates], [scores[c] for c in candidates]).statistic)
    query, candidates = trials[0]
    late = LateInteractionQuery(query, tuple(candidates), 10)
    milliseconds = median_ms(lambda: store.search(INDEX, [late]), args.repeat)
    size = tokens_per_doc * record_size(compression, args.dim)
    return (compression, size, statistics.mean(overlap), statistics.mean(top1), statistics.mean(taus), milliseconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per form (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = measure(args)
    print(header(f"{args.docs} documents, {args.queries} queries of {QUERY_LENGTH} rows, dim {args.dim}, "
                 f"{args.candidates} candidates, seed {args.seed}; timings: median of {args.repeat} runs after a "
                 "warm-up, one thread"))
    print()
    print("| form | bytes / document | overlap@10 with float32 | same top 1 | Kendall tau | ms / "
          f"{args.candidates} candidates |")
    print("|---|---|---|---|---|---|")
    for form, size, overlap, top1, tau, milliseconds in rows:
        print(f"| {form} | {size:,.0f} | {overlap:.3f} | {top1:.2f} | {tau:.3f} | {milliseconds:.2f} |")


if __name__ == "__main__":
    main()
