"""Which index terms a fuzzy query term expands to, and with what boost: Lucene's `FuzzyQuery` rewrite.

Lucene (`FuzzyTermsEnum`, `FuzzyAutomatonBuilder`, `TopTermsRewrite`) matches the index terms that start with
the query term's first `prefix_length` code points and whose rest is within `max_edits` of the query term's rest:
Damerau-Levenshtein in its optimal-string-alignment form with transpositions, Levenshtein without. Each match
gets the boost `1 − edits / min(len(term), len(query term))` in float32 (1 for the term itself), and only the
`max_expansions` best are kept, by boost, then by term (code point order, which is UTF-8 byte order). A boost
below 0 still takes a place and scores 0. docs/FUZZY.md says what the local store reproduces exactly.

Candidates come from buckets of terms by length (a match differs in length by at most `max_edits`), each sorted
so that the prefix is a range found by bisection, then pass two bounds computed in numpy over the whole range (the
set of characters, then their histogram); rapidfuzz computes the distances of the few left in C.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
from rapidfuzz.distance import OSA, Levenshtein
from rapidfuzz.process import cdist

from neurank.retrieval import Fuzzy

F32 = np.float32


HISTOGRAM_BINS = 32
"""Characters are counted in 32 bins (code point mod 32) for the prefilter: a shared bin only weakens it."""


def histogram(term: str) -> np.ndarray:
    """How many characters of `term` fall in each bin."""
    return np.bincount(np.fromiter((ord(char) % HISTOGRAM_BINS for char in term), np.int64, len(term)),
                       minlength=HISTOGRAM_BINS).astype(np.int16)


def character_set(term: str) -> np.uint64:
    """The characters of `term` as a 64-bit set (code point mod 64): a cheaper, weaker bound checked first."""
    bits = 0
    for char in term:
        bits |= 1 << (ord(char) % 64)
    return np.uint64(bits)


class FuzzyVocabulary:
    """The terms one snapshot can match (those with live documents), grouped by length and sorted within a length,
    each with its character histogram; read-only once built."""

    def __init__(self, terms: Iterable[tuple[str, int]]) -> None:
        by_length: dict[int, list[tuple[str, int]]] = {}
        for term, col in terms:
            by_length.setdefault(len(term), []).append((term, col))
        self._buckets: dict[int, tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = {}
        for length, pairs in by_length.items():
            pairs.sort()
            words = [t for t, _ in pairs]
            self._buckets[length] = (words, np.array([c for _, c in pairs], np.int64),
                                     np.stack([histogram(word) for word in words]),
                                     np.array([character_set(word) for word in words], np.uint64))

    def candidates(self, term: str, prefix: str, max_edits: int) -> tuple[list[str], np.ndarray]:
        """The terms that start with `prefix`, differ in length from `term` by at most `max_edits`, and whose character
        sets and histograms differ from its by at most 2 per edit (a substitution moves two counts, an insertion or
        a deletion one, a transposition none), with their column ids."""
        wanted, chars = histogram(term), character_set(term)
        terms: list[str] = []
        cols: list[np.ndarray] = []
        for length in range(max(len(term) - max_edits, len(prefix), 1), len(term) + max_edits + 1):
            bucket = self._buckets.get(length)
            if bucket is None:
                continue
            words, ids, counts, sets = bucket
            low, high = (bisect.bisect_left(words, prefix), bisect.bisect_left(words, _past(prefix))) if prefix else (
                0, len(words))
            near = low + np.flatnonzero(np.bitwise_count(sets[low:high] ^ chars) <= 2 * max_edits)
            near = near[np.abs(counts[near] - wanted).sum(axis=1) <= 2 * max_edits]
            terms.extend(words[i] for i in near.tolist())
            cols.append(ids[near])
        return terms, np.concatenate(cols) if cols else np.zeros(0, np.int64)

    def expand(self, term: str, fuzzy: Fuzzy) -> list[tuple[int, np.float32]]:
        """(column id, boost) of the index terms `term` expands to, best first, at most `max_expansions`."""
        max_edits = fuzzy.max_edits(term)
        terms, cols = self.candidates(term, term[: fuzzy.prefix_length], max_edits)
        if not terms:
            return []
        # the candidates share the prefix, so their distance to the term is that of the rest (Lucene's automaton)
        metric = OSA if fuzzy.transpositions else Levenshtein
        edits = cdist([term], terms, scorer=metric.distance, score_cutoff=max_edits, dtype=np.int32, workers=1)[0]
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
