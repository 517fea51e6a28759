"""The training loop the three trainers share: seed, progress, checkpoints and resume, early stopping.

The loop knows nothing about models or data: it gets a module, a function giving the loss of step n, and a
function giving the dev metric (higher is better), alone or with other dev figures to record beside it.
Batches must be a pure function of the step (see `train/data.py`), so the checkpoint holds only the module,
optimizer, scheduler, torch RNGs and counters, and a resumed run takes the same path as an uninterrupted one.

Checkpoints live in one folder: `last.pt` (everything, written every `checkpoint_every` steps and after
each evaluation) and `best.pt` (the weights of the best evaluation so far, restored at the end).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from neurank.errors import ConfigError, NeurankError
from neurank.train.models import device_of

LAST = "last.pt"
BEST = "best.pt"
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")

Precision = Literal["fp32", "bf16"]
DevResult = float | tuple[float, Mapping[str, float]]
"""The dev metric that early stopping follows, or it and other figures the history records (diagnostics)."""
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """Optimisation and stopping knobs: AdamW, linear warm-up then linear decay, gradient clipping."""

    steps: int = 1000
    learning_rate: float = 3e-5
    head_learning_rate: float | None = None
    """Learning rate of the parameters `fit` is told form a freshly initialised head (None: `learning_rate`)."""
    warmup: float = 0.1
    """Fraction of `steps` over which the learning rate climbs from 0."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    eval_every: int = 200
    patience: int = 3
    """Evaluations without improvement before stopping; 0 never stops early."""
    checkpoint_every: int = 50
    time_limit_s: float | None = None
    """Stop (after a last evaluation) once this much training time has passed, resumed runs included."""
    precision: Precision = "fp32"
    """`bf16`: the forward pass and loss run under bfloat16 autocast (weights, optimizer and gradients stay
    fp32; bf16 keeps fp32's range, so no loss scaling is needed). Dev scoring stays fp32."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use fp32 or bf16 (fp16 would need loss "
                              "scaling, bf16 does not)")
        for name in ("steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "head_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if self.patience < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise ConfigError("patience and weight_decay must be >= 0 and max_grad_norm > 0")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ConfigError(f"time limit must be positive, got {self.time_limit_s}")


@dataclass(slots=True)
class LoopReport:
    """What a run did: steps taken, the best evaluation, why it stopped, and the loss of every step."""

    steps: int = 0
    best_step: int | None = None
    best_metric: float | None = None
    stopped_early: bool = False
    timed_out: bool = False
    seconds: float = 0.0
    resumed_from: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    """One entry per evaluation: step, mean training loss since the previous one, dev metric, and the other dev
    figures `evaluate` returned."""
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        summary = {key: value for key, value in asdict(self).items() if key != "losses"}
        return {**summary, "seconds": round(self.seconds, 1), "first_loss": self.losses[0] if self.losses else None,
                "last_loss": self.losses[-1] if self.losses else None}


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, so model heads start and dropout falls the same way every run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(module: nn.Module, loss_at: Callable[[int], Tensor], evaluate: Callable[[], DevResult], config: LoopConfig,
        checkpoints: Path, *, fingerprint: str, head: tuple[str, ...] = (), resume: bool = True,
        progress: bool = True, description: str = "training") -> LoopReport:
    """Train `module` for `config.steps` steps (or until early stopping or the time limit); end on its best weights.

    `loss_at(step)` returns the loss of 0-based step `step`; `evaluate()` the dev metric (or the metric and
    other figures for the history), every `eval_every` steps and at the end. Parameters whose names start
    with one of `head` train at `config.head_learning_rate`. With `resume`, a `last.pt` in `checkpoints` made
    with the same `fingerprint` is continued, one made with another raises `ConfigError`; without it, training
    starts over.
    """
    checkpoints.mkdir(parents=True, exist_ok=True)
    device = device_of(module)
    optimizer = torch.optim.AdamW(_parameter_groups(module, config, head), lr=config.learning_rate)
    scheduler = _linear_schedule(optimizer, config)
    report = LoopReport()
    elapsed_before = 0.0
    if resume and (checkpoints / LAST).is_file():
        elapsed_before = _restore(checkpoints / LAST, fingerprint, module, optimizer, scheduler, report)
        report.resumed_from = report.steps
    started = time.perf_counter()
    bar = _progress_bar(config.steps, report.steps, progress, description)
    window: list[float] = []
    try:
        while not _finished(report, config):
            module.train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
                loss = loss_at(report.steps)
            if not torch.isfinite(loss):
                raise ConfigError(f"the loss became {loss.item()} at step {report.steps}; lower the learning rate")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            report.steps += 1
            report.losses.append(float(loss.item()))
            window.append(report.losses[-1])
            elapsed = elapsed_before + time.perf_counter() - started
            report.timed_out = config.time_limit_s is not None and elapsed >= config.time_limit_s
            bar.update(1)
            bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", best=_format(report.best_metric))
            if report.steps % config.eval_every == 0 or _finished(report, config):
                _evaluate(module, evaluate, report, config, checkpoints, window)
                window = []
            if report.steps % config.checkpoint_every == 0 or _finished(report, config):
                report.seconds = elapsed
                _save(checkpoints / LAST, fingerprint, module, optimizer, scheduler, report)
    finally:
        bar.close()
    report.seconds = elapsed_before + time.perf_counter() - started
    if (checkpoints / BEST).is_file():
        module.load_state_dict(torch.load(checkpoints / BEST, map_location="cpu", weights_only=True))
    return report


def _finished(report: LoopReport, config: LoopConfig) -> bool:
    return report.steps >= config.steps or report.stopped_early or report.timed_out


def _evaluate(module: nn.Module, evaluate: Callable[[], DevResult], report: LoopReport, config: LoopConfig,
              checkpoints: Path, window: list[float]) -> None:
    """Score the dev split; keep the weights when they beat the best so far, count a miss otherwise."""
    result = evaluate()
    value, figures = result if isinstance(result, tuple) else (result, {})
    metric = float(value)
    report.history.append({"step": report.steps, "loss": sum(window) / max(len(window), 1), "dev": metric,
                           **{name: float(figure) for name, figure in figures.items()}})
    if report.best_metric is None or metric > report.best_metric:
        report.best_metric, report.best_step = metric, report.steps
        _atomic_save(module.state_dict(), checkpoints / BEST)
    elif config.patience and _misses(report) >= config.patience:
        report.stopped_early = True


def _misses(report: LoopReport) -> int:
    """Evaluations since the best one."""
    return sum(1 for entry in report.history if entry["step"] > (report.best_step or 0))


def _parameter_groups(module: nn.Module, config: LoopConfig, head: tuple[str, ...]) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (the usual BERT recipe); the head's own rate."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((bool(head) and name.startswith(head), name.endswith(_NO_DECAY)), []).append(parameter)
    head_rate = config.head_learning_rate or config.learning_rate
    return [{"params": parameters, "lr": head_rate if in_head else config.learning_rate,
             "weight_decay": 0.0 if no_decay else config.weight_decay}
            for (in_head, no_decay), parameters in sorted(groups.items())]


def _linear_schedule(optimizer: torch.optim.Optimizer, config: LoopConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = math.floor(config.steps * config.warmup)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save(path: Path, fingerprint: str, module: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LambdaLR, report: LoopReport) -> None:
    _atomic_save({
        "fingerprint": fingerprint,
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "report": asdict(report),
    }, path)


def _restore(path: Path, fingerprint: str, module: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LambdaLR, report: LoopReport) -> float:
    """Load `last.pt` into the live objects; return the training seconds it had already spent."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise NeurankError(f"cannot read the checkpoint {path}: {exc}; delete it to start over") from exc
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(f"the checkpoint {path} was made by a run with other settings or data; resume with "
                          "the same ones, start over (--no-resume), or write to another --out")
    module.load_state_dict(state["module"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    for key, value in state["report"].items():
        setattr(report, key, value)
    report.timed_out = False
    return float(report.seconds)


def _atomic_save(payload: Any, path: Path) -> None:
    """Write beside the target, then rename: an interrupted save never leaves half a checkpoint."""
    staging = path.with_name(f".{path.name}.tmp")
    torch.save(payload, staging)
    os.replace(staging, path)


def _progress_bar(total: int, initial: int, enabled: bool, description: str) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not enabled, desc=description, unit="step", dynamic_ncols=True)


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
