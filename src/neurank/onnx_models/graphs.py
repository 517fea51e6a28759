"""The pooled graphs: one torch module per model kind, run by the torch runtime and exported to ONNX as is.

Pooling inside the graph keeps the 30522-wide MLM logits (or the token vectors) out of the runtime's
outputs. Imported only where torch runs (the torch runtime, export, parity).
"""

from __future__ import annotations

import torch
from torch import nn

from neurank.onnx_models.st_folder import Pooling


class SpladePooling(nn.Module):
    """max over tokens of log(1 + relu(MLM logits)), padding excluded.

    log1p∘relu is monotonic, so the max is taken on the raw logits (padding set to 0, which relu maps to
    the floor anyway) and log1p(relu(·)) is applied to the pooled vector only: one op on the big tensor.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).logits
        pooled = (logits * attention_mask.unsqueeze(-1).to(logits.dtype)).amax(dim=1)
        return torch.log1p(torch.relu(pooled))


class EmbeddingPooling(nn.Module):
    """Token vectors pooled (mean over the attention mask, CLS or max) and optionally L2-normalized."""

    def __init__(self, model: nn.Module, pooling: Pooling, normalize: bool) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = (hidden - (1.0 - mask) * 1e9).amax(dim=1)
        else:
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=-1) if self.normalize else pooled


class Logits(nn.Module):
    """A sequence-classification model's logits, (batch, num_labels)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).logits
