"""LocalStore: the Store contract, exact BM25, refresh on write, concurrent writers, `open_store`."""

from __future__ import annotations

import math
import multiprocessing
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import BM25_CORPUS, INDEX, SPEC, StoreContractTests, bm25, encoded, ids, knn, sparse

from neurank.config import Settings
from neurank.errors import ConfigError, IndexNotFoundError, InputError, MissingExtraError, PlanError, StoreError
from neurank.stores import LocalStore, open_store
from neurank.stores.protocol import Store


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def lucene_bm25(
    freq: int, dl: int, df: int, n: int, sum_dl: int, k1: float, b: float, boost: float = 1.0
) -> float:
    """SCORING.md §1 by hand, in Lucene's float32 order; `dl` is already the decoded norm (exact <= 40)."""
    f32 = np.float32
    idf = f32(math.log(1 + (n - df + 0.5) / (df + 0.5)))
    avgdl = f32(sum_dl / n)
    norm_inverse = f32(1) / (f32(k1) * ((f32(1) - f32(b)) + f32(b) * f32(dl) / avgdl))
    weight = f32(boost) * idf
    return float(weight - weight / (f32(1) + f32(freq) * norm_inverse))


class TestLocalStoreContract(StoreContractTests):
    def test_bm25_values(self, store: LocalStore, bm25_corpus: str) -> None:
        # Terms per document after the english analyzer: both 4, ranking 6 (rank x4), once 8, none 5.
        stats = {"n": 4, "sum_dl": 23, "k1": 1.2, "b": 0.75}
        neural = lucene_bm25(1, 4, df=1, **stats)
        expected = {
            "both": float(np.float32(neural + lucene_bm25(1, 4, df=3, **stats))),
            "ranking": lucene_bm25(4, 6, df=3, **stats),
            "once": lucene_bm25(1, 8, df=3, **stats),
        }
        assert dict(bm25(store, bm25_corpus, "neural ranking", 10)) == expected
        assert store.explain_bm25(bm25_corpus, "neural ranking", "both") == {
            "neural": neural,
            "rank": lucene_bm25(1, 4, df=3, **stats),
        }


def test_construction_does_no_io(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    assert isinstance(store, Store)
    assert store.url == f"local:{tmp_path / 'store'}"
    assert not (tmp_path / "store").exists()


def test_bm25_length_goes_through_the_one_byte_norm(store: LocalStore) -> None:
    """A 45-term document is scored as if it had 44 terms (SmallFloat, SCORING.md §1)."""
    long_text = "alpha " + " ".join(f"word{i}" for i in range(44))
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded("long", long_text), encoded("short", "alpha beta")])
    stats = {"n": 2, "sum_dl": 47, "k1": 1.2, "b": 0.75}
    assert dict(bm25(store, INDEX, "alpha", 10)) == {
        "short": lucene_bm25(1, 2, df=2, **stats),
        "long": lucene_bm25(1, 44, df=2, **stats),
    }


def test_a_repeated_query_term_is_one_clause_boosted_by_its_count(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded(doc_id, text) for doc_id, text in BM25_CORPUS.items()])
    stats = {"n": 4, "sum_dl": 23, "k1": 1.2, "b": 0.75}
    hits = dict(bm25(store, INDEX, "ranking rankings ranked", 10))
    assert hits["ranking"] == lucene_bm25(4, 6, df=3, boost=3.0, **stats)


def test_documents_without_terms_do_not_count_in_n(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded("d1", "alpha beta"), encoded("d2", "gamma"), encoded("stop", "the and of")])
    stats = {"n": 2, "sum_dl": 3, "k1": 1.2, "b": 0.75}
    assert bm25(store, INDEX, "alpha", 10) == [("d1", lucene_bm25(1, 2, df=1, **stats))]


