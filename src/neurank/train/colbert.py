"""`neurank train colbert`: a late-interaction model, the base's encoder plus a new projection to `dim`.

The module is the one neurank runs and exports (`onnx_models.graphs.TokenVectors`), fed the encoder's own
inputs (`onnx_models.colbert.LateInputs`: markers, [MASK] query padding, punctuation dropped), so training
optimises exactly the token vectors the index will hold. Scores are MaxSim (Σ over query tokens of the best
dot product over the document's tokens). Losses:

- softmax cross-entropy of each query's positive against every other document of the batch (the in-batch
  positives and all mined negatives), judged positives of the query masked out (PyLate `losses.Contrastive`,
  Stanford ColBERT's in-batch negatives);
- with a teacher cross-encoder, KL from the teacher's softmax to the student's over each query's own
  candidate list (its positive and mined negatives; Stanford ColBERT's distillation), on raw scores.

The base may be a plain BERT-family folder (a fresh projection, trained at `head_learning_rate`) or a
late-interaction folder (its projection is kept and trained on). The output folder has the
sentence-transformers / PyLate layout (`onnx_models/late_folder.py`).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.colbert import LateInputs
from neurank.onnx_models.export import Progress
from neurank.onnx_models.kinds import model_kind
from neurank.onnx_models.late_folder import (
    DEFAULT_DIM,
    DOCUMENT_MARKER,
    QUERY_MARKER,
    LateInteractionConfig,
    read_late_interaction,
    save_late_interaction,
)
from neurank.onnx_models.loading import fresh_tokenizer, pretrained
from neurank.onnx_models.registry import resolve_model
from neurank.train.bi_encoder import true_negatives
from neurank.train.config import TrainConfig
from neurank.train.data import Group, TrainingData
from neurank.train.evaluation import EvalSetup, Scorer
from neurank.train.losses import contrastive_loss_from_scores, listwise_kl_loss
from neurank.train.models import device_of, inference, save_tokenizer
from neurank.train.recipe import TrainReport, run_training
from neurank.train.teacher import TeacherScores, teacher_of

DEFAULTS = TrainConfig(base="minilm-l6", steps=300, batch_size=16, n_negatives=1, learning_rate=3e-5,
                       head_learning_rate=1e-3, max_length=180, eval_every=50, dev_queries=60, dev_depth=20,
                       time_limit_minutes=40)
"""16 queries per step, each with its positive and one mined negative: 31 negatives per query in all, at 180
document tokens. On 2 cores a MiniLM-L6 step took 12-19 s while the machine also ran other work (load 3.3),
so the 40-minute limit (dev evaluations of 60 queries × 20 candidates included) is what usually ends the loop
on a CPU; mining, the export and the final evaluation (BM25 top 100 reranked, int8 ONNX) fit in the rest of
the hour. On a GPU the 300 steps finish first. The fresh projection learns 30× faster than the encoder, as
the cross-encoder's fresh head does."""


@dataclass(frozen=True, slots=True)
class ColbertOptions:
    dim: int = DEFAULT_DIM
    """Token vector size of a fresh projection (a late-interaction base keeps its own)."""
    query_length: int = 32
    teacher: str | None = None
    """A cross-encoder folder whose scores the student distils; None trains on the qrels alone."""
    temperature: float = 1.0
    """Divides the MaxSim scores in the contrastive loss (ColBERT and PyLate use raw scores)."""
    distill_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.query_length < 4:
            raise ConfigError(f"dim must be >= 1 and query_length >= 4, got {self.dim} and {self.query_length}")
        if not self.temperature > 0 or self.distill_weight < 0:
            raise ConfigError("temperature must be > 0 and distill_weight >= 0")


