"""What the query layer asks a store for: ready sub-queries, and the fusion an engine may apply itself.

A store answers these and knows nothing of plans or modes; the query layer (`neurank.query`) builds them from
a plan, decides whether the engine fuses or the client does, and fuses with `neurank.query.fusion`. The
limits here are the engines' own, written once: OpenSearch's `hybrid` query takes at most 5 sub-queries
(neural-search `HybridQueryBuilder`), a search returns at most `index.max_result_window` (10,000) hits, and
Lucene's `FeatureField.newLinearQuery` (under `neural_sparse` and `rank_feature`) refuses query weights
outside (0, 64]. The fusion rules are neural-search's (`ScoreCombinationUtil`, `RRFProcessorFactory`). A
fuzzy text query takes `match`'s fuzzy options with the engines' own rules (`Fuzziness`, `MatchQueryBuilder`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from neurank.errors import InputError, PlanError
from neurank.index_spec import SPARSE_FIELDS

ScoredIds = list[tuple[str, float]]
"""(document id, score) pairs, best first."""

MAX_SUB_QUERIES = 5
MAX_RESULT_WINDOW = 10_000
"""OpenSearch's default `index.max_result_window`; the local store keeps the same limit, so a request that
works on a laptop works on a cluster."""
MAX_QUERY_TOKEN_WEIGHT = 64.0

Technique = Literal["rrf", "min_max", "l2", "z_score"]
Combination = Literal["arithmetic_mean", "geometric_mean", "harmonic_mean"]
TECHNIQUES: tuple[Technique, ...] = get_args(Technique)
COMBINATIONS: tuple[Combination, ...] = get_args(Combination)


def check_size(what: str, k: int) -> None:
    """Refuse a hit count outside [1, MAX_RESULT_WINDOW], naming what asked for it."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULT_WINDOW:
        raise PlanError(f"{what} must be in [1, {MAX_RESULT_WINDOW}] (the result window of a search), got {k!r}")


MAX_EDITS = 2
"""Lucene's `LevenshteinAutomata.MAXIMUM_SUPPORTED_DISTANCE`: a fuzzy term matches at most 2 edits away."""
MAX_EXPANSIONS = 1024
"""Lucene's default `IndexSearcher.getMaxClauseCount()`, which caps `max_expansions` (`TopTermsRewrite`)."""
_AUTO = re.compile(r"AUTO(?::(\d+),(\d+))?")
AUTO_BOUNDS = (3, 6)
"""`AUTO` alone: `AUTO:3,6`."""


@dataclass(frozen=True, slots=True)
class Fuzzy:
    """`match`'s fuzzy options: each analyzed query term also matches the index terms within its edit distance.

    `fuzziness` is `AUTO` (0 edits for terms of 1-2 characters, 1 for 3-5, 2 above), `AUTO:low,high` (0 below
    `low`, 1 below `high`, else 2) or a fixed 0, 1 or 2, counted on the analyzed term (the stem) in code points,
    as OpenSearch's and Elasticsearch's `Fuzziness.asDistance` do. The first `prefix_length` characters must match
    exactly; `transpositions` counts a swap of adjacent characters as one edit (optimal string alignment) instead
    of two (Levenshtein); each term expands to its `max_expansions` most similar index terms.
    """

    fuzziness: str = "AUTO"
    prefix_length: int = 0
    max_expansions: int = 50
    transpositions: bool = True

    def __post_init__(self) -> None:
        text = str(self.fuzziness).strip().upper()
        bounds = _auto_bounds(text)
        if bounds is not None:
            if bounds[0] > bounds[1]:
                raise PlanError(f"fuzziness {self.fuzziness!r}: AUTO:low,high needs low <= high")
            text = "AUTO" if bounds == AUTO_BOUNDS else f"AUTO:{bounds[0]},{bounds[1]}"
        elif text not in {str(edits) for edits in range(MAX_EDITS + 1)}:
            raise PlanError(f"fuzziness {self.fuzziness!r} is not AUTO, AUTO:low,high or an edit distance 0, 1 or 2")
        object.__setattr__(self, "fuzziness", text)
        if isinstance(self.prefix_length, bool) or not isinstance(self.prefix_length, int) or self.prefix_length < 0:
            raise PlanError(f"a fuzzy prefix_length must be an integer >= 0, got {self.prefix_length!r}")
        expansions = self.max_expansions
        if isinstance(expansions, bool) or not isinstance(expansions, int) or not 1 <= expansions <= MAX_EXPANSIONS:
            raise PlanError(f"max_expansions must be an integer in [1, {MAX_EXPANSIONS}] (Lucene's clause limit), "
                            f"got {expansions!r}")

    def max_edits(self, term: str) -> int:
        """The edits `term` (an analyzed term) may differ by: `Fuzziness.asDistance`."""
        bounds = _auto_bounds(self.fuzziness)
        if bounds is None:
            return int(self.fuzziness)
        low, high = bounds
        return 0 if len(term) < low else 1 if len(term) < high else 2


