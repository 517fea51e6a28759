"""What a document contributes to search, computed once when it is written, and how a row keeps it.

Opening a store never re-runs the analyzer over the corpus: each row keeps its analyzed `content` terms as ids
into the index's vocabulary with their frequencies and its token count, and each `rank_features` field's
feature ids with their decoded (quantized, SCORING.md §2) values. The vocabulary (table `vocab`) gives ids per
(index, field) in order of first use; an id is never reused while the index lives, so a reader loads only the
terms added since it last looked. Which analyzer made the terms is recorded with the index: a store analyzed by
another analyzer version is refused, as a changed analyzer needs a new index on a cluster.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neurank.index_spec import SPARSE_FIELDS
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer

CONTENT = "content"
"""The vocabulary field of the analyzed text (the sparse fields use their own names)."""
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Analyzed:
    """One document's search contribution: `content` term ids and frequencies, token count, and per sparse
    field (feature ids, decoded values)."""

    terms: np.ndarray
    freqs: np.ndarray
    length: int
    sparse: Mapping[str, tuple[np.ndarray, np.ndarray]]

    def columns(self) -> tuple[int, bytes, bytes]:
        """(length, terms, features) as stored: int32 ids then int32 frequencies; int32 counts per sparse field,
        int32 ids, then the float32 values."""
        empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
        parts = [self.sparse.get(name, empty) for name in SPARSE_FIELDS]
        counts = np.array([ids.size for ids, _ in parts], np.int32)
        ids = np.concatenate([ids.astype(np.int32) for ids, _ in parts])
        values = np.concatenate([values.astype(np.float32) for _, values in parts])
        terms = np.concatenate([self.terms.astype(np.int32), self.freqs.astype(np.int32)])
        return self.length, terms.tobytes(), counts.tobytes() + ids.tobytes() + values.tobytes()


@dataclass(frozen=True, slots=True)
class Entries:
    """Many rows' (row, column id, value) entries, as `Analyzed.columns` stored them, parsed in one pass."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray


def read_terms(blobs: Sequence[bytes]) -> Entries:
    """The `terms` column of many rows: each row's term ids, then as many frequencies."""
    flat = np.frombuffer(b"".join(blobs), np.int32)
    sizes = np.fromiter((len(blob) // 8 for blob in blobs), np.int64, len(blobs))
    row = np.repeat(np.arange(sizes.size), 2 * sizes)
    within = np.arange(flat.size) - np.repeat(np.cumsum(2 * sizes) - 2 * sizes, 2 * sizes)
    is_freq = within >= sizes[row]
    return Entries(row[~is_freq], flat[~is_freq].astype(np.int64), flat[is_freq].astype(np.float32))


def read_features(blobs: Sequence[bytes]) -> dict[str, Entries]:
    """The `features` column of many rows: per row the count of each sparse field, the ids, then the values."""
    fields = len(SPARSE_FIELDS)
    flat = np.frombuffer(b"".join(blobs), np.int32)
    sizes = np.fromiter((len(blob) // 4 for blob in blobs), np.int64, len(blobs))
    starts = np.cumsum(sizes) - sizes
    counts = flat[starts[:, None] + np.arange(fields)] if sizes.size else np.zeros((0, fields), np.int32)
    totals = counts.sum(axis=1).astype(np.int64)
    row = np.repeat(np.arange(sizes.size), totals)
    within = np.arange(row.size) - np.repeat(np.cumsum(totals) - totals, totals)
    at = starts[row] + fields + within
    field = (within[:, None] >= np.cumsum(counts, axis=1)[row][:, :-1]).sum(axis=1)
    ids, values = flat[at].astype(np.int64), flat[at + totals[row]].view(np.float32)
    return {name: Entries(row[field == f], ids[field == f], values[field == f])
            for f, name in enumerate(SPARSE_FIELDS)}


def assign_ids(db: sqlite3.Connection, idx: str, field: str, terms: Iterable[str]) -> dict[str, int]:
    """The vocabulary ids of `terms` in (idx, field), new ones appended; call inside the write transaction."""
    wanted = list(dict.fromkeys(terms))
    known: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        known.update(db.execute(
            f"SELECT term, id FROM vocab WHERE idx = ? AND field = ? AND term IN ({','.join('?' * len(chunk))})",
            (idx, field, *chunk)))
    missing = [term for term in wanted if term not in known]
    if missing:
        (next_id,) = db.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM vocab WHERE idx = ? AND field = ?",
                                (idx, field)).fetchone()
        fresh = {term: next_id + offset for offset, term in enumerate(missing)}
        db.executemany("INSERT INTO vocab (idx, field, term, id) VALUES (?, ?, ?, ?)",
                       [(idx, field, term, term_id) for term, term_id in fresh.items()])
        known.update(fresh)
    return known


def load_terms(db: sqlite3.Connection, idx: str, field: str, vocab: dict[str, int]) -> None:
    """Add to `vocab` the (idx, field) terms it lacks: ids are dense and append-only, so those from len(vocab)."""
    vocab.update(db.execute("SELECT term, id FROM vocab WHERE idx = ? AND field = ? AND id >= ?",
                            (idx, field, len(vocab))))


def analyze(
    db: sqlite3.Connection,
    idx: str,
    analyzer: Analyzer,
    passages: Sequence[str],
    sparse: Sequence[Mapping[str, Mapping[str, float]]],
) -> list[Analyzed]:
    """Each document's contribution, its terms and features given ids in the index's vocabulary."""
    counted = [Counter(analyzer.analyze(passage)) for passage in passages]
    content = assign_ids(db, idx, CONTENT, (term for counts in counted for term in counts))
    features = {name: assign_ids(db, idx, name, (t for doc in sparse for t in doc.get(name, {})))
                for name in SPARSE_FIELDS}
    out = []
    for counts, weights in zip(counted, sparse, strict=True):
        order = sorted(counts, key=content.__getitem__)
        terms = np.fromiter((content[t] for t in order), np.int32, len(order))
        freqs = np.fromiter((counts[t] for t in order), np.int32, len(order))
        decoded = {
            name: (np.fromiter((features[name][t] for t in field), np.int32, len(field)),
                   scoring.decode_rank_feature(list(field.values())))
            for name, field in weights.items() if field
        }
        out.append(Analyzed(terms, freqs, sum(counts.values()), decoded))
    return out
