"""Choosing the rerank's first-stage weight on dev queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from neurank.eval.datasets import load_qrels
from neurank.query.rerank import CALIBRATION_FILE
from neurank.train.calibration import WEIGHTS, CachedScorer, calibrate, dev_sample, save_calibrations
from neurank.train.config import TrainConfig
from neurank.train.data import training_split

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


def test_a_first_stage_weight_is_saved_beside_the_others(tmp_path: Path) -> None:
    def right(query: str, passages: Sequence[str]) -> np.ndarray:
        return np.array([1.0 if passage == "relevant" else 0.0 for passage in passages])

    bm25 = calibrate(right, {"q1": "q"}, QRELS, RUNS, CORPUS, depth=3, first_stage="bm25")
    hybrid = calibrate(right, {"q1": "q"}, QRELS, RUNS, CORPUS, depth=3, first_stage="hybrid")
    save_calibrations(tmp_path, [bm25])
    save_calibrations(tmp_path, [hybrid])
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert saved == {"normalization": "min_max", "first_stages": {"bm25": asdict(bm25), "hybrid": asdict(hybrid)}}
    # Weights chosen under another normalization do not mix with the new ones.
    z_score = calibrate(right, {"q1": "q"}, QRELS, RUNS, CORPUS, depth=3, normalization="z_score")
    save_calibrations(tmp_path, [z_score])
    assert json.loads((tmp_path / CALIBRATION_FILE).read_text())["first_stages"] == {"bm25": asdict(z_score)}


def test_the_cached_scorer_scores_each_pair_once() -> None:
    asked: list[list[str]] = []

    def length(query: str, passages: Sequence[str]) -> np.ndarray:
        asked.append(list(passages))
        return np.array([float(len(passage)) for passage in passages])

    cached = CachedScorer(length)
    assert cached("q", ["ab", "abc", "ab"]).tolist() == [2.0, 3.0, 2.0]
    assert cached("q", ["abc", "abcd"]).tolist() == [3.0, 4.0]
    assert cached("other", ["ab"]).tolist() == [2.0]
    assert asked == [["ab", "abc"], ["abcd"], ["ab"]]


def test_calibration_scores_the_dev_queries_training_held_out(tiny_beir: Path) -> None:
    # tiny_beir has no dev split: dev is training's seeded carve-out of train, which never trains.
    train, dev = training_split(tiny_beir, TrainConfig(base="minilm-l6"))
    assert dev_sample(tiny_beir) == dev and dev and not set(dev) & set(train)
    assert set(dev) <= set(load_qrels(tiny_beir, "train"))
    test = dev_sample(tiny_beir, split="test", queries=2)
    assert len(test) == 2 and set(test) <= set(load_qrels(tiny_beir, "test"))
