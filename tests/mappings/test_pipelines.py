"""Search pipelines: a valid body for every fusion, carrying its technique, combination and weights."""

from __future__ import annotations

import itertools
import re

import pytest
from tests.spec import validate

from neurank.errors import PlanError
from neurank.mappings import pipeline_id, search_pipeline_body
from neurank.retrieval import COMBINATIONS, TECHNIQUES, Fusion

WEIGHTS = (None, (0.2, 0.3, 0.5))
FUSIONS = [  # rrf ignores the combination; z_score allows only arithmetic_mean
    Fusion(technique=technique, combination=combination, weights=weights)
    for technique, combination, weights in itertools.product(TECHNIQUES, COMBINATIONS, WEIGHTS)
    if technique not in ("z_score", "rrf") or combination == "arithmetic_mean"
] + [Fusion("rrf", rank_constant=1), Fusion("rrf", rank_constant=10_000, weights=(0.5, 0.5, 0.0))]


@pytest.mark.parametrize("fusion", FUSIONS, ids=pipeline_id)
def test_every_fusion_is_a_valid_pipeline_body(fusion: Fusion) -> None:
    validate("search_pipeline.put", search_pipeline_body(fusion, 3))


@pytest.mark.parametrize("fusion", [f for f in FUSIONS if f.technique != "rrf"], ids=pipeline_id)
def test_normalization_processor_carries_technique_combination_and_weights(fusion: Fusion) -> None:
    (processor,) = search_pipeline_body(fusion, 3)["phase_results_processors"]
    body = processor["normalization-processor"]
    assert body["normalization"] == {"technique": fusion.technique}
    assert body["combination"]["technique"] == fusion.combination
    assert body["combination"].get("parameters", {}).get("weights") == (
        list(fusion.weights) if fusion.weights else None
    )


def test_rrf_is_a_score_ranker_with_rank_constant_and_weights() -> None:
    body = search_pipeline_body(Fusion("rrf", rank_constant=20, weights=(0.25, 0.75)), 2)
    assert body["phase_results_processors"] == [
        {"score-ranker-processor": {"combination": {
            "technique": "rrf", "rank_constant": 20, "parameters": {"weights": [0.25, 0.75]},
        }}}
    ]


def test_rrf_without_weights_sends_none() -> None:
    (processor,) = search_pipeline_body(Fusion("rrf"), 3)["phase_results_processors"]
    assert processor == {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": 60}}}


def test_ids_are_stable_distinct_and_url_safe() -> None:
    ids = [pipeline_id(fusion) for fusion in FUSIONS]
    assert len(set(ids)) == len(ids)
    assert ids == [pipeline_id(fusion) for fusion in FUSIONS]
    assert all(re.fullmatch(r"[a-z0-9._-]+", pid) for pid in ids)
    assert pipeline_id(Fusion("min_max", weights=(0.3, 0.7))) == "neurank-min_max-arithmetic_mean-w0.3_0.7"
    assert pipeline_id(Fusion("rrf")) == "neurank-rrf-k60"


def test_rrf_id_ignores_the_unused_combination() -> None:
    assert pipeline_id(Fusion("rrf", combination="harmonic_mean")) == pipeline_id(Fusion("rrf"))


@pytest.mark.parametrize("n_sub_queries", [0, 6])
def test_sub_query_count_follows_the_hybrid_limit(n_sub_queries: int) -> None:
    with pytest.raises(PlanError, match="1 to 5"):
        search_pipeline_body(Fusion(), n_sub_queries)


def test_weights_must_match_the_sub_queries() -> None:
    with pytest.raises(PlanError, match="one per sub-query"):
        search_pipeline_body(Fusion("l2", weights=(0.5, 0.5)), 3)
