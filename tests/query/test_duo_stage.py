"""The duo stage: SYM-SUM against a hand-computed example, and `+duo` in modes and plans."""

from __future__ import annotations

import numpy as np
import pytest

from neurank.errors import PlanError
from neurank.query.duo import sym_sum
from neurank.query.plan import DUO_DEPTH, Mode, RetrievalPlan


def test_sym_sum_reads_every_pair_in_both_orders() -> None:
    p = np.array([[0.5, 0.9, 0.6],
                  [0.2, 0.5, 0.7],
                  [0.3, 0.4, 0.5]])
    # s0 = (0.9 + 1 - 0.2) + (0.6 + 1 - 0.3); s1 = (0.2 + 1 - 0.9) + (0.7 + 1 - 0.4);
    # s2 = (0.3 + 1 - 0.6) + (0.4 + 1 - 0.7)
    assert sym_sum(p) == pytest.approx([3.0, 1.6, 1.4])
    assert sym_sum(np.array([[0.5]])) == pytest.approx([0.0])
    with pytest.raises(ValueError, match="square"):
        sym_sum(np.ones((2, 3)))


def test_sym_sum_ignores_the_diagonal_and_totals_k_times_k_minus_1() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((5, 5))
    scores = sym_sum(p)
    assert scores.sum() == pytest.approx(5 * 4)
    np.fill_diagonal(p, 0.99)
    assert sym_sum(p) == pytest.approx(scores)


@pytest.mark.parametrize(("mode", "first", "colbert", "rerank"), [
    ("bm25+duo", "bm25", False, False),
    ("hybrid+rerank+duo", "hybrid", False, True),
    ("bm25+dense+colbert+rerank+duo", "bm25+dense", True, True),
    ("hybrid+colbert+duo", "hybrid", True, False),
])
def test_duo_comes_last_in_a_mode(mode: str, first: str, colbert: bool, rerank: bool) -> None:
    parsed = Mode.parse(mode)
    assert (parsed.first, parsed.colbert, parsed.rerank, parsed.duo) == (first, colbert, rerank, True)
    assert str(parsed) == mode


@pytest.mark.parametrize("mode", ["bm25+duo+rerank", "hybrid+duo+colbert", "duo+bm25", "duo"])
def test_duo_before_another_stage_is_refused(mode: str) -> None:
    with pytest.raises(PlanError, match=r"\+colbert, \+rerank and \+duo come after the first stages"):
        Mode.parse(mode)


def test_plan_depths_of_the_duo_stage() -> None:
    plan = RetrievalPlan.for_mode("bm25+rerank+duo", depth=50)
    assert (plan.rerank_depth, plan.duo_depth) == (50, DUO_DEPTH) and DUO_DEPTH == 10
    assert RetrievalPlan.for_mode("bm25+duo", duo_depth=4).duo_depth == 4
    assert RetrievalPlan.for_mode("bm25+duo").rerank_depth == 0
    assert RetrievalPlan.for_mode("bm25+rerank", duo_depth=4).duo_depth == 0
    with pytest.raises(PlanError, match="duo depth must be >= 0"):
        RetrievalPlan(stages=RetrievalPlan.for_mode("bm25").stages, duo_depth=-1)
