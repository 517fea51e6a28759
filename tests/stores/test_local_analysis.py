"""The local store analyses each document once, when it is written; opening a store reads that analysis."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.stores.contract import BM25_CORPUS, SPEC, bm25, encoded, sparse

from neurank.errors import StoreError
from neurank.stores import LocalStore
from neurank.stores.analysis import Analyzer, get_analyzer
from neurank.stores.local.store import DATABASE_FILE

INDEX = "analysis"
SPARSE = {"splade": {"neural": 1.25, "ranking": 0.5}, "deepct": {"ranking": 2.0}}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded(doc_id, text, sparse=SPARSE if doc_id == "both" else None)
                         for doc_id, text in BM25_CORPUS.items()])
    return tmp_path / "store"


def answers(store: LocalStore) -> list[object]:
    return [bm25(store, INDEX, "neural ranking", 10), sparse(store, INDEX, "splade", {"neural": 2.0}, 10),
            sparse(store, INDEX, "deepct", {"ranking": 1.0}, 10)]


def test_opening_a_store_analyses_the_query_only(written: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = answers(LocalStore(written))
    analyzed: list[str] = []
    real = Analyzer.analyze

    def recording(self: Analyzer, text: str) -> list[str]:
        analyzed.append(text)
        return real(self, text)

    monkeypatch.setattr(Analyzer, "analyze", recording)
    assert answers(LocalStore(written)) == expected
    assert analyzed == ["neural ranking"]


def test_a_store_of_schema_version_2_is_analyzed_once_when_opened(written: Path) -> None:
    expected = answers(LocalStore(written))
    with sqlite3.connect(written / DATABASE_FILE) as db:  # the tables as version 2 made them
        for column in ("length", "terms", "features"):
            db.execute(f"ALTER TABLE documents DROP COLUMN {column}")
        for column in ("created", "analyzer", "removed"):
            db.execute(f"ALTER TABLE indexes DROP COLUMN {column}")
        db.execute("DROP TABLE vocab")
        db.execute("PRAGMA user_version = 2")
    assert answers(LocalStore(written)) == expected
    with sqlite3.connect(written / DATABASE_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        assert db.execute("SELECT analyzer FROM indexes").fetchone() == (get_analyzer(SPEC.language).version,)


def test_a_store_analysed_by_another_analyzer_version_is_refused(written: Path) -> None:
    with sqlite3.connect(written / DATABASE_FILE) as db:
        db.execute("UPDATE indexes SET analyzer = 'english-v0'")
    store = LocalStore(written)
    version = get_analyzer(SPEC.language).version
    for attempt in (lambda: bm25(store, INDEX, "ranking", 1), lambda: store.upsert(INDEX, [encoded("new")])):
        with pytest.raises(StoreError, match=f"analyzed by english-v0, .* as {version}; ingest into a new index"):
            attempt()


def test_a_reader_sees_an_index_dropped_and_created_again_by_another_process(written: Path) -> None:
    """Vocabulary ids restart with a new index: a reader's cached vocabulary of the old one must not be used."""
    reader = LocalStore(written)
    assert bm25(reader, INDEX, "pasta", 1)[0][0] == "none"
    writer = LocalStore(written)
    writer.drop_index(INDEX)
    writer.create_index(INDEX, SPEC)
    writer.upsert(INDEX, [encoded("new", "pasta with neural sauce", sparse={"splade": {"sauce": 1.0}})])
    assert [doc_id for doc_id, _ in bm25(reader, INDEX, "neural pasta", 10)] == ["new"]
    assert bm25(reader, INDEX, "ranking", 10) == []
    assert sparse(reader, INDEX, "splade", {"sauce": 1.0, "neural": 1.0}, 10) == [("new", 1.0)]


def test_a_store_of_a_newer_schema_version_is_refused_and_left_as_it_is(written: Path) -> None:
    with sqlite3.connect(written / DATABASE_FILE) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99 is newer than this neurank's 4: upgrade neurank"):
        bm25(LocalStore(written), INDEX, "ranking", 1)
    with sqlite3.connect(written / DATABASE_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (99,)
