"""Dense embeddings (one vector per text) for an OpenSearch `knn_vector` field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurank.onnx_models.base import Encoder
from neurank.onnx_models.runtimes import Runtime
from neurank.onnx_models.st_folder import EmbeddingConfig, read_embedding_config


class DenseEncoder(Encoder):
    """Pooling, normalization, prompts and similarity come from the sentence-transformers folder.

    Models trained with prompts (e5: "query: " / "passage: ") get them prepended here, so callers pass
    plain text.
    """

    kind = "dense"

    def __init__(self, model: str, *, home: Path, runtime: Runtime = "torch", int8: bool = False,
                 max_length: int = 256, batch_tokens: int = 16384, threads: int | None = None,
                 device: str = "cpu") -> None:
        super().__init__(model, home=home, runtime=runtime, int8=int8, max_length=max_length,
                         batch_tokens=batch_tokens, threads=threads, device=device)
        self._config: EmbeddingConfig | None = None

    @property
    def config(self) -> EmbeddingConfig:
        if self._config is None:
            self._config = read_embedding_config(self.ref.path)
        return self._config

    @property
    def dimension(self) -> int:
        return self.config.dimension

    @property
    def space_type(self) -> str:
        """The `knn_vector` space type for the model's similarity: cosinesimil, innerproduct, l2 or l1."""
        return self.config.space_type

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32."""
        return self._stacked([self.config.query_prompt + text for text in texts], self.dimension)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32."""
        return self._stacked([self.config.document_prompt + text for text in texts], self.dimension)
