"""What an index is built for, and every rule about it in one place: valid values, what changed, what rebuilds.

The local store, the OpenSearch mappings and ingest all ask an `IndexSpec` instead of keeping their own
copies of the limits: it refuses an invalid value when it is built, says which fields differ from another
spec, and whether a difference can be served by building a new index version (new models) or needs the
index dropped (anything else: documents that are skipped as unchanged would never reach a new version).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from neurank.errors import ConfigError

SpaceType = Literal["cosinesimil", "innerproduct", "l2"]
KnnEngine = Literal["lucene", "faiss"]
TokenCompression = Literal["float16", "int8", "binary"]
SPACE_TYPES: tuple[SpaceType, ...] = get_args(SpaceType)
KNN_ENGINES: tuple[KnnEngine, ...] = get_args(KnnEngine)
TOKEN_COMPRESSIONS: tuple[TokenCompression, ...] = get_args(TokenCompression)
ANALYZERS: tuple[str, ...] = ("english", "russian", "standard")
"""Built-in OpenSearch analyzers an index can use (the local store has the same ones); `language` names one."""
EXPANSION_ROLE = "splade"
"""The learned-sparse model that expands documents with terms they do not contain (DeepCT only reweights)."""
SPARSE_FIELDS: tuple[str, ...] = (EXPANSION_ROLE, "deepct")
"""The `rank_features` fields: SPLADE (with expansion) and DeepCT (the document's own terms)."""
DENSE_ROLE = "dense"
COLBERT_ROLE = "colbert"
"""The late-interaction model's role, and the field its token vectors are stored in."""
MODEL_ROLES: tuple[str, ...] = (*SPARSE_FIELDS, DENSE_ROLE, COLBERT_ROLE)
MAX_DIMENSION = 16_000
"""k-NN's limit on `knn_vector.dimension` for the lucene and faiss engines."""
MIN_NGRAM, MAX_NGRAM = 2, 5
"""Sizes of the character n-grams an index may add (single characters match almost everything)."""
MODEL_FIELDS: tuple[str, ...] = ("models", "dense_dimension", "space_type", "colbert_dimension")
"""What a new index version may change: the models, and what follows from the dense one."""


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """Analyzer, BM25 parameters, vector space and HNSW graph, and the models that fill the index."""

    language: str = "english"
    dense_dimension: int | None = None
    space_type: SpaceType = "cosinesimil"
    models: Mapping[str, str] = field(default_factory=dict)
    """role ("splade", "deepct", "dense") → model fingerprint."""
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    knn_engine: KnnEngine = "lucene"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 256
    knn_approximate_threshold: int = 15_000
    """Up to this many vectors the local store searches them exactly, past it through an HNSW graph built with
    the `hnsw_*` values (the cluster's `index.knn.advanced.approximate_threshold`, same default)."""
    shards: int = 1
    replicas: int = 0
    colbert_dimension: int | None = None
    """Dimension of the late-interaction token vectors; None: the index stores none."""
    token_compression: TokenCompression = "float16"
    """How the local store keeps token vectors on disk (docs/BENCHMARKS.md compares the three)."""
    ngram: int = 0
    """Character n-grams of this size of every analyzed term in a `content.ngram` subfield; 0: none."""

    def __post_init__(self) -> None:
        if self.language not in ANALYZERS:
            raise ConfigError(f"no analyzer for language {self.language!r}; choose one of {', '.join(ANALYZERS)}")
        if self.space_type not in SPACE_TYPES:
            raise ConfigError(f"unknown space_type {self.space_type!r}; choose one of {', '.join(SPACE_TYPES)}")
        if self.knn_engine not in KNN_ENGINES:
            raise ConfigError(f"unknown knn engine {self.knn_engine!r}; choose one of {', '.join(KNN_ENGINES)}")
        dimension = self.dense_dimension
        if dimension is not None and not (_is_int(dimension) and 1 <= dimension <= MAX_DIMENSION):
            raise ConfigError(f"dense dimension must be an integer in [1, {MAX_DIMENSION}], got {dimension!r}")
        colbert = self.colbert_dimension
        if colbert is not None and not (_is_int(colbert) and 1 <= colbert <= MAX_DIMENSION):
            raise ConfigError(f"colbert dimension must be an integer in [1, {MAX_DIMENSION}], got {colbert!r}")
        if self.token_compression not in TOKEN_COMPRESSIONS:
            raise ConfigError(f"unknown token compression {self.token_compression!r}; choose one of "
                              f"{', '.join(TOKEN_COMPRESSIONS)}")
        if not (math.isfinite(self.bm25_k1) and self.bm25_k1 >= 0 and 0 <= self.bm25_b <= 1):
            raise ConfigError(f"BM25 needs k1 >= 0 and b in [0, 1], got k1={self.bm25_k1}, b={self.bm25_b}")
        if not (_is_int(self.ngram) and (self.ngram == 0 or MIN_NGRAM <= self.ngram <= MAX_NGRAM)):
            raise ConfigError(f"ngram must be 0 (none) or an integer in [{MIN_NGRAM}, {MAX_NGRAM}], got {self.ngram!r}")
        for name, low in (("hnsw_m", 2), ("hnsw_ef_construction", 2), ("hnsw_ef_search", 2),
                          ("knn_approximate_threshold", 0), ("shards", 1), ("replicas", 0)):
            value = getattr(self, name)
            if not (_is_int(value) and value >= low):
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (what an index stores about itself)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["models"] = dict(self.models)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSpec:
        """The spec `to_dict` wrote; a field this version does not know (a newer writer's) is a ConfigError."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"the index spec has fields this version of neurank does not know: {', '.join(unknown)}")
        return cls(**data)

    def changes(self, new: IndexSpec) -> dict[str, tuple[Any, Any]]:
        """field → (this value, the new one), for each field that differs."""
        return {f.name: (getattr(self, f.name), getattr(new, f.name)) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(new, f.name)}

    def rebuilds_as(self, new: IndexSpec) -> bool:
        """Whether `new` is this index for other models, and nothing else: a new version re-encodes it all."""
        changed = self.changes(new)
        return "models" in changed and set(changed) <= set(MODEL_FIELDS)

    def describe_changes(self, new: IndexSpec) -> str:
        """`field old → new` for each difference, for messages."""
        return ", ".join(f"{name} {old!r} → {value!r}" for name, (old, value) in self.changes(new).items())


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
