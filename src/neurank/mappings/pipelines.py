"""Search pipelines that fuse the sub-queries of a `hybrid` query on the cluster (SCORING.md §5).

Without such a pipeline OpenSearch neither normalizes nor combines sub-query scores, so every hybrid search
names one. rrf → `score-ranker-processor`; min_max / l2 / z_score → `normalization-processor`. Both take
`combination.parameters.weights` (one per sub-query, in order). Needs neural-search 2.19 (rrf), 3.0 (z_score),
3.1 (rrf weights).
"""

from __future__ import annotations

from typing import Any

from neurank.retrieval import Fusion


def pipeline_id(fusion: Fusion) -> str:
    """A readable id that changes whenever the fusion does, e.g. `neurank-min_max-arithmetic_mean-w0.3_0.7`."""
    parts = ["neurank", fusion.technique]
    parts.append(f"k{fusion.rank_constant}" if fusion.technique == "rrf" else fusion.combination)
    if fusion.weights is not None:
        parts.append("w" + "_".join(repr(float(weight)) for weight in fusion.weights))
    return "-".join(parts)


def search_pipeline_body(fusion: Fusion, n_sub_queries: int) -> dict[str, Any]:
    """The body of `PUT /_search/pipeline/<pipeline_id(fusion)>` for a hybrid query of `n_sub_queries`."""
    fusion.check_sub_queries(n_sub_queries)
    processor = _score_ranker(fusion) if fusion.technique == "rrf" else _normalization(fusion)
    return {"description": f"neurank fusion {pipeline_id(fusion)}", "phase_results_processors": [processor]}


def _weights(fusion: Fusion) -> dict[str, Any]:
    if fusion.weights is None:
        return {}
    return {"parameters": {"weights": [float(weight) for weight in fusion.weights]}}


def _score_ranker(fusion: Fusion) -> dict[str, Any]:
    combination = {"technique": "rrf", "rank_constant": fusion.rank_constant, **_weights(fusion)}
    return {"score-ranker-processor": {"combination": combination}}


def _normalization(fusion: Fusion) -> dict[str, Any]:
    return {
        "normalization-processor": {
            "normalization": {"technique": fusion.technique},
            "combination": {"technique": fusion.combination, **_weights(fusion)},
        }
    }
