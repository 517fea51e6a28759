"""SCORING.md worked examples, exactly in float32 (sections 1-4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.stores import reference_scoring as reference

from neurank.index_spec import SpaceType
from neurank.stores import scoring

F32 = np.float32


# -- §1 length norms -------------------------------------------------------------------------------------


def test_small_float_is_exact_up_to_40() -> None:
    lengths = np.arange(41)
    np.testing.assert_array_equal(scoring.byte4_to_int(scoring.int_to_byte4(lengths)), lengths)


@pytest.mark.parametrize(
    ("length", "decoded"), [(41, 40), (45, 44), (47, 46), (63, 60), (100, 96), (1000, 984)]
)
def test_small_float_keeps_four_significant_bits_rounding_down(length: int, decoded: int) -> None:
    assert scoring.byte4_to_int(scoring.int_to_byte4(length)) == decoded


def test_small_float_is_monotonic_over_all_bytes() -> None:
    table = scoring.byte4_to_int(np.arange(256))
    assert (np.diff(table) > 0).all()
    np.testing.assert_array_equal(scoring.int_to_byte4(table), np.arange(256))


# -- §1 BM25 ---------------------------------------------------------------------------------------------


def bm25_by_hand(freq: float, decoded_dl: float, df: int, n: int, sum_dl: int, k1: float, b: float) -> F32:
    """idf·f/(f + k1·(1 − b + b·dl/avgdl)), each step rounded to float32 in Lucene's order."""
    idf = F32(math.log(1 + (n - df + 0.5) / (df + 0.5)))
    avgdl = F32(sum_dl / n)
    norm = F32(k1) * ((F32(1) - F32(b)) + F32(b) * F32(decoded_dl) / avgdl)
    return idf - idf / (F32(1) + F32(freq) * (F32(1) / norm))


def test_bm25_follows_the_formula_with_the_encoded_length() -> None:
    # Three documents of 5, 47 and 10 terms; the term occurs twice in the 47-term one (stored as 46).
    lengths, df, n = np.array([5, 47, 10]), 2, 3
    scores = reference.bm25(
        [1.0, 2.0], lengths[[0, 1]], df, n, scoring.bm25_avgdl(int(lengths.sum()), n), k1=1.2, b=0.75
    )
    expected = [bm25_by_hand(1, 5, df, n, 62, 1.2, 0.75), bm25_by_hand(2, 46, df, n, 62, 1.2, 0.75)]
    assert scores.dtype == np.float32
    assert scores.tolist() == [float(e) for e in expected]
    textbook = math.log(1 + 1.5 / 2.5) * 2 / (2 + 1.2 * (0.25 + 0.75 * 46 / (62 / 3)))
    assert scores[1] == pytest.approx(textbook, rel=1e-6)


def test_legacy_bm25_is_bm25_times_k1_plus_1() -> None:
    args = ([3.0], [12], 7, 100, 9.5)
    legacy = reference.legacy_bm25(*args, k1=1.2, b=0.75)
    plain = reference.bm25(*args, k1=1.2, b=0.75)
    assert legacy[0] == pytest.approx(plain[0] * 2.2, rel=1e-6)
    assert legacy[0] == reference.bm25(*args, k1=1.2, b=0.75, boost=float(F32(1) + F32(1.2)))[0]


def test_should_clauses_add_in_double_then_round_to_float32() -> None:
    docs, totals = scoring.should_sum(np.array([4, 1, 4]), np.array([0.1, 0.2, 0.3], dtype=np.float32))
    assert docs.tolist() == [1, 4]
    assert totals.tolist() == [float(F32(0.2)), float(F32(np.float64(F32(0.1)) + np.float64(F32(0.3))))]



@pytest.mark.parametrize("entries", [10, 5_000])
def test_should_sum_dense_and_sorted_give_the_same_bits(entries: int) -> None:
    """Past a size the sum goes through a dense array instead of a sort: same documents, same float32 totals."""
    rng = np.random.default_rng(entries)
    docs = np.concatenate([np.sort(rng.choice(20_000, entries, replace=False)) for _ in range(3)])
    scores = rng.uniform(0, 9, docs.size).astype(np.float32)
    sorted_docs, sorted_totals = scoring.should_sum(docs, scores)
    dense_docs, dense_totals = scoring.should_sum(docs, scores, size=20_000)
    assert dense_docs.tolist() == sorted_docs.tolist()
    assert dense_totals.tobytes() == sorted_totals.tobytes()

# -- §2 rank_feature ----------------------------------------------------------------------------------------


def test_rank_feature_keeps_eight_mantissa_bits() -> None:
    decoded = scoring.decode_rank_feature([0.3, 77.7, 1.0, 2.5])
    assert decoded.tolist() == [float(F32(0.2998047)), 77.5, 1.0, 2.5]
    assert scoring.rank_feature_freq(1.0) == 0x3F800000 >> 15


def test_rank_feature_refuses_what_is_not_a_positive_normal_float() -> None:
    values = [0.0, -1.0, 1e-39, float("nan"), float("inf"), 1e39, 1.1754944e-38, 0.3]
    assert scoring.rank_feature_invalid(values).tolist() == [True] * 6 + [False, False]


def test_rank_feature_functions() -> None:
    s = scoring.decode_rank_feature([0.3, 77.7])
    assert scoring.linear(s, 2.0).tolist() == [float(F32(2) * F32(0.2998047)), 155.0]
    assert reference.saturation(s, pivot=1.0).tolist() == pytest.approx([0.2998047 / 1.2998047, 77.5 / 78.5])
    assert reference.log(s, scaling_factor=1.0).tolist() == pytest.approx([math.log(1.2998047), math.log(78.5)])
    sigmoid = reference.sigmoid(s, pivot=2.0, exponent=0.5)
    assert sigmoid.tolist() == pytest.approx([v**0.5 / (v**0.5 + 2**0.5) for v in (0.2998047, 77.5)])
    assert all(f.dtype == np.float32 for f in (sigmoid, reference.saturation(s, 1.0), reference.log(s, 1.0)))


def test_default_pivot_is_about_the_geometric_mean() -> None:
    freqs = scoring.rank_feature_freq([1.0, 4.0])
    assert reference.rank_feature_pivot(int(freqs.sum()), 2) == 2.0
    assert reference.rank_feature_pivot(0, 0) == 1.0


# -- §4 knn ---------------------------------------------------------------------------------------------

QUERY = np.array([1, 0.5, 0], dtype=np.float32)


@pytest.mark.parametrize(
    ("space_type", "vector", "expected"),
    [
        ("cosinesimil", [1, 0, 0], 0.9472136),
        ("l2", [1, 0, 0], 0.8),
        ("innerproduct", [2, 1, -1], 3.5),
        ("innerproduct", [-1, 0.2, 0.1], 0.5263158),
    ],
)
def test_knn_score_translations(space_type: SpaceType, vector: list[float], expected: float) -> None:
    scores = scoring.knn_scores(np.array([vector], dtype=np.float32), QUERY, space_type)
    assert scores.dtype == np.float32
    assert scores[0] == F32(expected)


def test_cosine_score_is_never_negative() -> None:
    assert scoring.knn_translate([-1.0, -0.5], "cosinesimil").tolist() == [0.0, 0.25]


def test_unknown_space_type_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="cosinesimil, innerproduct, l2"):
        scoring.knn_translate([1.0], "hamming")  # type: ignore[arg-type]
