"""Evaluate retrieval modes on a BEIR-layout dataset: index (reused when unchanged), run every query, score."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurank.config import Settings
from neurank.documents import read_corpus
from neurank.errors import ConfigError
from neurank.eval.datasets import Qrels, load_qrels, load_queries
from neurank.eval.diagnostics import recall_metrics
from neurank.eval.metrics import evaluate
from neurank.eval.runs import Run, read_run, write_run
from neurank.ingest.inline import IngestSummary, ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.duo import DUO_OFF_NOTE, DuoReranker
from neurank.query.late_interaction import COLBERT_OFF_NOTE
from neurank.query.learned_fusion import LearnedFusion
from neurank.query.plan import PlanFusion, RetrievalPlan
from neurank.query.rerank import RERANK_OFF_NOTE, Reranker
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.retrieval import DEFAULT_HYBRID_FUSION, Fuzzy


@dataclass(frozen=True, slots=True)
class ModeReport:
    mode: str
    metrics: dict[str, float]
    latency_ms_p50: float | None
    """None for a run read from a file: its latency is unknown."""
    queries: int

    def to_dict(self) -> dict[str, float | None]:
        return {**self.metrics, "latency_ms_p50": self.latency_ms_p50}


def mode_plan(searcher: Searcher, mode: str, *, depth: int, rerank_depth: int | None, fusion: PlanFusion,
              fuzzy: Fuzzy | None = None, ngram: bool = False, spelling: bool = False) -> RetrievalPlan:
    """The checked plan of an eval mode: exactly the stages it names (`hybrid`, `bm25+dense+colbert`,
    `hybrid+colbert+rerank`, …), whatever models are configured besides; bm25 fuzzy with `fuzzy`, and matching
    n-grams too with `ngram`; the query's spelling corrected first with `spelling`."""
    return searcher.plan(mode, k=depth, depth=depth, fusion=fusion, rerank_depth=rerank_depth, implied=False,
                         fuzzy=fuzzy, ngram=ngram, spelling=spelling)


def index_dataset(dataset: Path, target: SearchTarget, settings: Settings,
                  on_progress: Callable[[int], None] | None = None) -> IngestSummary:
    """Index the corpus into `target`; documents already stored with the same content and models are skipped."""
    return ingest_records(read_corpus(dataset), target.store, target.index, target.encoders, settings,
                          on_progress=on_progress)


def run_mode(searcher: Searcher, plan: RetrievalPlan, queries: dict[str, str],
             on_query: Callable[[], None] | None = None) -> tuple[dict[str, dict[str, float]], list[float]]:
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in queries.items():
        start = time.perf_counter()
        result = searcher.search(text, plan, with_documents=False)
        latencies.append((time.perf_counter() - start) * 1000)
        run[qid] = {hit.id: hit.score for hit in result.hits}
        if on_query:
            on_query()
    return run, latencies


