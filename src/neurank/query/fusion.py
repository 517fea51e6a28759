"""Client-side hybrid fusion with the semantics of OpenSearch's neural-search plugin (docs/SCORING.md §5).

`fuse` does what a `normalization-processor` (min_max, l2, z_score + a mean) or a `score-ranker-processor`
(rrf) does to the sub-query results of a `hybrid` query, so that the local store and `_msearch` fallback rank
exactly as a cluster does. Each sub-query's results are one list, best first, already merged over shards.

Float semantics: neural-search works on Lucene's float scores and combines them in Java `float`, so every
step here is float32, in the same order of operations: float32 products and running sums, `double` only
where the Java code calls `Math.log`/`Math.exp`/`Math.sqrt`, commons-math `DescriptiveStatistics` or
`BigDecimal` (z_score statistics, rrf), cast back to float32 as the Java code does.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from neurank.errors import PlanError
from neurank.retrieval import Combination, Fusion, ScoredIds, Technique

__all__ = [
    "FusedHit",
    "arithmetic_mean",
    "combine",
    "fuse",
    "geometric_mean",
    "harmonic_mean",
    "l2",
    "min_max",
    "normalize",
    "rrf",
    "weighted_sum",
    "z_score",
]

_F32 = np.float32
_MIN_SCORE = _F32(0.001)
"""What min_max and z_score give instead of a normalized 0 (or less), so the document still counts."""
_JAVA_FLOAT_MIN_VALUE = np.finfo(np.float32).smallest_subnormal
"""Java's `Float.MIN_VALUE` (1.4e-45), where neural-search's min_max starts its running maximum."""
_RRF_DECIMALS = 10


@dataclass(frozen=True, slots=True)
class FusedHit:
    """One document after fusion, with what every sub-query made of it (None where it did not return it)."""

    id: str
    score: float
    raw: tuple[float | None, ...]
    normalized: tuple[float | None, ...]
    ranks: tuple[int | None, ...]
    """1-based position in each sub-query's list."""


# -- normalization: one sub-query's scores (best first) → normalized float32 scores -------------------------

