"""The `content.ngram` subfield of one snapshot, derived from the `content` postings instead of analysed again.

The subfield's analyzer is the index's own analyzer followed by Lucene's `NGramTokenFilter` with min = max = n
(`neurank.mappings.index`): every analyzed term becomes its n-grams (code points), all at the term's position,
and a term shorter than n becomes nothing. So a document's gram frequencies follow from its term frequencies,
tf(g, d) = Σ_t tf(t, d) · count(g in t), and so does its field length, which counts positions
(`discount_overlaps`): the terms of at least n characters. A snapshot computes both with one sparse product per
segment, the first time an n-gram query needs them.

A `match` on the subfield puts a query term's grams at one position, which Lucene's `QueryBuilder` turns into a
`SynonymQuery`: one BM25 score per query term, its frequency the sum of its grams' frequencies in the document
(a gram that occurs twice in the term counts twice), its document frequency the largest among its grams, and
the subfield's own N and average length (SCORING.md §1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse

from neurank.stores import scoring
from neurank.stores.local.segment import Postings, Segment


def grams(term: str, n: int) -> list[str]:
    """The n-grams of `term` in order, repeats kept; none when it is shorter than n."""
    return [term[i : i + n] for i in range(len(term) - n + 1)]


class NgramField:
    """Per segment, gram postings; per slot, the gram norms; across the snapshot, the gram vocabulary and BM25
    statistics."""

    def __init__(self, n: int, terms: Mapping[str, int], width: int, segments: Sequence[Segment],
                 live: Sequence[np.ndarray], k1: float, b: float) -> None:
        self.n = n
        self.vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        long_enough = np.zeros(width, np.int64)
        for term, col in list(terms.items()):
            if col >= width:
                continue
            for gram, count in Counter(grams(term, n)).items():
                rows.append(col)
                cols.append(self.vocabulary.setdefault(gram, len(self.vocabulary)))
                counts.append(count)
            long_enough[col] = len(term) >= n
        expand = scipy.sparse.csr_matrix((np.array(counts, np.float64), (rows, cols)),
                                         shape=(width, len(self.vocabulary)))
        self.postings: list[Postings] = []
        norms: list[np.ndarray] = []
        doc_count, total = 0, 0
        self.doc_freq = np.zeros(len(self.vocabulary), np.int64)
        for segment, mask in zip(segments, live, strict=True):
            freqs = segment.freqs.matrix(len(segment), width).tocsr()
            postings = Postings.of(scipy.sparse.csc_matrix(freqs @ expand))
            lengths = np.asarray(freqs @ long_enough.astype(np.float64)).astype(np.int64)
            self.postings.append(postings)
            norms.append(scoring.int_to_byte4(lengths))
            doc_count += int(np.count_nonzero(lengths[mask]))
            total += int(lengths[mask].sum())
            self.doc_freq += postings.doc_freq(~mask)  # as wide as the gram vocabulary
        self.norms = np.concatenate(norms) if norms else np.zeros(0, np.uint8)
        """The one-byte norm of each slot's gram count (segments one after another, as the snapshot's slots)."""
        self.doc_count = max(doc_count, 1)
        avgdl = scoring.bm25_avgdl(total, doc_count) if doc_count else np.float32(1)
        self.norm_inverse = scoring.bm25_norm_inverse(float(avgdl), k1, b)

    def query_grams(self, term: str) -> tuple[list[int], np.ndarray] | None:
        """The indexed grams of one query term with how often each occurs in it, and the idf of the largest
        document frequency among them (`SynonymQuery`'s pseudo-term); None when no gram is indexed."""
        present = {self.vocabulary[gram]: count for gram, count in Counter(grams(term, self.n)).items()
                   if gram in self.vocabulary and self.doc_freq[self.vocabulary[gram]] > 0}
        if not present:
            return None
        idf = scoring.bm25_idf(max(int(self.doc_freq[col]) for col in present), self.doc_count)
        return [col for col, count in present.items() for _ in range(count)], idf
