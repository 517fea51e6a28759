"""Learned fusion: a LambdaMART ranker (LightGBM `lambdarank`) over what every stage made of each candidate.

Why LightGBM: LambdaMART (gradient-boosted trees on NDCG's lambda gradients) is the reference learning-to-rank
model, and LightGBM is its well-kept implementation: fast on CPU, native query groups, early stopping on a dev
NDCG, and a plain-text model format.

The candidates of a query are the union of its first stages' hits. Each candidate gets, for every scored list
the plan runs (its first stages in order, then `colbert` and `rerank` when the plan has them), six features:
the raw score, the score min_max- and z_score-normalized over that list (as the fusion normalizes), the 1-based
rank, a flag for "missing from this list" (those four are then NaN, which LightGBM routes as missing values),
and the list's best raw score. Then two more: the default fusion's score of the candidate (z_score, arithmetic
mean, over every list the model reads), and the number of words in the query. Trees split on one feature at a
time, so they cannot add three normalized scores themselves: the default fusion's score is the starting point
they refine, and the per-query ones (a list's best score, the query's length) say how far to trust each list.
`feature_matrix` is the only code that builds them: training (`neurank.train.fusion`) and search
(`neurank.query.searcher`) both call it, so a model sees at query time exactly what it was trained on.

A model folder holds `model.txt` (LightGBM's text format) and `fusion.json`: the feature names, the scored
lists, the depth of each first stage and the fingerprint of every model whose scores are features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurank.errors import ModelError, PlanError
from neurank.query.fusion import fuse, min_max, z_score
from neurank.retrieval import DEFAULT_HYBRID_FUSION, ScoredIds

if TYPE_CHECKING:
    import lightgbm

__all__ = ["CANDIDATE_FEATURES", "CONFIG_FILE", "FEATURE_KINDS", "LEARNED", "MODEL_FILE", "LearnedFusion",
           "LearnedHit", "candidates", "feature_matrix", "feature_names", "learned_ranking"]

LEARNED = "learned"
"""The fusion technique's name on the command line: `--fusion learned:DIR`."""
FEATURE_KINDS = ("raw", "norm", "z", "rank", "missing", "top")
"""Per scored list (see the module docstring)."""
CANDIDATE_FEATURES = ("fused", "query.words")
"""After the lists' features: the default fusion's score, and the query's length in words."""
MODEL_FILE = "model.txt"
CONFIG_FILE = "fusion.json"


def feature_names(lists: Sequence[str]) -> tuple[str, ...]:
    """`bm25.raw`, `bm25.norm`, … `bm25.top`, `dense.raw`, … in the lists' order, then `fused`, `query.words`."""
    return tuple(f"{name}.{kind}" for name in lists for kind in FEATURE_KINDS) + CANDIDATE_FEATURES


def candidates(first_stages: Sequence[ScoredIds]) -> list[str]:
    """The union of the first stages' hits, by best rank in any stage, ties by id: each stage's head comes first,
    so a rescoring stage that sees only the first `depth` candidates sees every stage's best."""
    best: dict[str, int] = {}
    for hits in first_stages:
        for rank, (doc_id, _) in enumerate(hits, start=1):
            best[doc_id] = min(rank, best.get(doc_id, rank))
    return sorted(best, key=lambda doc_id: (best[doc_id], doc_id))


def feature_matrix(ids: Sequence[str], lists: Mapping[str, ScoredIds], query: str) -> np.ndarray:
    """(candidates × `feature_names(lists)`) float64, in `lists` order: for each list raw, min_max, z_score, rank,
    missing flag, the list's best raw score; then the default fusion's score and the query's word count.

    Raw scores are taken as the float32 the stores return; the normalizations are `fusion.min_max` and
    `fusion.z_score` over the whole list (OpenSearch's, edge cases included). A candidate a list does not hold
    has NaN raw, norm, z and rank and the flag 1; an empty list's best score is NaN.
    """
    row_of = {doc_id: row for row, doc_id in enumerate(ids)}
    width = len(FEATURE_KINDS)
    matrix = np.full((len(ids), width * len(lists) + len(CANDIDATE_FEATURES)), np.nan, dtype=np.float64)
    for j, hits in enumerate(lists.values()):
        column = j * width
        matrix[:, column + 4] = 1.0
        if not hits:
            continue
        matrix[:, column + 5] = np.float32(hits[0][1])
        scores = np.array([score for _, score in hits], dtype=np.float32)
        kept = np.array([doc_id in row_of for doc_id, _ in hits])
        rows = np.array([row_of[doc_id] for doc_id, _ in hits if doc_id in row_of], dtype=np.int64)
        matrix[rows, column] = scores[kept]
        matrix[rows, column + 1] = min_max(scores)[kept]
        matrix[rows, column + 2] = z_score(scores)[kept]
        matrix[rows, column + 3] = np.flatnonzero(kept) + 1
        matrix[rows, column + 4] = 0.0
    fused = {hit.id: hit.score for hit in fuse(list(lists.values()), DEFAULT_HYBRID_FUSION)}
    matrix[:, -2] = [fused.get(doc_id, 0.0) for doc_id in ids]
    matrix[:, -1] = len(query.split())
    return matrix