class ColbertTrainee:
    kind: ClassVar[str] = "colbert"
    embedder: ClassVar[None] = None
    no_embeddings: ClassVar[str] = ("late interaction keeps one vector per token, not one per text: the silhouette "
                                    "of query/positive clusters does not apply")

    def __init__(self, base: Path, *, max_length: int, options: ColbertOptions, teacher: Scorer | None) -> None:
        from transformers import AutoModel

        from neurank.onnx_models.graphs import TokenVectors

        self.tokenizer = fresh_tokenizer(base)
        fresh = model_kind(base) != "colbert"
        config = _fresh_config(base, options) if fresh else read_late_interaction(base)
        self.head: tuple[str, ...] = ("linear.",) if fresh else ()
        """A fresh projection trains at `head_learning_rate`; a trained one at the encoder's rate."""
        self.module: Any = TokenVectors(pretrained(AutoModel, base), torch.from_numpy(config.projection))
        self.inputs = LateInputs.build(self.tokenizer, config, query_length=options.query_length,
                                       document_length=max_length)
        self.options = options
        self.teacher_scores = TeacherScores(teacher) if teacher is not None else None

    def encode_queries(self, texts: Sequence[str]) -> Tensor:
        """(len(texts), query_length, dim): every row, the [MASK] padding's included."""
        return self._forward(self.inputs.queries(self.tokenizer, texts))

    def encode_documents(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(len(texts), longest, dim) and a bool mask of the rows that count (no padding, no punctuation)."""
        tokenized = self.inputs.documents(self.tokenizer, texts)
        longest = max(len(ids) for ids in tokenized.input_ids)
        input_ids = np.full((len(texts), longest), self.inputs.pad_id, dtype=np.int64)
        kept = np.zeros((len(texts), longest), dtype=bool)
        for row, ids in enumerate(tokenized.input_ids):
            input_ids[row, :len(ids)] = ids
            kept[row, self.inputs.kept(ids)] = True
        attention_mask = (np.arange(longest)[None, :] < np.array([[len(ids)] for ids in tokenized.input_ids]))
        vectors = self._forward({"input_ids": input_ids, "attention_mask": attention_mask.astype(np.int64),
                                 "token_type_ids": np.zeros_like(input_ids)})
        return vectors, torch.from_numpy(kept).to(vectors.device)

    def _forward(self, inputs: dict[str, np.ndarray]) -> Tensor:
        device = device_of(self.module)
        return self.module(*(torch.from_numpy(inputs[name]).to(device)
                             for name in ("input_ids", "attention_mask", "token_type_ids")))

    def loss(self, groups: Sequence[Group], step: int) -> Tensor:
        queries = self.encode_queries([group.query for group in groups])
        # Positives first, then every group's negatives: the candidate order `true_negatives` describes.
        passages = [group.passages[0] for group in groups] + [p for group in groups for p in group.passages[1:]]
        documents, kept = self.encode_documents(passages)
        scores = late_scores(queries, documents, kept)
        targets = torch.arange(len(groups), device=scores.device)
        loss = contrastive_loss_from_scores(scores, targets, temperature=self.options.temperature,
                                            keep=true_negatives(groups).to(scores.device))
        if self.teacher_scores is None or not self.options.distill_weight:
            return loss
        per_group = len(groups[0].doc_ids) - 1
        own = torch.tensor([[i, *range(len(groups) + i * per_group, len(groups) + (i + 1) * per_group)]
                            for i in range(len(groups))], device=scores.device)
        student = scores.gather(1, own)
        teacher = torch.tensor([self.teacher_scores(group) for group in groups], dtype=student.dtype,
                               device=student.device)
        return loss + self.options.distill_weight * listwise_kl_loss(student, teacher)

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        query_vectors = inference(self.module, self.encode_queries, [query])
        scores = inference(self.module, lambda chunk: late_scores(query_vectors.to(device_of(self.module)),
                                                                  *self.encode_documents(chunk))[0], passages)
        return scores.numpy()

    def save(self, folder: Path) -> None:
        self.module.model.save_pretrained(folder)
        save_tokenizer(self.tokenizer, folder, max_length=self.inputs.document_length)
        save_late_interaction(folder, self.module.linear.weight.detach().float().cpu().numpy(),
                              query_length=self.inputs.query_length, document_length=self.inputs.document_length)

    def finish(self, data: TrainingData, folder: Path, settings: Settings) -> dict[str, Any]:
        return {}

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        from neurank.onnx_models import LateInteractionEncoder

        encoder = LateInteractionEncoder(str(folder), home=settings.home, runtime=settings.runtime,
                                         int8=settings.int8, batch_tokens=settings.batch_tokens)
        return EvalSetup(modes=("bm25",), encoders=EncoderBundle(), late_interaction=encoder)


def late_scores(queries: Tensor, documents: Tensor, kept: Tensor) -> Tensor:
    """MaxSim of every query against every document: (B, Lq, d) × (N, Ld, d) with (N, Ld) kept rows → (B, N).

    The same sum as `stores.scoring.maxsim`, differentiable; rows that are not kept never win a max.
    """
    similarities = torch.einsum("bqd,nkd->bnqk", queries, documents)
    similarities = similarities.masked_fill(~kept[None, :, None, :], float("-inf"))
    return similarities.amax(dim=-1).sum(dim=-1)


def _fresh_config(base: Path, options: ColbertOptions) -> LateInteractionConfig:
    """ColBERTv2's settings around a fresh projection of the base's hidden states (seeded, as torch is)."""
    from transformers import AutoConfig

    hidden = int(AutoConfig.from_pretrained(str(base)).hidden_size)
    projection = torch.empty(options.dim, hidden)
    torch.nn.init.xavier_uniform_(projection)
    return LateInteractionConfig(projection=projection.numpy(), query_marker=QUERY_MARKER,
                                 document_marker=DOCUMENT_MARKER, query_length=options.query_length,
                                 document_length=DEFAULTS.max_length, attend_to_expansion=False,
                                 skiplist=tuple(string.punctuation), layout="sentence-transformers")


def train_colbert(dataset: Path, out: Path, settings: Settings, config: TrainConfig = DEFAULTS,
                  options: ColbertOptions | None = None, *, progress: bool = True,
                  say: Progress | None = None) -> TrainReport:
    """Train a late-interaction model on `dataset`; write it, its int8 ONNX export and a report to `out`."""
    options = options or ColbertOptions()
    base = resolve_model(config.base, settings.home).path
    teacher, described = teacher_of(options, settings)
    return run_training(lambda: ColbertTrainee(base, max_length=config.max_length, options=options,
                                               teacher=teacher),
                        dataset, out, settings, config, options=described, progress=progress, say=say)
