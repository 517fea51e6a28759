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

    @classmethod
    def from_columns(cls, length: int, terms: bytes, features: bytes) -> Analyzed:
        pairs = np.frombuffer(terms, np.int32).reshape(2, -1)
        counts = np.frombuffer(features, np.int32, len(SPARSE_FIELDS))
        total = int(counts.sum())
        ids = np.frombuffer(features, np.int32, total, offset=counts.nbytes)
        values = np.frombuffer(features, np.float32, total, offset=counts.nbytes + ids.nbytes)
        ends = np.cumsum(counts)
        sparse = {name: (ids[end - count : end], values[end - count : end])
                  for name, count, end in zip(SPARSE_FIELDS, counts.tolist(), ends.tolist(), strict=True) if count}
        return cls(pairs[0], pairs[1].astype(np.float32), length, sparse)


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
