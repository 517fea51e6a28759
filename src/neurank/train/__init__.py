"""Training relevance models: the losses of neural IR and hard-negative mining from a first-stage run."""

from neurank.train.losses import (
    contrastive_loss,
    contrastive_loss_from_scores,
    flops_regularizer,
    flops_weight,
    listwise_kl_loss,
    margin_mse_loss,
    pointwise_bce,
    pointwise_mse,
    ranknet_loss,
    triplet_margin_loss,
)
from neurank.train.mining import check_window, mine_hard_negatives

__all__ = [
    "check_window",
    "contrastive_loss",
    "contrastive_loss_from_scores",
    "flops_regularizer",
    "flops_weight",
    "listwise_kl_loss",
    "margin_mse_loss",
    "mine_hard_negatives",
    "pointwise_bce",
    "pointwise_mse",
    "ranknet_loss",
    "triplet_margin_loss",
]
