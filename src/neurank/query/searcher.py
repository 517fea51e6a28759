"""The Searcher: runs a plan's stages on a store, fuses them like OpenSearch, reranks, and keeps every score.

The one decision "fuse here or on the cluster" is made here: a hybrid plan goes to the engine as one fused
request when the store can fuse that way (`FusingStore.fuses`), else its sub-queries go in one call and
`neurank.query.fusion.fuse` combines them with the same semantics. Per search, the query is encoded once per
encoder and each stored document is fetched once (rerank, titles and explanations share them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from neurank.documents import Hit, StageScore
from neurank.errors import ConfigError, IndexNotFoundError, InputError, PlanError
from neurank.index_spec import COLBERT_ROLE, DENSE_ROLE, IndexSpec
from neurank.query.duo import DUO_OFF_NOTE, DuoReranker, sym_sum
from neurank.query.explain import Explanation, explain_hit
from neurank.query.fusion import FusedHit, fuse
from neurank.query.late_interaction import COLBERT_OFF_NOTE, alignment, late_interaction_stage
from neurank.query.learned_fusion import LearnedFusion, LearnedHit, candidates, learned_ranking
from neurank.query.plan import COLBERT, RERANK, Mode, PlanFusion, RetrievalPlan, Stage, StageName
from neurank.query.rerank import RERANK_OFF_NOTE, Reranker, Rescored
from neurank.query.spelling import Correction, SpellingCorrector
from neurank.retrieval import (
    Fusion,
    Fuzzy,
    LateInteractionQuery,
    ScoredIds,
    SparseQuery,
    SubQuery,
    TextQuery,
    VectorQuery,
)
from neurank.stores.analysis import get_analyzer
from neurank.stores.protocol import FusingStore, StoredDocument

if TYPE_CHECKING:
    from neurank.query.target import SearchTarget

SERVER_FUSION_NOTE = "fused by the cluster ({site}): per-stage scores are not reported"
CLIENT_FUSION_NOTE = "fused by {site}: the cluster cannot fuse this way itself (version, plugin or licence)"
LEARNED_FUSION_NOTE = ("fused by neurank's learned fusion model: the cluster answered the sub-queries in one request "
                       "and the model ranked their hits here")


@dataclass(slots=True)
class SearchResult:
    query: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    explanations: list[Explanation] | None = None
    """One per hit, in order, when the search was asked to explain."""
    spelling: Correction | None = None
    """What the stages searched for, when the plan corrects spelling."""

    def to_dict(self) -> dict[str, Any]:
        hits = [hit.to_dict() for hit in self.hits]
        for hit, explanation in zip(hits, self.explanations or [], strict=False):
            hit["explain"] = explanation.to_dict()
        spelling = {} if self.spelling is None else {"spelling": self.spelling.to_dict()}
        return {"query": self.query, **spelling, "hits": hits, "timings_ms": self.timings_ms, "notes": self.notes}


class QueryEncodings:
    """One query's encodings, each made at most once per search: sparse tokens per field, and the vector."""

    def __init__(self, target: SearchTarget, query: str) -> None:
        self._target = target
        self._query = query
        self._tokens: dict[str, Mapping[str, float]] = {}
        self._vector: np.ndarray | None = None
        self._colbert: np.ndarray | None = None

    def tokens(self, field: str) -> Mapping[str, float]:
        if field not in self._tokens:
            encoder = self._target.encoders.sparse_encoders().get(field)
            self._tokens[field] = encoder.encode_queries([self._query])[0] if encoder else {}
        return self._tokens[field]

    def vector(self) -> np.ndarray:
        if self._vector is None:
            self._vector = np.asarray(self._target.encoders.dense.encode_queries([self._query])[0], np.float32)
        return self._vector

    def colbert(self) -> np.ndarray:
        """The query's late-interaction token vectors (query length × dim)."""
        if self._colbert is None:
            self._colbert = np.asarray(self._target.encoders.colbert.encode_queries([self._query])[0], np.float32)
        return self._colbert


