"""The local store's in-memory search index: postings and vectors built from one snapshot, scored as OpenSearch.

The bm25s pattern: one CSC matrix of precomputed BM25 contributions for `content`, one of decoded
`rank_features` weights per sparse field, one float32 matrix of embeddings. Rows are parsed once and kept in a
`RowCache` between builds (stored rows are replaced, never updated in place), so a rebuild after a write
reads only the new rows, whose analysis was done when they were written (`analyzed.py`). Late-interaction
token vectors stay compressed in one (rows × record size) matrix with per-document offsets; a
`LateInteractionQuery` decodes and scores its candidates' rows only. Scores follow SCORING.md exactly through
`neurank.stores.scoring`; ties keep insertion order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

from neurank.errors import StoreError
from neurank.index_spec import SPARSE_FIELDS, IndexSpec
from neurank.retrieval import LateInteractionQuery, ScoredIds, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer
from neurank.stores.local.analyzed import Analyzed
from neurank.stores.local.ann import HnswGraph
from neurank.stores.tokens import decode, record_size


@dataclass(slots=True)
class ParsedRow:
    """What one stored row contributes to a searcher, kept between rebuilds (rows are never updated)."""

    analyzed: Analyzed
    embedding: np.ndarray | None
    tokens: np.ndarray | None
    """The compressed token-vector records as stored, flat uint8 (the index's spec gives their size)."""

    @classmethod
    def read(
        cls, length: int, terms: bytes, features: bytes, embedding: bytes | None, tokens: bytes | None
    ) -> ParsedRow:
        """A row as `store.py` reads it: the analysis done at write time, the vector and records as stored."""
        vector = None if embedding is None else np.frombuffer(embedding, dtype=np.float32)
        records = None if tokens is None else np.frombuffer(tokens, dtype=np.uint8)
        return cls(Analyzed.from_columns(length, terms, features), vector, records)


@dataclass(slots=True)
class RowCache:
    """Parsed rows of one index by `seq`, with the term and feature vocabularies their ids refer to (loaded
    from the store's vocabulary as it grows)."""

    analyzer: Analyzer
    last_seq: int = 0
    rows: dict[int, ParsedRow] = field(default_factory=dict)
    terms: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, int]] = field(default_factory=lambda: {name: {} for name in SPARSE_FIELDS})
    graph: HnswGraph | None = None
    """The index's HNSW graph, shared by its builds (it only grows; each search masks what its snapshot lacks)."""


@dataclass(frozen=True, slots=True)
class Postings:
    """One CSC matrix (documents × terms) read column by column: `values` are the per-document scores."""

    vocab: Mapping[str, int]
    indptr: np.ndarray
    docs: np.ndarray
    values: np.ndarray

    @classmethod
    def build(
        cls, vocab: Mapping[str, int], n_docs: int, rows: Sequence[tuple[int, np.ndarray, np.ndarray]]
    ) -> Postings:
        """Stack each document's (row, column ids, values) into one CSC matrix."""
        docs = np.repeat([row for row, _, _ in rows], [cols.size for _, cols, _ in rows]).astype(np.int64)
        cols = np.concatenate([cols for _, cols, _ in rows]) if rows else np.zeros(0, np.int64)
        values = np.concatenate([values for _, _, values in rows]) if rows else np.zeros(0, np.float32)
        matrix = scipy.sparse.csc_matrix((values, (docs, cols)), shape=(n_docs, len(vocab)))
        matrix.sum_duplicates()
        return cls(vocab, matrix.indptr, matrix.indices, matrix.data)

    def column(self, term: str) -> slice | None:
        col = self.vocab.get(term)
        if col is None or col + 1 >= len(self.indptr) or self.indptr[col] == self.indptr[col + 1]:
            return None
        return slice(self.indptr[col], self.indptr[col + 1])


