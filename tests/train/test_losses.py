"""Each loss against its formula worked out by hand in plain Python on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from neurank.errors import ConfigError
from neurank.train import (
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


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def softmax_cross_entropy(rows: list[list[float]], targets: list[int], temperature: float) -> float:
    """mean_i [log Σ_c exp(row_ic / τ) - row_i,target / τ]."""
    terms = [
        math.log(sum(math.exp(value / temperature) for value in row)) - row[target] / temperature
        for row, target in zip(rows, targets, strict=True)
    ]
    return sum(terms) / len(terms)


def softmax(values: list[float], temperature: float) -> list[float]:
    exps = [math.exp(value / temperature) for value in values]
    return [e / sum(exps) for e in exps]


def test_pointwise_mse() -> None:
    expected = ((0.5 - 1) ** 2 + (2.0 - 0) ** 2 + (-1.0 - 2) ** 2) / 3
    assert pointwise_mse(t([0.5, 2.0, -1.0]), torch.tensor([1, 0, 2])).item() == pytest.approx(expected)


def test_pointwise_bce() -> None:
    def sigmoid(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    logits, labels = [0.0, 2.0, -1.0], [1.0, 0.0, 0.5]
    expected = (
        -sum(y * math.log(sigmoid(x)) + (1 - y) * math.log(1 - sigmoid(x)) for x, y in zip(logits, labels, strict=True))
        / 3
    )
    assert pointwise_bce(t(logits), t(labels)).item() == pytest.approx(expected)


def test_pointwise_bce_rejects_graded_labels() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pointwise_bce(t([0.0, 1.0]), t([0.0, 2.0]))


def test_pointwise_rejects_broadcasting_shapes() -> None:
    with pytest.raises(ValueError, match="shapes must match"):
        pointwise_mse(t([[1.0], [2.0]]), t([1.0, 2.0]))


def test_ranknet_counts_ordered_pairs_and_ignores_padding() -> None:
    scores = t([[2.0, 0.5, 1.0, 9.0], [0.0, 1.0, 5.0, 5.0]])
    labels = torch.tensor([[2, 0, 1, 3], [1, 0, 0, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    sigma = 2.0
    # Row 0 pairs (label_i > label_j): (0,1) Δ=1.5, (0,2) Δ=1.0, (2,1) Δ=0.5; the padded label 3 makes none.
    # Row 1: (0,1) Δ=-1.0; the equal labels of candidates 1-3 make no pair.
    differences = [1.5, 1.0, 0.5, -1.0]
    expected = sum(math.log(1 + math.exp(-sigma * d)) for d in differences) / len(differences)
    assert ranknet_loss(scores, labels, sigma=sigma, mask=mask).item() == pytest.approx(expected)


def test_ranknet_padding_with_infinite_scores_keeps_gradients_finite() -> None:
    scores = t([[1.0, 0.0, float("-inf")]]).requires_grad_()
    loss = ranknet_loss(scores, torch.tensor([[1, 0, 2]]), mask=torch.tensor([[True, True, False]]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    assert torch.isfinite(scores.grad).all()


def test_ranknet_without_ordered_pairs_is_zero() -> None:
    assert ranknet_loss(t([[1.0, 2.0]]), torch.tensor([[1, 1]])).item() == 0.0


def test_ranknet_rejects_non_positive_sigma() -> None:
    with pytest.raises(ConfigError, match="sigma"):
        ranknet_loss(t([[1.0, 2.0]]), torch.tensor([[1, 0]]), sigma=0.0)


QUERIES = [[1.0, 0.0], [0.0, 2.0]]
POSITIVES = [[1.0, 1.0], [2.0, 0.0]]
HARD_NEGATIVES = [[[0.0, 1.0]], [[1.0, -1.0]]]


def test_contrastive_dot_in_batch() -> None:
    # q0·p0 = 1, q0·p1 = 2; q1·p0 = 2, q1·p1 = 0.
    expected = softmax_cross_entropy([[1.0, 2.0], [2.0, 0.0]], [0, 1], temperature=0.5)
    loss = contrastive_loss(t(QUERIES), t(POSITIVES), similarity="dot", temperature=0.5)
    assert loss.item() == pytest.approx(expected)


def test_contrastive_dot_with_hard_negatives_shares_them_across_the_batch() -> None:
    # Candidates p0, p1, n0 = (0, 1), n1 = (1, -1): q0 → 1, 2, 0, 1; q1 → 2, 0, 2, -2.
    expected = softmax_cross_entropy([[1.0, 2.0, 0.0, 1.0], [2.0, 0.0, 2.0, -2.0]], [0, 1], temperature=1.0)
    loss = contrastive_loss(t(QUERIES), t(POSITIVES), t(HARD_NEGATIVES), similarity="dot", temperature=1.0)
    assert loss.item() == pytest.approx(expected)
    flat = contrastive_loss(
        t(QUERIES), t(POSITIVES), t(HARD_NEGATIVES).reshape(2, 2), similarity="dot", temperature=1.0
    )
    assert flat.item() == pytest.approx(expected)


def test_contrastive_keep_drops_false_negatives_but_never_the_target() -> None:
    # Rows as above (q0 → 1, 2, 0, 1; q1 → 2, 0, 2, -2). Row 0 drops p1; row 1 drops n0 and asks to drop its
    # own positive p1, which stays.
    keep = torch.tensor([[True, False, True, True], [True, False, False, True]])
    expected = softmax_cross_entropy([[1.0, 0.0, 1.0], [2.0, 0.0, -2.0]], [0, 1], temperature=1.0)
    loss = contrastive_loss(t(QUERIES), t(POSITIVES), t(HARD_NEGATIVES), similarity="dot", temperature=1.0,
                            keep=keep)
    assert loss.item() == pytest.approx(expected)
    assert not keep[1, 1], "the caller's mask is not modified"


def test_contrastive_cosine_normalises_before_scoring() -> None:
    r = 1 / math.sqrt(2)
    # Unit vectors: q0 = (1, 0), q1 = (0, 1); p0 = (r, r), p1 = (1, 0); n0 = (0, 1), n1 = (r, -r).
    rows = [[r, 1.0, 0.0, r], [r, 0.0, 1.0, -r]]
    expected = softmax_cross_entropy(rows, [0, 1], temperature=0.05)
    loss = contrastive_loss(t(QUERIES), t(POSITIVES), t(HARD_NEGATIVES), temperature=0.05)
    assert loss.item() == pytest.approx(expected)
    dot = contrastive_loss(t(QUERIES), t(POSITIVES), t(HARD_NEGATIVES), similarity="dot", temperature=0.05)
    assert dot.item() != pytest.approx(expected)


def test_contrastive_from_scores_applies_temperature() -> None:
    rows = [[3.0, 1.0, 0.0], [0.5, 0.5, 2.0]]
    expected = softmax_cross_entropy(rows, [0, 2], temperature=2.0)
    loss = contrastive_loss_from_scores(t(rows), torch.tensor([0, 2]), temperature=2.0)
    assert loss.item() == pytest.approx(expected)


def test_contrastive_rejects_unknown_similarity_and_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="cosine, dot"):
        contrastive_loss(t(QUERIES), t(POSITIVES), similarity="l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hard_negatives"):
        contrastive_loss(t(QUERIES), t(POSITIVES), t([[1.0, 2.0, 3.0]]))
    with pytest.raises(ConfigError, match="temperature"):
        contrastive_loss(t(QUERIES), t(POSITIVES), temperature=0.0)


def test_triplet_margin_one_negative_per_query() -> None:
    expected = (max(0.0, 1.0 - 1.0 + 0.5) + max(0.0, 1.0 - 0.2 + 0.9)) / 2
    assert triplet_margin_loss(t([1.0, 0.2]), t([0.5, 0.9]), margin=1.0).item() == pytest.approx(expected)


def test_triplet_margin_several_negatives_per_query() -> None:
    terms = [max(0.0, 0.5 - 1.0 + n) for n in (0.5, -2.0)] + [max(0.0, 0.5 - 0.2 + n) for n in (0.9, 0.0)]
    loss = triplet_margin_loss(t([1.0, 0.2]), t([[0.5, -2.0], [0.9, 0.0]]), margin=0.5)
    assert loss.item() == pytest.approx(sum(terms) / len(terms))


def test_margin_mse() -> None:
    # Student margins 3-1 = 2 and 1-2 = -1; teacher margins 5-2 = 3 and 0-1 = -1.
    expected = ((2 - 3) ** 2 + (-1 - -1) ** 2) / 2
    loss = margin_mse_loss(t([3.0, 1.0]), t([1.0, 2.0]), t([5.0, 0.0]), t([2.0, 1.0]))
    assert loss.item() == pytest.approx(expected)


def test_margin_mse_several_negatives_and_no_gradient_into_the_teacher() -> None:
    teacher_positive = t([4.0]).requires_grad_()
    student_positive = t([1.0]).requires_grad_()
    loss = margin_mse_loss(student_positive, t([[0.0, 2.0]]), teacher_positive, t([[1.0, 4.0]]))
    # Student margins 1, -1; teacher margins 3, 0.
    assert loss.item() == pytest.approx(((1 - 3) ** 2 + (-1 - 0) ** 2) / 2)
    loss.backward()
    assert teacher_positive.grad is None
    assert student_positive.grad is not None


def kl(teacher: list[float], student: list[float], temperature: float) -> float:
    p, q = softmax(teacher, temperature), softmax(student, temperature)
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))


def test_listwise_kl_with_temperature() -> None:
    student, teacher = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]], [[3.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    expected = (kl(teacher[0], student[0], 2.0) + kl(teacher[1], student[1], 2.0)) / 2
    assert listwise_kl_loss(t(student), t(teacher), temperature=2.0).item() == pytest.approx(expected)


def test_listwise_kl_ignores_padding() -> None:
    student = t([[1.0, 2.0, 100.0], [0.5, -1.0, 3.0]]).requires_grad_()
    teacher = t([[3.0, 1.0, -50.0], [1.0, 0.0, 2.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    expected = (kl([3.0, 1.0], [1.0, 2.0], 1.0) + kl([1.0, 0.0, 2.0], [0.5, -1.0, 3.0], 1.0)) / 2
    loss = listwise_kl_loss(student, teacher, mask=mask)
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    assert torch.isfinite(student.grad).all()
    assert student.grad[0, 2].item() == 0.0


def test_listwise_kl_needs_a_real_candidate_per_query() -> None:
    with pytest.raises(ValueError, match="unmasked"):
        listwise_kl_loss(t([[1.0, 2.0]]), t([[1.0, 2.0]]), mask=torch.tensor([[False, False]]))


def test_flops_regularizer() -> None:
    # Column means of |w|: (1+3)/2 = 2, 0, (2+0)/2 = 1 → 2² + 0² + 1² = 5.
    assert flops_regularizer(t([[1.0, 0.0, -2.0], [3.0, 0.0, 0.0]])).item() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("step", "warmup_steps", "expected"),
    [(0, 10, 0.0), (5, 10, 0.1 * 0.25), (9, 10, 0.1 * 0.81), (10, 10, 0.1), (50, 10, 0.1), (0, 0, 0.1)],
)
def test_flops_weight_warms_up_quadratically(step: int, warmup_steps: int, expected: float) -> None:
    assert flops_weight(step, final_weight=0.1, warmup_steps=warmup_steps) == pytest.approx(expected)


def test_flops_weight_rejects_negative_knobs() -> None:
    with pytest.raises(ConfigError):
        flops_weight(-1, final_weight=0.1, warmup_steps=10)
    with pytest.raises(ConfigError):
        flops_weight(1, final_weight=-0.1, warmup_steps=10)