def test_ties_keep_insertion_order_and_a_rewrite_moves_to_the_end(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded(doc_id, "same words") for doc_id in ("c", "a", "b")])
    assert ids(bm25(store, INDEX, "words", 10)) == ["c", "a", "b"]
    assert ids(bm25(store, INDEX, "words", 2)) == ["c", "a"]
    store.upsert(INDEX, [encoded("c", "same words")])
    assert ids(bm25(store, INDEX, "words", 10)) == ["a", "b", "c"]


def test_the_searcher_refreshes_after_writes_and_deletes(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded("d1", "alpha", sparse={"splade": {"alpha": 1.0}}, embedding=[1, 0, 0])])
    assert ids(bm25(store, INDEX, "alpha beta", 10)) == ["d1"]
    store.upsert(INDEX, [encoded("d2", "beta", sparse={"splade": {"beta": 2.0}}, embedding=[0, 1, 0])])
    assert ids(bm25(store, INDEX, "alpha beta", 10)) == ["d1", "d2"]
    assert ids(sparse(store, INDEX, "splade", {"beta": 1.0}, 10)) == ["d2"]
    assert ids(knn(store, INDEX, np.array([0, 1, 0]), 10)) == ["d2", "d1"]
    store.delete(INDEX, ["d2"])
    assert ids(bm25(store, INDEX, "alpha beta", 10)) == ["d1"]
    assert sparse(store, INDEX, "splade", {"beta": 1.0}, 10) == []
    assert ids(knn(store, INDEX, np.array([0, 1, 0]), 10)) == ["d1"]


def test_another_store_object_sees_the_writes(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded("d1", "alpha")])
    assert ids(bm25(store, INDEX, "alpha", 10)) == ["d1"]
    LocalStore(store.path).upsert(INDEX, [encoded("d2", "alpha alpha")])
    assert ids(bm25(store, INDEX, "alpha", 10)) == ["d2", "d1"]


