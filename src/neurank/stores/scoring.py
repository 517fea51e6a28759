"""Pure scoring functions that reproduce OpenSearch/Lucene to float32 (docs/SCORING.md sections 1-4).

Every function takes and returns numpy arrays and does its arithmetic in the precision and order Lucene
uses, so that the local store and a cluster give the same scores, not merely the same ranking:

- section 1: SmallFloat length norms, BM25 (`bm25`, `legacy_bm25`) and the SHOULD-clause sum;
- section 2: `rank_feature` quantization and the saturation / log / sigmoid / linear functions;
- section 3: `neural_sparse` is `linear` per token, summed like any SHOULD clauses;
- section 4: knn score translation per `space_type`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from neurank.index_spec import SPACE_TYPES, SpaceType

F32 = np.float32
FLOAT_MIN_NORMAL = F32(np.finfo(np.float32).tiny)
"""Java's Float.MIN_NORMAL: the smallest value a `rank_feature` accepts."""

_SMALLFLOAT_FREE_VALUES = 24
"""SmallFloat.intToByte4 stores 0..23 as themselves, then 4 significant bits (255 - longToInt4(MAX_INT))."""


# -- section 1: length norms -------------------------------------------------------------------------------


def _bit_length(values: np.ndarray) -> np.ndarray:
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def int_to_byte4(lengths: ArrayLike) -> np.ndarray:
    """SCORING.md §1: Lucene `SmallFloat.intToByte4`, the one-byte field-length norm (exact up to 40)."""
    values = np.asarray(lengths, dtype=np.int64)
    if (values < 0).any():
        raise ValueError("field lengths must be >= 0")
    rest = np.maximum(values - _SMALLFLOAT_FREE_VALUES, 0)
    shift = np.maximum(_bit_length(rest) - 4, 0)
    encoded = np.where(rest < 8, rest, ((rest >> shift) & 0x07) | ((shift + 1) << 3))
    codes = np.where(values < _SMALLFLOAT_FREE_VALUES, values, _SMALLFLOAT_FREE_VALUES + encoded)
    return codes.astype(np.uint8)


def byte4_to_int(codes: ArrayLike) -> np.ndarray:
    """SCORING.md §1: Lucene `SmallFloat.byte4ToInt`, the field length a norm byte stands for."""
    values = np.asarray(codes, dtype=np.int64) & 0xFF
    rest = values - _SMALLFLOAT_FREE_VALUES
    bits = rest & 0x07
    shift = (rest >> 3) - 1
    decoded = np.where(shift < 0, bits, (bits | 0x08) << np.maximum(shift, 0))
    return np.where(values < _SMALLFLOAT_FREE_VALUES, values, _SMALLFLOAT_FREE_VALUES + decoded)


LENGTH_TABLE = byte4_to_int(np.arange(256)).astype(np.float32)
"""Norm byte → decoded field length, as Lucene's BM25Similarity caches it."""


# -- section 1: BM25 ---------------------------------------------------------------------------------------


def bm25_idf(doc_freq: ArrayLike, doc_count: int) -> np.ndarray:
    """SCORING.md §1: `ln(1 + (N − n + 0.5)/(n + 0.5))`, computed in double and stored as float32."""
    n = np.asarray(doc_freq, dtype=np.float64)
    return np.log(1.0 + (doc_count - n + 0.5) / (n + 0.5)).astype(np.float32)


def bm25_avgdl(sum_total_term_freq: int, doc_count: int) -> np.float32:
    """SCORING.md §1: `sumTotalTermFreq / N` in double, then float32 (N = documents with the field)."""
    return F32(sum_total_term_freq / doc_count)


def bm25_norm_inverse(avgdl: float, k1: float, b: float) -> np.ndarray:
    """SCORING.md §1: Lucene's per-norm-byte cache `1 / (k1·((1 − b) + b·dl/avgdl))`, float32, 256 entries.

    The operations are done one by one in float32 in Lucene's order so that every rounding matches.
    """
    k1_, b_, avgdl_ = F32(k1), F32(b), F32(avgdl)
    return F32(1) / (k1_ * ((F32(1) - b_) + b_ * LENGTH_TABLE / avgdl_))


