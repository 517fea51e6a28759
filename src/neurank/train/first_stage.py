"""First-stage runs for training: BM25, dense or hybrid rankings of a dataset's queries on a local store.

They feed hard-negative mining and the candidate lists of dev and final evaluations. Each source ranks as
`neurank eval` ranks that mode, with the configured encoders and the default fusion, so a model learns the
mistakes of the first stage it will rerank. The corpus is indexed once into a local store under
`<home>/train/store` (reused while unchanged), with only the encoders the source needs: BM25 needs none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.eval.runner import index_dataset, run_mode
from neurank.onnx_models.bundle import EncoderBundle, ensure_exports
from neurank.query.target import SearchTarget
from neurank.retrieval import ScoredIds
from neurank.stores import open_store
from neurank.stores.protocol import Store

Source = Literal["bm25", "dense", "hybrid"]
SOURCES: tuple[Source, ...] = ("bm25", "dense", "hybrid")


def training_store(settings: Settings) -> Store:
    """The local store that training indexes into, apart from the user's configured store."""
    return open_store(settings, f"local:{settings.home / 'train' / 'store'}")


def index_name(dataset: Path, encoders: EncoderBundle) -> str:
    """One index per dataset and encoder set: a different model gets its own index instead of a clash."""
    models = encoders.models()
    suffix = "-".join(f"{role}-{fingerprint[:12]}" for role, fingerprint in sorted(models.items()))
    name = re.sub(r"[^a-z0-9_.-]+", "-", f"train-{dataset.name.lower()}{'-' + suffix if suffix else ''}")
    return name.strip("-_.") or "train"


def indexed(dataset: Path, encoders: EncoderBundle, settings: Settings,
            on_progress: Callable[[int], None] | None = None) -> SearchTarget:
    """The dataset indexed with `encoders` in the training store; documents already there are skipped."""
    target = SearchTarget(training_store(settings), index_name(dataset, encoders), encoders)
    index_dataset(dataset, target, settings, on_progress=on_progress)
    return target


def source_encoders(source: Source, settings: Settings) -> EncoderBundle:
    """The configured encoders that `source` ranks with (exported first when they run on ONNX)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown negatives source {source!r}; choose one of {', '.join(SOURCES)}")
    if source == "bm25":
        return EncoderBundle()
    ensure_exports([settings])
    configured = EncoderBundle.from_settings(settings)
    if configured.dense is None:
        raise ConfigError(f"{source} runs need a dense model; dense_model is {settings.dense_model!r}")
    return configured if source == "hybrid" else EncoderBundle(dense=configured.dense)


def first_stage_runs(dataset: Path, queries: Mapping[str, str], settings: Settings, *, source: Source = "bm25",
                     depth: int = 100, on_query: Callable[[], None] | None = None) -> dict[str, ScoredIds]:
    """Query id → (doc id, score) pairs, best first, `depth` deep, ranked by `neurank eval`'s plan for `source`."""
    target = indexed(dataset, source_encoders(source, settings), settings)
    searcher = target.searcher()
    run, _ = run_mode(searcher, searcher.plan(source, k=depth, depth=depth, implied=False), dict(queries), on_query)
    return {query_id: list(scores.items()) for query_id, scores in run.items()}
