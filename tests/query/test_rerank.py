"""The rerank stage's interpolation of first-stage and cross-encoder scores, and how models carry their weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurank.config import Settings
from neurank.errors import ModelError, PlanError
from neurank.query.plan import RetrievalPlan
from neurank.query.rerank import CALIBRATION_FILE, Reranker, interpolate, load_reranker, trained_length

FIRST_STAGE = [("a", 10.0), ("b", 5.0), ("c", 0.0)]


def test_weight_zero_keeps_the_cross_encoder_scores() -> None:
    logits = np.array([0.0, 1.0, 2.0], dtype=np.float32)
    rescored = interpolate(FIRST_STAGE, logits, 0.0)
    assert rescored.final.tolist() == [0.0, 1.0, 2.0] and rescored.normalized == [None, None, None]


def test_min_max_interpolation_by_hand() -> None:
    # min_max: first stage a=1, b=0.5, c=0 -> 0.001; logits a=0 -> 0.001, b=0.5, c=1.
    rescored = interpolate(FIRST_STAGE, np.array([0.0, 1.0, 2.0], dtype=np.float32), 0.3)
    expected = [0.3 * 1 + 0.7 * 0.001, 0.3 * 0.5 + 0.7 * 0.5, 0.3 * 0.001 + 0.7 * 1]
    assert np.allclose(rescored.final, expected, atol=1e-6)
    assert np.allclose(rescored.normalized, [0.001, 0.5, 1.0], atol=1e-6)
    assert rescored.logits.tolist() == [0.0, 1.0, 2.0]


def test_reranker_rejects_a_weight_outside_zero_to_one() -> None:
    with pytest.raises(PlanError, match=r"first-stage weight .* \[0, 1\)"):
        Reranker(scorer=None, first_stage_weight=1.0)
    with pytest.raises(PlanError, match="unknown rerank normalization"):
        Reranker(scorer=None, normalization="softmax")  # type: ignore[arg-type]


def test_a_model_folder_carries_a_weight_per_first_stage(tmp_path: Path) -> None:
    entries = {"bm25": {"first_stage_weight": 0.1}, "hybrid": {"first_stage_weight": 0.6}}
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"normalization": "z_score", "first_stages": entries}))
    reranker = load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))
    assert reranker is not None and reranker.normalization == "z_score"
    # Each first stage gets its own weight; one never calibrated gets BM25's.
    assert [reranker.weight_for(stage) for stage in ("bm25", "hybrid", "dense")] == [0.1, 0.6, 0.1]
    fixed = load_reranker(Settings(home=tmp_path / "home", rerank_first_stage_weight=0.3), str(tmp_path))
    assert fixed is not None and [fixed.weight_for(stage) for stage in ("bm25", "hybrid")] == [0.3, 0.3]
    assert load_reranker(Settings(home=tmp_path / "home")) is None


def test_a_rerank_weight_follows_the_plan_it_reorders() -> None:
    reranker = Reranker(scorer=None, by_first_stage={"hybrid": 0.5})
    hybrid, bm25 = RetrievalPlan.for_mode("hybrid"), RetrievalPlan.for_mode("bm25")
    assert (hybrid.first_stage, bm25.first_stage) == ("hybrid", "bm25")
    assert (reranker.weight_for(hybrid.first_stage), reranker.weight_for(bm25.first_stage)) == (0.5, 0.0)
    with pytest.raises(PlanError, match=r"first-stage weight .* \[0, 1\), got 1.5"):
        Reranker(scorer=None, by_first_stage={"hybrid": 1.5})


@pytest.mark.parametrize("saved", [{"first_stage_weight": 0.4, "normalization": "min_max"},
                                   {"normalization": "min_max", "first_stages": {"bm25": {"weight": 0.4}}}, [1]])
def test_a_broken_calibration_file_names_itself(saved: object, tmp_path: Path) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(saved))
    with pytest.raises(ModelError, match=f"{CALIBRATION_FILE}: not a rerank calibration"):
        load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))


def test_a_calibration_file_that_is_not_json_names_itself(tmp_path: Path) -> None:
    (tmp_path / CALIBRATION_FILE).write_text("{")
    with pytest.raises(ModelError, match=f"{CALIBRATION_FILE}: not valid JSON"):
        load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))


@pytest.mark.parametrize(("saved", "expected"), [({"model_max_length": 256}, 256),
                                                 ({"model_max_length": 1e30}, 512), ({}, 512), (None, 512)])
def test_the_reranker_reads_the_length_its_model_was_trained_at(saved: dict | None, expected: int,
                                                                tmp_path: Path) -> None:
    if saved is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(saved))
    assert trained_length(str(tmp_path)) == expected
    reranker = load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))
    assert reranker is not None and reranker.scorer.max_length == expected
    fixed = load_reranker(Settings(home=tmp_path / "home", rerank_max_length=64), str(tmp_path))
    assert fixed is not None and fixed.scorer.max_length == 64


@pytest.mark.parametrize(("int8", "rerank_int8", "expected"), [(True, None, True), (True, False, False),
                                                               (False, None, False), (False, True, True)])
def test_the_cross_encoder_precision_can_differ_from_the_encoders(int8: bool, rerank_int8: bool | None,
                                                                  expected: bool, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", runtime="onnx", int8=int8, rerank_int8=rerank_int8)
    reranker = load_reranker(settings, str(tmp_path))
    assert reranker is not None and reranker.scorer.int8 is expected
