"""`neurank train duo`: a pairwise (duoBERT) reranker, P(a more relevant than b) from one logit over (q, a, b).

The base's encoder gets a fresh one-logit head (`AutoModelForSequenceClassification`, num_labels=1), as the
cross-encoder's does, and reads `[CLS] q [SEP] a [SEP] b [SEP]` (`onnx_models.batching.tokenize_triples`, the
layout the exported graph is fed). Each query of a batch brings its positive and mined negatives; every
(positive, negative) pair is shown in both orders, labelled 1 when the positive comes first and 0 when it
comes second, so the model cannot lean on position. The loss is RankNet's (Burges et al., "Learning to Rank
using Gradient Descent", ICML 2005): the cross-entropy between the target probability P̄ of "a ranks above b"
and P = σ(o_ab), where a pairwise model's logit o_ab takes the place of RankNet's score difference s_a − s_b.
That cross-entropy is `pointwise_bce` on the pair logits (Nogueira et al., arXiv:1910.14424, train duoBERT so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.batching import Tokenized, padded_batches, tokenize_triples
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.duo import ordered_pairs, preference_matrix
from neurank.onnx_models.duo_folder import DEFAULT_QUERY_LENGTH, DuoConfig, save_duo
from neurank.onnx_models.export import Progress
from neurank.onnx_models.loading import fresh_tokenizer, pretrained
from neurank.onnx_models.registry import resolve_model
from neurank.onnx_models.runtimes import INPUT_NAMES
from neurank.query.duo import load_duo, sym_sum
from neurank.train.config import TrainConfig
from neurank.train.data import Group, TrainingData
from neurank.train.evaluation import EvalSetup
from neurank.train.losses import pointwise_bce
from neurank.train.models import device_of, inference, save_tokenizer
from neurank.train.recipe import TrainReport, run_training

DEFAULTS = TrainConfig(base="minilm-l6", steps=300, batch_size=4, n_negatives=3, learning_rate=3e-5,
                       head_learning_rate=1e-3, max_length=256, eval_every=100, dev_queries=30, dev_depth=10,
                       time_limit_minutes=60)
"""4 queries × 3 negatives × both orders = 24 triples a step at 256 tokens, about the cost of a cross-encoder step
(8 queries × 4 pairs). The dev metric reorders each of 30 dev queries' first-stage top 10 (the stage's default
depth) from its 90 ordered pairs. The fresh head learns faster than the encoder, as the cross-encoder's does."""


@dataclass(frozen=True, slots=True)
class DuoOptions:
    query_length: int = DEFAULT_QUERY_LENGTH
    """Query tokens kept in each input; the two passages share the rest of `max_length`."""

    def __post_init__(self) -> None:
        if self.query_length < 1:
            raise ConfigError(f"query_length must be >= 1, got {self.query_length}")


class DuoTrainee:
    kind: ClassVar[str] = "duo"
    embedder: ClassVar[None] = None
    no_embeddings: ClassVar[str] = ("a pairwise model scores (query, passage, passage) triples: it has no embedding "
                                    "space, so the silhouette does not apply")

    def __init__(self, base: Path, *, max_length: int, options: DuoOptions) -> None:
        from transformers import AutoModelForSequenceClassification

        if max_length < options.query_length + 6:
            raise ConfigError(f"max_length {max_length} leaves no room for two passages after a query of "
                              f"{options.query_length} tokens")
        self.max_length = max_length
        self.options = options
        self.tokenizer = fresh_tokenizer(base)
        self.module: Any = pretrained(AutoModelForSequenceClassification, base, num_labels=1)
        self.head: tuple[str, ...] = ("classifier.", f"{self.module.base_model_prefix}.pooler.")

    def logits(self, blocks: Sequence[tuple[str, Sequence[str], Sequence[str]]]) -> Tensor:
        """One logit per (query, a, b) of every (query, firsts, seconds) block, in order, from one padded batch."""
        tokenized = Tokenized([], [], [])
        for query, firsts, seconds in blocks:
            block = tokenize_triples(self.tokenizer, query, firsts, seconds, self.max_length,
                                     self.options.query_length)
            tokenized.input_ids.extend(block.input_ids)
            tokenized.token_type_ids.extend(block.token_type_ids)
            tokenized.truncated.extend(block.truncated)
        (batch,) = padded_batches(tokenized, 1 << 62, self.tokenizer.pad_token_id or 0)
        device = device_of(self.module)
        outputs = self.module(**{name: torch.from_numpy(batch.inputs[name]).to(device) for name in INPUT_NAMES})
        logits = outputs.logits.squeeze(-1)
        ordered = torch.empty_like(logits)
        ordered[torch.tensor(batch.positions, device=device)] = logits
        return ordered

    def loss(self, groups: Sequence[Group], step: int) -> Tensor:
        """RankNet over each group's (positive, negative) pairs, each in both orders (targets 1, then 0)."""
        blocks, targets = [], []
        for group in groups:
            positive, negatives = group.passages[0], list(group.passages[1:])
            blocks.append((group.query, [positive] * len(negatives) + negatives,
                           negatives + [positive] * len(negatives)))
            targets += [1.0] * len(negatives) + [0.0] * len(negatives)
        logits = self.logits(blocks)
        return pointwise_bce(logits, torch.tensor(targets, dtype=logits.dtype, device=logits.device))

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """SYM-SUM of the passages against each other, as the duo stage ranks them."""
        pairs = ordered_pairs(len(passages))
        logits = inference(self.module, lambda chunk: self.logits(
            [(query, [passages[i] for i, _ in chunk], [passages[j] for _, j in chunk])]), pairs)
        return sym_sum(preference_matrix(len(passages), logits.numpy())).astype(np.float32)

    def save(self, folder: Path) -> None:
        self.module.save_pretrained(folder)
        save_tokenizer(self.tokenizer, folder, max_length=self.max_length)
        save_duo(folder, DuoConfig(query_length=self.options.query_length))

    def finish(self, data: TrainingData, folder: Path, settings: Settings) -> dict[str, Any]:
        return {}

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        return EvalSetup(modes=("bm25", "bm25+duo"), encoders=EncoderBundle(), duo=load_duo(settings, str(folder)))


def train_duo(dataset: Path, out: Path, settings: Settings, config: TrainConfig = DEFAULTS,
              options: DuoOptions | None = None, *, progress: bool = True, say: Progress | None = None) -> TrainReport:
    """Train a pairwise reranker on `dataset`'s train split; write it, its int8 ONNX export and a report to `out`."""
    options = options or DuoOptions()
    base = resolve_model(config.base, settings.home).path
    return run_training(lambda: DuoTrainee(base, max_length=config.max_length, options=options),
                        dataset, out, settings, config, options=asdict(options), progress=progress, say=say)
