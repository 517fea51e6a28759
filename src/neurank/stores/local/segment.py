"""Immutable segments of the local store's search index, as in Lucene: a write adds a small segment.

A segment holds a run of stored rows (ascending `seq`): their raw `content` term frequencies and token
counts, their decoded `rank_features` values, vectors and compressed token records. Nothing in it depends on
the rest of the index, so a new snapshot reuses every segment it shares with the previous one; rows replaced
or deleted since are masked by the snapshot (`live`), and the BM25 statistics that span segments are computed
by `memory.py` per snapshot. Segments merge, dropping masked rows, once the newest is at least half the size of
the one before it, so an index of n rows has at most about log2(n) segments and a row is merged about log2(n)
times in all. Every array is plain numpy (ids included), so that a segment can live in a memory-mapped file
(`persist.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse

from neurank.index_spec import SPARSE_FIELDS, IndexSpec
from neurank.stores import scoring
from neurank.stores.local.analyzed import Entries, read_features, read_terms
from neurank.stores.tokens import record_size

MERGE_RATIO = 2
"""Merge the two newest segments while the older is at most this many times the newer's live rows."""
MAX_SEGMENTS = 4
"""More segments than this in a snapshot and the newest (smallest) are merged into one, as Lucene's
TieredMergePolicy bounds segments per tier: each segment costs a pass per query term."""


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
        return cls(matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32), matrix.data.astype(np.float32))

    def matrix(self, n_rows: int, width: int) -> scipy.sparse.csc_matrix:
        """The CSC matrix, widened to `width` columns (a later segment may know more terms)."""
        indptr = np.concatenate([self.indptr, np.full(width + 1 - self.indptr.size, self.indptr[-1])])
        return scipy.sparse.csc_matrix((self.values, self.docs, indptr), shape=(n_rows, width))

    @property
    def width(self) -> int:
        return self.indptr.size - 1

    def span(self, col: int) -> slice | None:
        if col + 1 >= self.indptr.size:
            return None
        start, end = self.indptr[col : col + 2].tolist()
        return slice(start, end) if end > start else None

    def doc_freq(self, dead: np.ndarray | None = None) -> np.ndarray:
        """Per column, how many rows have it, the `dead` rows (a mask) left out."""
        counts = np.diff(self.indptr)
        if dead is not None and dead.any():  # the column of each dead entry, found by its position
            entries = np.flatnonzero(dead[self.docs])
            counts = counts - np.bincount(np.searchsorted(self.indptr, entries, side="right") - 1,
                                          minlength=self.width)
        return counts


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes, dtype=np.int64)])


