"""The embedded store (`local:PATH`): documents in SQLite, searched by an in-memory index like a refresh.

SQLite runs in WAL mode with a busy timeout, so several writer processes (Celery workers) can write while
others search; each process and thread opens its own connection. Every write or delete bumps the
index's `generation` in the same transaction. A search first reads the generation: when it changed, the
`_Searcher` is rebuilt from a consistent snapshot (bm25s pattern: one CSC matrix of precomputed BM25
contributions for `content`, one of decoded `rank_features` weights per sparse field, one float32 matrix of
embeddings). Rows are replaced, never updated in place, so only rows newer than the last build are read
and analysed again.

Scores follow ../shared/SCORING.md exactly through `neurank.stores.scoring`; ties keep insertion order.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from neurank.documents import Document
from neurank.errors import ConfigError, IndexNotFoundError, StoreError, StoreUnavailableError
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer, get_analyzer
from neurank.stores.protocol import (
    SPARSE_FIELDS,
    EncodedDocument,
    IndexSpec,
    ScoredIds,
    StoredDocument,
    WriteFailure,
    WriteResult,
)

DATABASE_FILE = "neurank.sqlite3"
MAX_DENSE_DIMENSION = 16_000
"""The k-NN plugin's limit for `knn_vector` dimensions."""
MAX_QUERY_TOKEN_WEIGHT = 64.0
"""Lucene `FeatureField.newLinearQuery` refuses weights outside (0, 64]; so does `neural_sparse`."""
_ID_CHUNK = 500
_FLOAT_MAX = float(np.finfo(np.float32).max)
_INVALID_INDEX_NAME = re.compile(r'[\\/*?"<>| ,#:A-Z]|^[-_+]|^\.{1,2}$')

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT OR IGNORE INTO clock (id, value) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS indexes (name TEXT PRIMARY KEY, spec TEXT NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idx TEXT NOT NULL,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT,
    content_hash TEXT NOT NULL,
    models TEXT NOT NULL,
    sparse TEXT NOT NULL,
    embedding BLOB,
    UNIQUE (idx, id)
);
PRAGMA user_version = 1;
"""
_SCHEMA_VERSION = 1
"""Stamped by `_SCHEMA` (`PRAGMA user_version`): a connection to a ready store reads it and writes nothing."""
_BUMP = (
    "UPDATE clock SET value = value + 1 WHERE id = 0",
    "UPDATE indexes SET generation = (SELECT value FROM clock WHERE id = 0) WHERE name = ?",
)
"""A global clock, so that an index dropped and created again never reuses a generation."""


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _ID_CHUNK):
        yield unique[start : start + _ID_CHUNK]


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


# -- index specs -------------------------------------------------------------------------------------------


def _spec_to_json(spec: IndexSpec) -> str:
    data = {f.name: getattr(spec, f.name) for f in fields(IndexSpec)}
    data["models"] = dict(spec.models)
    return json.dumps(data, sort_keys=True)


def _spec_from_json(payload: str) -> IndexSpec:
    known = {f.name for f in fields(IndexSpec)}
    return IndexSpec(**{key: value for key, value in json.loads(payload).items() if key in known})


def _check_index_name(name: str) -> None:
    """OpenSearch's index name rules, so that a name that works here also works on a cluster."""
    if not name or len(name.encode("utf-8")) > 255 or _INVALID_INDEX_NAME.search(name):
        raise StoreError(
            f'invalid index name {name!r}: use lowercase, no spaces or any of \\ / * ? " < > | , # :, '
            "not starting with - _ +, at most 255 bytes"
        )


def _check_spec(spec: IndexSpec) -> None:
    get_analyzer(spec.language)
    if spec.space_type not in scoring.SPACE_TYPES:
        raise ConfigError(
            f"unknown space_type {spec.space_type!r}; choose one of {', '.join(scoring.SPACE_TYPES)}"
        )
    dimension = spec.dense_dimension
    if dimension is not None and not (isinstance(dimension, int) and 1 <= dimension <= MAX_DENSE_DIMENSION):
        raise ConfigError(
            f"dense_dimension must be an integer in [1, {MAX_DENSE_DIMENSION}], got {dimension!r}"
        )
    if not (math.isfinite(spec.bm25_k1) and spec.bm25_k1 >= 0):
        raise ConfigError(f"bm25_k1 must be a finite value >= 0, got {spec.bm25_k1}")
    if not 0 <= spec.bm25_b <= 1:
        raise ConfigError(f"bm25_b must be in [0, 1], got {spec.bm25_b}")


