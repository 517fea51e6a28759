"""A retrieval plan: which stages run, how many hits each returns, how they fuse, how deep the rerank goes.

Validated when built, with OpenSearch's own rules (neural-search `HybridQueryBuilder`,
`ScoreCombinationUtil`, `RRFProcessorFactory`; see `neurank.retrieval`): at most 5 sub-queries, `z_score` only
with `arithmetic_mean`, weights one per sub-query in [0, 1] summing to 1 ± 0.01, `rank_constant` in [1, 10000],
no more hits than a search's result window.

A mode names the first stages, then the rescoring stages: `FIRST[+colbert][+rerank][+duo]`. FIRST is `bm25`,
`sparse` or `dense` alone; an explicit set joined by `+` (`bm25+dense`, `bm25+sparse+dense`), fused with weights
in the set's order; or `hybrid`, every first stage the index and the configured encoders have (BM25 + sparse +
dense on a full index, BM25 + dense where no sparse model is configured). `+colbert` rescores the top
`colbert_depth` first-stage hits by late interaction (MaxSim); `+rerank` rescores the top `rerank_depth` with
the cross-encoder, after late interaction when both are there (a cascade: the cheap stage narrows, the costly one
orders the few); `+duo` reorders the top `duo_depth` of what came before by pairwise preferences (`query/duo.py`).
Under a learned fusion (`neurank.query.learned_fusion`) every stage's scores are the model's features instead,
and the plan must have exactly the stages and depth the model was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from neurank.errors import PlanError
from neurank.query.learned_fusion import LearnedFusion
from neurank.retrieval import DEFAULT_HYBRID_FUSION, MAX_SUB_QUERIES, Fusion, Fuzzy, check_size

StageName = Literal["bm25", "sparse", "dense"]
STAGE_NAMES: tuple[StageName, ...] = ("bm25", "sparse", "dense")
HYBRID = "hybrid"
COLBERT = "colbert"
RERANK = "rerank"
DUO = "duo"
MODES_HELP = ("bm25, sparse, dense, hybrid (every stage the index has), or a set such as bm25+dense, each "
              "optionally followed by +colbert, +rerank and/or +duo")
PlanFusion = Fusion | LearnedFusion
"""OpenSearch's fusion (rrf, or a normalization and a mean), or a trained model (`neurank.query.learned_fusion`)."""
DUO_DEPTH = 10
"""Hits the pairwise model reorders unless told otherwise: it judges k(k−1) ordered pairs."""
CASCADE_RERANK_DEPTH = 20
"""Hits the cross-encoder rescores after late interaction, unless told otherwise: late interaction has already
ordered the top 100 at a few milliseconds, so the costly model only settles the head."""


@dataclass(frozen=True, slots=True)
class Mode:
    """A parsed mode: the first stages, and which rescoring stages follow them."""

    first: str
    colbert: bool = False
    rerank: bool = False
    duo: bool = False

    @classmethod
    def parse(cls, mode: str) -> Mode:
        parts = [part.strip() for part in mode.split("+")]
        duo = len(parts) > 1 and parts[-1] == DUO
        if duo:
            parts.pop()
        rerank = len(parts) > 1 and parts[-1] == RERANK
        if rerank:
            parts.pop()
        colbert = len(parts) > 1 and parts[-1] == COLBERT
        if colbert:
            parts.pop()
        if COLBERT in parts or RERANK in parts or DUO in parts:
            raise PlanError(f"mode {mode!r}: +colbert, +rerank and +duo come after the first stages, in that order")
        return cls("+".join(parts), colbert, rerank, duo)

    def __str__(self) -> str:
        return "+".join([self.first, *([COLBERT] if self.colbert else []), *([RERANK] if self.rerank else []),
                         *([DUO] if self.duo else [])])


@dataclass(frozen=True, slots=True)
class Stage:
    name: StageName
    k: int = 100
    field: str = "splade"
    """For the sparse stage: the `rank_features` field to query (`splade` or `deepct`)."""
    fuzzy: Fuzzy | None = None
    """For the bm25 stage: match query terms fuzzily (typo tolerance, as `match` with `fuzziness`)."""
    ngram: bool = False
    """For the bm25 stage: also match the character n-grams of the query terms (`content.ngram`)."""

    def __post_init__(self) -> None:
        if self.name not in STAGE_NAMES:
            raise PlanError(f"unknown stage {self.name!r}; choose one of {', '.join(STAGE_NAMES)}")
        check_size(f"stage {self.name}: k", self.k)
        if (self.fuzzy is not None or self.ngram) and self.name != "bm25":
            raise PlanError(f"stage {self.name}: only the bm25 stage matches terms fuzzily or by n-grams")


