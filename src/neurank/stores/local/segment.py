"""Immutable segments of the local store's search index, as in Lucene: a write adds a small segment.

A segment holds a run of stored rows (ascending `seq`): their raw `content` term frequencies and token
counts, their decoded `rank_features` values, vectors and compressed token records. Nothing in it depends on
the rest of the index, so a new snapshot reuses every segment it shares with the previous one; rows replaced
or deleted since are masked by the snapshot (`live`), and the BM25 statistics that span segments are computed
by `memory.py` per snapshot. Segments merge, dropping masked rows, once the newest is at least half the size of
the one before it, so an index of n rows has at most about log2(n) segments and a row is merged about log2(n)
times in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from neurank.index_spec import SPARSE_FIELDS, IndexSpec
from neurank.stores import scoring
from neurank.stores.local.analyzed import Entries, read_features, read_terms
from neurank.stores.tokens import record_size

MERGE_RATIO = 2
"""Merge the two newest segments while the older is at most this many times the newer's live rows."""


@dataclass(frozen=True, slots=True)
class Postings:
    """One CSC matrix (rows × columns) read column by column: `values[indptr[c]:indptr[c + 1]]` of rows `docs`."""

    indptr: np.ndarray
    docs: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, n_rows: int, entries: Entries) -> Postings:
        """One CSC matrix of (row, column id, value) entries."""
        width = int(entries.cols.max()) + 1 if entries.cols.size else 0
        return cls.of(scipy.sparse.csc_matrix((entries.values, (entries.rows, entries.cols)), shape=(n_rows, width)))

    @classmethod
    def of(cls, matrix: scipy.sparse.csc_matrix) -> Postings:
        matrix.sum_duplicates()
        return cls(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int64), matrix.data.astype(np.float32))

    def matrix(self, n_rows: int, width: int) -> scipy.sparse.csc_matrix:
        """The CSC matrix, widened to `width` columns (a later segment may know more terms)."""
        indptr = np.concatenate([self.indptr, np.full(width + 1 - self.indptr.size, self.indptr[-1])])
        return scipy.sparse.csc_matrix((self.values, self.docs, indptr), shape=(n_rows, width))

    @property
    def width(self) -> int:
        return self.indptr.size - 1

    def span(self, col: int) -> slice | None:
        if col + 1 >= self.indptr.size or self.indptr[col] == self.indptr[col + 1]:
            return None
        return slice(int(self.indptr[col]), int(self.indptr[col + 1]))

    def doc_freq(self, width: int, dead: np.ndarray | None = None) -> np.ndarray:
        """Per column (padded to `width`), how many rows have it, the `dead` rows (a mask) left out."""
        counts = np.diff(self.indptr)
        if dead is not None and dead.any():
            counts = counts - np.bincount(np.repeat(np.arange(self.width), counts)[dead[self.docs]],
                                          minlength=self.width)
        return np.concatenate([counts, np.zeros(width - counts.size, counts.dtype)])


