"""`neurank eval --diagnostics`: the diagnostics of each model that the evaluated modes score with.

Separation accuracy judges a scorer, so every model gets it: BM25 (its score as the store computes it), the
learned-sparse encoder (Σ query weight × document weight), the dense encoder (its similarity), the
cross-encoder and the pairwise model (the scores their stage ranks by; the pairwise model's SYM-SUM over the
query's positives and negatives together). The silhouette needs one vector per
text: the dense encoder only. Recall@N and micro-recall@N belong to the modes (`evaluate_modes`). Mined
negatives come from BM25's ranking of each query, as training mines them by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurank.eval.datasets import load_qrels, load_queries
from neurank.eval.diagnostics import Diagnostics, Embedder, Scorer, diagnose
from neurank.eval.runner import run_mode
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.retrieval import ScoredIds

MINING_DEPTH = 50
_PAIRS = "scores (query, passage) pairs: it has no embedding space"


def model_diagnostics(dataset: Path, target: SearchTarget, searcher: Searcher, modes: Sequence[str], *,
                      split: str = "test", corpus: Mapping[str, str],
                      on_model: Callable[[str], None] | None = None) -> dict[str, Diagnostics]:
    """Model name → its diagnostics on `split`, for every model the `modes` (planned on `searcher`) use."""
    qrels = load_qrels(dataset, split)
    queries = {qid: text for qid, text in load_queries(dataset).items() if qid in qrels}
    plans = [searcher.plan(mode, implied=False) for mode in modes]
    bm25 = searcher.plan("bm25", k=MINING_DEPTH, depth=MINING_DEPTH, implied=False)
    mined, _ = run_mode(searcher, bm25, queries)
    first_stage: dict[str, ScoredIds] = {qid: list(scores.items()) for qid, scores in mined.items()}
    used: set[str] = {stage.name for plan in plans for stage in plan.stages}
    scorers = _scorers(target, searcher, used, rerank=any(plan.rerank_depth for plan in plans),
                       duo=any(plan.duo_depth for plan in plans), corpus=corpus)
    results = {}
    for name, (score, embedder, why) in scorers.items():
        if on_model:
            on_model(name)
        results[name] = diagnose(score, qrels, queries, corpus, first_stage, embedder=embedder, why_no_embeddings=why,
                                 why_no_run="Recall@N and micro-recall@N are reported per mode")
    return results


def _scorers(target: SearchTarget, searcher: Searcher, used: set[str], *, rerank: bool, duo: bool,
             corpus: Mapping[str, str]) -> dict[str, tuple[Scorer, Embedder | None, str]]:
    encoders = target.encoders
    scorers: dict[str, tuple[Scorer, Embedder | None, str]] = {}
    if "bm25" in used:
        scorers["bm25"] = (_bm25(target, corpus), None, "BM25 weighs terms: it has no embedding space")
    if "sparse" in used:
        scorers["sparse"] = (_sparse(encoders.splade), None,
                             "a learned-sparse model weighs vocabulary terms: its vectors are no embedding space")
    if "dense" in used:
        scorers["dense"] = (_dense(encoders.dense), encoders.dense, "")
    if rerank and searcher.reranker is not None:
        scorers["rerank"] = (searcher.reranker.scores, None, f"a cross-encoder {_PAIRS}")
    if duo and searcher.duo is not None:
        scorers["duo"] = (searcher.duo.scores, None, "a pairwise model scores (query, passage, passage) triples: it "
                                                     "has no embedding space")
    return scorers


def _bm25(target: SearchTarget, corpus: Mapping[str, str]) -> Scorer:
    """The store's BM25 score of each passage (the sum of its matched terms' contributions)."""
    ids = {passage: doc_id for doc_id, passage in corpus.items()}

    def score(query: str, passages: Sequence[str]) -> np.ndarray:
        return np.array([sum(target.store.explain_bm25(target.index, query, ids[passage]).values())
                         for passage in passages], dtype=np.float32)

    return score


def _sparse(encoder: Any) -> Scorer:
    def score(query: str, passages: Sequence[str]) -> np.ndarray:
        weights = encoder.encode_queries([query])[0]
        return np.array([sum(weight * document.get(token, 0.0) for token, weight in weights.items())
                         for document in encoder.encode_documents(list(passages))], dtype=np.float32)

    return score


def _dense(encoder: Any) -> Scorer:
    """Cosine or dot product, as the model's space type says."""
    def score(query: str, passages: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(encoder.encode_documents(list(passages)), np.float32)
        query_vector = np.asarray(encoder.encode_queries([query])[0], np.float32)
        if encoder.space_type == "cosinesimil":
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            query_vector = query_vector / max(float(np.linalg.norm(query_vector)), 1e-12)
        return vectors @ query_vector

    return score
