"""The encoders an index is built with, chosen from Settings, used alike by ingest and by the searcher."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from neurank.config import Runtime, Settings
from neurank.documents import Document
from neurank.index_spec import COLBERT_ROLE, DENSE_ROLE, IndexSpec
from neurank.stores.protocol import EncodedDocument

DISABLED = {"", "none", "off"}


def ensure_exports(settings_list: Sequence[Settings],
                   announce: Callable[[str], AbstractContextManager[Any]] = lambda _: nullcontext()) -> None:
    """The ONNX runtime needs exported encoders: export the missing ones (cached by fingerprint).

    `announce` wraps each export with its message (a CLI spinner): a first export takes a minute or two.
    """
    from neurank.onnx_models.export import export_model, logger

    if not settings_list:
        return
    first = settings_list[0]
    names = {name for s in settings_list if s.runtime == "onnx"
             for name in (s.sparse_model, s.dense_model, s.colbert_model or "") if name.lower() not in DISABLED}
    for name in sorted(names):
        with announce(f"ONNX export of {name}{' (int8)' if first.int8 else ''} …"):
            export_model(name, home=first.home, int8=first.int8, progress=logger.info)


class _EncoderOptions(TypedDict):
    """What every encoder of a bundle is built with, from Settings."""

    home: Path
    runtime: Runtime
    int8: bool
    max_length: int
    batch_tokens: int
    threads: int | None
    device: str


@dataclass(slots=True)
class EncoderBundle:
    """Sparse (SPLADE and DeepCT fields), dense and late-interaction encoders; any of them may be absent."""

    splade: Any = None
    deepct: Any = None
    dense: Any = None
    colbert: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EncoderBundle:
        from neurank.onnx_models import DenseEncoder, LateInteractionEncoder, SparseEncoder

        common: _EncoderOptions = {"home": settings.home, "runtime": settings.runtime, "int8": settings.int8,
                                   "max_length": settings.max_length, "batch_tokens": settings.batch_tokens,
                                   "threads": settings.threads, "device": settings.device}
        splade = deepct = dense = None
        if settings.sparse_model.lower() not in DISABLED:
            splade = SparseEncoder(settings.sparse_model, mode="splade", **common)
            if settings.deepct:
                deepct = SparseEncoder(settings.sparse_model, mode="deepct", **common)
        if settings.dense_model.lower() not in DISABLED:
            dense = DenseEncoder(settings.dense_model, **common)
        colbert = None
        if (settings.colbert_model or "").lower() not in DISABLED:
            assert settings.colbert_model is not None
            colbert = LateInteractionEncoder(
                settings.colbert_model, home=settings.home, runtime=settings.runtime, int8=settings.int8,
                query_length=settings.colbert_query_length, document_length=settings.colbert_document_length,
                batch_tokens=settings.batch_tokens, threads=settings.threads, device=settings.device)
        return cls(splade=splade, deepct=deepct, dense=dense, colbert=colbert)

    def warm_up(self) -> None:
        """Load every model now (a worker process does this once, before its first task)."""
        for encoder in (*self.sparse_encoders().values(), self.dense, self.colbert):
            if encoder is not None:
                encoder.warm_up()

    def sparse_encoders(self) -> dict[str, Any]:
        return {name: enc for name, enc in (("splade", self.splade), ("deepct", self.deepct)) if enc}

    def models(self) -> dict[str, str]:
        """role → fingerprint: what a stored document records, and what makes it stale when it changes."""
        roles = {**self.sparse_encoders(), DENSE_ROLE: self.dense, COLBERT_ROLE: self.colbert}
        return {role: enc.fingerprint for role, enc in roles.items() if enc is not None}

    def index_spec(self, settings: Settings) -> IndexSpec:
        return IndexSpec(
            language=settings.language,
            dense_dimension=self.dense.dimension if self.dense else None,
            space_type=self.dense.space_type if self.dense else "cosinesimil",
            models=self.models(),
            bm25_k1=settings.bm25_k1,
            bm25_b=settings.bm25_b,
            colbert_dimension=self.colbert.dim if self.colbert else None,
            token_compression=settings.token_compression,
            ngram=settings.ngram,
        )

    @property
    def truncated(self) -> int:
        """Documents longer than a model's window so far (counted once per encoder that cut them)."""
        encoders = [*self.sparse_encoders().values(), self.dense, self.colbert]
        return max((enc.stats.truncated for enc in encoders if enc is not None), default=0)

    def encode(self, documents: Sequence[Document]) -> list[EncodedDocument]:
        passages = [doc.passage for doc in documents]
        sparse: dict[str, list[dict[str, float]]] = {}
        if self.splade is not None:
            sparse.update(self.splade.encode_modes(passages, list(self.sparse_encoders())))
        elif self.deepct is not None:
            sparse["deepct"] = self.deepct.encode_documents(passages)
        vectors = self.dense.encode_documents(passages) if self.dense else None
        tokens = self.colbert.encode_documents(passages) if self.colbert else None
        models = self.models()
        return [
            EncodedDocument(
                document=doc,
                sparse={name: weights[i] for name, weights in sparse.items()},
                embedding=None if vectors is None else vectors[i],
                models=models,
                token_vectors=None if tokens is None else tokens[i],
            )
            for i, doc in enumerate(documents)
        ]
