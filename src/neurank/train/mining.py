"""Hard-negative mining from a first-stage run, guarded against false negatives.

The documents a retriever ranks highest for a query are the hardest negatives, and also the likeliest to
be relevant documents nobody judged. Three knobs trade one against the other: skip the top `range_min`
ranks, keep only candidates scoring at least `margin` below the query's weakest positive, and never take
a document judged relevant.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Literal

from neurank.errors import ConfigError

Sampling = Literal["top", "random"]
SAMPLINGS: tuple[Sampling, ...] = ("top", "random")


def mine_hard_negatives(
    run: Mapping[str, Sequence[tuple[str, float]]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    n_negatives: int,
    range_min: int = 0,
    range_max: int = 100,
    sampling: Sampling = "top",
    margin: float | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Pick up to `n_negatives` negative document ids per query from `run`.

    `run` maps a query id to its ranking, (doc id, score) pairs best first (a repeated doc id keeps its
    first, best rank). `qrels` maps a query id to judged doc ids and their labels: a label > 0 is a
    positive, a label <= 0 a judged negative, which is a safe candidate like any unjudged document.

    - Queries without a positive in `qrels` are skipped.
    - Candidates are the run's ranks `range_min` to `range_max - 1` (0-based, counted in the run before
      any filtering), minus every positive.
    - `margin`: drop candidates scoring above `lowest positive score - margin`, where the lowest positive
      score is taken among the query's positives found in the run (0 keeps only negatives scoring no higher
      than every positive). When no positive is in the run there is no reference score and no candidate is
      dropped. Unlike sentence-transformers' `absolute_margin`, `range_min` counts ranks before this filter.
    - `sampling`: "top" keeps the best-ranked candidates; "random" draws them uniformly from the candidates
      with a generator seeded by (`seed`, query id), so a query's negatives do not depend on the other
      queries. Either way the chosen ids come back in rank order.

    Returns: query id → negatives, for the queries that got at least one; a list is shorter than
    `n_negatives` when fewer candidates pass the filters.
    """
    _check_knobs(n_negatives=n_negatives, range_min=range_min, range_max=range_max, sampling=sampling, margin=margin)
    mined: dict[str, list[str]] = {}
    for qid, ranking in run.items():
        positives = {docid for docid, label in qrels.get(qid, {}).items() if label > 0}
        if not positives:
            continue
        scores = _best_scores(ranking)
        ranked = list(scores)
        ceiling = _score_ceiling(scores, positives, margin)
        candidates = [
            docid
            for docid in ranked[range_min:range_max]
            if docid not in positives and (ceiling is None or scores[docid] <= ceiling)
        ]
        chosen = _choose(candidates, n_negatives, sampling, random.Random(f"{seed}:{qid}"))
        if chosen:
            mined[qid] = chosen
    return mined


def _best_scores(ranking: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Doc id → score in rank order, keeping a repeated doc id at its first (best) rank."""
    scores: dict[str, float] = {}
    for docid, score in ranking:
        scores.setdefault(docid, score)
    return scores


def _score_ceiling(scores: Mapping[str, float], positives: set[str], margin: float | None) -> float | None:
    """The highest score a candidate may have under `margin`, or None when nothing bounds it."""
    positive_scores = [scores[docid] for docid in positives if docid in scores]
    if margin is None or not positive_scores:
        return None
    return min(positive_scores) - margin


def _choose(candidates: list[str], n: int, sampling: Sampling, rng: random.Random) -> list[str]:
    if sampling == "top":
        return candidates[:n]
    picked = rng.sample(range(len(candidates)), min(n, len(candidates)))
    return [candidates[index] for index in sorted(picked)]


def check_window(range_min: int, range_max: int) -> None:
    """Refuse a mining window of ranks that holds no rank."""
    if not 0 <= range_min < range_max:
        raise ConfigError(f"need 0 <= range_min < range_max, got range_min={range_min}, range_max={range_max}")


def _check_knobs(*, n_negatives: int, range_min: int, range_max: int, sampling: str, margin: float | None) -> None:
    if n_negatives < 1:
        raise ConfigError(f"n_negatives must be >= 1, got {n_negatives}")
    check_window(range_min, range_max)
    if sampling not in SAMPLINGS:
        raise ConfigError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if margin is not None and margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
