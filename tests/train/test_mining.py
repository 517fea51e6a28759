"""Hard-negative mining on a toy run: false-negative guards, ranges, margin, count and seeded sampling."""

from __future__ import annotations

import pytest

from neurank.errors import ConfigError
from neurank.train import mine_hard_negatives

# Scores are exact binary fractions so that the margin boundary is exact.
RUN = {
    "q1": [("d1", 1.0), ("d2", 0.875), ("d3", 0.75), ("d4", 0.625), ("d5", 0.5), ("d6", 0.375), ("d7", 0.25)],
    "q2": [("d1", 0.9), ("d2", 0.8)],
    "q4": [("d1", 0.5), ("d2", 0.25)],
}
QRELS = {
    "q1": {"d2": 1, "d4": 0, "d9": 2},  # d4 is a judged negative; positive d9 is not in the run
    "q2": {"d1": 0},  # no positive: skipped
    "q3": {"d1": 1},  # not in the run: skipped
    "q4": {"d1": 1, "d2": 2},  # every candidate is a positive: no negatives
}


def test_never_a_positive_but_judged_negatives_are_kept() -> None:
    mined = mine_hard_negatives(RUN, QRELS, n_negatives=10)
    assert mined == {"q1": ["d1", "d3", "d4", "d5", "d6", "d7"]}


def test_n_negatives_keeps_the_best_ranked() -> None:
    assert mine_hard_negatives(RUN, QRELS, n_negatives=2) == {"q1": ["d1", "d3"]}


def test_range_counts_ranks_of_the_run() -> None:
    # Ranks 2..4 are d3, d4, d5; rank 0 (d1) is skipped as a possible unjudged positive.
    mined = mine_hard_negatives(RUN, QRELS, n_negatives=10, range_min=2, range_max=5)
    assert mined == {"q1": ["d3", "d4", "d5"]}
    # Ranks 1..2 are d2 (a positive) and d3.
    assert mine_hard_negatives(RUN, QRELS, n_negatives=10, range_min=1, range_max=3) == {"q1": ["d3"]}


def test_margin_below_the_lowest_positive_in_the_run() -> None:
    # The only positive in the run is d2 at 0.875; 0.875 - 0.25 = 0.625 is the highest score allowed.
    mined = mine_hard_negatives(RUN, QRELS, n_negatives=10, margin=0.25)
    assert mined == {"q1": ["d4", "d5", "d6", "d7"]}
    # Margin 0 keeps everything scoring no higher than the positive.
    assert mine_hard_negatives(RUN, QRELS, n_negatives=10, margin=0.0) == {"q1": ["d3", "d4", "d5", "d6", "d7"]}


def test_margin_uses_the_weakest_of_several_positives() -> None:
    qrels = {"q1": {"d2": 1, "d5": 1}}
    # Positives d2 (0.875) and d5 (0.5): the ceiling is 0.5 - 0.125 = 0.375.
    mined = mine_hard_negatives(RUN, qrels, n_negatives=10, margin=0.125)
    assert mined == {"q1": ["d6", "d7"]}


def test_margin_without_a_positive_in_the_run_filters_nothing() -> None:
    qrels = {"q1": {"d9": 1}}
    assert mine_hard_negatives(RUN, qrels, n_negatives=3, margin=0.5) == {"q1": ["d1", "d2", "d3"]}


def test_a_repeated_document_keeps_its_first_rank() -> None:
    run = {"q1": [("d1", 1.0), ("d3", 0.75), ("d1", 0.5), ("d4", 0.25)]}
    assert mine_hard_negatives(run, {"q1": {"d9": 1}}, n_negatives=10) == {"q1": ["d1", "d3", "d4"]}


LONG_RUN = {"q1": [(f"d{rank}", 1.0 - rank / 64) for rank in range(50)], "q2": [("x", 1.0), ("y", 0.5)]}
LONG_QRELS = {"q1": {"d3": 1, "d10": 1}, "q2": {"y": 1}}


def mine_random(seed: int, run: dict = LONG_RUN) -> dict[str, list[str]]:
    return mine_hard_negatives(run, LONG_QRELS, n_negatives=5, range_min=2, range_max=40, sampling="random", seed=seed)


def test_random_sampling_respects_every_filter_and_rank_order() -> None:
    negatives = mine_random(seed=0)["q1"]
    ranks = [int(docid[1:]) for docid in negatives]
    assert len(negatives) == 5
    assert ranks == sorted(set(ranks))
    assert all(2 <= rank < 40 for rank in ranks)
    assert not {"d3", "d10"} & set(negatives)


def test_random_sampling_is_deterministic_per_seed_and_query() -> None:
    assert mine_random(seed=0) == mine_random(seed=0)
    assert mine_random(seed=0)["q1"] != mine_random(seed=1)["q1"]
    alone = mine_random(seed=0, run={"q1": LONG_RUN["q1"]})
    assert alone["q1"] == mine_random(seed=0)["q1"]


def test_random_sampling_with_few_candidates_takes_them_all() -> None:
    mined = mine_hard_negatives(RUN, QRELS, n_negatives=10, range_min=3, range_max=6, sampling="random")
    assert mined == {"q1": ["d4", "d5", "d6"]}


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"n_negatives": 0}, "n_negatives"),
        ({"n_negatives": 1, "range_min": 5, "range_max": 5}, "range_min"),
        ({"n_negatives": 1, "range_min": -1}, "range_min"),
        ({"n_negatives": 1, "sampling": "hardest"}, "top, random"),
        ({"n_negatives": 1, "margin": -0.1}, "margin"),
    ],
)
def test_bad_knobs_are_config_errors(knobs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mine_hard_negatives(RUN, QRELS, **knobs)