# -- validation of documents, as OpenSearch would refuse them ----------------------------------------------


class _Rejected(Exception):
    """A document OpenSearch would refuse with a 400; the message is the reason."""


def _sparse_payload(sparse: Mapping[str, Mapping[str, float]]) -> str:
    """The rank_features of a document as JSON, or _Rejected like RankFeaturesFieldMapper (SCORING.md §2)."""
    payload: dict[str, dict[str, float]] = {}
    for name, weights in sparse.items():
        if name not in SPARSE_FIELDS:
            raise _Rejected(
                f"[{name}] is not a rank_features field of this index (fields: {', '.join(SPARSE_FIELDS)})"
            )
        tokens = list(weights)
        if any(not isinstance(token, str) or not token for token in tokens):
            raise _Rejected(
                f"failed to parse field [{name}] of type [rank_features]: feature names must be "
                "non-empty strings"
            )
        try:
            values = np.array([float(weights[token]) for token in tokens], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _Rejected(f"failed to parse field [{name}] of type [rank_features]: {exc}") from exc
        bad = np.flatnonzero(scoring.rank_feature_invalid(values))
        if bad.size:
            token, value = tokens[bad[0]], values[bad[0]]
            rule = "be finite" if not -_FLOAT_MAX <= value <= _FLOAT_MAX else "be a positive normal float"
            raise _Rejected(
                f"failed to parse field [{name}] of type [rank_features]: featureValue must {rule}, got: "
                f"{float(value)} for feature [{token}] (values must be >= {scoring.FLOAT_MIN_NORMAL:.8g})"
            )
        payload[name] = dict(zip(tokens, values.tolist(), strict=True))
    return _compact(payload)


def _vector(values: object, spec: IndexSpec) -> np.ndarray:
    """A `knn_vector` value as float32, or _Rejected / ValueError like the k-NN plugin refuses it."""
    if spec.dense_dimension is None:
        raise _Rejected("the index has no knn_vector field (it was created without dense_dimension)")
    with np.errstate(over="ignore", invalid="ignore"):
        vector = np.asarray(values, dtype=np.float64).astype(np.float32)
    if vector.ndim != 1 or vector.shape[0] != spec.dense_dimension:
        raise _Rejected(f"Vector dimension mismatch. Expected: {spec.dense_dimension}, Given: {vector.size}")
    if not np.isfinite(vector).all():
        raise _Rejected("KNN vector values cannot be NaN or infinite")
    if spec.space_type == "cosinesimil" and not vector.any():
        raise _Rejected("zero vector is not supported when space type is [cosinesimil]")
    return vector


def _row(name: str, encoded: EncodedDocument, spec: IndexSpec) -> tuple[object, ...]:
    doc = encoded.document
    try:
        metadata = _compact(doc.metadata)
    except (TypeError, ValueError) as exc:
        raise _Rejected(f"metadata cannot be stored as JSON: {exc}") from exc
    sparse = _sparse_payload(encoded.sparse)
    embedding = None
    if encoded.embedding is not None:
        try:
            embedding = _vector(encoded.embedding, spec).tobytes()
        except (_Rejected, TypeError, ValueError) as exc:
            raise _Rejected(f"failed to parse field [embedding] of type [knn_vector]: {exc}") from exc
    return (
        name,
        doc.id,
        doc.title,
        doc.text,
        metadata,
        doc.source,
        doc.content_hash,
        _compact(dict(encoded.models)),
        sparse,
        embedding,
    )


def _stored(
    doc_id: str,
    title: str,
    text: str,
    metadata: str,
    source: str | None,
    content_hash: str,
    models: str,
    sparse: str,
    embedding: bytes | None,
) -> StoredDocument:
    document = Document(id=doc_id, text=text, title=title, metadata=json.loads(metadata), source=source)
    vector = None if embedding is None else np.frombuffer(embedding, dtype=np.float32).copy()
    return StoredDocument(document, content_hash, json.loads(models), json.loads(sparse), vector)


# -- the in-memory searcher --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parsed:
    """What one stored row contributes to a searcher, kept between rebuilds (rows are never updated)."""

    terms: np.ndarray
    freqs: np.ndarray
    length: int
    sparse: dict[str, tuple[np.ndarray, np.ndarray]]
    embedding: np.ndarray | None


@dataclass(slots=True)
class _RowCache:
    """Parsed rows of one index by `seq`, with the term and feature vocabularies their ids refer to."""

    analyzer: Analyzer
    last_seq: int = 0
    rows: dict[int, _Parsed] = field(default_factory=dict)
    terms: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, int]] = field(default_factory=lambda: {name: {} for name in SPARSE_FIELDS})

    def parse(self, title: str, text: str, sparse: str, embedding: bytes | None) -> _Parsed:
        terms = self.analyzer.analyze(Document(id="", text=text, title=title).passage)
        ids = np.fromiter((self.terms.setdefault(t, len(self.terms)) for t in terms), np.int64, len(terms))
        unique, freqs = np.unique(ids, return_counts=True)
        features = {}
        for name, weights in json.loads(sparse).items():
            vocab = self.features[name]
            token_ids = np.fromiter(
                (vocab.setdefault(t, len(vocab)) for t in weights), np.int64, len(weights)
            )
            features[name] = (token_ids, scoring.decode_rank_feature(list(weights.values())))
        vector = None if embedding is None else np.frombuffer(embedding, dtype=np.float32)
        return _Parsed(unique, freqs.astype(np.float32), len(terms), features, vector)


