"""What the dense and the sparse trainer share: a pooled encoder applied to queries and passages alike.

The pooled module is the one neurank runs and exports (`onnx_models/graphs.py`), so training optimises
exactly the vectors the index will hold. The loss is the in-batch plus hard-negative softmax
(`contrastive_loss`); each trainer adds its own term (distillation, FLOPS).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurank.config import Settings
from neurank.train.data import Group, TrainingData
from neurank.train.losses import Similarity, contrastive_loss
from neurank.train.models import device_of, inference


def true_negatives(groups: Sequence[Group]) -> Tensor:
    """(B, C) bool over `contrastive_loss`'s candidates: False where another group's document is judged
    relevant to this group's query (collections like NFCorpus judge ~40 documents a query, and queries share
    them), so the loss never pushes a query away from one of its own positives."""
    candidates = [group.doc_ids[0] for group in groups] + [doc for group in groups for doc in group.doc_ids[1:]]
    return torch.tensor([[doc not in group.judged_positive for doc in candidates] for group in groups])


class BiEncoderTrainee:
    """Encodes texts with `module` (token ids → one vector per text); scores are similarities.

    Subclasses name their `kind` and add `save` and `evaluation` (see `recipe.Trainee`).
    """

    head: tuple[str, ...] = ()

    def __init__(self, tokenizer: Any, module: nn.Module, *, max_length: int, similarity: Similarity,
                 temperature: float) -> None:
        self.tokenizer = tokenizer
        self.module: Any = module  # the pooled graph: `.model` is the transformers model it wraps
        self.max_length = max_length
        self.similarity = similarity
        self.temperature = temperature

    def encode(self, texts: Sequence[str]) -> Tensor:
        inputs = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                                return_tensors="pt").to(device_of(self.module))
        return self.module(inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))

    def loss(self, groups: Sequence[Group], step: int) -> Tensor:
        queries = self.encode([group.query for group in groups])
        passages = self.encode([passage for group in groups for passage in group.passages])
        per_group = passages.view(len(groups), -1, passages.shape[-1])
        loss = contrastive_loss(queries, per_group[:, 0], per_group[:, 1:], similarity=self.similarity,
                                temperature=self.temperature, keep=true_negatives(groups).to(queries.device))
        return loss + self.extra_loss(groups, step, queries, per_group)

    def extra_loss(self, groups: Sequence[Group], step: int, queries: Tensor, passages: Tensor) -> Tensor | float:
        """A trainer's own term over the batch: `queries` (B, d), `passages` (B, 1 + negatives, d)."""
        return 0.0

    def finish(self, data: TrainingData, folder: Path, settings: Settings) -> dict[str, Any]:
        return {}

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), d) without gradients: the vectors the diagnostics cluster."""
        return inference(self.module, self.encode, texts).numpy()

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_queries(texts)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        vectors = inference(self.module, self.encode, [query, *passages])
        if self.similarity == "cosine":
            vectors = F.normalize(vectors, dim=-1)
        return (vectors[1:] @ vectors[0]).numpy()