class Searcher:
    """Searches one target with any plan; building it does no I/O (the index's spec is read on first use).

    `check_models=False` searches even with other encoders than the index was built with (a latency benchmark
    of another runtime, say), and every result says so in its notes.
    """

    def __init__(self, target: SearchTarget, reranker: Reranker | None = None, *, duo: DuoReranker | None = None,
                 check_models: bool = True) -> None:
        self.target = target
        self.reranker = reranker
        self.duo = duo
        self.check_models = check_models
        self._spec: IndexSpec | None = None
        self._overridden: list[str] = []
        colbert = target.encoders.colbert
        self.late_interaction = None if colbert is None else late_interaction_stage(colbert)

    @property
    def spec(self) -> IndexSpec:
        """The spec of the searched index, read once."""
        if self._spec is None:
            spec = self.target.store.index_spec(self.target.index)
            if spec is None:
                raise IndexNotFoundError(self.target.index, self.target.store.url)
            self._spec = spec
        return self._spec

    def available_stages(self) -> tuple[StageName, ...]:
        """The first stages both the index and the configured encoders have (what `hybrid` fuses)."""
        encoders, spec = self.target.encoders, self.spec
        sparse = encoders.splade is not None and "splade" in spec.models
        dense = encoders.dense is not None and spec.dense_dimension is not None and DENSE_ROLE in spec.models
        return ("bm25", *(("sparse",) if sparse else ()), *(("dense",) if dense else ()))

    def plan(self, mode: str, *, k: int = 10, depth: int = 100, fusion: PlanFusion | None = None,
             rerank_depth: int | None = None, colbert_depth: int | None = None, duo_depth: int | None = None,
             implied: bool = True, fuzzy: Fuzzy | None = None, ngram: bool = False,
             spelling: bool = False) -> RetrievalPlan:
        """The plan of `mode` on this index, checked (see `neurank.query.plan` for modes and default depths); the
        bm25 stage matches fuzzily with `fuzzy`, and n-grams too with `ngram`; `spelling` corrects the query first.

        With `implied` (a search), the rescoring stages whose models are configured run even when the mode does
        not name them, as `neurank search --rerank-model` always did; evaluation and calibration pass False and
        get exactly the stages their mode names.
        """
        parsed = Mode.parse(mode)
        if implied:
            parsed = Mode(parsed.first, parsed.colbert or self.late_interaction is not None,
                          parsed.rerank or self.reranker is not None, parsed.duo or self.duo is not None)
        plan = RetrievalPlan.for_mode(str(parsed), available=self.available_stages(), k=k, depth=depth,
                                      fusion=fusion, rerank_depth=rerank_depth, colbert_depth=colbert_depth,
                                      duo_depth=duo_depth, fuzzy=fuzzy, ngram=ngram, spelling=spelling)
        self.check(plan)
        return plan

    @cached_property
    def speller(self) -> SpellingCorrector:
        """Corrects queries against this index's terms, analyzed as the index analyzes them; words tie-broken by
        the first query encoder's tokenizer (dense, else sparse)."""
        target = self.target
        encoder = target.encoders.dense or target.encoders.splade
        return SpellingCorrector(get_analyzer(self.spec.language),
                                 lambda terms: target.store.document_frequencies(target.index, terms),
                                 pieces=None if encoder is None else encoder.pieces)

    def check(self, plan: RetrievalPlan) -> None:
        """Every stage needs its encoder, and the encoder the index was built with; say which one is wrong.

        Late interaction without a model is not an error here: the search says the stage is off, as for the rerank.
        """
        if any(stage.ngram for stage in plan.stages) and not self.spec.ngram:
            raise PlanError(f"index {self.target.index!r} has no n-gram subfield: create it with NEURANK_NGRAM=3 "
                            "(and ingest again) to match n-grams")
        for role, encoder in self.query_encoders(plan):
            built_with = self.spec.models.get(role)
            if built_with is None:
                raise PlanError(f"index {self.target.index!r} holds no {role} field: it was built without a "
                                f"{role} model")
            if encoder.fingerprint != built_with:
                mismatch = (f"index {self.target.index!r} was built with another {role} model (fingerprint "
                            f"{built_with}) than the configured {encoder.model!r} (runtime {encoder.runtime}, "
                            f"{'int8' if encoder.int8 else 'fp32'}: {encoder.fingerprint})")
                if self.check_models:
                    raise ConfigError(f"{mismatch}; its queries would not match the stored vectors or weights: "
                                      "search with the models and runtime it was built with, or re-ingest it")
                if mismatch not in self._overridden:
                    self._overridden.append(mismatch)
        if isinstance(plan.fusion, LearnedFusion):
            self._check_learned(plan.fusion, plan)

    def _check_learned(self, fusion: LearnedFusion, plan: RetrievalPlan) -> None:
        """A learned model reads scores: they must come from the models it was trained on."""
        used = self.fingerprints(plan)
        for role in sorted(used.keys() | fusion.fingerprints.keys()):
            if used.get(role) != fusion.fingerprints.get(role):
                raise ConfigError(f"the learned fusion model {fusion.folder} was trained on the scores of the {role} "
                                  f"model {fusion.fingerprints.get(role) or '(none)'}, this search uses "
                                  f"{used.get(role) or '(none)'}: search with the models it was trained on, or "
                                  "train it again")

    def fingerprints(self, plan: RetrievalPlan) -> dict[str, str]:
        """Model role → fingerprint of every model whose scores `plan` produces (what a learned fusion reads)."""
        used = {role: str(encoder.fingerprint) for role, encoder in self.query_encoders(plan)}
        if plan.rerank_depth and self.reranker is not None:
            used[RERANK] = str(self.reranker.fingerprint)
        return used

    def query_encoders(self, plan: RetrievalPlan) -> list[tuple[str, Any]]:
        """(model role, encoder) of every stage of `plan` that encodes the query."""
        encoders = self.target.encoders
        used: list[tuple[str, Any]] = []
        for stage in plan.stages:
            if stage.name == "sparse":
                if stage.field not in encoders.sparse_encoders():
                    raise PlanError(f"the sparse stage queries {stage.field!r} but no such sparse encoder is "
                                    "configured (set --sparse-model / NEURANK_SPARSE_MODEL)")
                used.append((stage.field, encoders.sparse_encoders()[stage.field]))
            elif stage.name == "dense":
                if encoders.dense is None:
                    raise PlanError("the dense stage needs a dense model (set --dense-model / NEURANK_DENSE_MODEL)")
                used.append((DENSE_ROLE, encoders.dense))
        if plan.colbert_depth and encoders.colbert is not None:
            used.append((COLBERT_ROLE, encoders.colbert))
        return used

    def stage_results(self, query: str, plan: RetrievalPlan, encodings: QueryEncodings | None = None
                      ) -> list[ScoredIds]:
        """Each sub-query's hits before fusion, from one store call (fusion can be tuned offline over these)."""
        encodings = encodings or QueryEncodings(self.target, query)
        return self.target.store.search(self.target.index, [self._sub_query(stage, query, encodings)
                                                            for stage in plan.stages])

    def search(self, query: str, plan: RetrievalPlan, *, with_documents: bool = True,
               explain: bool = False, spelling: Correction | None = None) -> SearchResult:
        """Run `plan`; `with_documents=False` skips titles and texts, `explain` adds why each hit scored; a plan
        that corrects spelling uses `spelling` when the caller already corrected the query."""
        if not query.strip():
            raise InputError("the query is empty: give at least one word to search for", field="query")
        self.check(plan)
        timings: dict[str, float] = {}
        notes = [f"{mismatch}: searched anyway" for mismatch in self._overridden]
        asked = query
        if not plan.spelling:
            spelling = None
        elif spelling is None:
            with _timed(timings, "spelling"):
                spelling = self.speller.correct(query)
        if spelling is not None:
            query = spelling.text
        encodings = QueryEncodings(self.target, query)
        documents = _Documents(self.target)
        fusion = plan.fusion
        learned: dict[str, LearnedHit] = {}
        if isinstance(fusion, LearnedFusion):
            with _timed(timings, "search"):
                ids, lists = self.learned_lists(query, plan, encodings, documents)
            with _timed(timings, "fusion"):
                learned = {hit.id: hit for hit in learned_ranking(fusion, ids, lists, query)}
            hits = [Hit(hit.id, hit.score, _learned_stages(hit)) for hit in learned.values()]
            if isinstance(self.target.store, FusingStore):
                notes.append(LEARNED_FUSION_NOTE)
        else:
            hits = self._fused_and_rescored(query, plan, fusion, encodings, documents, timings, notes)
        preferences: dict[str, list[tuple[str, float]]] = {}
        if plan.duo_depth:
            if self.duo is None:
                notes.append(DUO_OFF_NOTE)
            else:
                with _timed(timings, "duo"):
                    hits = self._pairwise(query, hits, plan, documents, preferences)
        hits = hits[: plan.k]
        if with_documents:
            for hit, stored in zip(hits, documents.of([hit.id for hit in hits]), strict=True):
                if stored is not None:
                    hit.title, hit.text = stored.document.title, stored.document.text
        explanations = None
        if explain:
            with _timed(timings, "explain"):
                stored_docs = documents.of([hit.id for hit in hits])
                tokens = encodings.tokens("splade")
                colbert = self.target.encoders.colbert
                query_tokens = colbert.query_tokens(query) if any("colbert" in hit.stages for hit in hits) else []
                explanations = [
                    explain_hit(self.target.store, self.target.index, query, hit.id, stored, tokens,
                                alignment(colbert, query_tokens, encodings.colbert(), stored)
                                if stored is not None and "colbert" in hit.stages else None,
                                preferences.get(hit.id))
                    for hit, stored in zip(hits, stored_docs, strict=True)]
                for hit, explanation in zip(hits, explanations, strict=True):
                    if hit.id in learned:
                        explanation.learned = learned[hit.id]
        timings["total"] = sum(timings.values())
        return SearchResult(query=asked, hits=hits, timings_ms=timings, notes=notes, explanations=explanations,
                            spelling=spelling)

    def learned_lists(self, query: str, plan: RetrievalPlan, encodings: QueryEncodings | None = None,
                      documents: _Documents | None = None) -> tuple[list[str], dict[str, ScoredIds]]:
        """What a learned fusion of `plan` reads: the candidates, and each of `plan.scored_lists` with its hits.

        Training calls this too, so the features of a query are the same at training and at search time. The
        candidates are every first stage's hits (`learned_fusion.candidates` order); late interaction scores the
        first `colbert_depth` of them by MaxSim over their stored token vectors, the cross-encoder the first
        `rerank_depth`, each as a list of its own (the model combines them; nothing is interpolated).
        """
        encodings = encodings or QueryEncodings(self.target, query)
        documents = documents or _Documents(self.target)
        results = self.stage_results(query, plan, encodings)
        ids = candidates(results)
        lists: dict[str, ScoredIds] = {stage.name: hits for stage, hits in zip(plan.stages, results, strict=True)}
        if plan.colbert_depth:
            if self.late_interaction is None:
                raise ConfigError(f"{COLBERT_OFF_NOTE}; this learned fusion model reads its scores")
            head = tuple(ids[: plan.colbert_depth])
            lists[COLBERT] = self.target.store.search(
                self.target.index, [LateInteractionQuery(encodings.colbert(), head, len(head))])[0] if head else []
        if plan.rerank_depth:
            if self.reranker is None:
                raise ConfigError(f"{RERANK_OFF_NOTE}; this learned fusion model reads its scores")
            head_ids = ids[: plan.rerank_depth]
            kept = [(doc_id, doc) for doc_id, doc in zip(head_ids, documents.of(head_ids), strict=True)
                    if doc is not None]
            scores = self.reranker.scores(query, [doc.document.passage for _, doc in kept]).tolist()
            lists[RERANK] = sorted(zip([doc_id for doc_id, _ in kept], scores, strict=True),
                                   key=lambda pair: (-pair[1], pair[0]))
        return ids, lists

    def _fused_and_rescored(self, query: str, plan: RetrievalPlan, fusion: Fusion, encodings: QueryEncodings,
                            documents: _Documents, timings: dict[str, float], notes: list[str]) -> list[Hit]:
        """The first stages fused as OpenSearch fuses (by the cluster where it can), then the rescoring stages."""
        store = self.target.store
        if plan.is_hybrid and isinstance(store, FusingStore) and store.fuses(fusion):
            with _timed(timings, "search"):
                queries = [self._sub_query(stage, query, encodings) for stage in plan.stages]
                fused = store.search_fused(self.target.index, queries, fusion, size=plan.depth)
            hits = [Hit(doc_id, score) for doc_id, score in fused]
            notes.append(SERVER_FUSION_NOTE.format(site=store.fused_by(fusion)))
        else:
            with _timed(timings, "search"):
                results = self.stage_results(query, plan, encodings)
            with _timed(timings, "fusion"):
                hits = _combine(plan, fusion, results)
            if plan.is_hybrid and isinstance(store, FusingStore):
                notes.append(CLIENT_FUSION_NOTE.format(site=store.fused_by(fusion)))
        if plan.colbert_depth:
            if self.late_interaction is None:
                notes.append(COLBERT_OFF_NOTE)
            else:
                with _timed(timings, "colbert"):
                    hits = self._late_interaction(hits, plan, encodings, notes)
        if plan.rerank_depth:
            if self.reranker is None:
                notes.append(RERANK_OFF_NOTE)
            else:
                with _timed(timings, "rerank"):
                    hits = self._rerank(query, hits, plan, documents)
        return hits

    @staticmethod
    def _sub_query(stage: Stage, query: str, encodings: QueryEncodings) -> SubQuery:
        if stage.name == "bm25":
            return TextQuery(query, stage.k, stage.fuzzy, stage.ngram)
        if stage.name == "sparse":
            return SparseQuery(stage.field, encodings.tokens(stage.field), stage.k)
        return VectorQuery(encodings.vector(), stage.k)

    def _late_interaction(self, hits: list[Hit], plan: RetrievalPlan, encodings: QueryEncodings,
                          notes: list[str]) -> list[Hit]:
        """MaxSim over the top `colbert_depth` hits' stored token vectors, by the store; the rescored come first.

        A candidate without token vectors (none kept, or indexed before the stage existed) is not scored 0: it
        keeps its first-stage order after the rescored ones, and a note names it.
        """
        assert self.late_interaction is not None
        head, tail = hits[: plan.colbert_depth], hits[plan.colbert_depth:]
        if not head:
            return hits
        query = LateInteractionQuery(encodings.colbert(), tuple(hit.id for hit in head), len(head))
        scores = dict(self.target.store.search(self.target.index, [query])[0])
        scored = [hit for hit in head if hit.id in scores]
        unscored = [hit for hit in head if hit.id not in scores]
        if unscored:
            named = ", ".join(hit.id for hit in unscored[:5]) + (", …" if len(unscored) > 5 else "")
            notes.append(f"{len(unscored)} of the top {len(head)} candidates have no token vectors (no token kept, "
                         f"or indexed before the late-interaction model): {named}; they follow the rescored ones "
                         "in first-stage order")
        rescored = self.late_interaction.combine([(hit.id, hit.score) for hit in scored],
                                                 np.array([scores[hit.id] for hit in scored], dtype=np.float32),
                                                 first_stage=plan.first_stage)
        return _ranked_after(_reordered(scored, rescored, "colbert"), unscored + tail)

    def _rerank(self, query: str, hits: list[Hit], plan: RetrievalPlan, documents: _Documents) -> list[Hit]:
        """Rescore the top `rerank_depth` hits; they come first, in their reranked order; the rest keep theirs (a
        hit whose document is gone among them)."""
        assert self.reranker is not None
        head, tail = hits[: plan.rerank_depth], hits[plan.rerank_depth:]
        stored = documents.of([hit.id for hit in head])
        kept = [(hit, doc) for hit, doc in zip(head, stored, strict=True) if doc is not None]
        gone = [hit for hit, doc in zip(head, stored, strict=True) if doc is None]
        rescored = self.reranker.rescore(query, [(hit.id, hit.score) for hit, _ in kept],
                                         [doc.document.passage for _, doc in kept],
                                         first_stage=plan.rerank_first_stage)
        return _ranked_after(_reordered([hit for hit, _ in kept], rescored, "rerank"), gone + tail)

    def _pairwise(self, query: str, hits: list[Hit], plan: RetrievalPlan, documents: _Documents,
                  preferences: dict[str, list[tuple[str, float]]]) -> list[Hit]:
        """Reorder the top `duo_depth` hits by SYM-SUM of the pairwise model's preferences; the rest keep their order.

        SYM-SUM only compares the hits of one list, so it goes into `stages["duo"]`; each reordered hit's `score`
        becomes the score its new rank had before, which keeps the scores decreasing into the untouched tail
        (a run file or a metric orders hits by score). `preferences` receives, per reordered hit, (other hit,
        P(this hit more relevant than the other)): what an explanation shows. A hit whose document is gone
        follows the reordered ones.
        """
        assert self.duo is not None
        head, tail = hits[: plan.duo_depth], hits[plan.duo_depth:]
        stored = documents.of([hit.id for hit in head])
        kept = [(hit, doc) for hit, doc in zip(head, stored, strict=True) if doc is not None]
        gone = [hit for hit, doc in zip(head, stored, strict=True) if doc is None]
        matrix = self.duo.preferences(query, [doc.document.passage for _, doc in kept])
        ids = [hit.id for hit, _ in kept]
        for i, hit_id in enumerate(ids):
            preferences[hit_id] = [(other, float(matrix[i, j])) for j, other in enumerate(ids) if j != i]
        scores = sym_sum(matrix).astype(np.float32)
        by_rank = sorted((hit.score for hit, _ in kept), reverse=True)
        reordered = _reordered([hit for hit, _ in kept], Rescored(scores, scores, [None] * len(kept)), "duo")
        for hit, score in zip(reordered, by_rank, strict=True):
            hit.score = score
        return _ranked_after(reordered, gone + tail)


