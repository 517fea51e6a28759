"""How a model in training is judged: a cheap dev metric for early stopping, and the final evaluation.

The dev metric reranks each dev query's first-stage candidates with the model being trained (PyTorch, no
export); it needs no index of the model's own outputs. The final evaluation runs the exported model through
`neurank.eval.runner.evaluate_modes`, the code path of `neurank eval`, on the evaluation split. A
late-interaction model is judged here as the reranker of BM25's top `LATE_DEPTH` (`bm25+colbert`), its
MaxSim computed with `stores.scoring.maxsim` over the exported encoder's token vectors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from neurank.config import Settings
from neurank.eval.datasets import Qrels, load_qrels
from neurank.eval.diagnostics import Scorer
from neurank.eval.metrics import evaluate
from neurank.eval.runner import evaluate_modes, scored
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.duo import DuoReranker
from neurank.query.rerank import Reranker
from neurank.retrieval import ScoredIds
from neurank.train.first_stage import indexed

DEV_MEASURE = "nDCG@10"
LATE_DEPTH = 100
"""BM25 candidates per query that the final evaluation of a late-interaction model reorders."""


@dataclass(frozen=True, slots=True)
class EvalSetup:
    """What the final evaluation runs: the modes of `neurank eval`, their encoders, and the reranker."""

    modes: tuple[str, ...]
    encoders: EncoderBundle
    reranker: Reranker | None = None
    duo: DuoReranker | None = None
    late_interaction: Any = None
    """A `LateInteractionEncoder`: adds the mode `bm25+colbert`, BM25's top `LATE_DEPTH` reordered by MaxSim."""


def rerank_metric(score: Scorer, queries: Mapping[str, str], qrels: Qrels, runs: Mapping[str, ScoredIds],
                  corpus: Mapping[str, str], *, depth: int, measure: str = DEV_MEASURE) -> float:
    """`measure` of the top `depth` first-stage candidates of each judged query, reordered by `score`."""
    return measure_of(qrels, rerank_run(score, queries, qrels, runs, corpus, depth=depth), measure)


def measure_of(qrels: Qrels, run: Mapping[str, Mapping[str, float]], measure: str = DEV_MEASURE) -> float:
    return next(iter(evaluate(qrels, run, (measure,)).values()))


def rerank_run(score: Scorer, queries: Mapping[str, str], qrels: Qrels, runs: Mapping[str, ScoredIds],
               corpus: Mapping[str, str], *, depth: int) -> dict[str, dict[str, float]]:
    """The top `depth` first-stage candidates of each judged query, scored by `score`."""
    run: dict[str, dict[str, float]] = {}
    for query_id in qrels:
        doc_ids = [doc for doc, _ in runs.get(query_id, [])[:depth]]
        if doc_ids:
            scores = score(queries[query_id], [corpus[doc] for doc in doc_ids])
            run[query_id] = dict(zip(doc_ids, map(float, scores), strict=True))
    return run


def final_evaluation(dataset: Path, setup: EvalSetup, settings: Settings, *, split: str,
                     runs_dir: Path | None = None, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Index the corpus with `setup.encoders` in the training store, then run `setup.modes` on `split`."""
    target = indexed(dataset, setup.encoders, settings)
    total = len(load_qrels(dataset, split)) * len(setup.modes)
    with tqdm(total=total, disable=not progress, desc=f"evaluate on {split}", unit="query") as bar:
        reports = evaluate_modes(dataset, setup.modes, target, settings, split=split,
                                 reranker=setup.reranker, duo=setup.duo, runs_dir=runs_dir, on_query=bar.update,
                                 diagnostics=True)
    results: dict[str, dict[str, Any]] = {mode: report.to_dict() for mode, report in reports.items()}
    if setup.late_interaction is not None:
        results["bm25+colbert"] = late_interaction_rerank(dataset, setup.late_interaction, settings, split=split,
                                                          runs_dir=runs_dir)
    return results


def late_interaction_rerank(dataset: Path, encoder: Any, settings: Settings, *, split: str,
                            runs_dir: Path | None = None, depth: int = LATE_DEPTH) -> dict[str, Any]:
    """Metrics of BM25's top `depth` reordered by MaxSim, with the encoder's query latency (p50, ms).

    Each candidate is encoded once; one with no token vector (nothing left once punctuation is dropped) is
    never scored 0: it keeps its BM25 order below the scored ones, and the report counts such documents.
    """
    from neurank.eval.datasets import load_queries
    from neurank.eval.runs import write_run
    from neurank.stores.scoring import maxsim
    from neurank.train.data import read_passages
    from neurank.train.first_stage import first_stage_runs

    qrels = load_qrels(dataset, split)
    queries = load_queries(dataset)
    judged = {query_id: queries[query_id] for query_id in qrels if query_id in queries}
    runs = first_stage_runs(dataset, judged, settings, source="bm25", depth=depth)
    corpus = read_passages(dataset)
    candidates = sorted({doc for ranking in runs.values() for doc, _ in ranking})
    matrices = dict(zip(candidates, encoder.encode_documents([corpus[doc] for doc in candidates]), strict=True))
    run: dict[str, dict[str, float]] = {}
    latencies = []
    for query_id, text in judged.items():
        started = time.perf_counter()
        query = encoder.encode_queries([text])[0]
        docs = [doc for doc, _ in runs.get(query_id, [])]
        with_vectors = [doc for doc in docs if len(matrices[doc])]
        scores = maxsim(query, [matrices[doc] for doc in with_vectors])
        latencies.append((time.perf_counter() - started) * 1000)
        floor = float(scores.min()) if len(scores) else 0.0
        unscored = [doc for doc in docs if not len(matrices[doc])]
        run[query_id] = {**dict(zip(with_vectors, map(float, scores), strict=True)),
                         **{doc: floor - 1.0 - rank for rank, doc in enumerate(unscored)}}
    if runs_dir is not None:
        write_run(runs_dir / f"{dataset.name}-{split}-bm25+colbert.trec", run, tag="neurank-bm25-colbert",
                  metadata={"first_stage": "bm25", "depth": depth, "colbert": encoder.fingerprint})
    return {**scored(qrels, run, diagnostics=True),
            "latency_ms_p50": float(np.median(latencies)) if latencies else None,
            "without_token_vectors": sum(1 for doc in candidates if not len(matrices[doc]))}
