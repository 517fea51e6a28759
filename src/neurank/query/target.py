"""An index as searched: its store, its name, and the encoders its queries are encoded with; one factory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurank.config import Settings
from neurank.onnx_models.bundle import EncoderBundle
from neurank.stores import Store, open_store

if TYPE_CHECKING:
    from neurank.query.duo import DuoReranker
    from neurank.query.rerank import Reranker
    from neurank.query.searcher import Searcher


@dataclass(frozen=True, slots=True)
class SearchTarget:
    """The (store, index, encoders) triple that the CLI, the demo, evaluation, calibration and training search."""

    store: Store
    index: str
    encoders: EncoderBundle

    @classmethod
    def from_settings(cls, settings: Settings, index: str | None = None) -> SearchTarget:
        """The configured store, index (or `index`) and encoders; nothing is opened or loaded yet."""
        return cls(open_store(settings), index or settings.index, EncoderBundle.from_settings(settings))

    def searcher(self, reranker: Reranker | None = None, *, duo: DuoReranker | None = None,
                 check_models: bool = True) -> Searcher:
        from neurank.query.searcher import Searcher

        return Searcher(self, reranker, duo=duo, check_models=check_models)
