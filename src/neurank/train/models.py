"""Running and saving the transformers models that training starts from and ends with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from neurank.errors import ConfigError

T = TypeVar("T")
SCORE_BATCH = 32
"""Texts per forward pass when scoring without gradients (the dev metric)."""


def training_device(name: str) -> torch.device:
    """The torch device `name` names; `auto` is the first CUDA GPU when torch sees one, else the CPU.

    A device that torch cannot use here is refused before any data is ranked, not at the first step.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown training device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"training device {name!r} asked for, but torch sees no CUDA GPU here; use cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"training device {name!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"training device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def device_of(module: nn.Module) -> torch.device:
    """Where `module`'s weights live: its inputs are moved there."""
    return next(module.parameters()).device


def save_tokenizer(tokenizer: Any, folder: Path, *, max_length: int) -> None:
    """Save with `model_max_length` set to the length trained at: inputs longer than that were never seen."""
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(folder))


def inference(module: nn.Module, forward: Callable[[list[T]], Tensor], texts: Sequence[T]) -> Tensor:
    """`forward` over `texts` (or other inputs) in chunks, in eval mode and without gradients; rows concatenated,
    float32."""
    module.eval()
    with torch.inference_mode():
        chunks = [forward(list(texts[i:i + SCORE_BATCH])) for i in range(0, len(texts), SCORE_BATCH)]
    return torch.cat(chunks).float().cpu() if chunks else torch.zeros(0)
