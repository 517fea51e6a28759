"""Past `knn_approximate_threshold` vectors, the local store searches its HNSW graph and scores exactly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import encoded, knn

from neurank.errors import ConfigError, StoreError
from neurank.index_spec import IndexSpec
from neurank.stores import LocalStore
from neurank.stores.local import ann
from neurank.stores.local.store import GRAPHS_FOLDER

INDEX = "ann"
EXACT = IndexSpec(dense_dimension=8)
APPROXIMATE = dataclasses.replace(EXACT, knn_approximate_threshold=10)


def vectors(count: int, seed: int = 3) -> np.ndarray:
    """Clustered like embeddings: 12 centres, each document near one."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, 8))
    return (centres[rng.integers(0, 12, count)] + 0.3 * rng.standard_normal((count, 8))).astype(np.float32)


def filled(path: Path, spec: IndexSpec, count: int = 300) -> LocalStore:
    store = LocalStore(path)
    store.create_index(INDEX, spec)
    store.upsert(INDEX, [encoded(f"d{i}", embedding=v.tolist()) for i, v in enumerate(vectors(count))])
    return store


def graph_file(path: Path) -> Path:
    (found,) = (path / GRAPHS_FOLDER / INDEX).glob("*.faiss")
    return found


@pytest.mark.parametrize("space_type", ["cosinesimil", "innerproduct", "l2"])
def test_the_graph_finds_the_exact_top_k_with_exact_scores(tmp_path: Path, space_type: str) -> None:
    exact = filled(tmp_path / "exact", dataclasses.replace(EXACT, space_type=space_type))
    approximate = filled(tmp_path / "approximate", dataclasses.replace(APPROXIMATE, space_type=space_type))
    for query in vectors(20, seed=9):
        assert knn(approximate, INDEX, query.tolist(), 10) == knn(exact, INDEX, query.tolist(), 10)
    assert graph_file(tmp_path / "approximate").stat().st_size > 0
    assert not (tmp_path / "exact" / GRAPHS_FOLDER).exists()


def test_deleted_and_replaced_vectors_are_masked(tmp_path: Path) -> None:
    store = filled(tmp_path / "store", APPROXIMATE)
    query = vectors(1, seed=9)[0].tolist()
    first, second = (doc_id for doc_id, _ in knn(store, INDEX, query, 2))
    store.delete(INDEX, [first])
    store.upsert(INDEX, [encoded(second, embedding=[-x for x in query])])
    hits = [doc_id for doc_id, _ in knn(store, INDEX, query, 300)]
    assert first not in hits and hits[-1] == second and len(hits) == 299


def test_a_new_process_loads_the_saved_graph_and_adds_the_rows_written_since(tmp_path: Path) -> None:
    store = filled(tmp_path / "store", APPROXIMATE)
    query = vectors(1, seed=9)[0].tolist()
    knn(store, INDEX, query, 5)
    saved = graph_file(tmp_path / "store").read_bytes()
    store.upsert(INDEX, [encoded("new", embedding=query)])
    reopened = LocalStore(tmp_path / "store")
    assert knn(reopened, INDEX, query, 1) == [("new", 1.0)]
    assert graph_file(tmp_path / "store").read_bytes() == saved  # one new row is not worth a save


def test_a_mapped_graph_offers_new_rows_as_pending_until_they_pass_a_share_then_reads_itself_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "_PENDING_MIN", 4)
    monkeypatch.setattr(ann, "_SAVE_SHARE", 1000)  # the share would be 300 // 20 = 15 rows
    approximate, exact = filled(tmp_path / "approximate", APPROXIMATE), filled(tmp_path / "exact", EXACT)
    queries = vectors(10, seed=9)
    knn(approximate, INDEX, queries[0].tolist(), 5)  # builds and saves the graph
    reopened = LocalStore(tmp_path / "approximate")

    def graph() -> ann.HnswGraph:
        found = reopened._searchers[INDEX].graph
        assert found is not None
        return found

    extra = vectors(6, seed=11)
    for count, vector in enumerate(extra, start=1):
        for store in (reopened, exact):
            store.upsert(INDEX, [encoded(f"new{count}", embedding=vector.tolist())])
        for query in (vector, *queries):
            assert knn(reopened, INDEX, query.tolist(), 10) == knn(exact, INDEX, query.tolist(), 10)
        assert graph()._mapped == (count <= 4)  # past 4 pending rows the graph is read in and they are added
        assert graph()._pending.size == (count if count <= 4 else 0)


def test_a_corrupted_or_foreign_graph_file_is_refused_with_its_name(tmp_path: Path) -> None:
    store = filled(tmp_path / "store", APPROXIMATE)
    query = vectors(1, seed=9)[0].tolist()
    knn(store, INDEX, query, 5)
    path = graph_file(tmp_path / "store")
    other = filled(tmp_path / "other", dataclasses.replace(APPROXIMATE, hnsw_m=8))
    knn(other, INDEX, query, 5)
    path.write_bytes(graph_file(tmp_path / "other").read_bytes())
    with pytest.raises(StoreError, match=f"{path} was built for another index .* delete it"):
        knn(LocalStore(tmp_path / "store"), INDEX, query, 5)
    path.write_bytes(b"not a graph")
    with pytest.raises(StoreError, match=f"{path} is not a faiss HNSW graph .* delete it"):
        knn(LocalStore(tmp_path / "store"), INDEX, query, 5)
    path.unlink()
    assert len(knn(LocalStore(tmp_path / "store"), INDEX, query, 5)) == 5


def test_dropping_the_index_removes_its_graph(tmp_path: Path) -> None:
    store = filled(tmp_path / "store", APPROXIMATE)
    knn(store, INDEX, vectors(1)[0].tolist(), 5)
    assert store.drop_index(INDEX)
    assert not (tmp_path / "store" / GRAPHS_FOLDER / INDEX).exists()


def test_the_threshold_must_be_a_count() -> None:
    with pytest.raises(ConfigError, match="knn_approximate_threshold must be an integer >= 0, got -1"):
        IndexSpec(knn_approximate_threshold=-1)