@dataclass(frozen=True)
class Packed:
    """Runs of items per row, end to end: row r's are `items[offsets[r]:offsets[r + 1]]` (a row's token records,
    or the UTF-8 bytes of its id)."""

    offsets: np.ndarray
    items: np.ndarray

    @classmethod
    def of(cls, sizes: np.ndarray, items: np.ndarray) -> Packed:
        return cls(_offsets(sizes), items)

    @classmethod
    def of_texts(cls, texts: Sequence[str]) -> Packed:
        encoded = [text.encode("utf-8") for text in texts]
        return cls.of(np.fromiter(map(len, encoded), np.int64, len(encoded)),
                      np.frombuffer(b"".join(encoded), np.uint8))

    @classmethod
    def joined(cls, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> Packed:
        """One run list of several `gather` results, in order."""
        return cls.of(np.concatenate([sizes for _, sizes in parts]), np.concatenate([items for items, _ in parts]))

    def sizes(self, rows: np.ndarray) -> np.ndarray:
        return self.offsets[rows + 1] - self.offsets[rows]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The items of `rows`, one row's after another, and how many each has."""
        starts, sizes = self.offsets[rows], self.sizes(rows)
        # the item index of every row: start of its run + its position within the run
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self.items[np.repeat(starts, sizes) + within], sizes

    @cached_property
    def _bytes(self) -> bytes:
        """The items as one bytes object (ids: a few bytes a row), which slices and decodes fastest."""
        return self.items.tobytes()

    def texts(self, rows: np.ndarray) -> list[str]:
        """The UTF-8 runs of `rows` as str."""
        data = self._bytes
        return [data[start:end].decode("utf-8")
                for start, end in zip(self.offsets[rows].tolist(), self.offsets[rows + 1].tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of rows by ascending seq, covering the stored rows with seqs up to `upto` not in an older segment."""

    seqs: np.ndarray
    ids: Packed
    lengths: np.ndarray
    norms: np.ndarray
    """The one-byte Lucene norm of each row's length (SCORING.md §1)."""
    freqs: Postings
    features: dict[str, Postings]
    vector_of: np.ndarray
    """Each row's position in `vectors`, -1 for a row without one."""
    vectors: np.ndarray
    vector_norms: np.ndarray
    tokens: Packed
    upto: int
    file: str | None = None
    """The file the arrays are mapped from (`persist.py`), None while the segment lives in memory only."""
    doc_freqs: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    """`freqs.doc_freq` without the masked rows, under their number (masks only grow, so it names the mask)."""

    def __len__(self) -> int:
        return self.seqs.size

    def doc_freq(self, width: int, live: np.ndarray) -> np.ndarray:
        """`content` document frequencies of the live rows, padded to `width`; computed once per mask."""
        dead = len(self) - int(np.count_nonzero(live))
        counts = self.doc_freqs.get(dead)
        if counts is None:
            self.doc_freqs.clear()
            counts = self.doc_freqs[dead] = self.freqs.doc_freq(~live if dead else None)
        return np.concatenate([counts, np.zeros(width - counts.size, counts.dtype)])

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
        stacked = np.frombuffer(b"".join(row[5] for row in rows if row[5] is not None), np.float32).reshape(
            int(present.sum()), spec.dense_dimension or 0)
        size = record_size(spec.token_compression, spec.colbert_dimension) if spec.colbert_dimension else 1
        counts = np.fromiter((0 if row[6] is None else len(row[6]) // size for row in rows), np.int64, n)
        records = np.frombuffer(b"".join(row[6] for row in rows if row[6] is not None), np.uint8).reshape(-1, size)
        return cls(seqs, Packed.of_texts([row[1] for row in rows]), lengths, scoring.int_to_byte4(lengths), freqs,
                   features, _positions(present), stacked, scoring.squared_norms(stacked), Packed.of(counts, records),
                   int(seqs[-1]) if n else 0)

    @classmethod
    def merge(cls, parts: Sequence[tuple[Segment, np.ndarray]]) -> Segment:
        """One segment of the rows of `parts` (segment, live mask) that are live, in the same order."""
        keeps = [(s, np.flatnonzero(live)) for s, live in parts]
        seqs = np.concatenate([s.seqs[keep] for s, keep in keeps])
        lengths = np.concatenate([s.lengths[keep] for s, keep in keeps])
        norms = np.concatenate([s.norms[keep] for s, keep in keeps])

        def stacked(postings: Sequence[Postings]) -> Postings:
            width = max(p.width for p in postings)
            return Postings.of(scipy.sparse.vstack(
                [p.matrix(len(s), width)[keep] for p, (s, keep) in zip(postings, keeps, strict=True)], format="csc"))

        freqs = stacked([s.freqs for s, _ in keeps])
        features = {name: stacked([s.features[name] for s, _ in keeps]) for name in SPARSE_FIELDS}
        positions = [s.vector_of[keep] for s, keep in keeps]
        vectors = np.vstack([s.vectors[p[p >= 0]] for (s, _), p in zip(keeps, positions, strict=True)])
        vector_norms = np.concatenate([s.vector_norms[p[p >= 0]] for (s, _), p in zip(keeps, positions, strict=True)])
        return cls(seqs, Packed.joined([s.ids.gather(keep) for s, keep in keeps]), lengths, norms, freqs, features,
                   _positions(np.concatenate(positions) >= 0), vectors, vector_norms,
                   Packed.joined([s.tokens.gather(keep) for s, keep in keeps]), max(s.upto for s, _ in keeps))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by a stable name, as `persist.py` writes them."""
        out = {"seqs": self.seqs, "ids.offsets": self.ids.offsets, "ids.items": self.ids.items,
               "lengths": self.lengths, "norms": self.norms, "vector_of": self.vector_of, "vectors": self.vectors,
               "vector_norms": self.vector_norms, "tokens.offsets": self.tokens.offsets,
               "tokens.items": self.tokens.items}
        for name, postings in (("freqs", self.freqs), *self.features.items()):
            out.update({f"{name}.indptr": postings.indptr, f"{name}.docs": postings.docs,
                        f"{name}.values": postings.values})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], upto: int, file: str) -> Segment:
        """The segment `arrays` names (KeyError for a missing array, ValueError for arrays of unequal rows)."""
        rows = arrays["seqs"].shape[0]
        if {arrays[name].shape[0] for name in ("lengths", "norms", "vector_of")} != {rows} \
                or arrays["ids.offsets"].shape[0] != rows + 1 or arrays["tokens.offsets"].shape[0] != rows + 1:
            raise ValueError(f"arrays of unequal rows ({rows} seqs)")

        def postings(name: str) -> Postings:
            return Postings(arrays[f"{name}.indptr"], arrays[f"{name}.docs"], arrays[f"{name}.values"])

        return cls(arrays["seqs"], Packed(arrays["ids.offsets"], arrays["ids.items"]), arrays["lengths"],
                   arrays["norms"], postings("freqs"), {name: postings(name) for name in SPARSE_FIELDS},
                   arrays["vector_of"], arrays["vectors"], arrays["vector_norms"],
                   Packed(arrays["tokens.offsets"], arrays["tokens.items"]), upto, file)


def _positions(present: np.ndarray) -> np.ndarray:
    """Each row's position among the rows that have a vector, -1 for the others."""
    return np.where(present, np.cumsum(present) - 1, -1)


def live_mask(segment: Segment, current: np.ndarray) -> np.ndarray:
    """Which rows of `segment` are in a snapshot whose seqs are `current` (ascending)."""
    at = np.minimum(np.searchsorted(current, segment.seqs), max(current.size - 1, 0))
    return current[at] == segment.seqs if current.size else np.zeros(len(segment), bool)


def settle(segments: list[Segment], live: list[np.ndarray]) -> tuple[list[Segment], list[np.ndarray]]:
    """Drop segments with no live row; merge the two newest while the older is at most `MERGE_RATIO` times the
    newer (live rows), so that a write pays for a small segment and merges stay logarithmic; past
    `MAX_SEGMENTS`, merge the newest ones into one (they hold the fewest rows)."""
    kept = [(s, m) for s, m in zip(segments, live, strict=True) if m.any()]
    while True:
        if len(kept) >= 2 and np.count_nonzero(kept[-2][1]) <= MERGE_RATIO * np.count_nonzero(kept[-1][1]):
            kept[-2:] = [_merged(kept[-2:])]
        elif len(kept) > MAX_SEGMENTS:
            kept[MAX_SEGMENTS - 1 :] = [_merged(kept[MAX_SEGMENTS - 1 :])]
        else:
            return [s for s, _ in kept], [m for _, m in kept]


def _merged(parts: Sequence[tuple[Segment, np.ndarray]]) -> tuple[Segment, np.ndarray]:
    merged = Segment.merge(parts)
    return merged, np.ones(len(merged), bool)