@dataclass(frozen=True, slots=True)
class _Postings:
    """One CSC matrix (documents × terms) read column by column: `values` are the per-document scores."""

    vocab: Mapping[str, int]
    indptr: np.ndarray
    docs: np.ndarray
    values: np.ndarray

    @classmethod
    def build(
        cls, vocab: Mapping[str, int], n_docs: int, rows: Sequence[tuple[int, np.ndarray, np.ndarray]]
    ) -> _Postings:
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


class _Searcher:
    """Everything a search needs, built once per generation from one snapshot; read-only afterwards."""

    def __init__(
        self, spec: IndexSpec, generation: int, ids: list[str], parsed: list[_Parsed], cache: _RowCache
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.ids = ids
        self.row_of = {doc_id: row for row, doc_id in enumerate(ids)}
        self.analyzer = cache.analyzer
        self._build_content(parsed, cache.terms)
        self.features = {
            name: self._build_features(parsed, name, cache.features[name]) for name in SPARSE_FIELDS
        }
        self._build_vectors(parsed)

    def _build_content(self, parsed: list[_Parsed], vocab: Mapping[str, int]) -> None:
        """SCORING.md §1: N and avgdl over documents with tokens; dl through the one-byte norm."""
        lengths = np.fromiter((p.length for p in parsed), np.int64, len(parsed))
        self.freqs = _Postings.build(
            vocab, len(parsed), [(row, p.terms, p.freqs) for row, p in enumerate(parsed)]
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
        self.content = _Postings(vocab, self.freqs.indptr, self.freqs.docs, contributions)

    @staticmethod
    def _build_features(parsed: list[_Parsed], name: str, vocab: Mapping[str, int]) -> _Postings:
        """SCORING.md §2: the decoded (quantized) feature values S of one rank_features field."""
        rows = [(row, *p.sparse[name]) for row, p in enumerate(parsed) if name in p.sparse]
        return _Postings.build(vocab, len(parsed), rows)

    def _build_vectors(self, parsed: list[_Parsed]) -> None:
        rows = [row for row, p in enumerate(parsed) if p.embedding is not None]
        self.vector_rows = np.array(rows, dtype=np.int64)
        dimension = self.spec.dense_dimension or 0
        self.vectors = (
            np.vstack([vector for row in rows if (vector := parsed[row].embedding) is not None])
            if rows
            else np.zeros((0, dimension), np.float32)
        )
        self.vector_norms = scoring.squared_norms(self.vectors)

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


# -- the store ---------------------------------------------------------------------------------------------


class LocalStore:
    """The embedded default store at a folder PATH (URL `local:PATH`); see the module docstring."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        """How long a writer waits for another process's transaction before reporting the store unavailable."""
        self.url = f"local:{self.path}"
        self._local = threading.local()
        self._build_lock = threading.Lock()
        self._searchers: dict[str, _Searcher] = {}
        self._caches: dict[tuple[str, str], _RowCache] = {}

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    # connections and transactions

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection; a forked child opens its own instead of sharing its parent's."""
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            self.path.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path / DATABASE_FILE, timeout=self.busy_timeout_s, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                db.executescript(_SCHEMA)
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def _error(self, exc: Exception) -> StoreError:
        message = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
            return StoreUnavailableError(
                f"{self.url} stayed locked by other writers for {self.busy_timeout_s:g} s ({message}); "
                "retry later"
            )
        return StoreError(f"{self.url}: {message}")

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: a consistent snapshot to read, or the write lock taken up front."""
        try:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise self._error(exc) from exc

    def _spec(self, db: sqlite3.Connection, name: str) -> tuple[IndexSpec, int]:
        row = db.execute("SELECT spec, generation FROM indexes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise IndexNotFoundError(name, self.url)
        return _spec_from_json(row[0]), row[1]

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str) -> None:
        db.execute(_BUMP[0])
        db.execute(_BUMP[1], (name,))

    # indexes

    def create_index(self, name: str, spec: IndexSpec) -> None:
        _check_index_name(name)
        _check_spec(spec)
        with self._transaction(write=True) as db:
            row = db.execute("SELECT spec FROM indexes WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO indexes (name, spec, generation) VALUES (?, ?, 0)",
                    (name, _spec_to_json(spec)),
                )
                self._bump(db, name)
            elif _spec_from_json(row[0]) != spec:
                raise StoreError(
                    f"index {name!r} already exists in {self.url} with another spec; "
                    "drop it or choose a new name"
                )

    def drop_index(self, name: str) -> bool:
        with self._transaction(write=True) as db:
            db.execute("DELETE FROM documents WHERE idx = ?", (name,))
            existed = db.execute("DELETE FROM indexes WHERE name = ?", (name,)).rowcount > 0
        self._searchers.pop(name, None)
        return existed

    def index_spec(self, name: str) -> IndexSpec | None:
        with self._transaction() as db:
            row = db.execute("SELECT spec FROM indexes WHERE name = ?", (name,)).fetchone()
        return None if row is None else _spec_from_json(row[0])

    # documents

    def upsert(self, name: str, documents: Sequence[EncodedDocument]) -> WriteResult:
        result = WriteResult()
        with self._transaction(write=True) as db:
            spec, _ = self._spec(db, name)
            rows = []
            for encoded in documents:
                try:
                    rows.append(_row(name, encoded, spec))
                except _Rejected as exc:
                    doc = encoded.document
                    result.failed.append(WriteFailure(id=doc.id, reason=str(exc), source=doc.source))
            if rows:
                db.executemany(
                    "INSERT OR REPLACE INTO documents (idx, id, title, text, metadata, source, content_hash, "
                    "models, sparse, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._bump(db, name)
        result.written = len(rows)
        return result

    def stored_state(self, name: str, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        state: dict[str, tuple[str, dict[str, str]]] = {}
        with self._transaction() as db:
            self._spec(db, name)
            for chunk in _chunks(ids):
                query = (
                    "SELECT id, content_hash, models FROM documents "
                    f"WHERE idx = ? AND id IN ({_placeholders(chunk)})"
                )
                for doc_id, content_hash, models in db.execute(query, (name, *chunk)):
                    state[doc_id] = (content_hash, json.loads(models))
        return state

    def get(self, name: str, ids: Sequence[str]) -> list[StoredDocument]:
        found: dict[str, StoredDocument] = {}
        with self._transaction() as db:
            self._spec(db, name)
            for chunk in _chunks(ids):
                query = (
                    "SELECT id, title, text, metadata, source, content_hash, models, sparse, embedding "
                    f"FROM documents WHERE idx = ? AND id IN ({_placeholders(chunk)})"
                )
                for row in db.execute(query, (name, *chunk)):
                    found[row[0]] = _stored(*row)
        return [found[doc_id] for doc_id in ids if doc_id in found]

    def delete(self, name: str, ids: Sequence[str]) -> int:
        deleted = 0
        with self._transaction(write=True) as db:
            self._spec(db, name)
            for chunk in _chunks(ids):
                query = f"DELETE FROM documents WHERE idx = ? AND id IN ({_placeholders(chunk)})"
                deleted += db.execute(query, (name, *chunk)).rowcount
            if deleted:
                self._bump(db, name)
        return deleted

    def count(self, name: str) -> int:
        with self._transaction() as db:
            self._spec(db, name)
            return db.execute("SELECT COUNT(*) FROM documents WHERE idx = ?", (name,)).fetchone()[0]

    def generation(self, name: str) -> int:
        with self._transaction() as db:
            return self._spec(db, name)[1]

    # search

    def _searcher(self, name: str) -> _Searcher:
        """The searcher of the current generation, rebuilt (like a refresh) when the generation moved."""
        with self._transaction() as db:
            spec, generation = self._spec(db, name)
            searcher = self._searchers.get(name)
            if searcher is not None and searcher.generation == generation:
                return searcher
            with self._build_lock:
                searcher = self._searchers.get(name)
                if searcher is None or searcher.generation != generation:
                    searcher = self._build(db, name, spec, generation)
                    self._searchers[name] = searcher
                return searcher

    def _build(self, db: sqlite3.Connection, name: str, spec: IndexSpec, generation: int) -> _Searcher:
        analyzer = get_analyzer(spec.language)
        cache = self._caches.setdefault((name, analyzer.version), _RowCache(analyzer))
        fresh = db.execute(
            "SELECT seq, title, text, sparse, embedding FROM documents "
            "WHERE idx = ? AND seq > ? ORDER BY seq",
            (name, cache.last_seq),
        )
        for seq, title, text, sparse, embedding in fresh:
            cache.rows[seq] = cache.parse(title, text, sparse, embedding)
            cache.last_seq = seq
        current = db.execute("SELECT seq, id FROM documents WHERE idx = ? ORDER BY seq", (name,)).fetchall()
        live = {seq for seq, _ in current}
        for seq in [seq for seq in cache.rows if seq not in live]:
            del cache.rows[seq]
        return _Searcher(
            spec,
            generation,
            [doc_id for _, doc_id in current],
            [cache.rows[seq] for seq, _ in current],
            cache,
        )

    def search_bm25(self, name: str, query: str, k: int) -> ScoredIds:
        searcher = self._searcher(name)
        return searcher.top(list(searcher.bm25_clauses(query).values()), k)

    def explain_bm25(self, name: str, query: str, doc_id: str) -> dict[str, float]:
        searcher = self._searcher(name)
        row = searcher.row_of.get(doc_id)
        if row is None:
            return {}
        explained = {}
        for term, (docs, scores) in searcher.bm25_clauses(query).items():
            at = int(np.searchsorted(docs, row))
            if at < docs.size and docs[at] == row:
                explained[term] = float(scores[at])
        return explained

    def search_sparse(self, name: str, field: str, query_tokens: Mapping[str, float], k: int) -> ScoredIds:
        if field not in SPARSE_FIELDS:
            raise StoreError(
                f"[neural_sparse] query only works on [rank_features] fields: {', '.join(SPARSE_FIELDS)}"
            )
        for token, weight in query_tokens.items():
            if not 0 < weight <= MAX_QUERY_TOKEN_WEIGHT:
                raise StoreError(
                    f"query token {token!r}: weight must be in (0, {MAX_QUERY_TOKEN_WEIGHT:g}], got: {weight}"
                )
        searcher = self._searcher(name)
        return searcher.top(searcher.sparse_clauses(field, query_tokens), k)

    def search_vector(self, name: str, vector: np.ndarray, k: int) -> ScoredIds:
        searcher = self._searcher(name)
        try:
            query = _vector(vector, searcher.spec)
        except (_Rejected, ValueError, TypeError) as exc:
            raise StoreError(f"[knn] query vector refused: {exc}") from exc
        scores = scoring.knn_scores(searcher.vectors, query, searcher.spec.space_type, searcher.vector_norms)
        return searcher.best(searcher.vector_rows, scores, k)
