"""Learned fusion's features (worked examples), and a model refused by a plan it was not trained for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurank.errors import ModelError, PlanError
from neurank.query.learned_fusion import (
    CONFIG_FILE,
    MODEL_FILE,
    LearnedFusion,
    candidates,
    feature_matrix,
    feature_names,
)
from neurank.query.plan import RetrievalPlan, Stage

NAN = np.nan
BM25 = [("a", 3.0), ("b", 1.0)]
DENSE = [("b", 0.8), ("c", 0.5), ("d", 0.5)]


def test_candidates_are_the_union_by_best_rank_then_id() -> None:
    assert candidates([BM25, DENSE]) == ["a", "b", "c", "d"]
    assert candidates([DENSE, [("z", 9.0), ("c", 1.0)]]) == ["b", "z", "c", "d"]
    assert candidates([[], []]) == []


def test_features_per_list_then_the_default_fusion_and_the_query_length() -> None:
    ids = candidates([BM25, DENSE])
    matrix = feature_matrix(ids, {"bm25": BM25, "dense": DENSE}, "neural ranking")
    assert feature_names(["bm25", "dense"]) == (
        "bm25.raw", "bm25.norm", "bm25.z", "bm25.rank", "bm25.missing", "bm25.top",
        "dense.raw", "dense.norm", "dense.z", "dense.rank", "dense.missing", "dense.top", "fused", "query.words")
    # z_score: bm25 mean 2, sample std √2 → a 1/√2, b −1/√2 → 0.001 (OpenSearch's floor); dense mean 0.6, std
    # √0.03 → b 0.2/√0.03, c and d below the mean → 0.001. fused: the arithmetic mean of the two z-scores, a list
    # that misses the document counting 0 (its weight stays in the divisor).
    z_a, z_b = 1 / np.sqrt(2), 0.2 / np.sqrt(0.03)
    expected = np.array([
        # bm25: raw, min_max (0 → 0.001), z, rank, missing, top | dense: the same | fused, words
        [3.0, 1.0, z_a, 1, 0, 3.0, NAN, NAN, NAN, NAN, 1, 0.8, z_a / 2, 2],
        [1.0, 0.001, 0.001, 2, 0, 3.0, 0.8, 1.0, z_b, 1, 0, 0.8, (0.001 + z_b) / 2, 2],
        [NAN, NAN, NAN, NAN, 1, 3.0, 0.5, 0.001, 0.001, 2, 0, 0.8, 0.0005, 2],
        [NAN, NAN, NAN, NAN, 1, 3.0, 0.5, 0.001, 0.001, 3, 0, 0.8, 0.0005, 2],
    ])
    np.testing.assert_allclose(matrix, expected, rtol=1e-5)


def test_a_list_of_equal_scores_normalizes_to_one_and_an_empty_list_is_all_missing() -> None:
    matrix = feature_matrix(["x", "y"], {"bm25": [("x", 2.0), ("y", 2.0)], "dense": []}, "q")
    # equal scores: min_max 1.0; z_score gives each the list's raw maximum (a score equal to the mean)
    np.testing.assert_array_equal(matrix[:, :6], [[2.0, 1.0, 2.0, 1, 0, 2.0], [2.0, 1.0, 2.0, 2, 0, 2.0]])
    np.testing.assert_array_equal(matrix[:, 6:12], [[NAN, NAN, NAN, NAN, 1, NAN]] * 2)
    np.testing.assert_array_equal(matrix[:, 12:], [[1.0, 1], [1.0, 1]])


def test_hits_outside_the_candidates_still_count_in_their_list() -> None:
    """A rescoring list may hold ids the model does not rank (a store's extra hit): they shape the list's
    normalizations and best score, and get no row."""
    matrix = feature_matrix(["b"], {"bm25": BM25}, "q")
    np.testing.assert_allclose(matrix[0, :6], [1.0, 0.001, 0.001, 2, 0, 3.0])


def test_a_plan_is_refused_when_its_stages_or_depth_differ_from_the_model(tmp_path: Path) -> None:
    model = LearnedFusion(tmp_path, ("bm25", "dense"), depth=100)
    assert RetrievalPlan((Stage("bm25"), Stage("dense")), fusion=model).fusion is model
    with pytest.raises(PlanError, match="trained on bm25\\+dense; this plan runs bm25\\+sparse\\+dense: it adds the "
                                        "sparse stage"):
        RetrievalPlan((Stage("bm25"), Stage("sparse"), Stage("dense")), fusion=model)
    with pytest.raises(PlanError, match="it lacks the dense stage"):
        RetrievalPlan((Stage("bm25"),), fusion=model)
    with pytest.raises(PlanError, match="it lacks the dense stage and adds the rerank stage"):
        RetrievalPlan((Stage("bm25"),), fusion=model, rerank_depth=10)
    with pytest.raises(PlanError, match="orders them differently"):
        RetrievalPlan((Stage("dense"), Stage("bm25")), fusion=model)
    with pytest.raises(PlanError, match="top 100 hits of each stage; this plan takes 30: search with --depth 100"):
        RetrievalPlan((Stage("bm25", k=30), Stage("dense", k=30)), fusion=model)
    assert RetrievalPlan.for_mode("bm25+dense", fusion=model).scored_lists == ("bm25", "dense")


def test_loading_names_the_missing_file_or_the_bad_field(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=f"no {CONFIG_FILE}"):
        LearnedFusion.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"lists": ["bm25"], "depth": 100}))
    with pytest.raises(ModelError, match=f"{MODEL_FILE} is missing"):
        LearnedFusion.load(tmp_path)
    (tmp_path / MODEL_FILE).write_text("not a model\n")
    with pytest.raises(ModelError, match=f"{CONFIG_FILE}: not a learned fusion config .*'fingerprints'"):
        LearnedFusion.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"lists": ["bm25"], "depth": 100, "fingerprints": {},
                                                    "features": ["bm25.raw"]}))
    with pytest.raises(ModelError, match="field 'features' does not match the lists"):
        LearnedFusion.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"lists": ["bm25"], "depth": 100, "fingerprints": {},
                                                    "features": list(feature_names(["bm25"]))}))
    loaded = LearnedFusion.load(tmp_path)
    with pytest.raises(ModelError, match="LightGBM cannot read this model"):
        loaded.scores(np.zeros((1, 4)))