def test_a_write_that_changes_nothing_keeps_the_generation(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    before = store.generation(INDEX)
    store.upsert(INDEX, [encoded("bad", sparse={"splade": {"t": 0.0}})])
    store.delete(INDEX, ["missing"])
    assert store.generation(INDEX) == before


def test_a_recreated_index_never_reuses_a_generation(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, [encoded("d1", "alpha")])
    assert ids(bm25(store, INDEX, "alpha", 10)) == ["d1"]
    old = store.generation(INDEX)
    LocalStore(store.path).drop_index(INDEX)
    LocalStore(store.path).create_index(INDEX, SPEC)
    assert store.generation(INDEX) != old
    assert bm25(store, INDEX, "alpha", 10) == []


def test_failure_reasons_read_like_opensearch(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    result = store.upsert(
        INDEX,
        [
            encoded("zero", sparse={"splade": {"tok": 0.0}}),
            encoded("field", sparse={"colbert": {"tok": 1.0}}),
            encoded("dim", embedding=[1.0, 2.0]),
            encoded("cos", embedding=[0.0, 0.0, 0.0]),
        ],
    )
    reasons = {failure.id: failure.reason for failure in result.failed}
    assert "featureValue must be a positive normal float, got: 0.0 for feature [tok]" in reasons["zero"]
    assert "[colbert] is not a rank_features field" in reasons["field"]
    assert "Vector dimension mismatch. Expected: 3, Given: 2" in reasons["dim"]
    assert "zero vector is not supported when space type is [cosinesimil]" in reasons["cos"]


def test_queries_opensearch_would_refuse_raise(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    with pytest.raises(PlanError, match="not a sparse field"):
        sparse(store, INDEX, "colbert", {"t": 1.0}, 10)
    with pytest.raises(InputError, match=r"weights must be in \(0, 64\]"):
        sparse(store, INDEX, "splade", {"t": 65.0}, 10)
    with pytest.raises(StoreError, match="dimension mismatch"):
        knn(store, INDEX, np.ones(4), 10)
    with pytest.raises(StoreError, match="zero vector"):
        knn(store, INDEX, np.zeros(3), 10)


def test_index_names_follow_opensearch_rules(store: LocalStore) -> None:
    for name in ("Upper", "_underscore", "has space", "a/b", ".."):
        with pytest.raises(StoreError, match="invalid index name"):
            store.create_index(name, SPEC)


def test_generation_changes_on_every_write(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    seen = [store.generation(INDEX)]
    store.upsert(INDEX, [encoded("d1")])
    seen.append(store.generation(INDEX))
    store.upsert(INDEX, [encoded("d1", "again")])
    seen.append(store.generation(INDEX))
    store.delete(INDEX, ["d1"])
    seen.append(store.generation(INDEX))
    assert len(set(seen)) == len(seen)


def test_reading_a_folder_without_a_store_creates_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "typo" / "store")
    assert store.index_spec(INDEX) is None
    with pytest.raises(IndexNotFoundError):
        bm25(store, INDEX, "alpha", 10)
    with pytest.raises(IndexNotFoundError):
        store.count(INDEX)
    assert not (tmp_path / "typo").exists()
    store.create_index(INDEX, SPEC)
    assert store.count(INDEX) == 0 and (tmp_path / "typo" / "store").is_dir()


def _write_range(path: str, start: int, stop: int) -> None:
    """Many small transactions, so that the two writers contend for the lock."""
    store = LocalStore(Path(path))
    for first in range(start, stop, 3):
        batch = [encoded(f"d{i}", f"text {i}") for i in range(first, min(first + 3, stop))]
        assert not store.upsert(INDEX, batch).failed


def test_two_processes_writing_at_once_lose_nothing(store: LocalStore) -> None:
    store.create_index(INDEX, SPEC)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_range, args=(str(store.path), i * 300, (i + 1) * 300)) for i in (0, 1)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert store.count(INDEX) == 600
    assert len(bm25(store, INDEX, "text", 1000)) == 600


def test_open_store_local(tmp_path: Path) -> None:
    store = open_store(Settings(), f"local:{tmp_path / 'store'}")
    assert isinstance(store, LocalStore)
    assert store.path == tmp_path / "store"


@pytest.mark.parametrize("url", ["local:", "ftp://host", "/some/path", "opensearch"])
def test_open_store_refuses_other_urls(url: str) -> None:
    with pytest.raises(ConfigError, match=r"local:PATH .* http\(s\)://host:port"):
        open_store(Settings(), url)


def test_open_store_http_needs_the_opensearch_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "neurank.stores.opensearch", None)
    with pytest.raises(ConfigError, match="no OpenSearch store"):
        open_store(Settings(engine="opensearch"), "http://localhost:9200")


def test_open_store_http_builds_the_opensearch_store(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("neurank.stores.opensearch")
    module.OpenSearchStore = lambda url, settings: ("opensearch", url)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "neurank.stores.opensearch", module)
    assert open_store(Settings(engine="opensearch"), "https://search:9200") == ("opensearch", "https://search:9200")


def test_open_store_http_names_the_extra_when_the_client_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'opensearchpy'", name="opensearchpy")

    monkeypatch.setattr("neurank.stores.importlib.import_module", import_module)
    with pytest.raises(MissingExtraError, match=r"neurank\[opensearch\]"):
        open_store(Settings(engine="opensearch"), "http://localhost:9200")


def test_a_new_connection_to_a_ready_store_reads_while_another_process_writes(tmp_path: Path) -> None:
    """Opening a connection writes nothing once the schema is in place, so it never waits on a writer's lock."""
    import sqlite3

    from neurank.stores.local import DATABASE_FILE

    LocalStore(tmp_path / "store").create_index(INDEX, SPEC)
    writer = sqlite3.connect(tmp_path / "store" / DATABASE_FILE, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert LocalStore(tmp_path / "store", busy_timeout_s=0.2).count(INDEX) == 0
    finally:
        writer.execute("ROLLBACK")


def test_open_store_takes_the_busy_timeout_from_settings(tmp_path: Path) -> None:
    store = open_store(Settings(local_busy_timeout_s=2.5), f"local:{tmp_path}")
    assert isinstance(store, LocalStore) and store.busy_timeout_s == 2.5
