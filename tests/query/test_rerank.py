"""The rerank stage's interpolation of first-stage and cross-encoder scores, and how models carry their weight."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurank.config import Settings
from neurank.errors import ModelError, PlanError
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
        Reranker(cross_encoder=None, first_stage_weight=1.0)
    with pytest.raises(PlanError, match="unknown rerank normalization"):
        Reranker(cross_encoder=None, normalization="softmax")  # type: ignore[arg-type]


def test_a_model_folder_carries_its_calibrated_weight(tmp_path: Path) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"first_stage_weight": 0.4, "normalization": "z_score"}))
    reranker = load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))
    assert reranker is not None and (reranker.first_stage_weight, reranker.normalization) == (0.4, "z_score")
    fixed = load_reranker(Settings(home=tmp_path / "home", rerank_first_stage_weight=0.0), str(tmp_path))
    assert fixed is not None and fixed.first_stage_weight == 0.0
    assert load_reranker(Settings(home=tmp_path / "home")) is None


def test_a_broken_calibration_file_names_itself(tmp_path: Path) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"weight": 0.4}))
    with pytest.raises(ModelError, match=CALIBRATION_FILE):
        load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))


@pytest.mark.parametrize(("saved", "expected"), [({"model_max_length": 256}, 256),
                                                 ({"model_max_length": 1e30}, 512), ({}, 512), (None, 512)])
def test_the_reranker_reads_the_length_its_model_was_trained_at(saved: dict | None, expected: int,
                                                                tmp_path: Path) -> None:
    if saved is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(saved))
    assert trained_length(str(tmp_path)) == expected
    reranker = load_reranker(Settings(home=tmp_path / "home"), str(tmp_path))
    assert reranker is not None and reranker.cross_encoder.max_length == expected
    fixed = load_reranker(Settings(home=tmp_path / "home", rerank_max_length=64), str(tmp_path))
    assert fixed is not None and fixed.cross_encoder.max_length == 64
