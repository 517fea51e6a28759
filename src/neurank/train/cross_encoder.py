"""`neurank train cross-encoder`: a one-logit sequence classifier on (query, passage) pairs.

The base's encoder gets a fresh one-logit head (`AutoModelForSequenceClassification`, num_labels=1); with
the default base, MiniLM-L6 (all-MiniLM-L6-v2), that is the shape the public ms-marco cross-encoders have.
Each query of a batch brings its positive and mined negatives; the default loss is the softmax
cross-entropy of the positive against them (listwise), `bce` and `ranknet` are the pointwise and pairwise
alternatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.export import Progress
from neurank.onnx_models.loading import fresh_tokenizer, pretrained
from neurank.onnx_models.registry import resolve_model
from neurank.query.rerank import DEFAULT_RERANK_DEPTH, load_reranker
from neurank.train.calibration import calibrate, save_calibrations
from neurank.train.config import TrainConfig
from neurank.train.data import Group, TrainingData
from neurank.train.evaluation import EvalSetup
from neurank.train.losses import contrastive_loss_from_scores, pointwise_bce, ranknet_loss
from neurank.train.models import device_of, inference, save_tokenizer
from neurank.train.recipe import TrainReport, run_training

CrossLoss = Literal["softmax", "bce", "ranknet"]
CROSS_LOSSES: tuple[CrossLoss, ...] = ("softmax", "bce", "ranknet")

DEFAULTS = TrainConfig(base="minilm-l6", steps=480, batch_size=8, n_negatives=3, learning_rate=5e-5,
                       head_learning_rate=1e-3, max_length=256, eval_every=80, dev_queries=80, dev_depth=20,
                       time_limit_minutes=60)
"""Sized for an hour on 2 CPU cores: 480 steps × 8 queries × 4 pairs at 256 tokens (5 epochs of SciFact train),
~5 s a step, with six dev evaluations of 80 queries × 20 candidates.

The head (pooler and one-logit classifier) learns 20× faster than the encoder: the base's [CLS] vectors are
nearly alike across pairs, so at the encoder's rate the head would take most of the budget to start ranking.
"""


@dataclass(frozen=True, slots=True)
class CrossEncoderOptions:
    loss: CrossLoss = "softmax"
    temperature: float = 1.0
    """Divides the logits in the softmax loss."""

    def __post_init__(self) -> None:
        if self.loss not in CROSS_LOSSES:
            raise ConfigError(f"unknown cross-encoder loss {self.loss!r}; choose one of {', '.join(CROSS_LOSSES)}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


class CrossEncoderTrainee:
    kind: ClassVar[str] = "cross"
    embedder: ClassVar[None] = None
    no_embeddings: ClassVar[str] = ("a cross-encoder scores (query, passage) pairs: it has no embedding space, so "
                                    "the silhouette does not apply")

    def __init__(self, base: Path, *, max_length: int, options: CrossEncoderOptions) -> None:
        from transformers import AutoModelForSequenceClassification

        self.base = base
        self.max_length = max_length
        self.options = options
        self.tokenizer = fresh_tokenizer(base)
        self.module: Any = pretrained(AutoModelForSequenceClassification, base, num_labels=1)
        self.head: tuple[str, ...] = ("classifier.", f"{self.module.base_model_prefix}.pooler.")

    def logits(self, queries: Sequence[str], passages: Sequence[str]) -> Tensor:
        inputs = self.tokenizer(list(queries), list(passages), truncation=True, max_length=self.max_length,
                                padding=True, return_tensors="pt")
        return self.module(**inputs.to(device_of(self.module))).logits.squeeze(-1)

    def loss(self, groups: Sequence[Group], step: int) -> Tensor:
        queries = [group.query for group in groups for _ in group.passages]
        passages = [passage for group in groups for passage in group.passages]
        scores = self.logits(queries, passages).view(len(groups), -1)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1.0
        if self.options.loss == "bce":
            return pointwise_bce(scores, labels)
        if self.options.loss == "ranknet":
            return ranknet_loss(scores, labels)
        targets = torch.zeros(len(groups), dtype=torch.long, device=scores.device)
        return contrastive_loss_from_scores(scores, targets, temperature=self.options.temperature)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return inference(self.module, lambda chunk: self.logits([query] * len(chunk), chunk), passages).numpy()

    def save(self, folder: Path) -> None:
        self.module.save_pretrained(folder)
        save_tokenizer(self.tokenizer, folder, max_length=self.max_length)

    def finish(self, data: TrainingData, folder: Path, settings: Settings) -> dict[str, Any]:
        """Choose the rerank's first-stage weight on the dev split, for the first stage training ranked with.

        The pairs are scored by the runtime that will serve the model (the int8 export by default), whose
        scores differ slightly from torch's. `rerank.json` keeps the weight with the model; `neurank train
        calibrate` adds the weights of other first stages.
        """
        reranker = load_reranker(settings.model_copy(update={"rerank_first_stage_weight": 0.0}), str(folder))
        assert reranker is not None
        calibration = calibrate(reranker.scores, data.queries, data.dev, data.runs, data.corpus,
                                depth=DEFAULT_RERANK_DEPTH, first_stage=data.first_stage,
                                chosen_on=f"the training dev split ({len(data.dev)} queries, {data.first_stage} top "
                                          f"{DEFAULT_RERANK_DEPTH})")
        save_calibrations(folder, [calibration])
        return {"calibration": asdict(calibration)}

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        reranker = load_reranker(settings, str(folder))
        return EvalSetup(modes=("bm25", "bm25+rerank"), encoders=EncoderBundle(), reranker=reranker)


def train_cross_encoder(dataset: Path, out: Path, settings: Settings, config: TrainConfig = DEFAULTS,
                        options: CrossEncoderOptions | None = None, *, progress: bool = True,
                        say: Progress | None = None) -> TrainReport:
    """Train a cross-encoder on `dataset`'s train split; write it, its int8 ONNX export and a report to `out`."""
    options = options or CrossEncoderOptions()
    base = resolve_model(config.base, settings.home).path
    return run_training(lambda: CrossEncoderTrainee(base, max_length=config.max_length, options=options),
                        dataset, out, settings, config, options=asdict(options), progress=progress, say=say)