def gather_records(offsets: np.ndarray, records: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token records of `rows`, one row's after another, and how many each has."""
    starts, sizes = offsets[rows], offsets[rows + 1] - offsets[rows]
    # the record index of every row: start of its document + its position within the document
    within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return records[np.repeat(starts, sizes) + within], sizes


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of rows by ascending seq; row r's token records are `token_records[token_offsets[r]:…[r + 1]]`."""

    seqs: np.ndarray
    ids: list[str]
    lengths: np.ndarray
    norms: np.ndarray
    """The one-byte Lucene norm of each row's length (SCORING.md §1)."""
    freqs: Postings
    features: dict[str, Postings]
    vector_of: np.ndarray
    """Each row's position in `vectors`, -1 for a row without one."""
    vectors: np.ndarray
    vector_norms: np.ndarray
    token_offsets: np.ndarray
    token_records: np.ndarray

    def __len__(self) -> int:
        return self.seqs.size

    @classmethod
    def build(cls, spec: IndexSpec, rows: Sequence[tuple[int, str, int, bytes, bytes, bytes | None, bytes | None]],
              ) -> Segment:
        """A segment of freshly read rows: (seq, id, length, terms, features, embedding, tokens) as stored."""
        n = len(rows)
        seqs = np.fromiter((row[0] for row in rows), np.int64, n)
        lengths = np.fromiter((row[2] for row in rows), np.int64, n)
        freqs = Postings.build(n, read_terms([row[3] for row in rows]))
        features = {name: Postings.build(n, entries)
                    for name, entries in read_features([row[4] for row in rows]).items()}
        present = np.fromiter((row[5] is not None for row in rows), bool, n)
        vector_of = np.where(present, np.cumsum(present) - 1, -1)
        stacked = np.frombuffer(b"".join(row[5] for row in rows if row[5] is not None), np.float32).reshape(
            int(present.sum()), spec.dense_dimension or 0)
        size = record_size(spec.token_compression, spec.colbert_dimension) if spec.colbert_dimension else 1
        counts = np.fromiter((0 if row[6] is None else len(row[6]) // size for row in rows), np.int64, n)
        records = np.frombuffer(b"".join(row[6] for row in rows if row[6] is not None), np.uint8).reshape(-1, size)
        ids = [row[1] for row in rows]
        return cls(seqs, ids, lengths, scoring.int_to_byte4(lengths), freqs, features, vector_of, stacked,
                   scoring.squared_norms(stacked), np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)]), records)

    @classmethod
    def merge(cls, parts: Sequence[tuple[Segment, np.ndarray]]) -> Segment:
        """One segment of the rows of `parts` (segment, live mask) that are live, in the same order."""
        keeps = [np.flatnonzero(live) for _, live in parts]
        seqs = np.concatenate([s.seqs[keep] for (s, _), keep in zip(parts, keeps, strict=True)])
        ids = [s.ids[row] for (s, _), keep in zip(parts, keeps, strict=True) for row in keep.tolist()]
        lengths = np.concatenate([s.lengths[keep] for (s, _), keep in zip(parts, keeps, strict=True)])
        norms = np.concatenate([s.norms[keep] for (s, _), keep in zip(parts, keeps, strict=True)])

        def stacked(postings: Sequence[Postings]) -> Postings:
            width = max(p.width for p in postings)
            return Postings.of(scipy.sparse.vstack(
                [p.matrix(len(s), width)[keep] for p, (s, _), keep in zip(postings, parts, keeps, strict=True)],
                format="csc"))

        freqs = stacked([s.freqs for s, _ in parts])
        features = {name: stacked([s.features[name] for s, _ in parts]) for name in SPARSE_FIELDS}
        positions = [s.vector_of[keep] for (s, _), keep in zip(parts, keeps, strict=True)]
        vectors = np.vstack([s.vectors[p[p >= 0]] for (s, _), p in zip(parts, positions, strict=True)])
        present = np.concatenate(positions) >= 0
        vector_norms = np.concatenate([s.vector_norms[p[p >= 0]] for (s, _), p in zip(parts, positions, strict=True)])
        gathered = [gather_records(s.token_offsets, s.token_records, keep)
                    for (s, _), keep in zip(parts, keeps, strict=True)]
        counts = np.concatenate([sizes for _, sizes in gathered])
        return cls(seqs, ids, lengths, norms, freqs, features, np.where(present, np.cumsum(present) - 1, -1),
                   vectors, vector_norms, np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)]),
                   np.concatenate([records for records, _ in gathered]))


def live_mask(segment: Segment, current: np.ndarray) -> np.ndarray:
    """Which rows of `segment` are in a snapshot whose seqs are `current` (ascending)."""
    at = np.minimum(np.searchsorted(current, segment.seqs), max(current.size - 1, 0))
    return current[at] == segment.seqs if current.size else np.zeros(len(segment), bool)


def settle(segments: list[Segment], live: list[np.ndarray]) -> tuple[list[Segment], list[np.ndarray]]:
    """Drop segments with no live row; merge the two newest while the older is at most `MERGE_RATIO` times the
    newer (live rows), so that a write pays for a small segment and merges stay logarithmic."""
    kept = [(s, m) for s, m in zip(segments, live, strict=True) if m.any()]
    while len(kept) >= 2 and np.count_nonzero(kept[-2][1]) <= MERGE_RATIO * np.count_nonzero(kept[-1][1]):
        merged = Segment.merge(kept[-2:])
        kept[-2:] = [(merged, np.ones(len(merged), bool))]
    return [s for s, _ in kept], [m for _, m in kept]
