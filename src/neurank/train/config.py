"""The knobs every trainer shares: data, negatives, optimisation, stopping, evaluation.

Each trainer module holds its own `DEFAULTS` (a `TrainConfig` tuned for it); callers override fields with
`dataclasses.replace`. Model-specific knobs (loss, temperature, FLOPS weights, teacher) live in each
trainer's options.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from neurank.errors import ConfigError
from neurank.train.first_stage import SOURCES, Source
from neurank.train.loop import LoopConfig, Precision
from neurank.train.mining import check_window
from neurank.train.models import training_device

_NOT_IN_FINGERPRINT = ("checkpoint_every", "time_limit_minutes", "threads", "device", "resume", "eval_split",
                       "patience")
"""Fields that do not change the path training takes, so a run may resume with other values."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitConfig:
    """What chooses a training's train, dev and evaluation queries (`neurank.train.data.training_split`):
    every trainer's config extends it."""

    seed: int = 42
    train_split: str = "train"
    dev_split: str = "dev"
    """Used when the dataset has it; otherwise `dev_fraction` of the train queries is carved out."""
    dev_fraction: float = 0.1
    dev_queries: int | None = None
    """At most this many dev queries are scored (a seeded sample); None: all."""
    eval_split: str | None = "test"
    """Split of the final evaluation; None skips it."""

    def __post_init__(self) -> None:
        if self.dev_queries is not None and self.dev_queries < 1:
            raise ConfigError(f"dev_queries must be >= 1 (or None for all), got {self.dev_queries}")


@dataclass(frozen=True, slots=True)
class TrainConfig(SplitConfig):
    base: str
    """The model to start from: a bundled name, a Hugging Face folder or a hub id."""
    steps: int = 1000
    batch_size: int = 8
    """Queries per step; each brings one positive and `n_negatives` negatives."""
    n_negatives: int = 7
    learning_rate: float = 3e-5
    head_learning_rate: float | None = None
    """For a freshly initialised head (the cross-encoder's); None: `learning_rate`."""
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    eval_every: int = 200
    patience: int = 3
    checkpoint_every: int = 50
    time_limit_minutes: float | None = None
    threads: int | None = None
    device: str = "auto"
    """Where the model trains: `auto` (a CUDA GPU when torch sees one, else the CPU), `cpu`, `cuda`, `cuda:N`."""
    precision: Precision = "fp32"
    """`bf16` runs forward passes under bfloat16 autocast: much faster on GPUs with bf16 tensor cores."""
    negatives_from: Source = "bm25"
    range_min: int = 2
    """Skip the first `range_min` ranks when mining: they hold most of the unjudged positives."""
    range_max: int = 50
    dev_queries: int | None = field(default=100, kw_only=True)
    """Per evaluation during training: scoring every dev query each time would cost more than the steps."""
    dev_depth: int = 20
    """First-stage candidates the dev metric reranks per query."""
    resume: bool = True

    def __post_init__(self) -> None:
        SplitConfig.__post_init__(self)
        if self.negatives_from not in SOURCES:
            raise ConfigError(f"unknown negatives source {self.negatives_from!r}; use one of {', '.join(SOURCES)}")
        for name in ("batch_size", "n_negatives", "max_length", "dev_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_window(self.range_min, self.range_max)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        training_device(self.device)
        self.loop_config()

    def with_overrides(self, *, no_final_evaluation: bool = False, **overrides: Any) -> TrainConfig:
        """A copy with every override that is not None (unset flags keep the defaults)."""
        config = replace(self, **{key: value for key, value in overrides.items() if value is not None})
        return replace(config, eval_split=None) if no_final_evaluation else config

    def loop_config(self) -> LoopConfig:
        limit = None if self.time_limit_minutes is None else self.time_limit_minutes * 60
        return LoopConfig(steps=self.steps, learning_rate=self.learning_rate,
                          head_learning_rate=self.head_learning_rate, warmup=self.warmup,
                          weight_decay=self.weight_decay, eval_every=self.eval_every, patience=self.patience,
                          checkpoint_every=self.checkpoint_every, time_limit_s=limit, precision=self.precision)

    def fingerprint_fields(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in _NOT_IN_FINGERPRINT}