def _auto_bounds(fuzziness: str) -> tuple[int, int] | None:
    """(low, high) of `AUTO` / `AUTO:low,high`; None for a fixed edit distance."""
    auto = _AUTO.fullmatch(fuzziness)
    if auto is None:
        return None
    return (int(auto[1]), int(auto[2])) if auto[1] is not None else AUTO_BOUNDS


@dataclass(frozen=True, slots=True)
class TextQuery:
    """BM25: `match` on the `content` field (title + text), scored with the index's k1 and b; with `fuzzy`, each
    query term is expanded to the index terms near it (Lucene's `FuzzyQuery`); with `ngram`, a `match` on the
    `content.ngram` subfield is added (the index must have one)."""

    text: str
    k: int
    fuzzy: Fuzzy | None = None
    ngram: bool = False

    def __post_init__(self) -> None:
        check_size("a text query's k", self.k)


@dataclass(frozen=True, slots=True)
class SparseQuery:
    """`neural_sparse` with raw query tokens over a `rank_features` field: Σ w_t · decode(S_d,t)."""

    field: str
    tokens: Mapping[str, float]
    k: int

    def __post_init__(self) -> None:
        check_size("a sparse query's k", self.k)
        if self.field not in SPARSE_FIELDS:
            raise PlanError(f"{self.field!r} is not a sparse field; choose one of {', '.join(SPARSE_FIELDS)}")
        for token, weight in self.tokens.items():
            if not isinstance(token, str) or not token:
                raise InputError(f"query token {token!r} is not a non-empty string", field=self.field)
            if not (math.isfinite(weight) and 0 < weight <= MAX_QUERY_TOKEN_WEIGHT):
                raise InputError(f"query token {token!r} has weight {weight}; weights must be in "
                                 f"(0, {MAX_QUERY_TOKEN_WEIGHT:g}]", field=self.field)


@dataclass(frozen=True, slots=True)
class VectorQuery:
    """Exact `knn` on `embedding`; scores translated per the index's `space_type`."""

    vector: np.ndarray = field(repr=False)
    k: int

    def __post_init__(self) -> None:
        check_size("a vector query's k", self.k)
        vector = np.asarray(self.vector, dtype=np.float32)
        if vector.ndim != 1 or vector.size == 0:
            raise InputError(f"a query vector must be one non-empty row, got shape {vector.shape}", field="embedding")
        object.__setattr__(self, "vector", vector)


@dataclass(frozen=True, slots=True)
class LateInteractionQuery:
    """MaxSim of the query's token vectors against the stored token vectors of the `ids` given (a rescoring of
    another stage's candidates): Σ over query rows of the max dot product over a document's rows. Candidates
    without token vectors are left out of the hits; the caller says which."""

    vectors: np.ndarray = field(repr=False)
    """query length × dim, float32, L2-normalized rows (the `[MASK]` padding rows included: they are scored)."""
    ids: tuple[str, ...]
    k: int

    def __post_init__(self) -> None:
        check_size("a late-interaction query's k", self.k)
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2 or not vectors.size:
            raise InputError(f"late-interaction query vectors must be a non-empty matrix, got shape {vectors.shape}",
                             field="colbert")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "ids", tuple(self.ids))


SubQuery = TextQuery | SparseQuery | VectorQuery | LateInteractionQuery


@dataclass(frozen=True, slots=True)
class Fusion:
    """How sub-query results combine: a normalization (or rrf), a mean, optional weights (one per sub-query)."""

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

    def check_sub_queries(self, n: int) -> None:
        """A fused search has 1 to MAX_SUB_QUERIES sub-queries, and one weight for each when weights are set."""
        if not 1 <= n <= MAX_SUB_QUERIES:
            raise PlanError(f"a hybrid search has 1 to {MAX_SUB_QUERIES} sub-queries (OpenSearch's limit), got {n}")
        if self.weights is not None and len(self.weights) != n:
            raise PlanError(f"{len(self.weights)} fusion weights for {n} sub-queries: give one per sub-query")


DEFAULT_HYBRID_FUSION = Fusion("z_score", "arithmetic_mean")
"""Chosen on SciFact *train* (benchmarks/fusion_sweep.py, docs/BENCHMARKS.md): nDCG@10 0.746 vs RRF's 0.730."""
