"""A retrieval plan: which stages run, how many hits each returns, how they fuse, how deep the rerank goes.

Validated when built, with OpenSearch's own rules (neural-search `HybridQueryBuilder`,
`ScoreCombinationUtil`, `RRFProcessorFactory`): at most 5 sub-queries, `z_score` only with
`arithmetic_mean`, weights one per sub-query in [0, 1] summing to 1 ± 0.01, `rank_constant` in [1, 10000].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from neurank.errors import PlanError

StageName = Literal["bm25", "sparse", "dense"]
Technique = Literal["rrf", "min_max", "l2", "z_score"]
Combination = Literal["arithmetic_mean", "geometric_mean", "harmonic_mean"]
STAGE_NAMES: tuple[StageName, ...] = ("bm25", "sparse", "dense")
TECHNIQUES: tuple[Technique, ...] = ("rrf", "min_max", "l2", "z_score")
COMBINATIONS: tuple[Combination, ...] = ("arithmetic_mean", "geometric_mean", "harmonic_mean")
MAX_SUB_QUERIES = 5


@dataclass(frozen=True, slots=True)
class Stage:
    name: StageName
    k: int = 100
    field: str = "splade"
    """For the sparse stage: the `rank_features` field to query (`splade` or `deepct`)."""

    def __post_init__(self) -> None:
        if self.name not in STAGE_NAMES:
            raise PlanError(f"unknown stage {self.name!r}; choose one of {', '.join(STAGE_NAMES)}")
        if self.k <= 0:
            raise PlanError(f"stage {self.name}: k must be positive, got {self.k}")


@dataclass(frozen=True, slots=True)
class Fusion:
    technique: Technique = "rrf"
    combination: Combination = "arithmetic_mean"
    """Ignored by `rrf`, whose combination is always the weighted sum."""
    weights: tuple[float, ...] | None = None
    rank_constant: int = 60

    def __post_init__(self) -> None:
        if self.technique not in TECHNIQUES:
            raise PlanError(f"unknown fusion technique {self.technique!r}; choose one of {', '.join(TECHNIQUES)}")
        if self.combination not in COMBINATIONS:
            raise PlanError(f"unknown combination {self.combination!r}; choose one of {', '.join(COMBINATIONS)}")
        if self.technique == "z_score" and self.combination != "arithmetic_mean":
            raise PlanError("z_score normalization only works with arithmetic_mean combination (as in OpenSearch)")
        if not 1 <= self.rank_constant <= 10_000:
            raise PlanError(f"rank_constant must be in [1, 10000], got {self.rank_constant}")
        if self.weights is not None:
            if any(not 0.0 <= w <= 1.0 for w in self.weights):
                raise PlanError(f"each weight must be in [0, 1], got {list(self.weights)}")
            if not math.isclose(sum(self.weights), 1.0, abs_tol=0.01):
                raise PlanError(f"weights must sum to 1 (± 0.01), got {sum(self.weights):.4f}")


DEFAULT_HYBRID_FUSION = Fusion("z_score", "arithmetic_mean")
"""Chosen on SciFact *train* (benchmarks/fusion_sweep.py, docs/BENCHMARKS.md): nDCG@10 0.746 vs RRF's 0.730."""


@dataclass(frozen=True, slots=True)
class RetrievalPlan:
    stages: tuple[Stage, ...]
    fusion: Fusion = DEFAULT_HYBRID_FUSION
    k: int = 10
    rerank_depth: int = 0
    """How many fused hits the cross-encoder rescores; 0 turns reranking off."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise PlanError("a plan needs at least one stage")
        if len(self.stages) > MAX_SUB_QUERIES:
            raise PlanError(f"at most {MAX_SUB_QUERIES} sub-queries (OpenSearch hybrid limit), got {len(self.stages)}")
        if self.k <= 0:
            raise PlanError(f"k must be positive, got {self.k}")
        if self.rerank_depth < 0:
            raise PlanError(f"rerank depth must be >= 0, got {self.rerank_depth}")
        if self.fusion.weights is not None and len(self.fusion.weights) != len(self.stages):
            raise PlanError(
                f"{len(self.fusion.weights)} weights for {len(self.stages)} sub-queries: give one per sub-query"
            )

    @property
    def is_hybrid(self) -> bool:
        return len(self.stages) > 1

    @property
    def first_stage(self) -> str:
        """What the rerank reorders: `hybrid` for fused sub-queries, else the stage's name (a calibration key)."""
        return "hybrid" if self.is_hybrid else self.stages[0].name

    @classmethod
    def for_mode(cls, mode: str, *, k: int = 10, depth: int = 100, fusion: Fusion | None = None,
                 rerank_depth: int = 0, sparse_field: str = "splade") -> RetrievalPlan:
        """`bm25`, `sparse`, `dense` or `hybrid` (all three fused)."""
        names: tuple[StageName, ...]
        if mode == "hybrid":
            names = STAGE_NAMES
        elif mode in STAGE_NAMES:
            names = (mode,)
        else:
            raise PlanError(f"unknown mode {mode!r}; choose one of bm25, sparse, dense, hybrid")
        stages = tuple(Stage(name, k=max(depth, k), field=sparse_field) for name in names)
        return cls(stages=stages, fusion=fusion or DEFAULT_HYBRID_FUSION, k=k, rerank_depth=rerank_depth)
