"""The Searcher: runs a plan's stages on a store, fuses them like OpenSearch, reranks, and keeps every score."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurank.documents import Hit, StageScore
from neurank.errors import PlanError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.fusion import FusedHit, fuse
from neurank.query.plan import RetrievalPlan, Stage
from neurank.query.rerank import RERANK_OFF_NOTE, Reranker
from neurank.stores.protocol import HybridStore, ScoredIds, Store

SERVER_FUSION_NOTE = "fused by the cluster (hybrid query): per-stage scores are not reported"


@dataclass(slots=True)
class SearchResult:
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "hits": [hit.to_dict() for hit in self.hits],
            "timings_ms": self.timings_ms,
            "notes": self.notes,
        }


class Searcher:
    """Built once per (store, index, encoders, plan); checks the plan against what it has when built."""

    def __init__(self, store: Store, index: str, encoders: EncoderBundle, plan: RetrievalPlan,
                 reranker: Reranker | None = None) -> None:
        self.encoders = encoders
        self._check_plan(plan)
        self.store = store
        self.index = index
        self.plan = plan
        self.reranker = reranker

    def _check_plan(self, plan: RetrievalPlan) -> None:
        """Every stage needs its encoder; say which one is missing instead of failing mid-query."""
        for stage in plan.stages:
            if stage.name == "sparse" and stage.field not in self.encoders.sparse_encoders():
                raise PlanError(f"the sparse stage queries {stage.field!r} but no such sparse encoder is configured")
            if stage.name == "dense" and self.encoders.dense is None:
                raise PlanError("the dense stage needs a dense model (set --dense-model / NEURANK_DENSE_MODEL)")

    def run_stage(self, stage: Stage, query: str) -> ScoredIds:
        """One sub-query's hits, best first (public so fusion can be tuned offline over cached stage runs)."""
        if stage.name == "bm25":
            return self.store.search_bm25(self.index, query, stage.k)
        if stage.name == "sparse":
            encoder = self.encoders.sparse_encoders()[stage.field]
            tokens = encoder.encode_queries([query])[0]
            return self.store.search_sparse(self.index, stage.field, tokens, stage.k)
        vector = self.encoders.dense.encode_queries([query])[0]
        return self.store.search_vector(self.index, vector, stage.k)

    def search(self, query: str, plan: RetrievalPlan | None = None, *, with_documents: bool = True) -> SearchResult:
        """Run `plan` (the Searcher's own by default); `with_documents=False` skips fetching titles and texts."""
        if plan is None:
            plan = self.plan
        else:
            self._check_plan(plan)
        timings: dict[str, float] = {}
        notes: list[str] = []
        if plan.is_hybrid and isinstance(self.store, HybridStore):
            hits = self._search_hybrid(plan, query, timings, notes)
        else:
            results: list[ScoredIds] = []
            for stage in plan.stages:
                start = time.perf_counter()
                results.append(self.run_stage(stage, query))
                timings[stage.name] = (time.perf_counter() - start) * 1000
            start = time.perf_counter()
            hits = self._combine(plan, results)
            timings["fusion"] = (time.perf_counter() - start) * 1000
        if plan.rerank_depth:
            if self.reranker is None:
                notes.append(RERANK_OFF_NOTE)
            else:
                start = time.perf_counter()
                hits = self._rerank(query, hits, plan)
                timings["rerank"] = (time.perf_counter() - start) * 1000
        hits = hits[: plan.k]
        if with_documents:
            self._attach_documents(hits)
        timings["total"] = sum(timings.values())
        return SearchResult(query=query, hits=hits, timings_ms=timings, notes=notes)

    def _search_hybrid(self, plan: RetrievalPlan, query: str, timings: dict[str, float],
                       notes: list[str]) -> list[Hit]:
        """All sub-queries in one request (`_msearch`, or a `hybrid` query fused by the cluster)."""
        start = time.perf_counter()
        encoders = self.encoders.sparse_encoders()
        tokens = {stage.field: encoders[stage.field].encode_queries([query])[0]
                  for stage in plan.stages if stage.name == "sparse"}
        dense = any(stage.name == "dense" for stage in plan.stages)
        vector = self.encoders.dense.encode_queries([query])[0] if dense else None
        timings["encode"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        assert isinstance(self.store, HybridStore)
        fused = self.store.search_hybrid(self.index, plan, query, tokens, vector)
        timings["hybrid"] = (time.perf_counter() - start) * 1000
        if fused and all(raw is None for raw in fused[0].raw):
            notes.append(SERVER_FUSION_NOTE)
        return self._fused_hits(plan, fused)

    @staticmethod
    def _combine(plan: RetrievalPlan, results: list[ScoredIds]) -> list[Hit]:
        names = [stage.name for stage in plan.stages]
        if len(results) == 1:
            return [Hit(doc_id, score, {names[0]: StageScore(score, None, rank)})
                    for rank, (doc_id, score) in enumerate(results[0], start=1)]
        return Searcher._fused_hits(plan, fuse(results, plan.fusion))

    @staticmethod
    def _fused_hits(plan: RetrievalPlan, fused_hits: list[FusedHit]) -> list[Hit]:
        """Hits carrying each sub-query's raw score, normalized score and rank, where known."""
        names = [stage.name for stage in plan.stages]
        hits = []
        for fused in fused_hits:
            stages: dict[str, StageScore] = {
                name: StageScore(raw, norm, rank)
                for name, raw, norm, rank in zip(names, fused.raw, fused.normalized, fused.ranks, strict=True)
                if raw is not None
            }
            hits.append(Hit(fused.id, fused.score, stages))
        return hits

    def _rerank(self, query: str, hits: list[Hit], plan: RetrievalPlan) -> list[Hit]:
        """Rescore the top `rerank_depth` hits; they come first, in their reranked order; the rest keep theirs."""
        head, tail = hits[: plan.rerank_depth], hits[plan.rerank_depth:]
        stored = {doc.document.id: doc.document for doc in self.store.get(self.index, [h.id for h in head])}
        head = [hit for hit in head if hit.id in stored]
        assert self.reranker is not None
        rescored = self.reranker.rescore(query, [(hit.id, hit.score) for hit in head],
                                         [stored[hit.id].passage for hit in head], first_stage=plan.first_stage)
        order = np.argsort(-rescored.final, kind="stable")
        reranked = []
        for rank, i in enumerate(order, start=1):
            hit = head[i]
            hit.stages["rerank"] = StageScore(float(rescored.logits[i]), rescored.normalized[i], rank)
            hit.score = float(rescored.final[i])
            reranked.append(hit)
        return reranked + tail

    def _attach_documents(self, hits: list[Hit]) -> None:
        stored = {doc.document.id: doc.document for doc in self.store.get(self.index, [h.id for h in hits])}
        for hit in hits:
            if document := stored.get(hit.id):
                hit.title, hit.text = document.title, document.text
