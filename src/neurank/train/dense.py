"""`neurank train dense`: a sentence-transformers bi-encoder, contrastive with in-batch and mined negatives.

With a teacher (a cross-encoder folder, e.g. from `neurank train cross-encoder`), each query's list of
candidates (its positive and its hard negatives) also carries the teacher's scores, and the student's
softmax over that list is pulled toward the teacher's (listwise KL). Pooling, normalisation and the
similarity come from the base folder's sentence-transformers files, which the output folder keeps.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.export import Progress
from neurank.onnx_models.loading import fresh_tokenizer, pretrained
from neurank.onnx_models.registry import resolve_model
from neurank.onnx_models.st_folder import read_embedding_config
from neurank.train.bi_encoder import BiEncoderTrainee
from neurank.train.config import TrainConfig
from neurank.train.data import Group
from neurank.train.evaluation import EvalSetup, Scorer
from neurank.train.losses import Similarity, listwise_kl_loss
from neurank.train.models import save_tokenizer
from neurank.train.recipe import TrainReport, run_training
from neurank.train.teacher import TeacherScores, teacher_of

DEFAULTS = TrainConfig(base="minilm-l6", steps=300, batch_size=16, n_negatives=1, learning_rate=2e-5,
                       max_length=192, eval_every=50, dev_depth=20, time_limit_minutes=40)
"""16 queries per step, each with its positive and one mined negative: 31 negatives per query in all; ~4 s a
step on 2 cores, so 300 steps (6.6 epochs of SciFact train) take about 20 minutes."""

_SIMILARITIES: dict[str, Similarity] = {"cosinesimil": "cosine", "innerproduct": "dot"}
_ST_FILES = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


@dataclass(frozen=True, slots=True)
class DenseOptions:
    teacher: str | None = None
    """A cross-encoder folder whose scores the student distils; None trains on the qrels alone."""
    temperature: float = 0.05
    """Divides the similarities in the contrastive loss (0.05 suits cosine, like sentence-transformers' 20)."""
    distill_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0 or self.distill_weight < 0:
            raise ConfigError("temperature must be > 0 and distill_weight >= 0")


class DenseTrainee(BiEncoderTrainee):
    kind: ClassVar[str] = "dense"
    no_embeddings: ClassVar[str] = ""

    def __init__(self, base: Path, *, max_length: int, options: DenseOptions, teacher: Scorer | None) -> None:
        from transformers import AutoModel

        from neurank.onnx_models.graphs import EmbeddingPooling

        embedding = read_embedding_config(base)
        if embedding.space_type not in _SIMILARITIES:
            raise ConfigError(f"{base} scores with {embedding.space_type}; dense training supports cosine and "
                              "dot product")
        module = EmbeddingPooling(pretrained(AutoModel, base), embedding.pooling, embedding.normalize)
        super().__init__(fresh_tokenizer(base), module, max_length=max_length,
                         similarity=_SIMILARITIES[embedding.space_type], temperature=options.temperature)
        self.base = base
        self.options = options
        self.teacher_scores = TeacherScores(teacher) if teacher is not None else None

    @property
    def embedder(self) -> DenseTrainee:
        return self

    def extra_loss(self, groups: Sequence[Group], step: int, queries: Tensor, passages: Tensor) -> Tensor | float:
        if self.teacher_scores is None or not self.options.distill_weight:
            return 0.0
        if self.similarity == "cosine":
            queries, passages = F.normalize(queries, dim=-1), F.normalize(passages, dim=-1)
        student = (queries.unsqueeze(1) * passages).sum(dim=-1) / self.temperature
        teacher = torch.tensor([self.teacher_scores(group) for group in groups], dtype=student.dtype,
                               device=student.device)
        return self.options.distill_weight * listwise_kl_loss(student, teacher)

    def save(self, folder: Path) -> None:
        self.module.model.save_pretrained(folder)
        save_tokenizer(self.tokenizer, folder, max_length=self.max_length)
        copy_sentence_transformers_files(self.base, folder)

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        from neurank.onnx_models import DenseEncoder

        dense = DenseEncoder(str(folder), home=settings.home, runtime=settings.runtime, int8=settings.int8,
                             max_length=settings.max_length, batch_tokens=settings.batch_tokens)
        return EvalSetup(modes=("dense",), encoders=EncoderBundle(dense=dense))


def copy_sentence_transformers_files(base: Path, folder: Path) -> None:
    """Keep the base's pooling, normalisation, prompts and similarity: its modules.json and module folders."""
    for name in _ST_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, folder / name)
    if (base / "modules.json").is_file():
        for module in json.loads((base / "modules.json").read_text(encoding="utf-8")):
            path = module.get("path")
            if path and (base / path).is_dir():
                shutil.copytree(base / path, folder / path, dirs_exist_ok=True)


def train_dense(dataset: Path, out: Path, settings: Settings, config: TrainConfig = DEFAULTS,
                options: DenseOptions | None = None, *, progress: bool = True,
                say: Progress | None = None) -> TrainReport:
    """Train a dense bi-encoder on `dataset`; write it, its int8 ONNX export and a report to `out`."""
    options = options or DenseOptions()
    base = resolve_model(config.base, settings.home).path
    teacher, described = teacher_of(options, settings)
    return run_training(lambda: DenseTrainee(base, max_length=config.max_length, options=options, teacher=teacher),
                        dataset, out, settings, config, options=described, progress=progress, say=say)

