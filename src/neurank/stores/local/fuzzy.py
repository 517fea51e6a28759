"""Which index terms a fuzzy query term expands to, and with what boost: Lucene's `FuzzyQuery` rewrite.

Lucene (`FuzzyTermsEnum`, `FuzzyAutomatonBuilder`, `TopTermsRewrite`) matches the index terms that start with
the query term's first `prefix_length` code points and whose rest is within `max_edits` of the query term's rest:
Damerau-Levenshtein in its optimal-string-alignment form with transpositions, Levenshtein without. Each match
gets the boost `1 − edits / min(len(term), len(query term))` in float32 (1 for the term itself), and only the
`max_expansions` best are kept, by boost, then by term (code point order, which is UTF-8 byte order). A boost
below 0 still takes a place and scores 0. docs/FUZZY.md says what the local store reproduces exactly.

Candidates come from buckets of terms by length (a match differs in length by at most `max_edits`), each sorted
so that the prefix is a range found by bisection; rapidfuzz computes the distances of what is left in C.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
from rapidfuzz.distance import OSA, Levenshtein
from rapidfuzz.process import cdist

from neurank.retrieval import Fuzzy

F32 = np.float32


class FuzzyVocabulary:
    """The terms one snapshot can match (those with live documents), grouped by length; read-only once built."""

    def __init__(self, terms: Iterable[tuple[str, int]]) -> None:
        by_length: dict[int, list[tuple[str, int]]] = {}
        for term, col in terms:
            by_length.setdefault(len(term), []).append((term, col))
        self._buckets = {length: ([t for t, _ in sorted(pairs)], np.array([c for _, c in sorted(pairs)], np.int64))
                         for length, pairs in by_length.items()}

    def candidates(self, prefix: str, lengths: range) -> tuple[list[str], np.ndarray]:
        """The terms that start with `prefix` and have a length in `lengths`, with their column ids."""
        terms: list[str] = []
        cols: list[np.ndarray] = []
        for length in lengths:
            bucket = self._buckets.get(length)
            if bucket is None:
                continue
            words, ids = bucket
            low, high = (bisect.bisect_left(words, prefix), bisect.bisect_left(words, _past(prefix))) if prefix else (
                0, len(words))
            terms.extend(words[low:high])
            cols.append(ids[low:high])
        return terms, np.concatenate(cols) if cols else np.zeros(0, np.int64)

    def expand(self, term: str, fuzzy: Fuzzy) -> list[tuple[int, np.float32]]:
        """(column id, boost) of the index terms `term` expands to, best first, at most `max_expansions`."""
        max_edits = fuzzy.max_edits(term)
        prefix = term[: fuzzy.prefix_length]
        terms, cols = self.candidates(prefix, range(max(len(term) - max_edits, len(prefix), 1),
                                                    len(term) + max_edits + 1))
        if not terms:
            return []
        metric = OSA if fuzzy.transpositions else Levenshtein
        edits = cdist([term[len(prefix):]], [t[len(prefix):] for t in terms], scorer=metric.distance,
                      score_cutoff=max_edits, dtype=np.int32, workers=1)[0]
        matched = np.flatnonzero(edits <= max_edits)
        scored = sorted((-similarity(int(edits[i]), len(terms[i]), len(term)), terms[i], int(cols[i]))
                        for i in matched.tolist())
        return [(col, F32(-negated)) for negated, _, col in scored[: fuzzy.max_expansions]]


def _past(prefix: str) -> str:
    """The least string above every string that starts with `prefix` (its last code point, plus one)."""
    last = ord(prefix[-1])
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else prefix + chr(0x10FFFF) * 256


def similarity(edits: int, length: int, query_length: int) -> np.float32:
    """`FuzzyTermsEnum`'s boost of a term `edits` away: 1 for the term itself, else `1 − edits / min length` in
    float32 (0 or below for a short term at 2 edits)."""
    if edits == 0:
        return F32(1)
    return F32(1) - F32(edits) / F32(min(length, query_length))