def bm25_term_score(weight: ArrayLike, freq: ArrayLike, norm_inverse: ArrayLike) -> np.ndarray:
    """SCORING.md §1: one term's score, Lucene's monotonic rewrite `w − w/(1 + f·(1/norm))` in float32.

    `weight` is boost·idf (float32), `norm_inverse` the cache entry for the document's norm byte.
    """
    w = np.asarray(weight, dtype=np.float32)
    return w - w / (F32(1) + np.asarray(freq, dtype=np.float32) * np.asarray(norm_inverse, dtype=np.float32))


def bm25_weight(idf: ArrayLike, boost: ArrayLike = 1.0) -> np.ndarray:
    """SCORING.md §1: the scorer's weight `boost·idf` in float32 (a query term repeated c times: boost c)."""
    return np.asarray(boost, dtype=np.float32) * np.asarray(idf, dtype=np.float32)


_DENSE_SUM_RATIO = 64
"""`should_sum` sums densely once the entries are at least 1/64 of the documents (measured crossover: a sort of
P entries against two passes over N documents)."""


def should_sum(docs: np.ndarray, scores: np.ndarray, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SCORING.md §1/§3: a BooleanQuery of SHOULD clauses adds its clauses' float32 scores in double.

    `scores[i]` is a clause's score for document `docs[i]`; returns the matching documents (ascending)
    and their float32 totals. With `size` (every doc < size), many entries are summed into a dense array of
    that size instead of sorting them: the same additions in the same order, so the same bits, without the
    sort that dominates a common term's cost.
    """
    weights = np.asarray(scores, dtype=np.float64)
    if size is not None and docs.size * _DENSE_SUM_RATIO >= size:
        totals = np.bincount(docs, weights=weights, minlength=size)
        seen = np.zeros(size, dtype=bool)
        seen[docs] = True
        matched = np.flatnonzero(seen)
        return matched, totals[matched].astype(np.float32)
    matched, inverse = np.unique(docs, return_inverse=True)
    totals = np.bincount(inverse, weights=weights, minlength=matched.size)
    return matched, totals.astype(np.float32)


# -- section 2: rank_feature -------------------------------------------------------------------------------


def rank_feature_invalid(values: ArrayLike) -> np.ndarray:
    """SCORING.md §2: True where OpenSearch refuses the value (not a positive normal float32)."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(values, dtype=np.float64).astype(np.float32)
    return ~np.isfinite(v) | (v < FLOAT_MIN_NORMAL)


def rank_feature_freq(values: ArrayLike) -> np.ndarray:
    """SCORING.md §2: the term frequency a valid feature value is indexed as, `floatToIntBits(v) >>> 15`."""
    return np.asarray(values, dtype=np.float32).view(np.uint32) >> np.uint32(15)


def rank_feature_from_freq(freqs: ArrayLike) -> np.ndarray:
    """SCORING.md §2: `intBitsToFloat(freq << 15)`, the value S that every rank_feature score uses."""
    return (np.asarray(freqs, dtype=np.uint32) << np.uint32(15)).view(np.float32)


def decode_rank_feature(values: ArrayLike) -> np.ndarray:
    """SCORING.md §2: the S an indexed value reads back as (8 explicit mantissa bits: 0.3 → 0.2998047)."""
    return rank_feature_from_freq(rank_feature_freq(values))


def linear(s: ArrayLike, weight: float = 1.0) -> np.ndarray:
    """SCORING.md §2/§3: `w·S` in float32; `neural_sparse` is this per query token with w unquantized."""
    return F32(weight) * np.asarray(s, dtype=np.float32)


# -- section 4: knn ----------------------------------------------------------------------------------------


def knn_translate(raw: ArrayLike, space_type: SpaceType) -> np.ndarray:
    """SCORING.md §4: turn the raw similarity (cosine, dot product) or squared l2 distance into `_score`."""
    r = np.asarray(raw, dtype=np.float32)
    if space_type == "cosinesimil":
        return np.maximum((F32(1) + r) / F32(2), F32(0))
    if space_type == "innerproduct":
        with np.errstate(divide="ignore"):
            return np.where(r < 0, F32(1) / (F32(1) + F32(-1) * r), r + F32(1)).astype(np.float32)
    if space_type == "l2":
        return F32(1) / (F32(1) + r)
    raise ValueError(f"unknown space_type {space_type!r}; choose one of {', '.join(SPACE_TYPES)}")


def squared_norms(vectors: np.ndarray) -> np.ndarray:
    """Each row's float32 sum of squares, the norms `knn_raw` needs for cosine (computed once per index)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    return np.einsum("ij,ij->i", matrix, matrix)


def knn_raw(
    vectors: np.ndarray, query: np.ndarray, space_type: SpaceType, norms: np.ndarray | None = None
) -> np.ndarray:
    """SCORING.md §4: the raw value per row of `vectors` (float32): cosine, dot product or squared l2.

    Cosine divides a float32 dot product by the square root of the double product of float32 squared
    norms, like Lucene's `VectorUtil.cosine`; l2 sums the squared differences (no `|x|²+|y|²−2xy`
    shortcut). Sums go through `einsum`, not BLAS, so they do not depend on BLAS threading.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    if space_type == "l2":
        diff = matrix - q
        return np.einsum("ij,ij->i", diff, diff)
    dot = np.einsum("ij,j->i", matrix, q)
    if space_type == "innerproduct":
        return dot
    if space_type == "cosinesimil":
        rows = (squared_norms(matrix) if norms is None else norms).astype(np.float64)
        query_norm = np.float64(np.einsum("i,i->", q, q))
        return (dot / np.sqrt(rows * query_norm)).astype(np.float32)
    raise ValueError(f"unknown space_type {space_type!r}; choose one of {', '.join(SPACE_TYPES)}")


