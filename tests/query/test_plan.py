"""A plan is refused when it is built, with OpenSearch's own rules (docs/SCORING.md §5)."""

from __future__ import annotations

import pytest

from neurank.errors import PlanError
from neurank.query.plan import CASCADE_RERANK_DEPTH, Mode, RetrievalPlan, Stage, stage_set
from neurank.retrieval import MAX_SUB_QUERIES, Fusion, Fuzzy


def test_at_most_five_sub_queries() -> None:
    assert len(RetrievalPlan(stages=(Stage("bm25"),) * MAX_SUB_QUERIES).stages) == 5
    with pytest.raises(PlanError, match="at most 5 sub-queries"):
        RetrievalPlan(stages=(Stage("bm25"),) * 6)


def test_a_plan_needs_a_stage() -> None:
    with pytest.raises(PlanError, match="at least one stage"):
        RetrievalPlan(stages=())


@pytest.mark.parametrize("combination", ["geometric_mean", "harmonic_mean"])
def test_z_score_only_with_arithmetic_mean(combination: str) -> None:
    assert Fusion("z_score", "arithmetic_mean").technique == "z_score"
    with pytest.raises(PlanError, match="z_score normalization only works with arithmetic_mean"):
        Fusion("z_score", combination)  # type: ignore[arg-type]


def test_weights_one_per_sub_query() -> None:
    stages = (Stage("bm25"), Stage("dense"), Stage("sparse"))
    with pytest.raises(PlanError, match="2 fusion weights for 3 sub-queries"):
        RetrievalPlan(stages=stages, fusion=Fusion("min_max", weights=(0.5, 0.5)))
    assert RetrievalPlan(stages=stages, fusion=Fusion("min_max", weights=(0.2, 0.3, 0.5))).is_hybrid


@pytest.mark.parametrize("weights", [(1.2, -0.2), (-0.1, 1.1)])
def test_each_weight_in_0_to_1(weights: tuple[float, ...]) -> None:
    with pytest.raises(PlanError, match=r"each weight must be in \[0, 1\]"):
        Fusion("min_max", weights=weights)


@pytest.mark.parametrize("weights", [(0.5, 0.4), (0.6, 0.42)])
def test_weights_sum_to_1_within_0_01(weights: tuple[float, ...]) -> None:
    # 0.9 and 1.02 are more than 0.01 away from 1
    with pytest.raises(PlanError, match="weights must sum to 1"):
        Fusion("min_max", weights=weights)


def test_weights_within_the_tolerance_and_the_edges_of_the_range_pass() -> None:
    # 0.5 + 0.505 = 1.005: within 0.01 of 1; 0 and 1 are valid weights
    assert Fusion("min_max", weights=(0.5, 0.505)).weights == (0.5, 0.505)
    assert Fusion("rrf", weights=(0.0, 1.0)).weights == (0.0, 1.0)


@pytest.mark.parametrize("rank_constant", [1, 60, 10_000])
def test_rank_constant_in_range(rank_constant: int) -> None:
    assert Fusion("rrf", rank_constant=rank_constant).rank_constant == rank_constant


@pytest.mark.parametrize("rank_constant", [0, -1, 10_001])
def test_rank_constant_out_of_range(rank_constant: int) -> None:
    with pytest.raises(PlanError, match=r"rank_constant must be in \[1, 10000\]"):
        Fusion("rrf", rank_constant=rank_constant)


def test_unknown_names_list_the_choices() -> None:
    with pytest.raises(PlanError, match="choose one of rrf, min_max, l2, z_score"):
        Fusion("max")  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="choose one of arithmetic_mean, geometric_mean, harmonic_mean"):
        Fusion("min_max", "median")  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="choose one of bm25, sparse, dense"):
        Stage("colbert")  # type: ignore[arg-type]


def test_sizes_must_be_positive() -> None:
    with pytest.raises(PlanError, match=r"k must be in \[1, 10000\]"):
        Stage("bm25", k=0)
    with pytest.raises(PlanError, match=r"k must be in \[1, 10000\]"):
        RetrievalPlan(stages=(Stage("bm25"),), k=0)
    with pytest.raises(PlanError, match="rerank depth must be >= 0"):
        RetrievalPlan(stages=(Stage("bm25"),), rerank_depth=-1)


def test_for_mode_single_stage() -> None:
    plan = RetrievalPlan.for_mode("dense", k=10, depth=50)
    assert [stage.name for stage in plan.stages] == ["dense"]
    assert plan.stages[0].k == 50
    assert not plan.is_hybrid