class _Documents:
    """Stored documents fetched at most once per search, whoever asks for them first."""

    def __init__(self, target: SearchTarget) -> None:
        self._target = target
        self._cache: dict[str, StoredDocument | None] = {}

    def of(self, ids: Sequence[str]) -> list[StoredDocument | None]:
        missing = [doc_id for doc_id in dict.fromkeys(ids) if doc_id not in self._cache]
        if missing:
            found = {doc.document.id: doc for doc in self._target.store.get(self._target.index, missing)}
            self._cache.update({doc_id: found.get(doc_id) for doc_id in missing})
        return [self._cache[doc_id] for doc_id in ids]


def _ranked_after(rescored: list[Hit], rest: list[Hit]) -> list[Hit]:
    """`rest` after the `rescored` head, its scores shifted by one constant (order and gaps kept) where needed to
    stay below the head's lowest: a rescoring stage's scores are on another scale than the hits it did not see,
    and a run file or a metric orders hits by `score`. Each stage's own scores stay in `stages`."""
    if rescored and rest:
        floor, top = min(hit.score for hit in rescored), max(hit.score for hit in rest)
        if top >= floor:
            shift = top - floor + max(abs(floor), 1.0) * 1e-6
            for hit in rest:
                hit.score -= shift
    return rescored + rest


