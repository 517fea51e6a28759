"""A few optimizer steps on a tiny linear model lower every trainable loss."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from neurank.train import (
    contrastive_loss,
    contrastive_loss_from_scores,
    flops_regularizer,
    listwise_kl_loss,
    margin_mse_loss,
    pointwise_bce,
    pointwise_mse,
    ranknet_loss,
    triplet_margin_loss,
)

N_QUERIES, N_CANDIDATES, N_FEATURES = 8, 5, 6
generator = torch.Generator().manual_seed(0)
FEATURES = torch.randn(N_QUERIES, N_CANDIDATES, N_FEATURES, generator=generator, dtype=torch.float64)
LABELS = torch.randint(0, 3, (N_QUERIES, N_CANDIDATES), generator=generator)
TEACHER = torch.randn(N_QUERIES, N_CANDIDATES, generator=generator, dtype=torch.float64)
LENGTHS = torch.randint(2, N_CANDIDATES + 1, (N_QUERIES, 1), generator=generator)
MASK = torch.arange(N_CANDIDATES).expand(N_QUERIES, -1) < LENGTHS


def scores(model: torch.nn.Module) -> torch.Tensor:
    """(queries, candidates) scores of a linear scorer over candidate features."""
    return model(FEATURES).squeeze(-1)


def embeddings(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, positives and (B, h, d) hard negatives from a linear encoder: candidate 0 is the positive."""
    encoded = model(FEATURES)
    return encoded[:, 0], encoded[:, 1], encoded[:, 2:]


CASES: dict[str, tuple[int, Callable[[torch.nn.Module], torch.Tensor]]] = {
    "pointwise_mse": (1, lambda m: pointwise_mse(scores(m), LABELS)),
    "pointwise_bce": (1, lambda m: pointwise_bce(scores(m), (LABELS > 0).double())),
    "ranknet": (1, lambda m: ranknet_loss(scores(m), LABELS, mask=MASK)),
    "contrastive": (4, lambda m: contrastive_loss(*embeddings(m), temperature=0.1)),
    "contrastive_dot": (4, lambda m: contrastive_loss(*embeddings(m), similarity="dot")),
    "contrastive_from_scores": (1, lambda m: contrastive_loss_from_scores(scores(m), LABELS.argmax(dim=1))),
    "triplet": (1, lambda m: triplet_margin_loss(scores(m)[:, 0], scores(m)[:, 1:])),
    "listwise_kl": (1, lambda m: listwise_kl_loss(scores(m), TEACHER, temperature=2.0, mask=MASK)),
    "margin_mse": (
        1,
        lambda m: margin_mse_loss(scores(m)[:, 0], scores(m)[:, 1:], TEACHER[:, 0], TEACHER[:, 1:]),
    ),
    "flops": (10, lambda m: flops_regularizer(torch.relu(m(FEATURES[:, 0])))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_steps_lower_the_loss(name: str) -> None:
    out_features, loss_of = CASES[name]
    torch.manual_seed(0)
    model = torch.nn.Linear(N_FEATURES, out_features).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    initial = loss_of(model).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss_of(model).backward()
        optimizer.step()
    assert loss_of(model).item() < initial