def test_for_mode_hybrid_runs_all_three_stages_at_least_k_deep() -> None:
    fusion = Fusion("min_max", weights=(0.2, 0.3, 0.5))
    plan = RetrievalPlan.for_mode("hybrid+rerank", k=200, depth=100, fusion=fusion, rerank_depth=20,
                                  sparse_field="deepct")
    assert [stage.name for stage in plan.stages] == ["bm25", "sparse", "dense"]
    assert {stage.k for stage in plan.stages} == {200}
    assert plan.stages[1].field == "deepct"
    assert (plan.fusion, plan.k, plan.rerank_depth, plan.is_hybrid) == (fusion, 200, 20, True)


def test_for_mode_defaults_to_the_fusion_chosen_on_train() -> None:
    assert RetrievalPlan.for_mode("hybrid").fusion == Fusion("z_score", "arithmetic_mean", None, 60)


def test_for_mode_unknown() -> None:
    with pytest.raises(PlanError, match="unknown mode 'semantic'; choose bm25, sparse, dense, hybrid"):
        RetrievalPlan.for_mode("semantic")


def test_for_mode_checks_weights_against_the_stages() -> None:
    with pytest.raises(PlanError, match="2 fusion weights for 1 sub-queries"):
        RetrievalPlan.for_mode("bm25", fusion=Fusion("min_max", weights=(0.5, 0.5)))


def test_hybrid_is_every_available_stage() -> None:
    assert stage_set("hybrid") == ("bm25", "sparse", "dense")
    assert stage_set("hybrid", available=("bm25", "dense")) == ("bm25", "dense")
    assert stage_set("hybrid", available=("bm25",)) == ("bm25",)


def test_explicit_stage_sets_keep_their_order_and_take_weights() -> None:
    plan = RetrievalPlan.for_mode("dense+bm25", fusion=Fusion("min_max", weights=(0.7, 0.3)))
    assert [stage.name for stage in plan.stages] == ["dense", "bm25"]
    assert plan.is_hybrid and plan.first_stage == "hybrid"
    assert stage_set("bm25+sparse+dense") == ("bm25", "sparse", "dense")


@pytest.mark.parametrize(("mode", "message"), [
    ("bm25+sparse", "needs the sparse stage"),
    ("sparse", "needs the sparse stage"),
    ("bm25+bm25", "names a stage twice"),
    ("bm25+colbert", "unknown mode"),
    ("bm25+", "unknown mode"),
])
def test_a_mode_naming_a_missing_or_unknown_stage_is_refused(mode: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        stage_set(mode, available=("bm25", "dense"))


def test_k_stays_within_the_result_window() -> None:
    with pytest.raises(PlanError, match=r"\[1, 10000\]"):
        RetrievalPlan.for_mode("bm25", k=100_000)
    with pytest.raises(PlanError, match=r"\[1, 10000\]"):
        RetrievalPlan.for_mode("bm25", depth=20_000)


def test_modes_name_their_rescoring_stages() -> None:
    assert Mode.parse("hybrid+colbert+rerank") == Mode("hybrid", colbert=True, rerank=True)
    assert str(Mode.parse("bm25+dense+colbert")) == "bm25+dense+colbert"
    plain = RetrievalPlan.for_mode("hybrid", rerank_depth=30, colbert_depth=50)
    assert (plain.colbert_depth, plain.rerank_depth) == (0, 0), "a stage the mode does not name does not run"
    late = RetrievalPlan.for_mode("bm25+colbert", depth=100)
    assert (late.colbert_depth, late.rerank_depth, late.first_stage) == (100, 0, "bm25")
    cascade = RetrievalPlan.for_mode("hybrid+colbert+rerank", depth=100)
    assert (cascade.colbert_depth, cascade.rerank_depth) == (100, CASCADE_RERANK_DEPTH)
    assert (cascade.first_stage, cascade.rerank_first_stage) == ("hybrid", "hybrid+colbert")
    assert RetrievalPlan.for_mode("hybrid+rerank", depth=100).rerank_depth == 100


@pytest.mark.parametrize("mode", ["hybrid+rerank+colbert", "colbert+bm25", "colbert"])
def test_rescoring_stages_come_last_in_order(mode: str) -> None:
    with pytest.raises(PlanError):
        RetrievalPlan.for_mode(mode)


def test_only_the_bm25_stage_matches_fuzzily() -> None:
    fuzzy = Fuzzy("AUTO", prefix_length=1)
    plan = RetrievalPlan.for_mode("hybrid", fuzzy=fuzzy)
    assert [(stage.name, stage.fuzzy) for stage in plan.stages] == [("bm25", fuzzy), ("sparse", None),
                                                                    ("dense", None)]
    assert RetrievalPlan.for_mode("bm25").stages[0].fuzzy is None
    with pytest.raises(PlanError, match="only the bm25 stage"):
        Stage("dense", fuzzy=fuzzy)
