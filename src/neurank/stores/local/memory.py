"""The local store's search index for one snapshot: segments, masks, and the statistics that span them.

A `MemoryIndex` is the list of `Segment`s (`segment.py`) a snapshot's rows live in, with a mask per segment of
the rows the snapshot still holds, so a new snapshot after a write costs one small segment and the masks. BM25
statistics (N, df, avgdl) are exact over the live rows of all segments, and a term's score is computed from its
postings at query time (each row's norm-cache entry looked up once per snapshot), so scores equal one index
built in one go: SCORING.md exactly, through `neurank.stores.scoring`. Masked rows are scored with the others
and dropped from the sums, so a query pays one pass per term and segment. Rows are addressed by a slot (segment
base + row), ascending with `seq`, so ties keep insertion order. Late-interaction token vectors stay
compressed; a `LateInteractionQuery` decodes its candidates' records only. A fuzzy text query expands each
term over the snapshot's vocabulary (`fuzzy.py`) and scores the expansions as Lucene's blended rewrite does
(docs/FUZZY.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

from neurank.errors import StoreError
from neurank.index_spec import SPARSE_FIELDS, IndexSpec
from neurank.retrieval import Fuzzy, LateInteractionQuery, ScoredIds, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer
from neurank.stores.local.ann import HnswGraph, seq_bitmap
from neurank.stores.local.fuzzy import FuzzyVocabulary
from neurank.stores.local.manifest import SegmentFolder
from neurank.stores.local.ngrams import NgramField
from neurank.stores.local.segment import Postings, Segment
from neurank.stores.tokens import decode

Clauses = list[tuple[np.ndarray, np.ndarray]]
"""(slots, float32 scores) pairs: a query's clauses, or their parts per segment."""


@dataclass(slots=True)
class RowCache:
    """One index's segments as of its newest read row, and the term and feature vocabularies their ids refer to
    (loaded from the store's vocabulary as it grows)."""

    analyzer: Analyzer
    folder: SegmentFolder
    """Where the segments are persisted."""
    last_seq: int = 0
    segments: list[Segment] = field(default_factory=list)
    terms: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, int]] = field(default_factory=lambda: {name: {} for name in SPARSE_FIELDS})
    graph: HnswGraph | None = None
    """The index's HNSW graph, shared by its builds (it only grows; each search masks what its snapshot lacks)."""
    rows_read: int = 0
    """How many stored rows were parsed into segments (rows the segment files covered are not)."""
    live: list[np.ndarray] | None = None
    """Per segment, which rows the last snapshot held."""
    live_upto: int = 0
    """The seq up to which `live` is exact (every stored row up to it was visible to that snapshot)."""
    removed: int | None = None
    """The index's count of removed rows when `live` was last known exact: while it stays, no row went."""


