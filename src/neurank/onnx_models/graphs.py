"""The pooled graphs: one torch module per model kind, run by the torch runtime and exported to ONNX as is.

Pooling inside the graph keeps the 30522-wide MLM logits (or the token vectors) out of the runtime's
outputs. Imported only where torch runs (the torch runtime, export, parity).
"""

from __future__ import annotations

import torch
from torch import nn

from neurank.errors import ModelError
from neurank.onnx_models.st_folder import Pooling


class SpladePooling(nn.Module):
    """max over tokens of log(1 + relu(MLM logits)), padding excluded, computed with one op on the big tensor.

    - log1p∘relu is monotonic and the vocabulary bias is the same for every token, so both are applied
      after the max, to the (batch, vocab) vector.
    - Padding rows of the hidden states are replaced by the text's first row before the projection: the
      max over tokens then only sees real tokens, without masking the (batch, seq, vocab) logits.
    - The projection is held as its own (hidden, vocab) constant, so the ONNX graph has a plain MatMul with
      a constant weight that int8 quantization can take (the tied embedding would need a Transpose).
    """

    projection: torch.Tensor
    bias: torch.Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        decoder = model.get_output_embeddings()  # type: ignore[operator]
        if not isinstance(decoder, nn.Linear):
            raise ModelError(f"a SPLADE model needs a linear vocabulary projection as its output "
                             f"embeddings; this one has {type(decoder).__name__}")
        self.register_buffer("projection", decoder.weight.detach().t().contiguous())
        bias = decoder.bias if decoder.bias is not None else torch.zeros(decoder.out_features)
        self.register_buffer("bias", bias.detach().clone())
        _replace_submodule(model, decoder, nn.Identity())
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).logits
        hidden = torch.where(attention_mask.unsqueeze(-1).bool(), hidden, hidden[:, :1])
        pooled = torch.matmul(hidden, self.projection).amax(dim=1) + self.bias
        return torch.log1p(torch.relu(pooled))


def _replace_submodule(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    name = next(name for name, module in root.named_modules() if module is old)
    parent, _, attribute = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attribute, new)


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


class TokenVectors(nn.Module):
    """ColBERT token vectors: the hidden states through a linear projection without bias, L2-normalized.

    Output (batch, seq, dim) for every position; the encoder keeps the rows it needs (all of a query's, a
    document's non-punctuation tokens), so the graph stays one fixed computation that exports as is.
    """

    def __init__(self, model: nn.Module, projection: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.linear = nn.Linear(projection.shape[1], projection.shape[0], bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(projection)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state
        return nn.functional.normalize(self.linear(hidden), p=2.0, dim=-1)


class Logits(nn.Module):
    """A sequence-classification model's logits, (batch, num_labels)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).logits
