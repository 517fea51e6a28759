"""How a model in training is judged: a cheap dev metric for early stopping, and the final evaluation.

The dev metric reranks each dev query's first-stage candidates with the model being trained (PyTorch, no
export); it needs no index of the model's own outputs. The final evaluation runs the exported model through
`neurank.eval.runner.evaluate_modes`, the code path of `neurank eval`, on the evaluation split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from neurank.config import Settings
from neurank.eval.datasets import Qrels, load_qrels
from neurank.eval.metrics import evaluate
from neurank.eval.runner import evaluate_modes
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.rerank import Reranker
from neurank.retrieval import ScoredIds
from neurank.train.first_stage import indexed

Scorer = Callable[[str, Sequence[str]], np.ndarray]
"""(query, passages) → one relevance score per passage, higher is better."""

DEV_MEASURE = "nDCG@10"


@dataclass(frozen=True, slots=True)
class EvalSetup:
    """What the final evaluation runs: the modes of `neurank eval`, their encoders, and the reranker."""

    modes: tuple[str, ...]
    encoders: EncoderBundle
    reranker: Reranker | None = None


def rerank_metric(score: Scorer, queries: Mapping[str, str], qrels: Qrels, runs: Mapping[str, ScoredIds],
                  corpus: Mapping[str, str], *, depth: int, measure: str = DEV_MEASURE) -> float:
    """`measure` of the top `depth` first-stage candidates of each judged query, reordered by `score`."""
    run: dict[str, dict[str, float]] = {}
    for query_id in qrels:
        doc_ids = [doc for doc, _ in runs.get(query_id, [])[:depth]]
        if doc_ids:
            scores = score(queries[query_id], [corpus[doc] for doc in doc_ids])
            run[query_id] = dict(zip(doc_ids, map(float, scores), strict=True))
    return next(iter(evaluate(qrels, run, (measure,)).values()))


def final_evaluation(dataset: Path, setup: EvalSetup, settings: Settings, *, split: str,
                     runs_dir: Path | None = None, progress: bool = True) -> dict[str, dict[str, float | None]]:
    """Index the corpus with `setup.encoders` in the training store, then run `setup.modes` on `split`."""
    target = indexed(dataset, setup.encoders, settings)
    total = len(load_qrels(dataset, split)) * len(setup.modes)
    with tqdm(total=total, disable=not progress, desc=f"evaluate on {split}", unit="query") as bar:
        reports = evaluate_modes(dataset, setup.modes, target, settings, split=split,
                                 reranker=setup.reranker, runs_dir=runs_dir, on_query=bar.update)
    return {mode: report.to_dict() for mode, report in reports.items()}
