"""Metrics on a run small enough to score by hand (trec_eval semantics: linear gains, log2 discount)."""

from __future__ import annotations

import math

import pytest

from neurank.errors import ConfigError, InputError
from neurank.eval import evaluate, evaluate_per_query

QRELS = {
    "q1": {"d1": 1, "d2": 2, "d3": 0},
    "q2": {"d5": 1, "d6": 1},
    "q3": {"d7": 1},
}
NOISE = {f"n{i:03d}": 50.0 - i * 0.1 for i in range(1, 100)}
"""99 non-relevant documents scoring between 49.9 and 40.1."""
RUN = {
    # ranks: d3 (grade 0), d1 (1), d9 (unjudged), d2 (2)
    "q1": {"d3": 3.0, "d1": 2.0, "d9": 1.5, "d2": 1.0},
    # ranks: n001..n004, d5 at rank 5, n005..n099 at ranks 6..100, d6 at rank 101
    "q2": {**NOISE, "d5": 49.55, "d6": 1.0},
    # q3 is judged but missing from the run; qx is in the run but not judged
    "qx": {"d7": 1.0},
}

# q1: DCG@10 = 1/log2(3) + 2/log2(5); ideal 2/log2(2) + 1/log2(3); RR = 1/2 (d1 at rank 2); R@100 = 2/2
Q1_NDCG = (1 / math.log2(3) + 2 / math.log2(5)) / (2 + 1 / math.log2(3))
# q2: DCG@10 = 1/log2(6); ideal 1/log2(2) + 1/log2(3); RR = 1/5; R@100 = 1/2 (d6 is at rank 101)
Q2_NDCG = (1 / math.log2(6)) / (1 + 1 / math.log2(3))


def test_per_query_values_by_hand() -> None:
    per_query = evaluate_per_query(QRELS, RUN)
    assert per_query["ndcg@10"] == pytest.approx({"q1": Q1_NDCG, "q2": Q2_NDCG, "q3": 0.0})
    assert per_query["recall@100"] == pytest.approx({"q1": 1.0, "q2": 0.5, "q3": 0.0})
    assert per_query["mrr@10"] == pytest.approx({"q1": 0.5, "q2": 0.2, "q3": 0.0})


def test_means_count_every_judged_query() -> None:
    # q3, missing from the run, counts as 0 in each mean over the 3 judged queries (trec_eval -c)
    assert evaluate(QRELS, RUN) == pytest.approx({
        "ndcg@10": (Q1_NDCG + Q2_NDCG + 0.0) / 3,
        "recall@100": (1.0 + 0.5 + 0.0) / 3,
        "mrr@10": (0.5 + 0.2 + 0.0) / 3,
    })


def test_a_query_with_an_empty_ranking_counts_as_zero() -> None:
    assert evaluate({"q3": {"d7": 1}}, {"q3": {}}) == {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}


def test_ties_are_broken_by_document_id_for_every_measure() -> None:
    # dA and dB tie; ascending id puts dA (not relevant) first, so dB is at rank 2 for both measures
    scores = evaluate({"q": {"dB": 1}}, {"q": {"dB": 1.0, "dA": 1.0}}, ("nDCG@10", "RR@10"))
    assert scores == pytest.approx({"ndcg@10": 1 / math.log2(3), "mrr@10": 0.5})


def test_other_measures_keep_their_ir_measures_names_lower_cased() -> None:
    # q1 P@5: 2 relevant in the top 4 of 5 slots → 2/5
    scores = evaluate({"q1": QRELS["q1"]}, {"q1": RUN["q1"]}, ("P@5", "nDCG"))
    assert set(scores) == {"precision@5", "ndcg"}
    assert scores["precision@5"] == pytest.approx(0.4)


def test_an_unknown_measure_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown measure 'Foo@10'"):
        evaluate(QRELS, RUN, ("Foo@10",))


def test_empty_qrels_are_refused() -> None:
    with pytest.raises(InputError, match="judge no query"):
        evaluate({}, RUN)