class MemoryIndex:
    """Everything a search needs, built once per generation from one snapshot; read-only afterwards."""

    def __init__(
        self, spec: IndexSpec, generation: int, rows: Sequence[tuple[int, str]], parsed: list[ParsedRow],
        cache: RowCache,
    ) -> None:
        """`rows`: (seq, id) of each document in the snapshot, by ascending seq; `parsed`: their parsed rows."""
        self.spec = spec
        self.generation = generation
        self.seqs = np.fromiter((seq for seq, _ in rows), np.int64, len(rows))
        self.ids = [doc_id for _, doc_id in rows]
        ids = self.ids
        self.row_of = {doc_id: row for row, doc_id in enumerate(ids)}
        self.analyzer = cache.analyzer
        self.graph = cache.graph
        self._build_content(parsed, cache.terms)
        self.features = {
            name: self._build_features(parsed, name, cache.features[name]) for name in SPARSE_FIELDS
        }
        self._build_vectors(parsed)
        self._build_tokens(parsed)

    def _build_content(self, parsed: list[ParsedRow], vocab: Mapping[str, int]) -> None:
        """SCORING.md §1: N and avgdl over documents with tokens; dl through the one-byte norm."""
        lengths = np.fromiter((p.analyzed.length for p in parsed), np.int64, len(parsed))
        self.freqs = Postings.build(
            vocab, len(parsed), [(row, p.analyzed.terms, p.analyzed.freqs) for row, p in enumerate(parsed)]
        )
        doc_count = int(np.count_nonzero(lengths))
        doc_freq = np.diff(self.freqs.indptr)
        self.idf = scoring.bm25_idf(doc_freq, max(doc_count, 1))
        avgdl = scoring.bm25_avgdl(int(lengths.sum()), doc_count) if doc_count else np.float32(1)
        cache = scoring.bm25_norm_inverse(float(avgdl), self.spec.bm25_k1, self.spec.bm25_b)
        self.norm_inverse = cache[scoring.int_to_byte4(lengths)]
        term_of_entry = np.repeat(np.arange(doc_freq.size), doc_freq)
        contributions = scoring.bm25_term_score(
            self.idf[term_of_entry], self.freqs.values, self.norm_inverse[self.freqs.docs]
        )
        self.content = Postings(vocab, self.freqs.indptr, self.freqs.docs, contributions)

    @staticmethod
    def _build_features(parsed: list[ParsedRow], name: str, vocab: Mapping[str, int]) -> Postings:
        """SCORING.md §2: the decoded (quantized) feature values S of one rank_features field."""
        rows = [(row, *p.analyzed.sparse[name]) for row, p in enumerate(parsed) if name in p.analyzed.sparse]
        return Postings.build(vocab, len(parsed), rows)

    def _build_vectors(self, parsed: list[ParsedRow]) -> None:
        rows = [row for row, p in enumerate(parsed) if p.embedding is not None]
        self.vector_rows = np.array(rows, dtype=np.int64)
        dimension = self.spec.dense_dimension or 0
        self.vectors = (
            np.vstack([vector for row in rows if (vector := parsed[row].embedding) is not None])
            if rows
            else np.zeros((0, dimension), np.float32)
        )
        self.vector_norms = scoring.squared_norms(self.vectors)

    def _build_tokens(self, parsed: list[ParsedRow]) -> None:
        """SCORING.md §7: every document's token records in one matrix; rows offsets[d]:offsets[d + 1] are d's."""
        dimension = self.spec.colbert_dimension or 0
        size = record_size(self.spec.token_compression, dimension) if dimension else 1
        present = [p.tokens for p in parsed if p.tokens is not None]
        counts = np.fromiter((0 if p.tokens is None else p.tokens.size // size for p in parsed), np.int64, len(parsed))
        self.token_offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
        flat = np.concatenate(present) if present else np.zeros(0, np.uint8)
        self.token_records = flat.reshape(-1, size)
        # The cached rows now point into this matrix instead of their own BLOBs, so that the records are held
        # once between builds (an older index keeps its own matrix for as long as a search uses it).
        for p, start, end in zip(parsed, self.token_offsets[:-1] * size, self.token_offsets[1:] * size, strict=True):
            if p.tokens is not None:
                p.tokens = flat[start:end]

    def _bm25_clause(self, term: str, occurrences: int) -> tuple[np.ndarray, np.ndarray] | None:
        """SCORING.md §1: a term repeated in the query is one clause boosted by its count (Lucene's
        BooleanQuery rewrite sums duplicate SHOULD clauses' boosts)."""
        span = self.content.column(term)
        if span is None:
            return None
        docs = self.content.docs[span]
        if occurrences == 1:
            return docs, self.content.values[span]
        weight = scoring.bm25_weight(self.idf[self.content.vocab[term]], occurrences)
        return docs, scoring.bm25_term_score(weight, self.freqs.values[span], self.norm_inverse[docs])

    def bm25_clauses(self, query: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        clauses = {
            term: self._bm25_clause(term, count)
            for term, count in Counter(self.analyzer.analyze(query)).items()
        }
        return {term: clause for term, clause in clauses.items() if clause is not None}

    def sparse_clauses(
        self, name: str, query_tokens: Mapping[str, float]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """SCORING.md §3: `neural_sparse` = one linear FeatureQuery per token, weight unquantized."""
        postings = self.features[name]
        clauses = []
        for token, weight in query_tokens.items():
            span = postings.column(token)
            if span is not None:
                clauses.append((postings.docs[span], scoring.linear(postings.values[span], weight)))
        return clauses

    def top(self, clauses: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> ScoredIds:
        """Sum the SHOULD clauses per document and keep the k best."""
        if not clauses:
            return []
        docs, scores = scoring.should_sum(
            np.concatenate([d for d, _ in clauses]), np.concatenate([s for _, s in clauses])
        )
        return self.best(docs, scores, k)

    def best(self, rows: np.ndarray, scores: np.ndarray, k: int) -> ScoredIds:
        """The k best (row, score) pairs by score, ties in insertion order; `rows` must be ascending."""
        if k <= 0 or rows.size == 0:
            return []
        if rows.size > k:
            kth = scores[np.argpartition(scores, rows.size - k)[rows.size - k]]
            keep = scores >= kth
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:k]
        return [
            (self.ids[row], score)
            for row, score in zip(rows[order].tolist(), scores[order].tolist(), strict=True)
        ]

    def search(self, query: SubQuery) -> ScoredIds:
        """One sub-query's k best hits."""
        if isinstance(query, TextQuery):
            return self.top(list(self.bm25_clauses(query.text).values()), query.k)
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
        rows = np.unique(np.fromiter((self.row_of.get(i, -1) for i in query.ids), np.int64, len(query.ids)))
        rows = rows[rows >= 0]
        rows = rows[self.token_offsets[rows + 1] > self.token_offsets[rows]]
        if not rows.size:
            return []
        starts, sizes = self.token_offsets[rows], self.token_offsets[rows + 1] - self.token_offsets[rows]
        # the record index of every candidate row: start of its document + its position within the document
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        records = self.token_records[np.repeat(starts, sizes) + within]
        vectors = decode(records, self.spec.token_compression, dimension)
        return self.best(rows, scoring.maxsim_packed(query.vectors, vectors, sizes), query.k)

    def _knn(self, query: VectorQuery) -> ScoredIds:
        """SCORING.md §4: exact scores over every stored vector, refused as the k-NN plugin refuses a query."""
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
        if self.graph is not None and self.vector_rows.size > self.spec.knn_approximate_threshold:
            return self._approximate_knn(query, self.graph)
        scores = scoring.knn_scores(self.vectors, query.vector, self.spec.space_type, self.vector_norms)
        return self.best(self.vector_rows, scores, query.k)

    def _approximate_knn(self, query: VectorQuery, graph: HnswGraph) -> ScoredIds:
        """The graph's candidates among this snapshot's vectors, each scored exactly (SCORING.md §4)."""
        vector_seqs = self.seqs[self.vector_rows]
        graph.update(vector_seqs, self.vectors)
        found = np.sort(np.searchsorted(vector_seqs, graph.search(query.vector, vector_seqs, query.k)))
        scores = scoring.knn_scores(self.vectors[found], query.vector, self.spec.space_type, self.vector_norms[found])
        return self.best(self.vector_rows[found], scores, query.k)

    def explain_bm25(self, query: str, doc_id: str) -> dict[str, float]:
        """Analyzed query term → its BM25 contribution to `doc_id`."""
        row = self.row_of.get(doc_id)
        if row is None:
            return {}
        explained = {}
        for term, (docs, scores) in self.bm25_clauses(query).items():
            at = int(np.searchsorted(docs, row))
            if at < docs.size and docs[at] == row:
                explained[term] = float(scores[at])
        return explained
