"""One recipe for every trainer: data → model → loop → Hugging Face folder → ONNX export → final evaluation.

A trainer supplies a `Trainee` (its module, loss, scorer, how to save, what to evaluate); the recipe does the
rest, the same way for the cross-encoder, the dense and the sparse model.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from neurank.config import Settings
from neurank.eval.datasets import load_qrels
from neurank.eval.diagnostics import Diagnostics, Embedder, diagnose
from neurank.onnx_models.export import Progress
from neurank.onnx_models.registry import resolve_model
from neurank.train.config import TrainConfig
from neurank.train.data import Group, TrainingData, load_training_data
from neurank.train.evaluation import DEV_MEASURE, EvalSetup, final_evaluation, measure_of, rerank_run
from neurank.train.first_stage import first_stage_runs
from neurank.train.loop import LoopReport, fit, seed_everything
from neurank.train.models import training_device
from neurank.train.output import export_into

REPORT_FILE = "training.json"
DEV_RECALL_AT = 10
"""The dev diagnostics' Recall@N and micro-recall@N cutoff, over the reranked dev candidates."""
CHECKPOINTS = "checkpoints"


class Trainee(Protocol):
    """A model being trained, as the recipe sees it."""

    kind: ClassVar[str]
    module: nn.Module
    head: tuple[str, ...]
    """Name prefixes of freshly initialised parameters (trained at `head_learning_rate`)."""

    def loss(self, groups: Sequence[Group], step: int) -> Tensor:
        """The training loss of one batch (the module is in train mode)."""

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance of each passage to the query, for the dev metric (no gradient)."""

    def save(self, folder: Path) -> None:
        """Write a Hugging Face folder that neurank's encoders load."""

    def evaluation(self, folder: Path, settings: Settings) -> EvalSetup:
        """The modes, encoders and reranker that evaluate the saved folder."""

    def finish(self, data: TrainingData, folder: Path, settings: Settings) -> dict[str, Any]:
        """Work on the saved and exported best weights, run as `settings` say; returns what the report records."""

    @property
    def embedder(self) -> Embedder | None:
        """One vector per text, for the silhouette diagnostic; None where the model has no embedding space."""

    no_embeddings: ClassVar[str]
    """Why `embedder` is None (what the report says instead of a silhouette)."""