def _reordered(hits: list[Hit], rescored: Rescored, stage: str) -> list[Hit]:
    """`hits` in the order of their final rescored scores, each carrying the stage's raw and normalized score."""
    order = np.argsort(-rescored.final, kind="stable")
    reordered = []
    for rank, i in enumerate(order, start=1):
        hit = hits[i]
        hit.stages[stage] = StageScore(float(rescored.logits[i]), rescored.normalized[i], rank)
        hit.score = float(rescored.final[i])
        reordered.append(hit)
    return reordered


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000


def _combine(plan: RetrievalPlan, fusion: Fusion, results: list[ScoredIds]) -> list[Hit]:
    """One stage: its hits as they are; several: fused on the client, each hit keeping every stage's scores."""
    names = [stage.name for stage in plan.stages]
    if len(results) == 1:
        return [Hit(doc_id, score, {names[0]: StageScore(score, None, rank)})
                for rank, (doc_id, score) in enumerate(results[0], start=1)]
    return [_fused_hit(names, fused) for fused in fuse(results, fusion, limit=plan.depth)]


def _learned_stages(hit: LearnedHit) -> dict[str, StageScore]:
    """Each list that scored a learned hit, as its raw score, min_max-normalized score and rank (its features)."""
    names = [name.removesuffix(".raw") for name in hit.features if name.endswith(".raw")]
    stages = {}
    for name in names:
        raw, normalized, rank = (hit.features[f"{name}.{kind}"] for kind in ("raw", "norm", "rank"))
        if raw is not None:
            stages[name] = StageScore(raw, normalized, None if rank is None else int(rank))
    return stages


def _fused_hit(names: Sequence[str], fused: FusedHit) -> Hit:
    stages = {name: StageScore(raw, norm, rank)
              for name, raw, norm, rank in zip(names, fused.raw, fused.normalized, fused.ranks, strict=True)
              if raw is not None}
    return Hit(fused.id, fused.score, stages)
