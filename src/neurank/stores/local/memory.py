"""The local store's search index for one snapshot: segments, masks, and the statistics that span them.

A `MemoryIndex` is the list of `Segment`s (`segment.py`) a snapshot's rows live in, with a mask per segment of
the rows the snapshot still holds, so a new snapshot after a write costs one small segment and the masks. BM25
statistics (N, df, avgdl) are exact over the live rows of all segments, and a term's score is computed from its
postings at query time, so scores equal one index built in one go: SCORING.md exactly, through
`neurank.stores.scoring`. Rows are addressed by a slot (segment base + row), ascending with `seq`, so ties keep
insertion order. Late-interaction token vectors stay compressed; a `LateInteractionQuery` decodes its
candidates' records only. A fuzzy text query expands each term over the snapshot's vocabulary (`fuzzy.py`) and
scores the expansions as Lucene's blended rewrite does (docs/FUZZY.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from neurank.errors import StoreError
from neurank.index_spec import SPARSE_FIELDS, IndexSpec
from neurank.retrieval import Fuzzy, LateInteractionQuery, ScoredIds, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer
from neurank.stores.local.ann import HnswGraph
from neurank.stores.local.fuzzy import FuzzyVocabulary
from neurank.stores.local.ngrams import NgramField
from neurank.stores.local.segment import Postings, Segment, gather_records
from neurank.stores.tokens import decode


@dataclass(slots=True)
class RowCache:
    """One index's segments as of its newest read row, and the term and feature vocabularies their ids refer to
    (loaded from the store's vocabulary as it grows)."""

    analyzer: Analyzer
    last_seq: int = 0
    segments: list[Segment] = field(default_factory=list)
    terms: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, int]] = field(default_factory=lambda: {name: {} for name in SPARSE_FIELDS})
    graph: HnswGraph | None = None
    """The index's HNSW graph, shared by its builds (it only grows; each search masks what its snapshot lacks)."""


