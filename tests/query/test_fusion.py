"""Worked examples for docs/SCORING.md §5, each computed by hand in the comments beside it.

Values are float32, as in OpenSearch; hand arithmetic is checked to float32 precision (rel 1e-6), and
exactly where the float32 order of operations is the point.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from neurank.errors import PlanError
from neurank.query.fusion import (
    FusedHit,
    arithmetic_mean,
    combine,
    fuse,
    geometric_mean,
    harmonic_mean,
    l2,
    min_max,
    normalize,
    rrf,
    weighted_sum,
    z_score,
)
from neurank.retrieval import Fusion

F32 = np.float32

BM25 = [("a", 4.0), ("b", 2.0), ("c", 1.0)]
DENSE = [("c", 0.9), ("d", 0.5), ("a", 0.1)]
"""Two sub-queries: `b` is missing from DENSE, `d` from BM25."""


def approx(*values: float) -> object:
    return pytest.approx(list(values), rel=1e-6)


def scores_of(hits: list[FusedHit]) -> list[tuple[str, float]]:
    return [(hit.id, hit.score) for hit in hits]


# -- min_max ------------------------------------------------------------------------------------------------

def test_min_max_scales_to_unit_range_and_lifts_the_minimum_to_0_001() -> None:
    # min 1, max 4: (4-1)/3 = 1, (2-1)/3 = 1/3, (1-1)/3 = 0 → 0.001
    assert min_max([4.0, 2.0, 1.0]).tolist() == approx(1.0, 1 / 3, 0.001)


def test_min_max_single_value_and_equal_values_give_1() -> None:
    assert min_max([5.0]).tolist() == [1.0]
    assert min_max([3.0, 3.0]).tolist() == [1.0, 1.0]


def test_min_max_all_zero_gives_0_001_because_the_maximum_starts_at_float_min_value() -> None:
    # max(Float.MIN_VALUE, 0) = 1.4e-45 ≠ min 0, so (0-0)/1.4e-45 = 0 → 0.001, not the "max = min" 1.0
    assert min_max([0.0, 0.0]).tolist() == approx(0.001, 0.001)


def test_min_max_outputs_are_positive_at_most_1_with_the_minimum_at_0_001() -> None:
    # only an exact 0 is lifted: a score just above the minimum may normalize below 0.001 (as upstream)
    rng = np.random.default_rng(7)
    for _ in range(200):
        scores = rng.exponential(5.0, size=rng.integers(2, 50))
        out = min_max(scores)
        assert out.dtype == np.float32
        assert np.all((out > 0) & (out <= 1.0))
        assert out[np.argmin(scores)] == F32(0.001)
        assert out[np.argmax(scores)] == 1.0


# -- l2 -----------------------------------------------------------------------------------------------------

def test_l2_divides_by_the_euclidean_norm() -> None:
    # sqrt(3² + 4²) = 5: 3/5, 4/5
    assert l2([3.0, 4.0]).tolist() == approx(0.6, 0.8)


def test_l2_zero_norm_gives_0() -> None:
    assert l2([0.0, 0.0]).tolist() == [0.0, 0.0]


# -- z_score ------------------------------------------------------------------------------------------------

def test_z_score_uses_the_sample_std_and_lifts_non_positive_scores() -> None:
    # [5, 3, 0]: mean 8/3; deviations 7/3, 1/3, -8/3; Σ dev² = (49 + 1 + 64)/9 = 38/3;
    # sample variance (n-1 = 2) = 19/3, std = sqrt(19/3) = 2.5166
    # 5 → (7/3)/2.5166 = 0.92717; 3 → (1/3)/2.5166 = 0.13245; 0 → negative → 0.001
    std = math.sqrt(19 / 3)
    assert z_score([5.0, 3.0, 0.0]).tolist() == approx(7 / 3 / std, 1 / 3 / std, 0.001)


def test_z_score_score_equal_to_mean_gets_the_raw_maximum() -> None:
    # [4, 2, 1, 1]: mean 2, so the 2 becomes the sub-query's raw max, 4 (neural-search's edge case)
    # deviations 2, 0, -1, -1: Σ dev² = 6, variance 6/3 = 2, std √2: 4 → 2/√2 = √2; 1 → negative → 0.001
    assert z_score([4.0, 2.0, 1.0, 1.0]).tolist() == approx(math.sqrt(2), 4.0, 0.001, 0.001)


def test_z_score_single_value_and_equal_values_get_the_raw_maximum() -> None:
    # one value: std 0 and the value is the mean → the raw max (5.0), not a normalized score
    assert z_score([5.0]).tolist() == [5.0]
    # std 0 → raw min, but each score is also the mean, which comes first → raw max (3 = min = max)
    assert z_score([3.0, 3.0, 3.0]).tolist() == [3.0, 3.0, 3.0]


# -- rrf ----------------------------------------------------------------------------------------------------

def test_rrf_gives_reciprocal_ranks_rounded_half_up_to_10_decimals() -> None:
    # 1/61 = 0.016393442622… → 0.0163934426; 1/62 = 0.016129032258… → 0.0161290323;
    # 1/63 = 0.015873015873… → 0.0158730159
    assert rrf(3).tolist() == [F32(0.0163934426), F32(0.0161290323), F32(0.0158730159)]


def test_rrf_rounding_shows_in_float32() -> None:
    # rank 22 with rank_constant 60: 1/82 = 0.01219512195121… → 0.0121951220, one float32 step above 1/82
    assert rrf(22)[-1] == F32(0.012195122)
    assert rrf(22)[-1] != F32(1 / 82)


def test_rrf_rank_constant() -> None:
    # rank_constant 1: 1/2, 1/3 = 0.3333333333
    assert rrf(2, rank_constant=1).tolist() == [0.5, F32(0.3333333333)]
    assert normalize([9.0, 8.0], "rrf", rank_constant=1).tolist() == [0.5, F32(0.3333333333)]


def test_rrf_float32_is_the_correctly_rounded_value_of_the_10_decimal_result() -> None:
    # Java's BigDecimal.floatValue rounds the decimal once; check our float64 → float32 path never differs
    for denominator, value in enumerate(rrf(20_099, rank_constant=1), start=2):
        decimal = Fraction((2 * 10**10 + denominator) // (2 * denominator), 10**10)
        error = abs(Fraction(float(value)) - decimal)
        for neighbour in (np.nextafter(value, F32(0)), np.nextafter(value, F32(1))):
            assert error < abs(Fraction(float(neighbour)) - decimal), denominator


# -- combinations -------------------------------------------------------------------------------------------

ONES = np.ones(2, dtype=np.float32)


def test_arithmetic_mean_counts_a_missing_sub_query_as_zero() -> None:
    # [1, 0]: (1·1 + 1·0)/(1 + 1) = 0.5 — the missing sub-query keeps its weight in the divisor
    assert arithmetic_mean(np.array([[1.0, 0.0]], dtype=np.float32), ONES).tolist() == [0.5]


def test_arithmetic_mean_with_weights() -> None:
    # [1, 0.5] with weights 0.3, 0.7: (0.3·1 + 0.7·0.5)/(0.3 + 0.7) = 0.65
    weights = np.array([0.3, 0.7], dtype=np.float32)
    assert arithmetic_mean(np.array([[1.0, 0.5]], dtype=np.float32), weights).tolist() == approx(0.65)


def test_geometric_mean_skips_zeros() -> None:
    # [0.25, 1]: exp((ln 0.25 + ln 1)/2) = 0.5; [0.25, 0]: the 0 is skipped → exp(ln 0.25 / 1) = 0.25
    scores = np.array([[0.25, 1.0], [0.25, 0.0], [0.0, 0.0]], dtype=np.float32)
    assert geometric_mean(scores, ONES).tolist() == approx(0.5, 0.25, 0.0)


def test_geometric_mean_with_weights() -> None:
    # [0.25, 1] with weights 0.2, 0.8: exp((0.2·ln 0.25 + 0.8·0)/1.0) = 0.25^0.2 = 0.757858
    weights = np.array([0.2, 0.8], dtype=np.float32)
    assert geometric_mean(np.array([[0.25, 1.0]], dtype=np.float32), weights).tolist() == approx(0.25**0.2)


def test_harmonic_mean_skips_zeros() -> None:
    # [0.25, 1]: 2/(1/0.25 + 1/1) = 2/5 = 0.4; [0.5, 0]: 1/(1/0.5) = 0.5; nothing positive → 0
    scores = np.array([[0.25, 1.0], [0.5, 0.0], [0.0, 0.0]], dtype=np.float32)
    assert harmonic_mean(scores, ONES).tolist() == approx(0.4, 0.5, 0.0)


def test_harmonic_mean_with_weights() -> None:
    # [0.25, 1] with weights 0.5, 0.5: (0.5 + 0.5)/(0.5/0.25 + 0.5/1) = 1/2.5 = 0.4
    weights = np.array([0.5, 0.5], dtype=np.float32)
    assert harmonic_mean(np.array([[0.25, 1.0]], dtype=np.float32), weights).tolist() == approx(0.4)


def test_weighted_sum_is_a_sum_not_a_mean() -> None:
    # [0.5, 0.25] with weights 0.4, 0.6: 0.4·0.5 + 0.6·0.25 = 0.35 (no division by Σ w)
    weights = np.array([0.4, 0.6], dtype=np.float32)
    assert weighted_sum(np.array([[0.5, 0.25]], dtype=np.float32), weights).tolist() == approx(0.35)
    assert combine(np.array([[0.5, 0.25]], dtype=np.float32), ONES, "rrf").tolist() == [0.75]


def test_arithmetic_mean_runs_in_float32_in_java_order() -> None:
    # (0.001f·1 + 1·1) / 2 in float32, not in float64
    expected = (F32(0.001) * F32(1) + F32(1) * F32(1)) / (F32(1) + F32(1))
    assert arithmetic_mean(np.array([[0.001, 1.0]], dtype=np.float32), ONES)[0] == expected


# -- fuse: every technique × combination on BM25 + DENSE --------------------------------------------------------
# min_max:  BM25  a (4-1)/3 = 1, b (2-1)/3 = 1/3, c 0 → 0.001
#           DENSE c (.9-.1)/.8 = 1, d (.5-.1)/.8 = 0.5, a 0 → 0.001

def test_fuse_min_max_arithmetic_mean() -> None:
    # a (1 + 0.001)/2 = 0.5005, c (0.001 + 1)/2 = 0.5005 (tie: id order), d (0 + 0.5)/2 = 0.25, b (1/3 + 0)/2
    hits = fuse([BM25, DENSE], Fusion("min_max", "arithmetic_mean"))
    assert [hit.id for hit in hits] == ["a", "c", "d", "b"]
    assert [hit.score for hit in hits] == approx(0.5005, 0.5005, 0.25, 1 / 6)


def test_fuse_min_max_geometric_mean() -> None:
    # d: only DENSE counts → 0.5; b: only BM25 → 1/3; a, c: sqrt(1 · 0.001) = 0.0316228
    hits = fuse([BM25, DENSE], Fusion("min_max", "geometric_mean"))
    assert [hit.id for hit in hits] == ["d", "b", "a", "c"]
    assert [hit.score for hit in hits] == approx(0.5, 1 / 3, math.sqrt(0.001), math.sqrt(0.001))


def test_fuse_min_max_harmonic_mean() -> None:
    # d 0.5; b 1/3; a, c: 2/(1/1 + 1/0.001) = 2/1001 = 0.001998
    hits = fuse([BM25, DENSE], Fusion("min_max", "harmonic_mean"))
    assert [hit.id for hit in hits] == ["d", "b", "a", "c"]
    assert [hit.score for hit in hits] == approx(0.5, 1 / 3, 2 / 1001, 2 / 1001)


def test_fuse_min_max_with_weights() -> None:
    # weights 0.3 (BM25), 0.7 (DENSE), Σ = 1:
    # c 0.3·0.001 + 0.7·1 = 0.7003; d 0.7·0.5 = 0.35; a 0.3·1 + 0.7·0.001 = 0.3007; b 0.3/3 = 0.1
    hits = fuse([BM25, DENSE], Fusion("min_max", "arithmetic_mean", weights=(0.3, 0.7)))
    assert [hit.id for hit in hits] == ["c", "d", "a", "b"]
    assert [hit.score for hit in hits] == approx(0.7003, 0.35, 0.3007, 0.1)


# l2: BM25 norm sqrt(16 + 4 + 1) = √21: a 4/√21, b 2/√21, c 1/√21
#     DENSE norm sqrt(.81 + .25 + .01) = √1.07: c .9/√1.07, d .5/√1.07, a .1/√1.07
R21, R107 = math.sqrt(21), math.sqrt(1.07)


def test_fuse_l2_arithmetic_mean() -> None:
    # c (1/√21 + .9/√1.07)/2 = 0.54414; a (4/√21 + .1/√1.07)/2 = 0.48477; d (.5/√1.07)/2; b (2/√21)/2
    hits = fuse([BM25, DENSE], Fusion("l2", "arithmetic_mean"))
    assert [hit.id for hit in hits] == ["c", "a", "d", "b"]
    assert [hit.score for hit in hits] == approx(
        (1 / R21 + 0.9 / R107) / 2, (4 / R21 + 0.1 / R107) / 2, 0.5 / R107 / 2, 2 / R21 / 2
    )


def test_fuse_l2_geometric_mean() -> None:
    # d .5/√1.07 = 0.48337; b 2/√21 = 0.43644; c sqrt(1/√21 · .9/√1.07); a sqrt(4/√21 · .1/√1.07)
    hits = fuse([BM25, DENSE], Fusion("l2", "geometric_mean"))
    assert [hit.id for hit in hits] == ["d", "b", "c", "a"]
    assert [hit.score for hit in hits] == approx(
        0.5 / R107, 2 / R21, math.sqrt(0.9 / (R21 * R107)), math.sqrt(0.4 / (R21 * R107))
    )


def test_fuse_l2_harmonic_mean() -> None:
    # c 2/(√21/1 + √1.07/.9); a 2/(√21/4 + √1.07/.1)
    hits = fuse([BM25, DENSE], Fusion("l2", "harmonic_mean"))
    assert [hit.id for hit in hits] == ["d", "b", "c", "a"]
    assert [hit.score for hit in hits] == approx(
        0.5 / R107, 2 / R21, 2 / (R21 + R107 / 0.9), 2 / (R21 / 4 + R107 / 0.1)
    )


def test_fuse_z_score_arithmetic_mean() -> None:
    # BM25 [4, 2, 1]: mean 7/3; Σ dev² = (25 + 1 + 16)/9 = 14/3; variance 7/3; std √(7/3) = 1.5275
    #   a (4 - 7/3)/1.5275 = 1.09109; b, c negative → 0.001
    # DENSE [.9, .5, .1]: mean .5 → d gets the raw max .9; std .4; c (.9 - .5)/.4 = 1; a → 0.001
    # a (1.09109 + 0.001)/2 = 0.54605; c (0.001 + 1)/2 = 0.5005; d (0 + 0.9)/2 = 0.45; b (0.001 + 0)/2
    hits = fuse([BM25, DENSE], Fusion("z_score", "arithmetic_mean"))
    assert [hit.id for hit in hits] == ["a", "c", "d", "b"]
    z_a = (4 - 7 / 3) / math.sqrt(7 / 3)
    assert [hit.score for hit in hits] == approx((z_a + 0.001) / 2, 0.5005, 0.45, 0.0005)


@pytest.mark.parametrize("combination", ["arithmetic_mean", "geometric_mean", "harmonic_mean"])
def test_fuse_rrf_sums_reciprocal_ranks_whatever_the_combination(combination: str) -> None:
    # a ranks 1, 3: 0.0163934426 + 0.0158730159 = 0.0322664585; c ranks 3, 1: the same (tie: id order)
    # b rank 2 in BM25 only: 0.0161290323; d rank 2 in DENSE only: the same (tie: id order)
    hits = fuse([BM25, DENSE], Fusion("rrf", combination))  # type: ignore[arg-type]
    assert [hit.id for hit in hits] == ["a", "c", "b", "d"]
    assert [hit.score for hit in hits] == approx(0.0322664585, 0.0322664585, 0.0161290323, 0.0161290323)


def test_fuse_rrf_with_weights_and_rank_constant() -> None:
    # weights 0.4, 0.6, rank_constant 10: a .4/11 + .6/13 = 0.082517; c .4/13 + .6/11 = 0.085315;
    # d .6/12 = 0.05; b .4/12 = 0.033333
    hits = fuse([BM25, DENSE], Fusion("rrf", weights=(0.4, 0.6), rank_constant=10))
    assert [hit.id for hit in hits] == ["c", "a", "d", "b"]
    assert [hit.score for hit in hits] == approx(0.4 / 13 + 0.6 / 11, 0.4 / 11 + 0.6 / 13, 0.05, 0.4 / 12)


# -- fuse: what a hit carries, ties, errors -----------------------------------------------------------------

def test_fused_hits_carry_raw_normalized_and_rank_per_sub_query() -> None:
    hits = {hit.id: hit for hit in fuse([BM25, DENSE], Fusion("min_max"))}
    assert hits["b"].raw == (2.0, None)
    assert hits["b"].ranks == (2, None)
    assert hits["b"].normalized == (float(F32(1) / F32(3)), None)
    assert hits["a"].raw == (4.0, 0.1)
    assert hits["a"].ranks == (1, 3)
    assert hits["a"].normalized == (1.0, float(F32(0.001)))


def test_ties_are_broken_by_id_whatever_the_input_order() -> None:
    for results in ([[("b", 1.0)], [("a", 1.0)]], [[("a", 1.0)], [("b", 1.0)]]):
        assert [hit.id for hit in fuse(results, Fusion("rrf"))] == ["a", "b"]


def test_a_single_sub_query_keeps_its_order() -> None:
    # one sub-query, min_max + arithmetic mean: the normalized scores themselves
    assert scores_of(fuse([BM25], Fusion("min_max"))) == [("a", 1.0), ("b", float(F32(1 / 3))),
                                                         ("c", float(F32(0.001)))]


def test_empty_results_fuse_to_nothing() -> None:
    assert fuse([], Fusion()) == []
    assert fuse([[], []], Fusion("min_max")) == []


def test_weights_must_match_the_number_of_sub_queries() -> None:
    with pytest.raises(PlanError, match=r"number of weights \[2\] must match number of sub-queries \[3\]"):
        fuse([BM25, DENSE, BM25], Fusion("min_max", weights=(0.5, 0.5)))


def test_a_document_twice_in_one_sub_query_is_refused() -> None:
    with pytest.raises(ValueError, match="sub-query 1 returned the same document more than once"):
        fuse([BM25, [("x", 1.0), ("x", 0.5)]], Fusion())