@dataclass(frozen=True, slots=True)
class RetrievalPlan:
    stages: tuple[Stage, ...]
    fusion: PlanFusion = DEFAULT_HYBRID_FUSION
    k: int = 10
    rerank_depth: int = 0
    """How many fused hits the cross-encoder rescores; 0 turns reranking off."""
    colbert_depth: int = 0
    """How many first-stage hits late interaction rescores (before the cross-encoder); 0 turns it off."""
    duo_depth: int = 0
    """How many hits, after every other stage, the pairwise model reorders; 0 turns it off."""
    spelling: bool = False
    """Correct the query's words the index does not know before any stage runs (`neurank.query.spelling`)."""

    def __post_init__(self) -> None:
        if not self.stages:
            raise PlanError("a plan needs at least one stage")
        if len(self.stages) > MAX_SUB_QUERIES:
            raise PlanError(f"at most {MAX_SUB_QUERIES} sub-queries (OpenSearch hybrid limit), got {len(self.stages)}")
        check_size("k", self.k)
        for name, value in (("rerank depth", self.rerank_depth), ("colbert depth", self.colbert_depth),
                            ("duo depth", self.duo_depth)):
            if value < 0:
                raise PlanError(f"{name} must be >= 0, got {value}")
            if value:
                check_size(f"the {name}", value)
        if isinstance(self.fusion, LearnedFusion):
            self.fusion.check(self.scored_lists, self.stages[0].k)
        else:
            self.fusion.check_sub_queries(len(self.stages))

    @property
    def scored_lists(self) -> tuple[str, ...]:
        """What scores a hit, in order: the first stages, then late interaction and the cross-encoder if they run."""
        return (*(stage.name for stage in self.stages), *((COLBERT,) if self.colbert_depth else ()),
                *((RERANK,) if self.rerank_depth else ()))

    @property
    def depth(self) -> int:
        """How many first-stage hits the rescoring stages and the answer use: the fused list's length."""
        return max(self.k, self.rerank_depth, self.colbert_depth, self.duo_depth)

    @property
    def is_hybrid(self) -> bool:
        return len(self.stages) > 1

    @property
    def first_stage(self) -> str:
        """What late interaction (or the rerank) reorders: `hybrid` for fused sub-queries, else the stage's name
        (a calibration key)."""
        return HYBRID if self.is_hybrid else self.stages[0].name

    @property
    def rerank_first_stage(self) -> str:
        """What the cross-encoder reorders: the first stage, or `<first>+colbert` after late interaction."""
        return f"{self.first_stage}+{COLBERT}" if self.colbert_depth else self.first_stage

    @classmethod
    def for_mode(cls, mode: str, *, available: Sequence[StageName] = STAGE_NAMES, k: int = 10, depth: int = 100,
                 fusion: PlanFusion | None = None, rerank_depth: int | None = None, colbert_depth: int | None = None,
                 sparse_field: str = "splade", duo_depth: int | None = None, fuzzy: Fuzzy | None = None,
                 ngram: bool = False, spelling: bool = False) -> RetrievalPlan:
        """The plan of `mode` (see the module docstring) over the `available` stages, each `max(depth, k)` deep;
        the bm25 stage matches fuzzily with `fuzzy`, and n-grams too with `ngram`; `spelling` corrects the query
        first.

        Late interaction, when the mode names it, rescores `colbert_depth` hits (default `depth`); the
        cross-encoder, when the mode names it, `rerank_depth` (default `depth`, or CASCADE_RERANK_DEPTH after late
        interaction); the pairwise model, when the mode names it, `duo_depth` (default DUO_DEPTH). A stage the mode
        does not name does not run, whatever its depth.
        """
        check_size("k", k)
        check_size("depth", depth)
        parsed = Mode.parse(mode)
        names = stage_set(parsed.first, available)
        stages = tuple(Stage(name, k=max(depth, k), field=sparse_field, fuzzy=fuzzy if name == "bm25" else None,
                             ngram=ngram and name == "bm25") for name in names)
        late = (colbert_depth or depth) if parsed.colbert else 0
        rerank = (rerank_depth or (CASCADE_RERANK_DEPTH if late else depth)) if parsed.rerank else 0
        return cls(stages=stages, fusion=fusion or DEFAULT_HYBRID_FUSION, k=k, rerank_depth=rerank,
                   colbert_depth=late, duo_depth=(duo_depth or DUO_DEPTH) if parsed.duo else 0, spelling=spelling)


def stage_set(mode: str, available: Sequence[StageName] = STAGE_NAMES) -> tuple[StageName, ...]:
    """The first stages `mode` names; `hybrid` is every available one. A named stage must be available."""
    if mode == HYBRID:
        return tuple(name for name in STAGE_NAMES if name in available)
    names = [part.strip() for part in mode.split("+")]
    unknown = [name for name in names if name not in STAGE_NAMES]
    if unknown or not names:
        raise PlanError(f"unknown mode {mode!r}; choose {MODES_HELP}")
    if len(set(names)) != len(names):
        raise PlanError(f"mode {mode!r} names a stage twice")
    missing = [name for name in names if name not in available]
    if missing:
        raise PlanError(f"mode {mode!r} needs the {' and '.join(missing)} stage, which this index or the configured "
                        f"encoders lack (available: {', '.join(available) or 'none'}); use `hybrid` for every "
                        "available stage")
    return cast(tuple[StageName, ...], tuple(names))