def evaluate_modes(
    dataset: Path,
    modes: Sequence[str],
    target: SearchTarget,
    settings: Settings,
    *,
    split: str = "test",
    fusion: PlanFusion | None = None,
    reranker: Reranker | None = None,
    duo: DuoReranker | None = None,
    depth: int = 100,
    rerank_depth: int | None = None,
    runs_dir: Path | None = None,
    on_query: Callable[[], None] | None = None,
    diagnostics: bool = False,
) -> dict[str, ModeReport]:
    """One report per mode: nDCG@10, Recall@100, MRR@10 and the p50 latency of a whole query; with
    `diagnostics`, Recall@10 and micro-recall@10 and @100 too (`neurank.eval.diagnostics`).

    Every mode is planned and checked against the index and the encoders before the first query runs; bm25 matches
    fuzzily, or n-grams too, and queries are corrected, when the settings say so (`fuzziness`, `ngram_match`,
    `spelling`).
    """
    fusion = fusion or DEFAULT_HYBRID_FUSION
    searcher = target.searcher(reranker, duo=duo)
    plans = {mode: mode_plan(searcher, mode, depth=depth, rerank_depth=rerank_depth, fusion=fusion,
                             fuzzy=settings.fuzzy(), ngram=settings.ngram_match, spelling=settings.spelling)
             for mode in modes}
    if reranker is None and any(plan.rerank_depth for plan in plans.values()):
        raise ConfigError(f"{RERANK_OFF_NOTE}; a '+rerank' mode cannot be evaluated without one")
    if searcher.late_interaction is None and any(plan.colbert_depth for plan in plans.values()):
        raise ConfigError(f"{COLBERT_OFF_NOTE}; a '+colbert' mode cannot be evaluated without one")
    if duo is None and any(plan.duo_depth for plan in plans.values()):
        raise ConfigError(f"{DUO_OFF_NOTE}; a '+duo' mode cannot be evaluated without one")
    qrels = load_qrels(dataset, split)
    queries = {qid: text for qid, text in load_queries(dataset).items() if qid in qrels}
    reports: dict[str, ModeReport] = {}
    for mode, plan in plans.items():
        run, latencies = run_mode(searcher, plan, queries, on_query)
        reports[mode] = ModeReport(mode, scored(qrels, run, diagnostics), statistics.median(latencies), len(queries))
        if runs_dir is not None:
            write_run(runs_dir / f"{dataset.name}-{split}-{run_label(mode, plan)}.trec", run, tag=f"neurank-{mode}",
                      metadata=run_metadata(plan, target.encoders, settings, reranker, duo))
    return reports


def run_label(mode: str, plan: RetrievalPlan) -> str:
    """The mode, and what else makes this run differ from the mode's default one (a fusion other than the
    default hybrid's, fuzzy or n-gram matching, spelling correction), so that variants of one mode do not overwrite
    each other's run files; the metadata beside each file holds the whole plan."""
    parts = [mode]
    fusion = plan.fusion
    if isinstance(fusion, LearnedFusion):
        parts.append(f"learned-{fusion.folder.name}")
    elif plan.is_hybrid and fusion != DEFAULT_HYBRID_FUSION:
        parts.append(fusion.technique if fusion.technique == "rrf" else f"{fusion.technique}-{fusion.combination}")
        if fusion.weights is not None:
            parts.append("w" + "_".join(f"{weight:g}" for weight in fusion.weights))
    bm25 = next((stage for stage in plan.stages if stage.name == "bm25"), None)
    if bm25 is not None and bm25.fuzzy is not None:
        parts.append("fuzzy")
    if bm25 is not None and bm25.ngram:
        parts.append("ngram")
    if plan.spelling:
        parts.append("spelling")
    return "-".join(parts)


def run_metadata(plan: RetrievalPlan, encoders: EncoderBundle, settings: Settings,
                 reranker: Reranker | None, duo: DuoReranker | None = None) -> dict[str, Any]:
    return {
        "plan": repr(plan),
        "models": {**encoders.models(), **({"rerank": reranker.fingerprint} if reranker else {}),
                   **({"duo": duo.fingerprint} if duo else {})},
        "runtime": settings.runtime,
        "int8": settings.int8,
        "bm25": {"k1": settings.bm25_k1, "b": settings.bm25_b},
        "fuzziness": settings.fuzziness,
        "ngram_match": settings.ngram_match,
        "spelling": settings.spelling,
    }


def evaluate_runs(dataset: Path, runs: Sequence[Path], *, split: str = "test",
                  diagnostics: bool = False) -> dict[str, ModeReport]:
    """Score TREC run files (an earlier `neurank eval`'s, or another system's) on `dataset`'s `split`, one report
    per file; every judged query counts, 0 where a run has nothing for it (as for a searched mode)."""
    qrels = load_qrels(dataset, split)
    return {str(path): ModeReport(str(path), scored(qrels, read_run(path), diagnostics), None, len(qrels))
            for path in runs}


def scored(qrels: Qrels, run: Run, diagnostics: bool) -> dict[str, float]:
    """The default measures of `run`, with the recall diagnostics when asked for."""
    return {**evaluate(qrels, run), **(recall_metrics(qrels, run) if diagnostics else {})}
