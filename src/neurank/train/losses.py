"""Training losses for neural rankers, one function each, documented for choosing.

Pick by what the training data holds:

- a graded or binary label per candidate: `pointwise_mse`, `pointwise_bce`, `ranknet_loss`;
- one positive per query plus negatives: `contrastive_loss` (embeddings), `contrastive_loss_from_scores`
  (scores already computed), `triplet_margin_loss`;
- a teacher's scores: `listwise_kl_loss` (whole candidate lists), `margin_mse_loss` (positive/negative pairs);
- sparse vectors that must stay cheap to search: `flops_regularizer`, weighted by `flops_weight`.

Every loss returns a scalar tensor, the mean over the batch unless its docstring says otherwise. Teacher
scores are constants: no gradient flows into them. Knob values a user sets (temperature, sigma, margin)
raise `ConfigError`; tensors of the wrong shape raise `ValueError`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from neurank.errors import ConfigError

Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[Similarity, ...] = ("cosine", "dot")


def pointwise_mse(scores: Tensor, labels: Tensor) -> Tensor:
    """Squared error between each score and its graded label: a regression view of relevance.

    Reference: the pointwise approach, Liu, "Learning to Rank for Information Retrieval",
    Foundations and Trends in IR 3(3), 2009.
    Inputs: `scores` float, any shape; `labels` the same shape, graded relevance (int or float).
    Returns: mean of `(score - label)²` over all elements.
    """
    _require_same_shape(scores=scores, labels=labels)
    return F.mse_loss(scores, labels.to(scores.dtype))


def pointwise_bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of each (query, document) logit against a relevance probability.

    Reference: Nogueira & Cho, "Passage Re-ranking with BERT", arXiv:1901.04085, 2019 (cross-encoder
    trained as relevant / not relevant).
    Inputs: `logits` float, any shape (raw scores, before the sigmoid); `labels` the same shape, in [0, 1]
    (1 relevant, 0 not; soft labels such as a teacher's probability are allowed).
    Returns: mean of `-(y·log σ(x) + (1-y)·log(1-σ(x)))` over all elements.
    """
    _require_same_shape(logits=logits, labels=labels)
    if ((labels < 0) | (labels > 1)).any():
        raise ValueError("pointwise_bce labels must lie in [0, 1]; rescale graded labels first")
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def ranknet_loss(scores: Tensor, labels: Tensor, *, sigma: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """Pairwise logistic loss over every pair in a query's candidate list that the labels order.

    Reference: Burges et al., "Learning to Rank using Gradient Descent", ICML 2005.
    Inputs: `scores` float (batch, n_candidates); `labels` the same shape, graded (higher is more relevant);
    `mask` bool, the same shape, True for real candidates and False for padding (None: all real).
    Labels: a pair (i, j) of one query counts when `label_i > label_j`; ties and padding make no pair.
    Returns: mean of `log(1 + exp(-σ·(s_i - s_j)))` over all counted pairs of the batch (every pair weighs
    the same, so queries with more ordered pairs weigh more); 0 when the batch has no such pair.
    """
    _require_positive("sigma", sigma)
    if scores.ndim != 2:
        raise ValueError(f"ranknet_loss scores must be (batch, n_candidates), got {tuple(scores.shape)}")
    _require_same_shape(scores=scores, labels=labels)
    real = _real_candidates(mask, scores)
    pairs = (labels.unsqueeze(2) > labels.unsqueeze(1)) & real.unsqueeze(2) & real.unsqueeze(1)
    differences = scores.unsqueeze(2) - scores.unsqueeze(1)
    return F.softplus(-sigma * differences[pairs]).sum() / pairs.sum().clamp(min=1)


def contrastive_loss(
    queries: Tensor,
    positives: Tensor,
    hard_negatives: Tensor | None = None,
    *,
    similarity: Similarity = "cosine",
    temperature: float = 0.05,
    keep: Tensor | None = None,
) -> Tensor:
    """Softmax cross-entropy of each query's own positive against in-batch and hard negatives (InfoNCE).

    References: Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply",
    arXiv:1705.00652, 2017 (in-batch negatives); Karpukhin et al., "Dense Passage Retrieval for
    Open-Domain Question Answering", EMNLP 2020 (in-batch plus hard negatives); sentence-transformers calls
    it MultipleNegativesRankingLoss.
    Inputs: `queries` float (B, d); `positives` float (B, d), row i the positive of query i;
    `hard_negatives` float (B, h, d) or (N, d), e.g. N = B·h, or None for in-batch negatives only.
    Every query is scored against all B positives and all hard negatives of the batch, so the other
    queries' positives and hard negatives are its negatives too.
    Labels: implicit, query i's target is candidate i (its own positive).
    `similarity`: "cosine" (vectors L2-normalised first) or "dot". `temperature` divides the similarities:
    small values (0.05, sentence-transformers' scale 20) suit cosine; DPR uses dot with 1.0.
    `keep`: bool (B, C) over the C = B + N candidates (positives first, then the hard negatives flattened),
    False for a candidate query i must not be pushed away from, e.g. another query's positive that is also
    judged relevant to query i (a false in-batch negative); None keeps all. A query's own positive is kept.
    Returns: mean over the B queries of `-log softmax(sim(q_i, ·) / τ)[i]` over the kept candidates.
    """
    if queries.ndim != 2 or queries.shape != positives.shape:
        raise ValueError(
            f"queries and positives must both be (B, d), got {tuple(queries.shape)} and {tuple(positives.shape)}"
        )
    candidates = positives
    if hard_negatives is not None:
        if hard_negatives.ndim not in (2, 3) or hard_negatives.shape[-1] != positives.shape[1]:
            raise ValueError(
                f"hard_negatives must be (B, h, d) or (N, d) with d={positives.shape[1]},"
                f" got {tuple(hard_negatives.shape)}"
            )
        candidates = torch.cat([positives, hard_negatives.reshape(-1, positives.shape[1])])
    scores = _similarity(queries, candidates, similarity)
    targets = torch.arange(queries.shape[0], device=queries.device)
    return contrastive_loss_from_scores(scores, targets, temperature=temperature, keep=keep)


def contrastive_loss_from_scores(scores: Tensor, targets: Tensor, *, temperature: float = 1.0,
                                 keep: Tensor | None = None) -> Tensor:
    """Softmax cross-entropy over candidates whose scores are already computed (e.g. by a cross-encoder).

    Reference: as `contrastive_loss` (van den Oord et al., "Representation Learning with Contrastive
    Predictive Coding", arXiv:1807.03748, 2018, name it InfoNCE).
    Inputs: `scores` float (B, C), query i against its C candidates; `targets` int64 (B,), the index of
    query i's positive in its row; `keep` bool (B, C), False drops a candidate from row i's softmax (the
    target is always kept), None keeps all.
    Returns: mean over the B queries of `-log softmax(scores_i / τ)[targets_i]`.
    """
    _require_positive("temperature", temperature)
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            f"scores must be (B, C) and targets (B,), got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    logits = scores / temperature
    if keep is not None:
        _require_same_shape(scores=scores, keep=keep)
        keep = keep.clone()
        keep[torch.arange(len(targets), device=targets.device), targets] = True
        logits = logits.masked_fill(~keep, float("-inf"))
    return F.cross_entropy(logits, targets)


def triplet_margin_loss(positive_scores: Tensor, negative_scores: Tensor, *, margin: float = 1.0) -> Tensor:
    """Hinge loss asking each positive to outscore each negative of its query by at least `margin`.

    Reference: Schroff et al., "FaceNet: A Unified Embedding for Face Recognition and Clustering",
    CVPR 2015, written with similarities instead of distances, as retrieval uses it.
    Inputs: `positive_scores` float (B,), s(q, p); `negative_scores` float (B,) or (B, k), s(q, n) for one
    or k negatives per query.
    Returns: mean of `max(0, margin - s(q, p) + s(q, n))` over all (query, negative) triplets.
    """
    if margin < 0:
        raise ConfigError(f"margin must be >= 0, got {margin}")
    return F.relu(margin - _broadcast_positive(positive_scores, negative_scores) + negative_scores).mean()


def listwise_kl_loss(
    student_scores: Tensor, teacher_scores: Tensor, *, temperature: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    """KL divergence from the teacher's to the student's softmax distribution over each candidate list.

    References: Hinton et al., "Distilling the Knowledge in a Neural Network", arXiv:1503.02531, 2015;
    for ranking, Formal et al., "From Distillation to Hard Negative Sampling: Making Sparse Neural IR
    Models More Effective", SIGIR 2022.
    Inputs: `student_scores` float (B, C); `teacher_scores` the same shape; `mask` bool, the same shape,
    True for real candidates and False for padding (None: all real); every query needs one real candidate.
    Both score lists are divided by `temperature` before the softmax. The result is not rescaled by τ²;
    multiply by τ² to keep gradients of comparable size across temperatures, as Hinton et al. advise.
    Returns: mean over the B queries of `KL(p_teacher ‖ p_student) = Σ_c p_t(c)·(log p_t(c) - log p_s(c))`.
    """
    _require_positive("temperature", temperature)
    if student_scores.ndim != 2:
        raise ValueError(f"listwise_kl_loss scores must be (B, C), got {tuple(student_scores.shape)}")
    _require_same_shape(student_scores=student_scores, teacher_scores=teacher_scores)
    real = _real_candidates(mask, student_scores)
    if not real.any(dim=1).all():
        raise ValueError("listwise_kl_loss: every query needs at least one unmasked candidate")
    log_student = _masked_log_softmax(student_scores / temperature, real)
    log_teacher = _masked_log_softmax(teacher_scores.detach().to(student_scores.dtype) / temperature, real)
    return (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1).mean()


def margin_mse_loss(
    student_positive: Tensor, student_negative: Tensor, teacher_positive: Tensor, teacher_negative: Tensor
) -> Tensor:
    """Squared error between the student's and the teacher's positive-minus-negative score margins.

    Reference: Hofstätter et al., "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation", arXiv:2010.02666, 2020 (Margin-MSE).
    Inputs: `student_positive`, `teacher_positive` float (B,); `student_negative`, `teacher_negative`
    float (B,) or (B, k), one or k negatives per query. Only margins are matched, so the student may score
    on another scale than the teacher.
    Returns: mean of `((s_p - s_n)_student - (s_p - s_n)_teacher)²` over all (query, negative) pairs.
    """
    _require_same_shape(student_positive=student_positive, teacher_positive=teacher_positive)
    _require_same_shape(student_negative=student_negative, teacher_negative=teacher_negative)
    student_margin = _broadcast_positive(student_positive, student_negative) - student_negative
    teacher_margin = _broadcast_positive(teacher_positive, teacher_negative) - teacher_negative
    return F.mse_loss(student_margin, teacher_margin.detach().to(student_margin.dtype))


def flops_regularizer(weights: Tensor) -> Tensor:
    """FLOPS penalty: a smooth proxy for the cost of searching an inverted index of these sparse vectors.

    References: Paria et al., "Minimizing FLOPs to Learn Efficient Sparse Representations", ICLR 2020;
    Formal et al., "SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", SIGIR 2021.
    Inputs: `weights` float (B, V), one sparse term-weight vector per row over a vocabulary of V terms
    (SPLADE's are non-negative; Paria et al. take absolute values, and so does this function).
    Returns: `Σ_j (mean_i |w_ij|)²`, a sum over the vocabulary of squared batch means (not a mean over the
    batch). SPLADE weights it separately for queries and documents, each with `flops_weight`.
    """
    if weights.ndim != 2:
        raise ValueError(f"flops_regularizer weights must be (B, V), got {tuple(weights.shape)}")
    return weights.abs().mean(dim=0).pow(2).sum()


def flops_weight(step: int, *, final_weight: float, warmup_steps: int) -> float:
    """The FLOPS weight λ at a training step: quadratic warm-up from 0 to `final_weight`.

    Reference: Paria et al. 2020 and SPLADE (Formal et al. 2021): λ ramps up quadratically over the first
    T steps, so the sparsity pressure does not crush the vectors before they learn to rank.
    Returns: `final_weight · (step / warmup_steps)²` while `step < warmup_steps`, then `final_weight`
    (steps count from 0; `warmup_steps = 0` means no warm-up).
    """
    if step < 0 or warmup_steps < 0:
        raise ConfigError(f"step and warmup_steps must be >= 0, got {step} and {warmup_steps}")
    if final_weight < 0:
        raise ConfigError(f"final_weight must be >= 0, got {final_weight}")
    if step >= warmup_steps:
        return final_weight
    return final_weight * (step / warmup_steps) ** 2


def _similarity(queries: Tensor, candidates: Tensor, similarity: Similarity) -> Tensor:
    """(B, d) × (C, d) → (B, C) similarity matrix."""
    if similarity not in SIMILARITIES:
        raise ConfigError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")
    if similarity == "cosine":
        queries, candidates = F.normalize(queries, dim=-1), F.normalize(candidates, dim=-1)
    return queries @ candidates.T


def _broadcast_positive(positive: Tensor, negative: Tensor) -> Tensor:
    """Shape positive scores (B,) so that they line up with negatives (B,) or (B, k)."""
    if positive.ndim != 1 or negative.ndim not in (1, 2) or negative.shape[0] != positive.shape[0]:
        raise ValueError(
            f"positive scores must be (B,) and negative scores (B,) or (B, k),"
            f" got {tuple(positive.shape)} and {tuple(negative.shape)}"
        )
    return positive if negative.ndim == 1 else positive.unsqueeze(1)


def _masked_log_softmax(scores: Tensor, real: Tensor) -> Tensor:
    """Log-softmax over the real candidates only; 0 at padding, so padding adds nothing (and no NaN)."""
    return torch.log_softmax(scores.masked_fill(~real, float("-inf")), dim=-1).masked_fill(~real, 0.0)


def _real_candidates(mask: Tensor | None, scores: Tensor) -> Tensor:
    if mask is None:
        return torch.ones_like(scores, dtype=torch.bool)
    _require_same_shape(scores=scores, mask=mask)
    return mask.to(torch.bool)


def _require_same_shape(**tensors: Tensor) -> None:
    """Refuse silent broadcasting between tensors that must pair element by element."""
    shapes = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes must match: {shapes}")


def _require_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