@dataclass(frozen=True, slots=True)
class LearnedHit:
    """One candidate after learned fusion: its model score and the features it was scored on."""

    id: str
    score: float
    features: dict[str, float | None]
    """Feature name → value; None where the value is missing (NaN)."""


@dataclass(frozen=True, slots=True)
class LearnedFusion:
    """A trained fusion model as a plan's fusion: which lists it reads, at which depth, from which models.

    Loading reads `fusion.json` only; the LightGBM model loads on the first search (once per process and file).
    """

    folder: Path
    lists: tuple[str, ...]
    """The scored lists the features come from: first stages in the plan's order, then `colbert`, `rerank`."""
    depth: int
    """Hits per first stage the model was trained on: ranks and normalizations depend on it."""
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    """Model role → fingerprint of every encoder or reranker whose scores are features."""

    @property
    def features(self) -> tuple[str, ...]:
        return feature_names(self.lists)

    @classmethod
    def load(cls, folder: str | Path) -> LearnedFusion:
        """The model in `folder` (made by `neurank train fusion`); a missing or malformed file is a ModelError."""
        folder = Path(folder).expanduser()
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise ModelError(f"{folder} is not a learned fusion model: no {CONFIG_FILE} (make one with "
                             "`neurank train fusion --dataset DIR --out DIR`)")
        if not (folder / MODEL_FILE).is_file():
            raise ModelError(f"{folder / MODEL_FILE} is missing: train the model again")
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
            lists, depth, fingerprints = tuple(saved["lists"]), int(saved["depth"]), dict(saved["fingerprints"])
            features = tuple(saved["features"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{config_path}: not a learned fusion config (missing or bad field {exc})") from exc
        if features != feature_names(lists):
            raise ModelError(f"{config_path}: field 'features' does not match the lists {list(lists)} "
                             f"(expected {list(feature_names(lists))})")
        return cls(folder, lists, depth, fingerprints)

    def check(self, lists: Sequence[str], depth: int) -> None:
        """Refuse a plan whose scored lists or first-stage depth differ from the model's, naming the difference."""
        missing = [name for name in self.lists if name not in lists]
        extra = [name for name in lists if name not in self.lists]
        if missing or extra or tuple(lists) != self.lists:
            problems = ([f"lacks the {', '.join(missing)} stage"] if missing else []) + (
                [f"adds the {', '.join(extra)} stage"] if extra else [])
            raise PlanError(f"the learned fusion model {self.folder} was trained on {'+'.join(self.lists)}; this "
                            f"plan runs {'+'.join(lists)}: it {' and '.join(problems) or 'orders them differently'}"
                            "; search with the mode it was trained on, or train it for this one")
        if depth != self.depth:
            raise PlanError(f"the learned fusion model {self.folder} was trained on the top {self.depth} hits of "
                            f"each stage; this plan takes {depth}: search with --depth {self.depth} (and k at "
                            "most that)")

    def booster(self) -> lightgbm.Booster:
        """The LightGBM model, loaded on first use (call it early to load it before the first search)."""
        model_file = self.folder / MODEL_FILE
        try:
            modified = model_file.stat().st_mtime_ns
        except OSError as exc:
            raise ModelError(f"{model_file}: cannot read the model ({exc}); train it again") from exc
        return _booster(str(model_file), modified)

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """The model's score of each candidate row of `matrix` (built by `feature_matrix`)."""
        if not len(matrix):
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster().predict(matrix), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"technique": LEARNED, "folder": str(self.folder), "lists": list(self.lists), "depth": self.depth}


def learned_ranking(fusion: LearnedFusion, ids: Sequence[str], lists: Mapping[str, ScoredIds],
                    query: str) -> list[LearnedHit]:
    """The candidates `ids` ordered by the model's score (ties by id), each with the features it was scored on."""
    matrix = feature_matrix(ids, lists, query)
    scores = fusion.scores(matrix)
    names = feature_names(list(lists))
    order = sorted(range(len(ids)), key=lambda row: (-float(scores[row]), ids[row]))
    return [LearnedHit(ids[row], float(scores[row]),
                       {name: None if np.isnan(value) else float(value) for name, value in zip(names, matrix[row],
                                                                                           strict=True)})
            for row in order]


@lru_cache(maxsize=8)
def _booster(path: str, mtime_ns: int) -> lightgbm.Booster:
    """One loaded model per file and version of it in this process."""
    import lightgbm

    del mtime_ns  # part of the cache key only: a retrained model is read again
    try:
        return lightgbm.Booster(model_file=path)
    except lightgbm.basic.LightGBMError as exc:
        raise ModelError(f"{path}: LightGBM cannot read this model ({exc}); train it again") from exc