@dataclass(slots=True)
class TrainReport:
    kind: str
    dataset: str
    base: str
    out: Path
    train_queries: int
    dev_queries: int
    dev_measure: str
    loop: LoopReport
    export: dict[str, Any]
    eval_split: str | None
    evaluation: dict[str, dict[str, Any]] | None
    diagnostics: Diagnostics | None
    """The trained model's diagnostics on the evaluation split (dev ones are in `loop.history`)."""
    seconds: float
    finish: dict[str, Any]
    recipe: dict[str, Any]
    """The config and the trainer's options the run trained with, to reproduce it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "dataset": self.dataset, "base": self.base, "out": str(self.out),
            "train_queries": self.train_queries, "dev_queries": self.dev_queries, "dev_measure": self.dev_measure,
            "loop": self.loop.to_dict(), "export": self.export, "eval_split": self.eval_split,
            "evaluation": self.evaluation,
            "diagnostics": None if self.diagnostics is None else self.diagnostics.to_dict(),
            "seconds": round(self.seconds, 1), **self.finish, "recipe": self.recipe,
        }


def run_training(make: Callable[[], Trainee], dataset: Path, out: Path, settings: Settings, config: TrainConfig,
                 *, options: Mapping[str, Any], progress: bool = True, say: Progress | None = None) -> TrainReport:
    """Train, keep the best dev checkpoint, save it to `out` with its int8 ONNX export, evaluate it.

    `options` are the trainer's own knobs; with `config` and the base model they make the fingerprint that
    a checkpoint must match to be resumed. `out/training.json` receives the report.
    """
    tell = say or (lambda message: None)
    started = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    dataset, out = Path(dataset), Path(out)
    tell(f"ranking the train and dev queries of {dataset.name} ({config.negatives_from}) and mining negatives")
    data = load_training_data(dataset, settings, config)
    seed_everything(config.seed)
    device = training_device(config.device)
    tell(f"loading {config.base} onto {device}")
    trainee = make()
    trainee.module.to(device)
    loop = fit(
        trainee.module,
        lambda step: trainee.loss(data.batch(step, batch_size=config.batch_size, n_negatives=config.n_negatives),
                                  step),
        lambda: dev_evaluation(trainee, data, config),
        config.loop_config(),
        out / CHECKPOINTS,
        fingerprint=_fingerprint(trainee.kind, dataset, config, options, settings),
        head=trainee.head,
        resume=config.resume,
        progress=progress,
        description=f"train {trainee.kind} on {dataset.name}",
    )
    tell(f"saving the best checkpoint (step {loop.best_step}) to {out} and exporting it to ONNX")
    trainee.save(out)
    export = export_into(out, home=settings.home, progress=say)
    if export.onnx_int8 is None:
        settings = settings.model_copy(update={"int8": False})
    finished = trainee.finish(data, out, settings)
    evaluation = diagnostics = None
    if config.eval_split:
        tell(f"final evaluation on {dataset.name} ({config.eval_split})")
        evaluation = final_evaluation(dataset, trainee.evaluation(out, settings), settings,
                                      split=config.eval_split, runs_dir=out / "eval", progress=progress)
        tell(f"diagnostics on {dataset.name} ({config.eval_split})")
        diagnostics = split_diagnostics(trainee, dataset, data, settings, config)
    report = TrainReport(trainee.kind, dataset.name, config.base, out, len(data.examples), len(data.dev),
                         f"{DEV_MEASURE} of the first-stage top {config.dev_depth}, reranked", loop,
                         export.to_dict(), config.eval_split, evaluation, diagnostics,
                         time.perf_counter() - started, finished, {"config": asdict(config), "options": dict(options)})
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report


def dev_evaluation(trainee: Trainee, data: TrainingData, config: TrainConfig) -> tuple[float, dict[str, float]]:
    """The dev metric, with the diagnostics of the model at this step (Recall@10 of the reranked candidates)."""
    run = rerank_run(trainee.score, data.queries, data.dev, data.runs, data.corpus, depth=config.dev_depth)
    found = diagnose(trainee.score, data.dev, data.queries, data.corpus, data.runs, embedder=trainee.embedder,
                     why_no_embeddings=trainee.no_embeddings, run=run, cutoffs=(DEV_RECALL_AT,),
                     skip=config.range_min, seed=config.seed)
    return measure_of(data.dev, run), found.flat()


def split_diagnostics(trainee: Trainee, dataset: Path, data: TrainingData, settings: Settings,
                      config: TrainConfig) -> Diagnostics:
    """The trained model's diagnostics on the evaluation split, negatives mined from the first stage it trained on.

    Recall there belongs to the retrieval modes the final evaluation ran (`evaluation`), not to the model alone.
    """
    assert config.eval_split is not None
    qrels = load_qrels(dataset, config.eval_split)
    queries = {query_id: text for query_id, text in data.queries.items() if query_id in qrels}
    runs = first_stage_runs(dataset, queries, settings, source=config.negatives_from, depth=config.range_max)
    return diagnose(trainee.score, qrels, queries, data.corpus, runs, embedder=trainee.embedder,
                    why_no_embeddings=trainee.no_embeddings,
                    why_no_run="Recall@N and micro-recall@N of each mode are in `evaluation`",
                    skip=config.range_min, seed=config.seed)


def _fingerprint(kind: str, dataset: Path, config: TrainConfig, options: Mapping[str, Any],
                 settings: Settings) -> str:
    """What decides the path of training: kind, base weights, dataset, config and the trainer's options."""
    payload = {"kind": kind, "base": resolve_model(config.base, settings.home).fingerprint,
               "dataset": str(dataset.resolve()), "config": config.fingerprint_fields(), "options": dict(options)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
