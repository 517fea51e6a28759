"""What the HTTP layer calls, all blocking: models loaded once per process, one Searcher per index searched.

Every search of the process shares the encoders through `SharedEncoders` (batched, cached), and answers with
`SearchResult.to_dict()`, the JSON of `neurank search --json`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from neurank.config import Settings
from neurank.errors import IndexNotFoundError, PlanError
from neurank.query.learned_fusion import LEARNED, LearnedFusion
from neurank.query.plan import Mode, PlanFusion, RetrievalPlan
from neurank.query.rerank import load_reranker
from neurank.query.searcher import Searcher
from neurank.query.target import SearchTarget
from neurank.retrieval import Fusion
from neurank.serve.batching import EncodingObserver, SharedEncoders
from neurank.serve.options import ServeOptions


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search as the API takes it; its fields are range-checked by the API model before it gets here."""

    query: str
    mode: str = "hybrid"
    k: int = 10
    depth: int = 100
    rerank: bool | None = None
    """None: as `neurank search` (a configured cross-encoder always runs); True / False: force it on or off."""
    explain: bool = False
    index: str | None = None
    fusion: str | None = None
    """A technique (`z_score`, `rrf`, …) with its default combination, or `learned`: the service's fusion model."""
    spelling: bool | None = None
    """None: as the settings say (`spelling`)."""


class SearchService:
    """The loaded models and store behind the API; building it loads nothing (`warm_up` does)."""

    def __init__(self, settings: Settings, options: ServeOptions, observer: EncodingObserver) -> None:
        configured = SearchTarget.from_settings(settings)
        self.encoders = SharedEncoders(configured.encoders, options, observer)
        self.store = configured.store
        self.index = configured.index
        self._settings = settings
        self._reranker_loaded = False
        self._reranker: Any = None
        self._searchers: dict[str, Searcher] = {}
        self._fusion_model = options.fusion_model
        self._learned: LearnedFusion | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load every model, and the served index's search structures, before the first search pays for them.

        One search of every stage does it: a store may build its in-memory index on first use (the local
        store's takes seconds on a few thousand documents), which would put the first searches past their
        deadline. A missing index is no error here: `/readyz` reports it.
        """
        self.encoders.bundle.warm_up()
        if self._fusion_model:
            self.fusion(LEARNED)
        try:
            searcher = self.searcher()
        except IndexNotFoundError:
            return
        searcher.search("warm up", searcher.plan("hybrid", k=1), with_documents=False)

    def reranker(self) -> Any:
        with self._lock:
            if not self._reranker_loaded:
                self._reranker = load_reranker(self._settings)
                self._reranker_loaded = True
            return self._reranker

    def fusion(self, name: str | None) -> PlanFusion | None:
        """The fusion a request names: a technique with its default combination, or the service's learned model
        (loaded once); None: the plan's default."""
        if name is None:
            return None
        if name != LEARNED:
            return Fusion(name)  # type: ignore[arg-type]  # the API model admits techniques only
        if not self._fusion_model:
            raise PlanError("this service has no learned fusion model: start it with NEURANK_SERVE_FUSION_MODEL="
                            "DIR (a folder made by `neurank train fusion`)")
        with self._lock:
            if self._learned is None:
                learned = LearnedFusion.load(self._fusion_model)
                learned.booster()
                self._learned = learned
            return self._learned

    def searcher(self, index: str | None = None) -> Searcher:
        """The Searcher of `index` (default: the served one); `IndexNotFoundError` when the store lacks it."""
        name = index or self.index
        with self._lock:
            searcher = self._searchers.get(name)
        if searcher is None:
            searcher = SearchTarget(self.store, name, self.encoders.bundle).searcher(self.reranker())
            searcher.spec  # noqa: B018 -- reads the index's spec: a missing index fails here and is not kept
            with self._lock:
                searcher = self._searchers.setdefault(name, searcher)
        return searcher

    def plan_mode(self, request: SearchRequest) -> tuple[Searcher, str, bool]:
        """The searcher, the mode to plan and whether rescoring stages are implied, from the request's `rerank`."""
        searcher = self.searcher(request.index)
        if request.rerank is None:
            return searcher, request.mode, True
        parsed = Mode.parse(request.mode)
        mode = Mode(parsed.first, parsed.colbert or searcher.late_interaction is not None, request.rerank)
        return searcher, str(mode), False

    def search(self, request: SearchRequest) -> tuple[str, dict[str, Any]]:
        """(the plan's metric label, the result's JSON)."""
        searcher, mode, implied = self.plan_mode(request)
        plan = searcher.plan(mode, k=request.k, depth=request.depth, fusion=self.fusion(request.fusion),
                             implied=implied, fuzzy=self._settings.fuzzy(), ngram=self._settings.ngram_match,
                             spelling=self._settings.spelling if request.spelling is None else request.spelling)
        spelling = searcher.speller.correct(request.query) if plan.spelling else None
        encoded = request.query if spelling is None else spelling.text
        with self.encoders.started(encoded, [encoder for _, encoder in searcher.query_encoders(plan)]):
            # The JSON carries no titles or texts (GET /documents has them): fetching them would be wasted work.
            result = searcher.search(request.query, plan, with_documents=False, explain=request.explain,
                                     spelling=spelling)
        return mode_label(plan), result.to_dict()

    def document(self, doc_id: str, index: str | None = None) -> dict[str, Any] | None:
        searcher = self.searcher(index)
        found = self.store.get(searcher.target.index, [doc_id])
        if not found:
            return None
        document = found[0].document
        return {"id": document.id, "title": document.title, "text": document.text, "metadata": document.metadata}

    def problems(self) -> list[str]:
        """Why the service cannot search yet (an empty list when it can): the store or the index is missing."""
        try:
            if self.store.index_spec(self.index) is None:
                raise IndexNotFoundError(self.index, self.store.url)
        except Exception as exc:  # readiness reports any failure to reach the store as text
            return [str(exc)]
        return []

    def close(self) -> None:
        self.encoders.close()


def mode_label(plan: RetrievalPlan) -> str:
    """The plan's stages as a metric label (`hybrid`, `bm25+colbert+rerank`, …): a small set, unlike mode strings."""
    return plan.rerank_first_stage + ("+rerank" if plan.rerank_depth else "")
