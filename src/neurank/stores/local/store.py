"""The embedded store (`local:PATH`): documents in SQLite, searched by an in-memory index like a refresh.

SQLite runs in WAL mode with a busy timeout, so several writer processes (Celery workers) can write while
others search; each process and thread opens its own connection. Every write or delete bumps the
index's `generation` in the same transaction, and each document is analysed as it is written
(`analyzed.py`). A search first reads the generation: when it changed, the rows written since become a new
segment (`segment.py`) and a `MemoryIndex` (`memory.py`) of the snapshot masks the rows it no longer holds,
like a refresh. Segments past a size are persisted beside the database and memory-mapped (`manifest.py`), so
that a new process reads from SQLite only the rows its segment files do not cover. Reading a folder that holds
no store creates nothing: it is an empty store until the first write.

Documents are refused as OpenSearch would refuse them (SCORING.md §2 for `rank_features`, the k-NN plugin's
rules for vectors, and the same rules for late-interaction token vectors), so what works here works on a
cluster. Token vectors are kept compressed (`IndexSpec.token_compression`, `neurank.stores.tokens`), one BLOB of
fixed-size records per document.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from neurank.documents import Document
from neurank.errors import IndexNotFoundError, StoreError, StoreUnavailableError
from neurank.index_spec import COLBERT_ROLE, SPARSE_FIELDS, IndexSpec
from neurank.retrieval import ScoredIds, SubQuery
from neurank.stores import scoring
from neurank.stores.analysis import Analyzer, get_analyzer
from neurank.stores.local.analyzed import CONTENT, analyze, load_terms
from neurank.stores.local.ann import HnswGraph
from neurank.stores.local.manifest import SegmentFolder
from neurank.stores.local.memory import MemoryIndex, RowCache
from neurank.stores.local.segment import Segment, live_mask, settle
from neurank.stores.protocol import EncodedDocument, StoredDocument, WriteFailure, WriteResult
from neurank.stores.tokens import BadTokenVectors, check_token_vectors, decode, encode, from_blob

DATABASE_FILE = "neurank.sqlite3"
GRAPHS_FOLDER = "hnsw"
"""Beside the database: one folder per index holding its HNSW graph (`ann.py`), derived from the documents."""
SEGMENTS_FOLDER = "segments"
"""Beside the database: one folder per index holding its persisted segments (`manifest.py`), derived likewise."""
_ID_CHUNK = 500
_FLOAT_MAX = float(np.finfo(np.float32).max)
_INVALID_INDEX_NAME = re.compile(r'[\\/*?"<>| ,#:A-Z]|^[-_+]|^\.{1,2}$')

_VOCAB = (
    "CREATE TABLE IF NOT EXISTS vocab (idx TEXT NOT NULL, field TEXT NOT NULL, term TEXT NOT NULL, "
    "id INTEGER NOT NULL, PRIMARY KEY (idx, field, term)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS vocab_ids ON vocab (idx, field, id)",
)
"""The vocabulary that stored term and feature ids refer to (`analyzed.py`)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
INSERT OR IGNORE INTO clock (id, value) VALUES (0, 0);
CREATE TABLE IF NOT EXISTS indexes (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    analyzer TEXT NOT NULL DEFAULT '',
    removed INTEGER NOT NULL DEFAULT 0
);
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
    tokens BLOB,
    length INTEGER,
    terms BLOB,
    features BLOB,
    UNIQUE (idx, id)
);
PRAGMA user_version = 4;
""" + ";\n".join(_VOCAB) + ";\n"
_SCHEMA_VERSION = 4
"""Stamped by `_SCHEMA` (`PRAGMA user_version`): a connection to a ready store reads it and writes nothing."""
_INSERT = (
    "INSERT OR REPLACE INTO documents (idx, id, title, text, metadata, source, content_hash, models, sparse, "
    "embedding, tokens, length, terms, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_BUMP = (
    "UPDATE clock SET value = value + 1 WHERE id = 0",
    "UPDATE indexes SET generation = (SELECT value FROM clock WHERE id = 0) WHERE name = ?",
)
"""A global clock, so that an index dropped and created again never reuses a generation."""
_GENERATION = "SELECT generation FROM indexes WHERE name = ?"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _ID_CHUNK):
        yield unique[start : start + _ID_CHUNK]


def _placeholders(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _check_index_name(name: str) -> None:
    """OpenSearch's index name rules, so that a name that works here also works on a cluster."""
    if not name or len(name.encode("utf-8")) > 255 or _INVALID_INDEX_NAME.search(name):
        raise StoreError(
            f'invalid index name {name!r}: use lowercase, no spaces or any of \\ / * ? " < > | , # :, '
            "not starting with - _ +, at most 255 bytes"
        )


