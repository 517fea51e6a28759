"""The demo job: index a small corpus on the embedded store and answer example queries with every stage."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from neurank.config import Settings
from neurank.documents import read_corpus
from neurank.eval.datasets import load_qrels, load_queries
from neurank.ingest.inline import IngestSummary, ingest_records
from neurank.onnx_models.bundle import EncoderBundle
from neurank.query.rerank import Reranker
from neurank.query.searcher import SearchResult
from neurank.query.target import SearchTarget
from neurank.stores.protocol import Store

SAMPLE_QUERIES = "sample_queries.json"
DEMO_RERANK_DEPTH = 20
"""Hits the cross-encoder rescores per demo query: enough to reorder what is shown, quick on a laptop."""


@dataclass(frozen=True, slots=True)
class DemoCorpus:
    index: str
    path: Path
    settings: Settings
    queries: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DemoRun:
    corpus: DemoCorpus
    ingest: IngestSummary
    results: list[SearchResult]


def sample_corpora(settings: Settings) -> list[DemoCorpus]:
    """The bundled samples: English on SPLADE + MiniLM (+ a late-interaction model when one is configured),
    Russian on the multilingual E5 alone (English SPLADE and late-interaction models would only add noise)."""
    data = resources.files("neurank") / "data"
    queries = json.loads((data / SAMPLE_QUERIES).read_text(encoding="utf-8"))
    english = settings.model_copy(update={"language": "english"})
    russian = settings.model_copy(update={"language": "russian", "sparse_model": "none", "colbert_model": None,
                                          "dense_model": "e5-small-multilingual"})
    return [
        DemoCorpus("demo-en", Path(str(data / "sample_en.jsonl")), english, queries["english"]),
        DemoCorpus("demo-ru", Path(str(data / "sample_ru.jsonl")), russian, queries["russian"]),
    ]


def dataset_corpus(path: Path, settings: Settings, n_queries: int = 5) -> DemoCorpus:
    """A BEIR folder: its corpus, and the first test queries (or the first queries when there are no qrels)."""
    queries = load_queries(path)
    try:
        judged = load_qrels(path, "test")
        chosen = [text for qid, text in queries.items() if qid in judged]
    except Exception:
        chosen = list(queries.values())
    return DemoCorpus(f"beir-{path.name}", path, settings, chosen[:n_queries])


def run_demo(corpora: list[DemoCorpus], store: Store, *, k: int = 3, reranker: Reranker | None = None,
             on_progress: Callable[[str, int], None] | None = None) -> Iterator[DemoRun]:
    for corpus in corpora:
        encoders = EncoderBundle.from_settings(corpus.settings)
        progress = (lambda n, name=corpus.index: on_progress(name, n)) if on_progress else None
        summary = ingest_records(read_corpus(corpus.path), store, corpus.index, encoders, corpus.settings,
                                 on_progress=progress)
        searcher = SearchTarget(store, corpus.index, encoders).searcher(reranker)
        plan = searcher.plan("hybrid", k=k, rerank_depth=DEMO_RERANK_DEPTH)
        yield DemoRun(corpus, summary, [searcher.search(query, plan) for query in corpus.queries])
