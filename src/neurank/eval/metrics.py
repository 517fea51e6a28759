"""Retrieval metrics through ir-measures (trec_eval and MS MARCO implementations), never computed by hand.

Semantics, stated because libraries differ:
- Every judged query counts (trec_eval `-c`, as pyserini reports): a query in the qrels that the run misses,
  or that retrieves nothing relevant, scores 0. BEIR's pytrec_eval loop averages over the run's queries
  only, which flatters a run that drops queries.
- Queries that the run has but the qrels do not judge are ignored.
- Ties in score are broken by document id, ascending, the order `fuse` and `write_run` use; the run is
  handed to ir-measures as that ranking, because trec_eval and MS MARCO's script break ties in opposite
  directions and would otherwise see two different rankings.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import ir_measures
from ir_measures import Measure

from neurank.errors import ConfigError, InputError

__all__ = ["DEFAULT_MEASURES", "evaluate", "evaluate_per_query", "ranked"]

DEFAULT_MEASURES = ("nDCG@10", "R@100", "RR@10")
_ALIASES = {"nDCG": "ndcg", "R": "recall", "RR": "mrr", "P": "precision", "AP": "map"}
"""ir-measures names → the names neurank reports (RR@10 is MRR@10)."""


def evaluate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
             measures: Sequence[str] = DEFAULT_MEASURES) -> dict[str, float]:
    """Mean of each measure over every judged query, keyed `ndcg@10`, `recall@100`, `mrr@10`, …"""
    per_query = evaluate_per_query(qrels, run, measures)
    return {key: statistics.fmean(values.values()) for key, values in per_query.items()}


def evaluate_per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                       measures: Sequence[str] = DEFAULT_MEASURES) -> dict[str, dict[str, float]]:
    """measure key → {query id: value} for every judged query (0.0 where the run has nothing for it)."""
    if not qrels:
        raise InputError("the qrels judge no query; check the split's qrels file")
    parsed = [_parse(name) for name in measures]
    keys = {str(measure): _key(measure) for measure in parsed}
    per_query = {key: dict.fromkeys(qrels, 0.0) for key in keys.values()}
    judgements = {query_id: dict(docs) for query_id, docs in qrels.items()}
    for metric in ir_measures.iter_calc(parsed, judgements, _as_ranking(run)):
        values = per_query[keys[str(metric.measure)]]
        if metric.query_id in values:
            values[metric.query_id] = float(metric.value)
    return per_query


def ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(document id, score) pairs in the order every measure sees them: score desc, then doc id asc."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _as_ranking(run: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The run with strictly decreasing scores that encode its ranking (`ranked`)."""
    ranking: dict[str, dict[str, float]] = {}
    for query_id, scores in run.items():
        ordered = ranked(scores)
        if ordered:
            ranking[query_id] = {doc_id: float(len(ordered) - i) for i, (doc_id, _) in enumerate(ordered)}
    return ranking


def _parse(name: str) -> Measure:
    try:
        return ir_measures.parse_measure(name)
    except (NameError, ValueError) as exc:
        raise ConfigError(f"unknown measure {name!r}; use ir-measures names such as "
                          f"{', '.join(DEFAULT_MEASURES)}") from exc


def _key(measure: Measure) -> str:
    """`nDCG@10` → `ndcg@10`, `R@100` → `recall@100`, `RR@10` → `mrr@10`; other names lower-cased."""
    name = str(measure.NAME)
    return _ALIASES.get(name, name.lower()) + str(measure)[len(name):]
