"""Do two stores rank alike? Top-k agreement with ties aside, to check a cluster against the local store.

Documents with equal scores may come in any order (each engine breaks ties by its own internal ids), so a
ranking agrees with the reference when it is the reference's top k up to reordering within ties, including a
tie cut by the k-th place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from neurank.retrieval import ScoredIds


def same_top_k(reference: ScoredIds, other: Sequence[str], k: int) -> bool:
    """Whether `other`'s first k ids are `reference`'s first k up to the order of equal (float32) scores.

    `reference` should run deeper than k, so that documents tied with the k-th one are known.
    """
    score = {doc_id: np.float32(value) for doc_id, value in reference}
    top = list(other[:k])
    if len(set(top)) != len(top) or any(doc_id not in score for doc_id in top):
        return False
    return [score[doc_id] for doc_id in top] == [np.float32(value) for _, value in reference[:k]]


def agreement(pairs: Iterable[tuple[ScoredIds, Sequence[str]]], k: int) -> float:
    """The share of (reference, other) rankings that agree on the top k; 1.0 for no pairs."""
    verdicts = [same_top_k(reference, other, k) for reference, other in pairs]
    return sum(verdicts) / len(verdicts) if verdicts else 1.0