def min_max(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """`(s − min)/(max − min)`; max = min → 1.0; an exact 0 → 0.001 (MinMaxScoreNormalizationTechnique).

    As upstream, the maximum starts at Java's `Float.MIN_VALUE`, so a list of zeros gives 0.001, not 1.0.
    """
    s = _as_float32(scores)
    if s.size == 0:
        return s
    low = s.min()
    high = max(_JAVA_FLOAT_MIN_VALUE, s.max())
    if high == low:
        return np.ones_like(s)
    out = (s - low) / (high - low)
    out[out == 0] = _MIN_SCORE
    return out


def l2(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """`s / sqrt(Σ s²)`; a zero norm gives 0 (L2ScoreNormalizationTechnique)."""
    s = _as_float32(scores)
    norm = _F32(math.sqrt(_running_sum(s * s)))
    if norm == 0:
        return np.zeros_like(s)
    return s / norm


def z_score(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """`(s − mean)/std` with the sample std (n − 1) (ZScoreNormalizationTechnique).

    Edge cases as upstream, in this order: a score equal to the (float32) mean gets the sub-query's *raw*
    maximum; a zero std gives the raw minimum; a z-score ≤ 0 gives 0.001. The std is 0 when all scores are
    equal (each is then the mean, so the maximum wins) or differ by subnormal amounts only.
    """
    s = _as_float32(scores)
    if s.size == 0:
        return s
    values = s.astype(np.float64)
    mean64 = _commons_mean(values)
    mean, std = _F32(mean64), _F32(_commons_sample_std(values, mean64))
    if std == 0:
        out = np.full_like(s, values.min())
    else:
        out = (s - mean) / std
        out[out <= 0] = _MIN_SCORE
    out[s == mean] = values.max()
    return out


def rrf(count: int, rank_constant: int = 60) -> np.ndarray:
    """`1/(rank_constant + r)` for r = 1..count, rounded HALF_UP to 10 decimals (RRFNormalizationTechnique).

    The rounding is exact (integers); the rounded decimal then goes to float32 through one float64, which
    for every `rank_constant + r` up to 20,100 gives the correctly rounded float32 that Java's
    `BigDecimal.floatValue` gives.
    """
    scale = 10**_RRF_DECIMALS
    denominators = range(rank_constant + 1, rank_constant + count + 1)
    return np.array([((2 * scale + d) // (2 * d)) / scale for d in denominators], dtype=np.float32)


def normalize(scores: Sequence[float] | np.ndarray, technique: Technique, *, rank_constant: int = 60) -> np.ndarray:
    """Normalize one sub-query's scores (best first) with `technique`."""
    if technique == "rrf":
        return rrf(len(scores), rank_constant)
    return _NORMALIZERS[technique](scores)


# -- combination: a (documents × sub-queries) float32 matrix, 0.0 where a document is missing ---------------

def arithmetic_mean(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`Σ w s / Σ w` over sub-queries with s ≥ 0: a missing sub-query (0.0) keeps its weight in the divisor."""
    counted = scores >= 0
    total = _row_sums(np.where(counted, scores * weights, 0))
    weight_sum = _row_sums(np.where(counted, weights, 0))
    return _divide_or_zero(total, weight_sum)


def geometric_mean(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`exp(Σ w ln s / Σ w)` over sub-queries with s > 0 (ln is taken in double, as `Math.log`)."""
    counted = scores > 0
    logs = np.log(np.where(counted, scores, 1).astype(np.float64)) * weights.astype(np.float64)
    log_sum = _row_sums(np.where(counted, logs, 0))
    weight_sum = _row_sums(np.where(counted, weights, 0))
    mean_log = _divide_or_zero(log_sum, weight_sum)
    return np.where(weight_sum == 0, _F32(0), np.exp(mean_log.astype(np.float64)).astype(np.float32))


def harmonic_mean(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`Σ w / Σ (w / s)` over sub-queries with s > 0."""
    counted = scores > 0
    inverse = np.divide(weights, scores, out=np.zeros_like(scores), where=counted)
    weight_sum = _row_sums(np.where(counted, weights, 0))
    return _divide_or_zero(weight_sum, _row_sums(inverse))


def weighted_sum(scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`Σ w s`, rrf's combination: a sum, not a mean (RRFScoreCombinationTechnique)."""
    return _row_sums(np.where(scores >= 0, scores * weights, 0))


def combine(scores: np.ndarray, weights: np.ndarray, combination: Combination | Literal["rrf"]) -> np.ndarray:
    """Combine normalized scores; `"rrf"` always means the weighted sum, whatever the plan's combination."""
    return _COMBINERS[combination](scores.astype(np.float32), weights.astype(np.float32))


# -- fusion ---------------------------------------------------------------------------------------------------

def fuse(results: Sequence[ScoredIds], fusion: Fusion, limit: int | None = None) -> list[FusedHit]:
    """Fuse sub-query results (each best first) into one ranking, best first.

    A document's rank in a sub-query is its position in that list. A document missing from a sub-query
    counts as 0.0 there (OpenSearch zero-fills the per-document score array). Ties in the fused score are
    broken by document id, ascending, so the order never depends on dict or input order. With `limit`, only
    the best `limit` are returned (every document is still scored: the normalizations see whole lists).
    """
    weights = _weights(fusion, len(results))
    row_of: dict[str, int] = {}
    for hits in results:
        for doc_id, _ in hits:
            row_of.setdefault(doc_id, len(row_of))
    shape = (len(row_of), len(results))
    normalized = np.zeros(shape, dtype=np.float32)
    ranks = np.zeros(shape, dtype=np.int64)
    raw: list[list[float | None]] = [[None] * len(results) for _ in row_of]
    for j, hits in enumerate(results):
        rows = _rows(hits, row_of, j)
        normalized[rows, j] = normalize([score for _, score in hits], fusion.technique,
                                        rank_constant=fusion.rank_constant)
        ranks[rows, j] = np.arange(1, len(hits) + 1)
        for row, (_, score) in zip(rows, hits, strict=True):
            raw[row][j] = score
    combination: Combination | Literal["rrf"] = "rrf" if fusion.technique == "rrf" else fusion.combination
    combined = combine(normalized, weights, combination)
    ids = list(row_of)
    order = np.lexsort((np.array(ids, dtype=str), -combined))[:limit].tolist() if ids else []
    return [
        FusedHit(
            id=ids[row],
            score=float(combined[row]),
            raw=tuple(raw[row]),
            normalized=tuple(float(normalized[row, j]) if ranks[row, j] else None for j in range(len(results))),
            ranks=tuple(int(rank) if rank else None for rank in ranks[row]),
        )
        for row in order
    ]


# -- helpers --------------------------------------------------------------------------------------------------

def _as_float32(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.array(scores, dtype=np.float32)


def _running_sum(values: np.ndarray) -> np.generic:
    """Left-to-right sum, as a Java loop adds (np.sum adds pairwise, which rounds differently)."""
    return np.add.accumulate(values)[-1] if values.size else values.dtype.type(0)


def _commons_mean(values: np.ndarray) -> float:
    """commons-math `Mean`: the plain mean plus the mean residual (a second, corrective pass)."""
    n = values.size
    first = float(_running_sum(values)) / n
    return first + float(_running_sum(values - first)) / n


def _commons_sample_std(values: np.ndarray, mean: float) -> float:
    """commons-math bias-corrected `Variance` (corrected two-pass), square-rooted; 0 for a single value."""
    n = values.size
    if n == 1:
        return 0.0
    deviations = values - mean
    squares, residual = float(_running_sum(deviations * deviations)), float(_running_sum(deviations))
    return math.sqrt((squares - residual * residual / n) / (n - 1))


def _row_sums(terms: np.ndarray) -> np.ndarray:
    """Per-document sum over sub-queries, left to right, stored as float32 after each step like Java's
    `float +=` (a double term, such as a logarithm, is added in double first)."""
    total = np.zeros(terms.shape[0], dtype=np.float32)
    for j in range(terms.shape[1]):
        total = (total + terms[:, j]).astype(np.float32)
    return total


def _divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """The combination techniques' guard: a document with nothing to average scores 0."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _weights(fusion: Fusion, count: int) -> np.ndarray:
    """The plan's weights as Java floats; 1.0 each when none are given."""
    if fusion.weights is None:
        return np.ones(count, dtype=np.float32)
    if len(fusion.weights) != count:
        raise PlanError(f"number of weights [{len(fusion.weights)}] must match number of sub-queries [{count}]")
    return np.array(fusion.weights, dtype=np.float32)


def _rows(hits: ScoredIds, row_of: dict[str, int], index: int) -> np.ndarray:
    """The matrix rows of a sub-query's hits; a document listed twice is a caller's bug, not a tie."""
    counts = Counter(doc_id for doc_id, _ in hits)
    duplicates = sorted(doc_id for doc_id, count in counts.items() if count > 1)
    if duplicates:
        raise ValueError(f"sub-query {index} returned the same document more than once: {duplicates}")
    return np.array([row_of[doc_id] for doc_id, _ in hits], dtype=np.int64)


_NORMALIZERS: dict[str, Callable[[Sequence[float] | np.ndarray], np.ndarray]] = {
    "min_max": min_max,
    "l2": l2,
    "z_score": z_score,
}
_COMBINERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "arithmetic_mean": arithmetic_mean,
    "geometric_mean": geometric_mean,
    "harmonic_mean": harmonic_mean,
    "rrf": weighted_sum,
}
