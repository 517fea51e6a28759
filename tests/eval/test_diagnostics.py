"""Each diagnostic against a value computed by hand on a tiny fixed example."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from neurank.eval.diagnostics import (
    diagnose,
    micro_recall,
    recall_metrics,
    separation_accuracy,
    silhouette,
)


def test_separation_accuracy_counts_ordered_pairs_and_ties_as_half() -> None:
    groups = [(np.array([3.0, 1.0]), np.array([2.0, 1.0])),  # 3>2, 3>1, 1<2, 1=1: 2.5 of 4
              (np.array([0.5]), np.array([0.5, 0.1]))]  # tie, win: 1.5 of 2
    assert separation_accuracy(groups) == pytest.approx(4.0 / 6.0)
    assert separation_accuracy([]) is None
    assert separation_accuracy([(np.array([1.0]), np.array([]))]) is None


def test_silhouette_of_two_cosine_clusters() -> None:
    # Cosine distances: within each cluster 0.2; a1-b1 1.0, a1-b2 1.6, a2-b1 0.4, a2-b2 1.0.
    # s(a1) = s(b2) = (1.3 - 0.2) / 1.3 = 11/13, s(a2) = s(b1) = (0.7 - 0.2) / 0.7 = 5/7.
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    assert silhouette(vectors, ["a", "a", "b", "b"]) == pytest.approx((11 / 13 + 5 / 7) / 2)
    assert silhouette(vectors, ["a", "a", "a", "a"]) is None
    assert silhouette(vectors, ["a", "b", "c", "d"]) is None


def test_micro_and_macro_recall_differ_when_queries_judge_different_numbers_of_documents() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1, "d3": 0}, "q2": {"d4": 2, "d5": 1, "d6": 1, "d7": 1}, "q3": {"d8": 1}}
    run = {"q1": {"d1": 3.0, "d3": 2.0, "d2": 1.0},
           "q2": {"d4": 1.0, "x": 5.0, "d5": 1.0}}  # top 2: x, then d4 before d5 (tie, by id)
    # Top 2 find d1 (of 2 relevant to q1), d4 (of 4 relevant to q2), nothing of q3 (not in the run).
    assert micro_recall(qrels, run, 2) == pytest.approx(2 / 7)
    assert recall_metrics(qrels, run, (2,)) == pytest.approx({"recall@2": (1 / 2 + 1 / 4 + 0) / 3,
                                                              "micro_recall@2": 2 / 7})


def overlap(query: str, passages: Sequence[str]) -> np.ndarray:
    """A real lexical scorer: how many distinct query words a passage holds."""
    words = set(query.split())
    return np.array([len(words & set(passage.split())) for passage in passages], dtype=np.float32)


class BagOfWords:
    """One vector per text: word counts over a fixed vocabulary."""

    vocabulary = ("apple", "banana", "cherry", "kiwi")

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[text.split().count(word) for word in self.vocabulary] for text in texts], float)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_queries(texts)


CORPUS = {"p1": "apple banana", "m1": "apple", "m2": "banana apple", "p2": "kiwi", "m3": "cherry kiwi",
          **{f"z{i}": "zzz" for i in range(1, 6)}}
QUERIES = {"q1": "apple banana", "q2": "cherry kiwi"}
QRELS = {"q1": {"p1": 1, "z1": 0}, "q2": {"p2": 1}}
FIRST_STAGE = {"q1": [("z1", 9.0), ("z2", 8.0), ("m1", 7.0), ("p1", 6.0), ("m2", 5.0)],
               "q2": [("z3", 9.0), ("z4", 8.0), ("m3", 7.0), ("p2", 6.0), ("z5", 5.0)]}


def test_diagnose_on_a_fixed_example() -> None:
    found = diagnose(overlap, QRELS, QUERIES, CORPUS, FIRST_STAGE, embedder=BagOfWords(),
                     run={"q1": {"p1": 1.0, "m1": 2.0}, "q2": {"z1": 3.0}}, cutoffs=(2,), negatives=2, skip=2)
    # Mined after the top 2 ranks: q1 → m1 (1 < 2: right), m2 (2 = 2: half); q2 → m3 (2 > 1: wrong), z5 (right).
    assert found.separation_mined == pytest.approx(2.5 / 4)
    # Random negatives come from the rest of the corpus, where both queries score every document 0.
    assert found.separation_random == 1.0
    # q1 and p1 coincide; q2 = (0,0,1,1) and p2 = (0,0,0,1) are 1 - 1/√2 apart; across clusters, distance 1.
    assert found.silhouette == pytest.approx((1 + 1 + 2 * (1 - (1 - 1 / math.sqrt(2)))) / 4)
    assert found.recall == pytest.approx({"recall@2": 0.5, "micro_recall@2": 0.5})
    assert found.queries == 2 and found.not_applicable == {}


def test_diagnostics_that_do_not_apply_say_why() -> None:
    found = diagnose(overlap, QRELS, QUERIES, CORPUS, FIRST_STAGE, why_no_embeddings="pairs only", negatives=2,
                     skip=2)
    assert found.silhouette is None and found.recall == {}
    assert found.not_applicable == {"silhouette": "pairs only", "recall": "no ranking was given"}
    assert found.separation_mined == pytest.approx(2.5 / 4)
    assert set(found.flat()) == {"separation_mined", "separation_random"}