class MemoryIndex:
    """Everything a search needs for one snapshot: its segments and their live masks; read-only afterwards."""

    def __init__(
        self, spec: IndexSpec, generation: int, segments: list[Segment], live: list[np.ndarray], cache: RowCache
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.segments = segments
        self.live = live
        self.whole = [bool(mask.all()) for mask in live]
        """Per segment, whether the snapshot holds every row (no mask to apply)."""
        self.analyzer = cache.analyzer
        self.terms = cache.terms
        self.features = cache.features
        self.graph = cache.graph
        sizes = np.fromiter((len(s) for s in segments), np.int64, len(segments))
        self.bases = np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes)])
        self.seqs = np.concatenate([s.seqs for s in segments]) if segments else np.zeros(0, np.int64)
        """The seq of every slot (masked ones included), ascending."""
        self._row_of: dict[str, int] | None = None
        self._vocabulary: FuzzyVocabulary | None = None
        self._ngrams: NgramField | None = None
        self._statistics()

    def _statistics(self) -> None:
        """SCORING.md §1: N and avgdl over live documents with tokens, df over live documents; dl through the
        one-byte norm."""
        width = len(self.terms)
        doc_count, total = 0, 0
        doc_freq = np.zeros(width, np.int64)
        for segment, live in zip(self.segments, self.live, strict=True):
            lengths = segment.lengths[live]
            doc_count += int(np.count_nonzero(lengths))
            total += int(lengths.sum())
            doc_freq += segment.freqs.doc_freq(width, ~live)
        self.doc_freq = doc_freq
        self.doc_count = max(doc_count, 1)
        self.idf = scoring.bm25_idf(doc_freq, self.doc_count)
        avgdl = scoring.bm25_avgdl(total, doc_count) if doc_count else np.float32(1)
        self.norm_inverse = scoring.bm25_norm_inverse(float(avgdl), self.spec.bm25_k1, self.spec.bm25_b)

    @property
    def row_of(self) -> dict[str, int]:
        """Live document id → slot (built on first use: only late interaction and explain need it)."""
        if self._row_of is None:
            self._row_of = {
                segment.ids[row]: int(base) + row
                for segment, live, base in zip(self.segments, self.live, self.bases, strict=False)
                for row in np.flatnonzero(live).tolist()
            }
        return self._row_of

    def _postings(
        self, pick: Callable[[int, Segment], Postings], col: int
    ) -> Iterator[tuple[Segment, np.ndarray, np.ndarray, np.ndarray]]:
        """Per segment, the live entries of column `col` of the postings `pick(segment number, segment)`:
        (segment, rows, slots, values)."""
        for at, (segment, live, whole, base) in enumerate(zip(self.segments, self.live, self.whole, self.bases,
                                                              strict=False)):
            postings = pick(at, segment)
            span = postings.span(col)
            if span is None:
                continue
            rows, values = postings.docs[span], postings.values[span]
            if not whole:
                keep = live[rows]
                rows, values = rows[keep], values[keep]
                if not rows.size:
                    continue
            yield segment, rows, rows + base, values

    def _bm25_clause(self, term: str, occurrences: int) -> tuple[np.ndarray, np.ndarray] | None:
        """SCORING.md §1: a term repeated in the query is one clause boosted by its count (Lucene's
        BooleanQuery rewrite sums duplicate SHOULD clauses' boosts)."""
        col = self.terms.get(term)
        if col is None:
            return None
        weight = self.idf[col] if occurrences == 1 else scoring.bm25_weight(self.idf[col], occurrences)
        return self._term_scores(col, weight)

    def _term_scores(self, col: int, weight: ArrayLike) -> tuple[np.ndarray, np.ndarray] | None:
        """(slots, scores) of one term column scored with the BM25 weight `weight` (boost · idf)."""
        parts = [(slots, scoring.bm25_term_score(weight, freqs, self.norm_inverse[segment.norms[rows]]))
                 for segment, rows, slots, freqs in self._postings(lambda _, s: s.freqs, col)]
        return _joined(parts)

    @property
    def vocabulary(self) -> FuzzyVocabulary:
        """The terms of this snapshot that have live documents (built on first use: only fuzzy queries need it)."""
        if self._vocabulary is None:
            width = self.doc_freq.size
            self._vocabulary = FuzzyVocabulary(
                (term, col) for term, col in list(self.terms.items()) if col < width and self.doc_freq[col] > 0)
        return self._vocabulary

    def _fuzzy_clause(self, term: str, occurrences: int, fuzzy: Fuzzy) -> tuple[np.ndarray, np.ndarray] | None:
        """Lucene's `FuzzyQuery` with `TopTermsBlendedFreqScoringRewrite`: every expansion is a term query boosted
        by its similarity (times the term's count in the query), all scored with the idf of the largest document
        frequency among them (`BlendedTermQuery`), and summed as SHOULD clauses into one clause per query term."""
        expanded = self.vocabulary.expand(term, fuzzy)
        if not expanded:
            return None
        idf = scoring.bm25_idf(max(int(self.doc_freq[col]) for col, _ in expanded), self.doc_count)
        parts = [clause for col, boost in expanded
                 if (clause := self._term_scores(col, scoring.bm25_weight(
                     idf, max(boost, np.float32(0)) * np.float32(occurrences)))) is not None]
        return _summed(parts)

    @property
    def ngrams(self) -> NgramField:
        """The `content.ngram` subfield of this snapshot (derived on first use); refused when the index has none."""
        if not self.spec.ngram:
            raise StoreError("[match] on content.ngram refused: the index has no n-gram subfield (created with "
                             "ngram 0); create it with NEURANK_NGRAM=3 to match n-grams")
        if self._ngrams is None:
            self._ngrams = NgramField(self.spec.ngram, self.terms, self.doc_freq.size, self.segments, self.live,
                                      self.spec.bm25_k1, self.spec.bm25_b)
        return self._ngrams

    def _ngram_clause(self, term: str, occurrences: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`SynonymQuery` of the term's grams on `content.ngram`: one BM25 score per document on the summed gram
        frequency, with the idf of the grams' largest document frequency (`ngrams.py`)."""
        field = self.ngrams
        found = field.query_grams(term)
        if found is None:
            return None
        cols, idf = found
        parts = [(slots, values) for col in cols
                 for _, _, slots, values in self._postings(lambda at, _: field.postings[at], col)]
        summed = _summed(parts)  # the frequencies of the term's grams, added per document
        if summed is None:
            return None
        slots, freqs = summed
        norms = np.concatenate(field.norms)[slots]
        return slots, scoring.bm25_term_score(scoring.bm25_weight(idf, occurrences), freqs, field.norm_inverse[norms])

    def text_clauses(self, query: TextQuery) -> list[tuple[np.ndarray, np.ndarray]]:
        """The SHOULD clauses of a text query: one per analyzed term; with `ngram`, the `match` on `content` and the
        one on `content.ngram` each summed into one clause, as the two clauses of a `bool.should`."""
        clauses = list(self.bm25_clauses(query.text, query.fuzzy).values())
        if not query.ngram:
            return clauses
        counts = Counter(self.analyzer.analyze(query.text))
        grams = [clause for term, count in counts.items() if (clause := self._ngram_clause(term, count)) is not None]
        return [summed for summed in (_summed(clauses), _summed(grams)) if summed is not None]

    def bm25_clauses(self, query: str, fuzzy: Fuzzy | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One SHOULD clause per distinct analyzed query term: the term's own, or its fuzzy expansion's."""
        clauses = {
            term: self._bm25_clause(term, count) if fuzzy is None else self._fuzzy_clause(term, count, fuzzy)
            for term, count in Counter(self.analyzer.analyze(query)).items()
        }
        return {term: clause for term, clause in clauses.items() if clause is not None}

    def sparse_clauses(
        self, name: str, query_tokens: Mapping[str, float]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """SCORING.md §3: `neural_sparse` = one linear FeatureQuery per token, weight unquantized."""
        vocab = self.features[name]
        clauses = []
        for token, weight in query_tokens.items():
            col = vocab.get(token)
            if col is None:
                continue
            clause = _joined([(slots, scoring.linear(values, weight))
                              for _, _, slots, values in self._postings(lambda _, s: s.features[name], col)])
            if clause is not None:
                clauses.append(clause)
        return clauses

    def top(self, clauses: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> ScoredIds:
        """Sum the SHOULD clauses per document and keep the k best."""
        summed = _summed(clauses)
        return [] if summed is None else self.best(*summed, k)

    def best(self, slots: np.ndarray, scores: np.ndarray, k: int) -> ScoredIds:
        """The k best (slot, score) pairs by score, ties in insertion order; `slots` must be ascending."""
        if k <= 0 or slots.size == 0:
            return []
        if slots.size > k:
            kth = scores[np.argpartition(scores, slots.size - k)[slots.size - k]]
            keep = scores >= kth
            slots, scores = slots[keep], scores[keep]
        order = np.lexsort((slots, -scores))[:k]
        return [(self._id(slot), score) for slot, score in zip(slots[order].tolist(), scores[order].tolist(),
                                                               strict=True)]

    def _id(self, slot: int) -> str:
        at = int(np.searchsorted(self.bases, slot, side="right")) - 1
        return self.segments[at].ids[slot - int(self.bases[at])]

    def _by_segment(self, slots: np.ndarray) -> Iterator[tuple[Segment, np.ndarray, np.ndarray]]:
        """Ascending `slots` grouped per segment: (segment, its rows, positions in `slots`)."""
        at = np.searchsorted(self.bases, slots, side="right") - 1
        for index in np.unique(at).tolist():
            positions = np.flatnonzero(at == index)
            yield self.segments[index], slots[positions] - self.bases[index], positions

    def search(self, query: SubQuery) -> ScoredIds:
        """One sub-query's k best hits."""
        if isinstance(query, TextQuery):
            return self.top(self.text_clauses(query), query.k)
        if isinstance(query, SparseQuery):
            return self.top(self.sparse_clauses(query.field, query.tokens), query.k)
        if isinstance(query, LateInteractionQuery):
            return self._late_interaction(query)
        return self._knn(query)

    def _late_interaction(self, query: LateInteractionQuery) -> ScoredIds:
        """SCORING.md §7: MaxSim of the candidates that have token vectors (decoded from their records only);
        unknown ids and documents without token vectors are left out, never scored 0."""
        dimension = self.spec.colbert_dimension
        if dimension is None:
            raise StoreError("[colbert] query refused: the index has no token vectors (created without a "
                             "late-interaction model)")
        if query.vectors.shape[1] != dimension:
            raise StoreError(f"[colbert] query vectors refused: dimension mismatch. Expected: {dimension}, "
                             f"Given: {query.vectors.shape[1]}")
        if not np.isfinite(query.vectors).all():
            raise StoreError("[colbert] query vectors refused: values cannot be NaN or infinite")
        slots = np.unique(np.fromiter((self.row_of.get(i, -1) for i in query.ids), np.int64, len(query.ids)))
        slots = slots[slots >= 0]
        found, records, sizes = [], [], []
        for segment, rows, positions in self._by_segment(slots):
            with_tokens = segment.token_offsets[rows + 1] > segment.token_offsets[rows]
            gathered, counts = gather_records(segment.token_offsets, segment.token_records, rows[with_tokens])
            found.append(slots[positions][with_tokens])
            records.append(gathered)
            sizes.append(counts)
        if not found or not sum(f.size for f in found):
            return []
        vectors = decode(np.concatenate(records), self.spec.token_compression, dimension)
        return self.best(np.concatenate(found), scoring.maxsim_packed(query.vectors, vectors, np.concatenate(sizes)),
                         query.k)

    def _vectors(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ascending `slots`: those with a vector, their vectors and squared norms."""
        found, vectors, norms = [], [], []
        for segment, rows, positions in self._by_segment(slots):
            at = segment.vector_of[rows]
            found.append(slots[positions][at >= 0])
            vectors.append(segment.vectors[at[at >= 0]])
            norms.append(segment.vector_norms[at[at >= 0]])
        if not found:
            return np.zeros(0, np.int64), np.zeros((0, self.spec.dense_dimension or 0), np.float32), np.zeros(0)
        return np.concatenate(found), np.vstack(vectors), np.concatenate(norms)

    def _knn(self, query: VectorQuery) -> ScoredIds:
        """SCORING.md §4: exact scores of every live vector (or of the HNSW graph's candidates, past the
        threshold), refused as the k-NN plugin refuses a query."""
        if self.spec.dense_dimension is None:
            raise StoreError("[knn] query refused: the index has no knn_vector field (created without a dense model)")
        if query.vector.shape[0] != self.spec.dense_dimension:
            raise StoreError(f"[knn] query vector refused: dimension mismatch. Expected: {self.spec.dense_dimension}, "
                             f"Given: {query.vector.shape[0]}")
        if not np.isfinite(query.vector).all():
            raise StoreError("[knn] query vector refused: values cannot be NaN or infinite")
        if self.spec.space_type == "cosinesimil" and not query.vector.any():
            raise StoreError("[knn] query vector refused: zero vector is not supported when space type is "
                             "[cosinesimil]")
        with_vectors = np.concatenate([
            (live & (segment.vector_of >= 0)) for segment, live in zip(self.segments, self.live, strict=True)
        ]) if self.segments else np.zeros(0, bool)
        slots = np.flatnonzero(with_vectors)
        if self.graph is not None and slots.size > self.spec.knn_approximate_threshold:
            found, vectors, norms = self._vectors(self._candidates(query, self.graph, slots))
            return self.best(found, scoring.knn_scores(vectors, query.vector, self.spec.space_type, norms), query.k)
        parts = []
        for segment, live, whole, base in zip(self.segments, self.live, self.whole, self.bases[:-1], strict=True):
            rows = np.flatnonzero(segment.vector_of >= 0)
            if whole and rows.size == len(segment):  # every row live and with a vector: score the matrix as it is
                vectors, norms = segment.vectors, segment.vector_norms
            else:
                rows = rows[live[rows]]
                vectors, norms = segment.vectors[segment.vector_of[rows]], segment.vector_norms[segment.vector_of[rows]]
            parts.append((rows + base, scoring.knn_scores(vectors, query.vector, self.spec.space_type, norms)))
        return self.best(*(_joined(parts) or (np.zeros(0, np.int64), np.zeros(0, np.float32))), query.k)

    def _candidates(self, query: VectorQuery, graph: HnswGraph, slots: np.ndarray) -> np.ndarray:
        """The graph's candidates among the live vectors `slots`, brought up to this snapshot first."""
        vector_seqs = self.seqs[slots]
        graph.update(vector_seqs, lambda start: self._vectors(slots[start:])[1])
        return np.sort(np.searchsorted(self.seqs, graph.search(query.vector, vector_seqs, query.k)))

    def explain_bm25(self, query: str, doc_id: str) -> dict[str, float]:
        """Analyzed query term → its BM25 contribution to `doc_id`."""
        slot = self.row_of.get(doc_id)
        if slot is None:
            return {}
        explained = {}
        for term, (slots, scores) in self.bm25_clauses(query).items():
            at = int(np.searchsorted(slots, slot))
            if at < slots.size and slots[at] == slot:
                explained[term] = float(scores[at])
        return explained


def _summed(clauses: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """SHOULD clauses summed into one (a boolean query's float32 score, used as a clause one level up)."""
    if not clauses:
        return None
    return scoring.should_sum(np.concatenate([d for d, _ in clauses]), np.concatenate([s for _, s in clauses]))


def _joined(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """One clause's (slots, scores) from its per-segment parts (in segment order, so slots stay ascending)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([slots for slots, _ in parts]), np.concatenate([scores for _, scores in parts])
