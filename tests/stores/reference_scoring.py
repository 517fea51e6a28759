"""Scoring functions of SCORING.md that neurank's stores do not run, kept as oracles for its worked examples.

The local store scores BM25 from precomputed postings and `neural_sparse` with linear feature queries; these
whole-formula versions (BM25 and OpenSearch 1.x/2.x's LegacyBM25, the `rank_feature` saturation / log /
sigmoid functions and the default pivot) check the SCORING.md numbers that the product's pieces build on.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from neurank.stores import scoring

F32 = np.float32


def bm25(
    freq: ArrayLike,
    doc_length: ArrayLike,
    doc_freq: ArrayLike,
    doc_count: int,
    avgdl: float,
    *,
    k1: float,
    b: float,
    boost: float = 1.0,
) -> np.ndarray:
    """SCORING.md §1: Lucene `BM25Similarity` (OpenSearch ≥ 3.0 default) for one term in some documents.

    `doc_length` is the token count after analysis; it goes through the one-byte norm like in Lucene.
    """
    weight = scoring.bm25_weight(scoring.bm25_idf(doc_freq, doc_count), boost)
    norm_inverse = scoring.bm25_norm_inverse(avgdl, k1, b)[scoring.int_to_byte4(doc_length)]
    return scoring.bm25_term_score(weight, freq, norm_inverse)


def legacy_bm25(
    freq: ArrayLike,
    doc_length: ArrayLike,
    doc_freq: ArrayLike,
    doc_count: int,
    avgdl: float,
    *,
    k1: float,
    b: float,
    boost: float = 1.0,
) -> np.ndarray:
    """SCORING.md §1: `LegacyBM25Similarity` (OpenSearch 1.x/2.x default): BM25 with boost × (1 + k1)."""
    legacy_boost = F32(boost) * (F32(1) + F32(k1))
    return bm25(freq, doc_length, doc_freq, doc_count, avgdl, k1=k1, b=b, boost=float(legacy_boost))


def rank_feature_pivot(total_term_freq: int, doc_freq: int) -> np.float32:
    """SCORING.md §2: Lucene `computePivotFeatureValue`, the default saturation pivot (≈ geometric mean).

    `total_term_freq` is the sum of the indexed frequencies (`rank_feature_freq`) of the feature.
    """
    if doc_freq == 0:
        return F32(1)
    average = F32(total_term_freq / doc_freq)
    return F32(scoring.rank_feature_from_freq(np.uint32(int(average)))[()])


def saturation(s: ArrayLike, pivot: float, weight: float = 1.0) -> np.ndarray:
    """SCORING.md §2: `S/(S + pivot)`, computed as Lucene does, `w·(1 − pivot/(S + pivot))` in float32."""
    pivot_ = F32(pivot)
    return F32(weight) * (F32(1) - pivot_ / (np.asarray(s, dtype=np.float32) + pivot_))


def log(s: ArrayLike, scaling_factor: float, weight: float = 1.0) -> np.ndarray:
    """SCORING.md §2: `w·ln(scaling_factor + S)`; the sum is float32, the log and product double."""
    inner = F32(scaling_factor) + np.asarray(s, dtype=np.float32)
    return (np.float64(F32(weight)) * np.log(inner.astype(np.float64))).astype(np.float32)


def sigmoid(s: ArrayLike, pivot: float, exponent: float, weight: float = 1.0) -> np.ndarray:
    """SCORING.md §2: `S^a/(S^a + pivot^a)` as Lucene computes it, `w·(1 − k^a/(S^a + k^a))` in double."""
    a = np.float64(F32(exponent))
    pivot_pa = np.float64(F32(pivot)) ** a
    powered = np.asarray(s, dtype=np.float32).astype(np.float64) ** a
    return (np.float64(F32(weight)) * (1.0 - pivot_pa / (powered + pivot_pa))).astype(np.float32)


def late_interaction_score(query: ArrayLike, document: ArrayLike, space_type: str) -> np.float32:
    """SCORING.md §7: k-NN's `lateInteractionScore(query_vectors, field, _source, space_type)` for one document
    (KNNPainlessScriptUtils at k-NN 4293b0bd): per query row the best float32 similarity (dot product, cosine, or
    the smallest squared distance for l2), summed in double, then n · f(sum / n) with the space's transform."""
    q, d = np.asarray(query, F32), np.asarray(document, F32)
    if space_type == "l2":
        best = [min(float(np.sum((row - doc) ** 2, dtype=F32)) for doc in d) for row in q]
    elif space_type == "cosinesimil":
        best = [max(float(F32(np.dot(row, doc)) / F32(np.sqrt(np.dot(row, row) * np.dot(doc, doc)))) for doc in d)
                for row in q]
    else:
        best = [max(float(np.dot(row, doc)) for doc in d) for row in q]
    n = len(best)
    mean = sum(best) / n
    if space_type == "l2":
        return F32(n / (1 + mean))
    if space_type == "cosinesimil":
        return F32(n * (1 + mean) / 2)
    return F32(n * (mean + 1 if mean >= 0 else 1 / (1 - mean)))