class MemoryIndex:
    """Everything a search needs for one snapshot: its segments and their live masks; read-only afterwards."""

    def __init__(
        self, spec: IndexSpec, generation: int, segments: list[Segment], live: list[np.ndarray], cache: RowCache
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.segments = segments
        self.live = live
        self.whole = all(bool(mask.all()) for mask in live)
        """Whether the snapshot holds every row of its segments (no mask to apply)."""
        self.analyzer = cache.analyzer
        self.terms = cache.terms
        self.features = cache.features
        self.graph = cache.graph
        sizes = np.fromiter((len(s) for s in segments), np.int64, len(segments))
        self.bases = np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes)])
        self.base_list: list[int] = self.bases.tolist()
        self.seqs = np.concatenate([s.seqs for s in segments]) if segments else np.zeros(0, np.int64)
        """The seq of every slot (masked ones included), ascending."""
        self._row_of: dict[str, int] | None = None
        self._statistics()

    def _statistics(self) -> None:
        """SCORING.md §1: N and avgdl over live documents with tokens, df over live documents; dl through the
        one-byte norm."""
        width = max([len(self.terms), *(segment.freqs.width for segment in self.segments)])
        doc_count, total = 0, 0
        doc_freq = np.zeros(width, np.int64)
        for segment, live in zip(self.segments, self.live, strict=True):
            lengths = segment.lengths[live]
            doc_count += int(np.count_nonzero(lengths))
            total += int(lengths.sum())
            doc_freq += segment.doc_freq(width, live)
        self.doc_freq = doc_freq
        self.doc_count = max(doc_count, 1)
        self.idf = scoring.bm25_idf(doc_freq, self.doc_count)
        avgdl = scoring.bm25_avgdl(total, doc_count) if doc_count else np.float32(1)
        self.norm_inverse = scoring.bm25_norm_inverse(float(avgdl), self.spec.bm25_k1, self.spec.bm25_b)
        self.row_norm_inverse = [self.norm_inverse[segment.norms] for segment in self.segments]
        """Per segment, each row's norm-cache entry for this snapshot's avgdl."""

    @cached_property
    def live_slots(self) -> np.ndarray:
        """Per slot, whether the snapshot holds it."""
        return np.concatenate(self.live) if self.segments else np.zeros(0, bool)

    @property
    def row_of(self) -> dict[str, int]:
        """Live document id → slot (built on first use: only late interaction and explain need it)."""
        if self._row_of is None:
            slots = np.flatnonzero(self.live_slots)
            self._row_of = dict(zip(self.ids(slots), slots.tolist(), strict=True))
        return self._row_of

    def _postings(self, pick: Callable[[int, Segment], Postings], col: int
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Per segment, the entries of column `col` of the postings `pick(segment number, segment)`, masked rows
        included: (segment number, rows, values)."""
        for at, segment in enumerate(self.segments):
            postings = pick(at, segment)
            span = postings.span(col)
            if span is not None:
                yield at, postings.docs[span], postings.values[span]

    def _slots(self, at: int, rows: np.ndarray) -> np.ndarray:
        base = self.base_list[at]
        return rows + base if base else rows

    def _bm25_parts(self, term: str, occurrences: int) -> Clauses:
        """SCORING.md §1: one term's (slots, scores) per segment; a term repeated in the query is one clause
        boosted by its count (Lucene's BooleanQuery rewrite sums duplicate SHOULD clauses' boosts)."""
        col = self.terms.get(term)
        if col is None:
            return []
        weight = self.idf[col] if occurrences == 1 else scoring.bm25_weight(self.idf[col], occurrences)
        return self._term_parts(col, weight)

    def _term_parts(self, col: int, weight: ArrayLike) -> Clauses:
        """One term column's (slots, scores) per segment, scored with the BM25 weight `weight` (boost · idf)."""
        return [(self._slots(at, rows), scoring.bm25_term_score(weight, freqs, self.row_norm_inverse[at][rows]))
                for at, rows, freqs in self._postings(lambda _, s: s.freqs, col)]

    def _bm25(self, query: str, fuzzy: Fuzzy | None = None) -> dict[str, Clauses]:
        """Per distinct analyzed query term, its clause's parts: the term's own per segment, or its fuzzy
        expansion's summed into one."""
        parts = {term: self._bm25_parts(term, count) if fuzzy is None else self._fuzzy_parts(term, count, fuzzy)
                 for term, count in Counter(self.analyzer.analyze(query)).items()}
        return {term: clause for term, clause in parts.items() if clause}

    @cached_property
    def vocabulary(self) -> FuzzyVocabulary:
        """The terms of this snapshot that have live documents (built on first use: only fuzzy queries need it)."""
        width = self.doc_freq.size
        return FuzzyVocabulary(
            (term, col) for term, col in list(self.terms.items()) if col < width and self.doc_freq[col] > 0)

    def _fuzzy_parts(self, term: str, occurrences: int, fuzzy: Fuzzy) -> Clauses:
        """Lucene's `FuzzyQuery` with `TopTermsBlendedFreqScoringRewrite`: every expansion is a term query boosted
        by its similarity (times the term's count in the query), all scored with the idf of the largest document
        frequency among them (`BlendedTermQuery`), and summed as SHOULD clauses into one clause per query term."""
        expanded = self.vocabulary.expand(term, fuzzy)
        if not expanded:
            return []
        idf = scoring.bm25_idf(max(int(self.doc_freq[col]) for col, _ in expanded), self.doc_count)
        summed = self._summed([part for col, boost in expanded for part in self._term_parts(
            col, scoring.bm25_weight(idf, max(boost, np.float32(0)) * np.float32(occurrences)))])
        return [] if summed is None else [summed]

    @cached_property
    def ngrams(self) -> NgramField:
        """The `content.ngram` subfield of this snapshot (derived on first use); refused when the index has none."""
        if not self.spec.ngram:
            raise StoreError("[match] on content.ngram refused: the index has no n-gram subfield (created with "
                             "ngram 0); create it with NEURANK_NGRAM=3 to match n-grams")
        return NgramField(self.spec.ngram, self.terms, self.doc_freq.size, self.segments, self.live,
                          self.spec.bm25_k1, self.spec.bm25_b)

    def _ngram_clause(self, term: str, occurrences: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`SynonymQuery` of the term's grams on `content.ngram`: one BM25 score per document on the summed gram
        frequency, with the idf of the grams' largest document frequency (`ngrams.py`)."""
        field = self.ngrams
        found = field.query_grams(term)
        if found is None:
            return None
        cols, idf = found
        summed = self._summed([(self._slots(at, rows), values) for col in cols  # the grams' frequencies, per document
                          for at, rows, values in self._postings(lambda at, _: field.postings[at], col)])
        if summed is None:
            return None
        slots, freqs = summed
        return slots, scoring.bm25_term_score(scoring.bm25_weight(idf, occurrences), freqs,
                                              field.norm_inverse[field.norms[slots]])

    def text_clauses(self, query: TextQuery) -> Clauses:
        """The SHOULD clauses (or their parts per segment) of a text query: one per analyzed term; with `ngram`,
        the `match` on `content` and the one on `content.ngram` each summed into one clause, as the two clauses of
        a `bool.should`."""
        clauses = [part for parts in self._bm25(query.text, query.fuzzy).values() for part in parts]
        if not query.ngram:
            return clauses
        counts = Counter(self.analyzer.analyze(query.text))
        grams = [clause for term, count in counts.items() if (clause := self._ngram_clause(term, count)) is not None]
        return [summed for summed in (self._summed(clauses), self._summed(grams)) if summed is not None]

    def _sparse(self, name: str, query_tokens: Mapping[str, float]) -> Clauses:
        """SCORING.md §3: `neural_sparse` = one linear FeatureQuery per token, weight unquantized; (slots, scores)
        per token and segment."""
        vocab = self.features[name]
        return [(self._slots(at, rows), scoring.linear(values, weight))
                for token, weight in query_tokens.items() if (col := vocab.get(token)) is not None
                for at, rows, values in self._postings(lambda _, s: s.features[name], col)]

    def _summed(self, clauses: Clauses) -> tuple[np.ndarray, np.ndarray] | None:
        """SHOULD clauses summed into one (a boolean query's float32 score, used as a clause one level up)."""
        if not clauses:
            return None
        return scoring.should_sum(np.concatenate([d for d, _ in clauses]), np.concatenate([s for _, s in clauses]),
                                  self.base_list[-1])

    def top(self, clauses: Clauses, k: int) -> ScoredIds:
        """Sum the SHOULD clauses (or their parts per segment, in clause order) per document and keep the k best
        live ones."""
        summed = self._summed(clauses)
        if summed is None:
            return []
        docs, scores = summed
        if not self.whole:
            keep = self.live_slots[docs]
            docs, scores = docs[keep], scores[keep]
        return self.best(docs, scores, k)

    def best(self, slots: np.ndarray, scores: np.ndarray, k: int) -> ScoredIds:
        """The k best (slot, score) pairs by score, ties in insertion order; `slots` must be ascending."""
        if k <= 0 or slots.size == 0:
            return []
        if slots.size > k:
            kth = scores[np.argpartition(scores, slots.size - k)[slots.size - k]]
            keep = scores >= kth
            slots, scores = slots[keep], scores[keep]
        order = np.lexsort((slots, -scores))[:k]
        return list(zip(self.ids(slots[order]), scores[order].tolist(), strict=True))

    def ids(self, slots: np.ndarray) -> list[str]:
        """The document ids of `slots`, in their order."""
        out: list[str] = [""] * slots.size
        for segment, rows, positions in self._by_segment(slots):
            for position, text in zip(positions.tolist(), segment.ids.texts(rows), strict=True):
                out[position] = text
        return out

    def _by_segment(self, slots: np.ndarray) -> Iterator[tuple[Segment, np.ndarray, np.ndarray]]:
        """`slots` grouped per segment: (segment, its rows, positions in `slots`)."""
        at = np.searchsorted(self.bases, slots, side="right") - 1
        for index in np.unique(at).tolist():
            positions = np.flatnonzero(at == index)
            yield self.segments[index], slots[positions] - self.bases[index], positions

    def search(self, query: SubQuery) -> ScoredIds:
        """One sub-query's k best hits."""
        if isinstance(query, TextQuery):
            return self.top(self.text_clauses(query), query.k)
        if isinstance(query, SparseQuery):
            return self.top(self._sparse(query.field, query.tokens), query.k)
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
            with_tokens = segment.tokens.sizes(rows) > 0
            gathered, counts = segment.tokens.gather(rows[with_tokens])
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
        slots = self.vector_slots
        if self.graph is not None and slots.size > self.spec.knn_approximate_threshold:
            found, vectors, norms = self._vectors(self._candidates(query, self.graph))
            return self.best(found, scoring.knn_scores(vectors, query.vector, self.spec.space_type, norms), query.k)
        parts = [(rows + base, scoring.knn_scores(segment.vectors, query.vector, self.spec.space_type,
                                                  segment.vector_norms))
                 for segment, rows, base in zip(self.segments, self.vector_rows, self.bases.tolist(), strict=False)]
        found, scores = _joined(parts)
        if not self.whole:
            keep = self.live_slots[found]
            found, scores = found[keep], scores[keep]
        return self.best(found, scores, query.k)

    @cached_property
    def vector_rows(self) -> list[np.ndarray]:
        """Per segment, the rows that have a vector (masked ones included), in the order of its vector matrix."""
        return [np.flatnonzero(segment.vector_of >= 0) for segment in self.segments]

    @cached_property
    def vector_slots(self) -> np.ndarray:
        """The live slots that have a vector."""
        return np.flatnonzero(self.live_slots & np.concatenate([s.vector_of >= 0 for s in self.segments])
                              if self.segments else self.live_slots)

    @cached_property
    def _graph_filter(self) -> tuple[np.ndarray, np.ndarray]:
        """The seqs of the live vectors, and their bitmap for the graph's search (once per snapshot)."""
        seqs = self.seqs[self.vector_slots]
        return seqs, seq_bitmap(seqs)

    def _candidates(self, query: VectorQuery, graph: HnswGraph) -> np.ndarray:
        """The graph's candidates among the live vectors, brought up to this snapshot first."""
        slots = self.vector_slots
        vector_seqs, bits = self._graph_filter
        graph.update(vector_seqs, lambda start: self._vectors(slots[start:])[1])
        return np.sort(np.searchsorted(self.seqs, graph.search(query.vector, bits, query.k)))

    def document_frequencies(self, terms: Collection[str]) -> dict[str, int]:
        width = self.doc_freq.size
        return {term: int(self.doc_freq[col]) if (col := self.terms.get(term)) is not None and col < width else 0
                for term in terms}

    def explain_bm25(self, query: str, doc_id: str) -> dict[str, float]:
        """Analyzed query term → its BM25 contribution to `doc_id`."""
        slot = self.row_of.get(doc_id)
        if slot is None:
            return {}
        explained = {}
        for term, parts in self._bm25(query).items():
            slots, scores = _joined(parts)
            at = int(np.searchsorted(slots, slot))
            if at < slots.size and slots[at] == slot:
                explained[term] = float(scores[at])
        return explained


def _joined(parts: Clauses) -> tuple[np.ndarray, np.ndarray]:
    """One clause's (slots, scores) from its per-segment parts (in segment order, so slots stay ascending)."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([slots for slots, _ in parts]), np.concatenate([scores for _, scores in parts])
