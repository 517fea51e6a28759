"""Running and saving the transformers models that training starts from and ends with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from neurank.onnx_models.devices import torch_device

T = TypeVar("T")
SCORE_BATCH = 32
"""Texts per forward pass when scoring without gradients (the dev metric)."""


def training_device(name: str) -> torch.device:
    """The torch device `name` names (`neurank.onnx_models.devices`); a device that torch cannot use here is
    refused before any data is ranked, not at the first step."""
    return torch_device(name, "training device")


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
