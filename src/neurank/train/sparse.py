"""`neurank train sparse`: SPLADE fine-tuning, contrastive with in-batch and mined negatives plus FLOPS.

Queries and passages go through the same masked-LM (`SpladePooling`: max over tokens of log(1 + relu)),
scores are dot products, and the FLOPS regulariser, separately weighted for queries and documents and
ramped up quadratically, keeps the vectors sparse enough to search (Formal et al., SIGIR 2021).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from torch import Tensor

from neurank.config import Settings
from neurank.errors import ConfigError
from neurank.onnx_models.bundle import EncoderBundle
from neurank.onnx_models.export import Progress
from neurank.onnx_models.loading import fresh_tokenizer, pretrained
from neurank.onnx_models.registry import resolve_model
from neurank.train.bi_encoder import BiEncoderTrainee
from neurank.train.config import TrainConfig
from neurank.train.data import Group
from neurank.train.evaluation import EvalSetup
from neurank.train.losses import flops_regularizer, flops_weight
from neurank.train.models import save_tokenizer
from neurank.train.recipe import TrainReport, run_training

DEFAULTS = TrainConfig(base="splade-tiny", steps=500, batch_size=32, n_negatives=1, learning_rate=5e-5,
                       max_length=256, eval_every=100, dev_depth=20)


@dataclass(frozen=True, slots=True)
class SparseOptions:
    lambda_query: float = 3e-4
    lambda_document: float = 1e-4
    flops_warmup: float = 0.3
    """Fraction of the steps over which both FLOPS weights ramp up from 0."""
    temperature: float = 1.0
    """Divides the dot products in the contrastive loss."""

    def __post_init__(self) -> None:
        if self.lambda_query < 0 or self.lambda_document < 0 or not 0 <= self.flops_warmup <= 1:
            raise ConfigError("FLOPS weights must be >= 0 and flops_warmup a fraction in [0, 1]")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


class SparseTrainee(BiEncoderTrainee):
    kind: ClassVar[str] = "sparse"
    embedder: ClassVar[None] = None
    no_embeddings: ClassVar[str] = ("a learned-sparse model weighs vocabulary terms: its vectors are no embedding "
                                    "space, so the silhouette does not apply")

    def __init__(self, base: Path, *, max_length: int, options: SparseOptions, warmup_steps: int) -> None:
        from transformers import AutoModelForMaskedLM

        from neurank.onnx_models.graphs import SpladePooling

        module = SpladePooling(pretrained(AutoModelForMaskedLM, base))
        super().__init__(fresh_tokenizer(base), module, max_length=max_length, similarity="dot",
                         temperature=options.temperature)
        self.options = options
        self.warmup_steps = warmup_steps

    def extra_loss(self, groups: Sequence[Group], step: int, queries: Tensor, passages: Tensor) -> Tensor | float:
        def weight(final: float) -> float:
            return flops_weight(step, final_weight=final, warmup_steps=self.warmup_steps)

        documents = passages.reshape(-1, passages.shape[-1])
        return (weight(self.options.lambda_query) * flops_regularizer(queries)
                + weight(self.options.lambda_document) * flops_regularizer(documents))

    def save(self, folder: Path) -> None:
        self.module.model.save_pretrained(folder)
        save_tokenizer(self.tokenizer, folder, max_length=self.max_length)

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        from neurank.onnx_models import SparseEncoder

        splade = SparseEncoder(str(folder), home=settings.home, runtime=settings.runtime, int8=settings.int8,
                               mode="splade", max_length=settings.max_length, batch_tokens=settings.batch_tokens)
        return EvalSetup(modes=("sparse",), encoders=EncoderBundle(splade=splade))


def train_sparse(dataset: Path, out: Path, settings: Settings, config: TrainConfig = DEFAULTS,
                 options: SparseOptions | None = None, *, progress: bool = True,
                 say: Progress | None = None) -> TrainReport:
    """Fine-tune a SPLADE model on `dataset`; write it, its int8 ONNX export and a report to `out`."""
    options = options or SparseOptions()
    base = resolve_model(config.base, settings.home).path
    warmup_steps = round(config.steps * options.flops_warmup)
    return run_training(
        lambda: SparseTrainee(base, max_length=config.max_length, options=options, warmup_steps=warmup_steps),
        dataset, out, settings, config, options=asdict(options), progress=progress, say=say)