def knn_scores(
    vectors: np.ndarray, query: np.ndarray, space_type: SpaceType, norms: np.ndarray | None = None
) -> np.ndarray:
    """SCORING.md §4: exact knn `_score` of every row of `vectors` for `query` (`norms`: `squared_norms`)."""
    return knn_translate(knn_raw(vectors, query, space_type, norms), space_type)


def maxsim(query: np.ndarray, documents: Sequence[np.ndarray]) -> np.ndarray:
    """SCORING.md §7: late interaction, Σ over query rows of the max dot product over a document's rows.

    float32 dot products (einsum, BLAS-independent), max per query row, then a float32 sum in query-row order.
    Every document must have at least one row: a document without token vectors has no score, not 0.
    """
    if not documents:
        return np.zeros(0, dtype=np.float32)
    sizes = np.array([len(doc) for doc in documents])
    return maxsim_packed(query, np.concatenate([np.asarray(doc, dtype=np.float32) for doc in documents]), sizes)


def maxsim_packed(query: np.ndarray, rows: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """`maxsim` of documents given as one matrix of their rows, one after another, `sizes[d]` rows each (what a
    store already holds contiguously, scored without splitting and joining it again)."""
    q = np.asarray(query, dtype=np.float32)
    if not sizes.size:
        return np.zeros(0, dtype=np.float32)
    if (sizes == 0).any():
        raise ValueError("maxsim needs at least one token vector per document")
    similarities = np.einsum("qd,nd->qn", q, rows, dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    best = np.maximum.reduceat(similarities, starts, axis=1)
    total = np.zeros(len(sizes), dtype=np.float32)
    for row in best:
        total += row
    return total


def maxsim_alignment(query: np.ndarray, document: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row: the index of the document row it matched best, and that similarity (what MaxSim sums)."""
    similarities = np.einsum("qd,nd->qn", np.asarray(query, np.float32), np.asarray(document, np.float32),
                             dtype=np.float32)
    matched = similarities.argmax(axis=1)
    return matched, similarities[np.arange(len(matched)), matched]


def late_interaction_score(maxsim_sum: float, n_tokens: int) -> np.float32:
    """SCORING.md §7: what k-NN's `lateInteractionScore(..., 'innerproduct')` returns for a MaxSim sum S over
    n query tokens: n · f(S / n) with f(x) = x + 1 for x >= 0, 1 / (1 - x) below (k-NN's innerproduct transform),
    computed in double and returned as float32."""
    mean = float(maxsim_sum) / n_tokens
    return np.float32(n_tokens * (mean + 1 if mean >= 0 else 1 / (1 - mean)))


def late_interaction_maxsim(score: float, n_tokens: int) -> np.float32:
    """The inverse of `late_interaction_score`: the MaxSim sum behind a cluster's score (strictly monotone)."""
    if score >= n_tokens:
        return np.float32(float(score) - n_tokens)
    return np.float32(n_tokens - n_tokens * n_tokens / float(score))
