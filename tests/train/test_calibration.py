"""Choosing the rerank's first-stage weight on dev queries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurank.train.calibration import WEIGHTS, calibrate

CORPUS = {"d1": "relevant", "d2": "close", "d3": "far"}
RUNS = {"q1": [("d1", 3.0), ("d2", 2.5), ("d3", 1.0)]}
QRELS = {"q1": {"d1": 1}}


def test_a_cross_encoder_that_gets_it_right_keeps_the_whole_weight() -> None:
    def right(query: str, passages: Sequence[str]) -> np.ndarray:
        return np.array([1.0 if passage == "relevant" else 0.0 for passage in passages])

    chosen = calibrate(right, {"q1": "q"}, QRELS, RUNS, CORPUS, depth=3)
    assert chosen.first_stage_weight == 0.0 and chosen.by_weight["0.0"] == 1.0
    assert len(chosen.by_weight) == len(WEIGHTS) and chosen.queries == 1 and chosen.depth == 3


def test_a_wrong_cross_encoder_gets_the_smallest_weight_that_repairs_it() -> None:
    # Final score with min_max: d1 = w + 0.001(1-w), d2 = 0.5 + 0.25w, d3 = 0.001w + (1-w):
    # d1 leads only from w > 0.666, so 0.7 is the smallest weight with nDCG@10 = 1.
    def backwards(query: str, passages: Sequence[str]) -> np.ndarray:
        return np.array([{"relevant": 0.0, "close": 1.0, "far": 2.0}[passage] for passage in passages])

    chosen = calibrate(backwards, {"q1": "q"}, QRELS, RUNS, CORPUS, depth=3)
    assert chosen.first_stage_weight == 0.7
    assert chosen.by_weight["0.6"] < 1.0 and chosen.by_weight["0.7"] == 1.0
