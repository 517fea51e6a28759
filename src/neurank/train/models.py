"""Running and saving the transformers models that training starts from and ends with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

SCORE_BATCH = 32
"""Texts per forward pass when scoring without gradients (the dev metric)."""


def save_tokenizer(tokenizer: Any, folder: Path, *, max_length: int) -> None:
    """Save with `model_max_length` set to the length trained at: inputs longer than that were never seen."""
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(str(folder))


def inference(module: nn.Module, forward: Callable[[list[str]], Tensor], texts: Sequence[str]) -> Tensor:
    """`forward` over `texts` in chunks, in eval mode and without gradients; rows concatenated, float32."""
    module.eval()
    with torch.inference_mode():
        chunks = [forward(list(texts[i:i + SCORE_BATCH])) for i in range(0, len(texts), SCORE_BATCH)]
    return torch.cat(chunks).float() if chunks else torch.zeros(0)