# -- validation of documents, as OpenSearch would refuse them ----------------------------------------------


class _Rejected(Exception):
    """A document OpenSearch would refuse with a 400; the message is the reason."""


def _sparse_payload(sparse: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The rank_features of a document as floats, or _Rejected like RankFeaturesFieldMapper (SCORING.md §2)."""
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
    return payload


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


def _row(name: str, encoded: EncodedDocument, spec: IndexSpec) -> tuple[list[object], dict[str, dict[str, float]]]:
    """The stored columns up to `tokens`, and the document's sparse fields as stored (analysis comes next)."""
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
    columns: list[object] = [name, doc.id, doc.title, doc.text, metadata, doc.source, doc.content_hash,
               _compact(dict(encoded.models)), _compact(sparse), embedding, _tokens(encoded.token_vectors, spec)]
    return columns, sparse


def _tokens(values: object, spec: IndexSpec) -> bytes | None:
    """The document's token vectors as compressed records (`spec.token_compression`), None when it has none."""
    if values is None:
        return None
    try:
        vectors = check_token_vectors(values, spec.colbert_dimension)
    except BadTokenVectors as exc:
        raise _Rejected(f"failed to parse field [{COLBERT_ROLE}] (token vectors): {exc}") from exc
    return None if vectors is None else encode(vectors, spec.token_compression).tobytes()


def _stored(
    spec: IndexSpec,
    doc_id: str,
    title: str,
    text: str,
    metadata: str,
    source: str | None,
    content_hash: str,
    models: str,
    sparse: str,
    embedding: bytes | None,
    tokens: bytes | None,
) -> StoredDocument:
    document = Document(id=doc_id, text=text, title=title, metadata=json.loads(metadata), source=source)
    vector = None if embedding is None else np.frombuffer(embedding, dtype=np.float32).copy()
    token_vectors = None
    if tokens is not None and spec.colbert_dimension is not None:
        records = from_blob(tokens, spec.token_compression, spec.colbert_dimension)
        token_vectors = decode(records, spec.token_compression, spec.colbert_dimension)
    return StoredDocument(document, content_hash, json.loads(models), json.loads(sparse), vector, token_vectors)


def _remaining(db: sqlite3.Connection, name: str, upto: int) -> int:
    """How many of the index's rows up to seq `upto` are still stored."""
    return int(db.execute("SELECT COUNT(*) FROM documents WHERE idx = ? AND seq <= ?", (name, upto)).fetchone()[0])


def _passage(title: str, text: str) -> str:
    return Document(id="", text=text, title=title).passage


def _add_columns(db: sqlite3.Connection, table: str, columns: Mapping[str, str]) -> None:
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for column, declaration in columns.items():
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _analyze_stored(db: sqlite3.Connection) -> None:
    """Version 3: each document keeps its analysis (`analyzed.py`); rows written before are analyzed here, once."""
    _add_columns(db, "documents", {"length": "INTEGER", "terms": "BLOB", "features": "BLOB"})
    _add_columns(db, "indexes", {"created": "INTEGER NOT NULL DEFAULT 0", "analyzer": "TEXT NOT NULL DEFAULT ''"})
    for statement in _VOCAB:
        db.execute(statement)
    for name, spec_json in db.execute("SELECT name, spec FROM indexes").fetchall():
        analyzer = get_analyzer(IndexSpec.from_dict(json.loads(spec_json)).language)
        rows = db.execute("SELECT seq, title, text, sparse FROM documents WHERE idx = ?", (name,)).fetchall()
        for start in range(0, len(rows), _ID_CHUNK):
            chunk = rows[start : start + _ID_CHUNK]
            analyzed = analyze(db, name, analyzer, [_passage(title, text) for _, title, text, _ in chunk],
                               [json.loads(sparse) for *_, sparse in chunk])
            db.executemany("UPDATE documents SET length = ?, terms = ?, features = ? WHERE seq = ?",
                           [(*a.columns(), row[0]) for a, row in zip(analyzed, chunk, strict=True)])
        db.execute("UPDATE indexes SET analyzer = ? WHERE name = ?", (analyzer.version, name))


_MIGRATIONS: dict[int, str | Callable[[sqlite3.Connection], None]] = {
    1: "ALTER TABLE documents ADD COLUMN tokens BLOB",
    2: _analyze_stored,
    3: lambda db: _add_columns(db, "indexes", {"removed": "INTEGER NOT NULL DEFAULT 0"}),
}
"""What brings a store of an older schema version to the next one (version 2: late-interaction token vectors,
compressed records as `neurank.stores.tokens` writes them; version 3: the analysis stored with each row;
version 4: each index counts the rows deletes and replacements removed)."""
_REMOVED = "UPDATE indexes SET removed = removed + ? WHERE name = ?"
"""Every write that removes rows (a delete, a replacement) counts them, so that a snapshot knows in one read
whether the rows it saw before are all still there."""


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the store to `_SCHEMA_VERSION` under the write lock (another process may be doing the same)."""
    db.execute("BEGIN IMMEDIATE")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    while version in _MIGRATIONS:
        step = _MIGRATIONS[version]
        if callable(step):
            step(db)
        else:
            db.execute(step)
        version += 1
        db.execute(f"PRAGMA user_version = {version}")
    db.execute("COMMIT")
    db.executescript(_SCHEMA)


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
        self._searchers: dict[str, MemoryIndex] = {}
        self._caches: dict[tuple[str, int], RowCache] = {}

    def __repr__(self) -> str:
        return f"LocalStore({str(self.path)!r})"

    # connections and transactions

    def _connection(self, *, write: bool) -> sqlite3.Connection:
        """This thread's connection; a forked child opens its own instead of sharing its parent's.

        Before the first write there is no database: a read gets an empty one in memory, so that searching a
        mistyped path reports a missing index instead of creating a store there.
        """
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            if not write and not (self.path / DATABASE_FILE).is_file():
                empty = sqlite3.connect(":memory:", isolation_level=None)
                empty.executescript(_SCHEMA)
                return empty
            self.path.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path / DATABASE_FILE, timeout=self.busy_timeout_s, isolation_level=None)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                db.close()
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this neurank's "
                                            f"{_SCHEMA_VERSION}: upgrade neurank to open it")
            if version != _SCHEMA_VERSION:
                _migrate(db)
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def _error(self, exc: Exception) -> StoreError:
        message = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
            return StoreUnavailableError(
                f"{self.url} stayed locked by other writers for {self.busy_timeout_s:g} s ({message}); "
                "retry later"
            )
        if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in message or "malformed" in message):
            return StoreError(f"{self.path / DATABASE_FILE} is not a readable neurank store ({message}): restore it "
                              "from a backup, or move it away and ingest again")
        return StoreError(f"{self.url}: {message}")

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: a consistent snapshot to read, or the write lock taken up front."""
        try:
            db = self._connection(write=write)
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

    def _analyzer(self, db: sqlite3.Connection, name: str, spec: IndexSpec) -> tuple[Analyzer, int]:
        """The analyzer that made the index's stored terms, and the clock value the index was created at.

        Terms analyzed by another analyzer version (an older neurank, another stemmer) would not match the
        queries' terms: as on a cluster, a changed analyzer needs a new index.
        """
        analyzer = get_analyzer(spec.language)
        stored, created = db.execute("SELECT analyzer, created FROM indexes WHERE name = ?", (name,)).fetchone()
        if stored != analyzer.version:
            raise StoreError(
                f"index {name!r} in {self.url} was analyzed by {stored}, but this version of neurank analyzes "
                f"{spec.language!r} text as {analyzer.version}; ingest into a new index (or drop this one and "
                "ingest again)"
            )
        return analyzer, created

    def _spec(self, db: sqlite3.Connection, name: str) -> tuple[IndexSpec, int]:
        row = db.execute("SELECT spec, generation FROM indexes WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise IndexNotFoundError(name, self.url)
        return IndexSpec.from_dict(json.loads(row[0])), row[1]

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str) -> None:
        db.execute(_BUMP[0])
        db.execute(_BUMP[1], (name,))

    # indexes

    def create_index(self, name: str, spec: IndexSpec) -> None:
        _check_index_name(name)
        analyzer = get_analyzer(spec.language)
        with self._transaction(write=True) as db:
            row = db.execute("SELECT spec FROM indexes WHERE name = ?", (name,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO indexes (name, spec, generation, analyzer) VALUES (?, ?, 0, ?)",
                    (name, json.dumps(spec.to_dict(), sort_keys=True), analyzer.version),
                )
                self._bump(db, name)
                db.execute("UPDATE indexes SET created = generation WHERE name = ?", (name,))
            elif (existing := IndexSpec.from_dict(json.loads(row[0]))) != spec:
                raise StoreError(
                    f"index {name!r} already exists in {self.url} with another spec "
                    f"({existing.describe_changes(spec)}); drop it or choose a new name"
                )

    def drop_index(self, name: str) -> bool:
        with self._transaction(write=True) as db:
            db.execute("DELETE FROM documents WHERE idx = ?", (name,))
            db.execute("DELETE FROM vocab WHERE idx = ?", (name,))
            existed = db.execute("DELETE FROM indexes WHERE name = ?", (name,)).rowcount > 0
        self._searchers.pop(name, None)
        for key in [key for key in self._caches if key[0] == name]:
            del self._caches[key]
        shutil.rmtree(self._graph_path(name, 0).parent, ignore_errors=True)
        shutil.rmtree(self.path / SEGMENTS_FOLDER / name, ignore_errors=True)
        return existed

    def index_spec(self, name: str) -> IndexSpec | None:
        with self._transaction() as db:
            row = db.execute("SELECT spec FROM indexes WHERE name = ?", (name,)).fetchone()
        return None if row is None else IndexSpec.from_dict(json.loads(row[0]))

    # documents

    def upsert(self, name: str, documents: Sequence[EncodedDocument]) -> WriteResult:
        result = WriteResult()
        with self._transaction(write=True) as db:
            spec, _ = self._spec(db, name)
            analyzer, _ = self._analyzer(db, name, spec)
            rows, passages, sparse = [], [], []
            for encoded in documents:
                try:
                    columns, fields = _row(name, encoded, spec)
                except _Rejected as exc:
                    doc = encoded.document
                    result.failed.append(WriteFailure(id=doc.id, reason=str(exc), source=doc.source))
                    continue
                rows.append(columns)
                passages.append(encoded.document.passage)
                sparse.append(fields)
            if rows:
                ids = [str(row[1]) for row in rows]
                replaced = len(ids) - len(set(ids)) + sum(db.execute(
                    f"SELECT COUNT(*) FROM documents WHERE idx = ? AND id IN ({_placeholders(chunk)})",
                    (name, *chunk)).fetchone()[0] for chunk in _chunks(ids))
                analyzed = analyze(db, name, analyzer, passages, sparse)
                db.executemany(_INSERT, [(*row, *a.columns()) for row, a in zip(rows, analyzed, strict=True)])
                if replaced:
                    db.execute(_REMOVED, (replaced, name))
                self._bump(db, name)
        result.written = len(rows)
        return result

    def _rows(self, name: str, columns: str, ids: Sequence[str]) -> tuple[IndexSpec, list[tuple[Any, ...]]]:
        """The index's spec, and `id, <columns>` of the stored documents among `ids`, read in chunks from one
        snapshot."""
        with self._transaction() as db:
            spec, _ = self._spec(db, name)
            return spec, [row for chunk in _chunks(ids) for row in db.execute(
                f"SELECT id, {columns} FROM documents WHERE idx = ? AND id IN ({_placeholders(chunk)})",
                (name, *chunk))]

    def stored_state(self, name: str, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, str]]]:
        _, rows = self._rows(name, "content_hash, models", ids)
        return {doc_id: (content_hash, json.loads(models)) for doc_id, content_hash, models in rows}

    def get(self, name: str, ids: Sequence[str]) -> list[StoredDocument]:
        columns = "title, text, metadata, source, content_hash, models, sparse, embedding, tokens"
        spec, rows = self._rows(name, columns, ids)
        found = {row[0]: _stored(spec, *row) for row in rows}
        return [found[doc_id] for doc_id in ids if doc_id in found]

    def delete(self, name: str, ids: Sequence[str]) -> int:
        deleted = 0
        with self._transaction(write=True) as db:
            self._spec(db, name)
            for chunk in _chunks(ids):
                query = f"DELETE FROM documents WHERE idx = ? AND id IN ({_placeholders(chunk)})"
                deleted += db.execute(query, (name, *chunk)).rowcount
            if deleted:
                db.execute(_REMOVED, (deleted, name))
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

    def _searcher(self, name: str) -> MemoryIndex:
        """The searcher of the current generation, rebuilt (like a refresh) when the generation moved; the
        steady state reads the generation alone (one statement is its own snapshot)."""
        searcher = self._searchers.get(name)
        if searcher is not None:
            try:
                row = self._connection(write=False).execute(_GENERATION, (name,)).fetchone()
            except (sqlite3.Error, OSError) as exc:
                raise self._error(exc) from exc
            if row is not None and row[0] == searcher.generation:
                return searcher
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

    def _build(self, db: sqlite3.Connection, name: str, spec: IndexSpec, generation: int) -> MemoryIndex:
        """Read what changed since the last build (new rows, new vocabulary) from this snapshot; no analysis."""
        analyzer, created = self._analyzer(db, name, spec)
        cache = self._caches.get((name, created))
        if cache is None:
            folder = SegmentFolder(self.path / SEGMENTS_FOLDER / name / str(created), name, created)
            folder.drop_older()
            segments, upto = folder.load()
            cache = self._caches[(name, created)] = RowCache(analyzer, folder, upto, segments)
            if segments:  # every row of a segment file was live when it was written (`_masks` checks they still are)
                cache.live, cache.live_upto = [np.ones(len(segment), bool) for segment in segments], upto
        load_terms(db, name, CONTENT, cache.terms)
        for field in SPARSE_FIELDS:
            load_terms(db, name, field, cache.features[field])
        previous = cache.last_seq
        fresh = db.execute(
            "SELECT seq, id, length, terms, features, embedding, tokens FROM documents "
            "WHERE +idx = ? AND seq > ? ORDER BY seq",  # by seq (the rowid): the new rows only, not the index's all
            (name, previous),
        ).fetchall()
        if fresh:
            cache.segments.append(Segment.build(spec, fresh))
            cache.last_seq = fresh[-1][0]
            cache.rows_read += len(fresh)
        if cache.graph is None and spec.dense_dimension is not None:
            cache.graph = HnswGraph(self._graph_path(name, created), spec)
        cache.segments, cache.live = settle(cache.segments, self._masks(db, name, cache, previous, len(fresh)))
        cache.segments = cache.folder.sync(cache.segments)
        return MemoryIndex(spec, generation, list(cache.segments), cache.live, cache)

    @staticmethod
    def _masks(db: sqlite3.Connection, name: str, cache: RowCache, previous: int, fresh: int) -> list[np.ndarray]:
        """Which rows of each segment this snapshot holds. Rows up to a seq are only ever deleted, never added:
        when the index's count of removed rows has not moved since the last masks (one read), or as many rows
        remain as they kept live (one count over an index: a new process's first check), those masks still hold
        and the fresh rows are all live, instead of reading every row's seq."""
        (removed,) = db.execute("SELECT removed FROM indexes WHERE name = ?", (name,)).fetchone()
        if cache.live is not None and cache.live_upto == previous and (
                removed == cache.removed or _remaining(db, name, previous) == sum(map(np.count_nonzero, cache.live))):
            cache.live_upto, cache.removed = cache.last_seq, removed
            return [*cache.live, *([np.ones(fresh, bool)] if fresh else [])]
        cache.removed = removed
        current = np.fromiter((seq for (seq,) in db.execute(
            "SELECT seq FROM documents WHERE idx = ? ORDER BY seq", (name,))), np.int64)
        # masks are exact up to the newest seq this snapshot sees (mapped segments may cover rows beyond it)
        cache.live_upto = min(cache.last_seq, int(current[-1])) if current.size else 0
        return [live_mask(segment, current) for segment in cache.segments]

    def _graph_path(self, name: str, created: int) -> Path:
        """The HNSW graph file of an index (`ann.py`); the creation clock tells a recreated index's apart."""
        return self.path / GRAPHS_FOLDER / name / f"{created}.faiss"

    def search(self, name: str, queries: Sequence[SubQuery]) -> list[ScoredIds]:
        """Every sub-query on one snapshot of the index."""
        index = self._searcher(name)
        return [index.search(query) for query in queries]

    def explain_bm25(self, name: str, query: str, doc_id: str) -> dict[str, float]:
        return self._searcher(name).explain_bm25(query, doc_id)

    def document_frequencies(self, name: str, terms: Collection[str]) -> dict[str, int]:
        return self._searcher(name).document_frequencies(terms)
