"""A process killed with SIGKILL while it writes, merges segments and saves its HNSW graph loses nothing."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import encoded, knn
from tests.stores.test_local_ann import APPROXIMATE, INDEX, graph_file, vectors

from neurank.errors import StoreError
from neurank.retrieval import TextQuery
from neurank.stores import LocalStore, scoring

SPEC = dataclasses.replace(APPROXIMATE, knn_approximate_threshold=0)


def _write_and_search(path: str, acknowledged: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Batches of 40, each followed by searches: every batch adds a segment (merging others) and grows the graph,
    saved once a twentieth of it is new."""
    store = LocalStore(Path(path))
    rows = vectors(100_000, seed=11)
    for first in range(0, rows.shape[0], 40):
        batch = [encoded(f"d{i}", f"text number {i}", embedding=rows[i].tolist()) for i in range(first, first + 40)]
        assert not store.upsert(INDEX, batch).failed
        acknowledged.put(first + 40)
        store.search(INDEX, [TextQuery("text", 5)])
        knn(store, INDEX, rows[first].tolist(), 5)


@pytest.mark.integration
@pytest.mark.parametrize("after_s", [0.8, 2.5])
def test_a_store_killed_mid_write_merge_or_save_opens_with_every_acknowledged_write(
    tmp_path: Path, after_s: float
) -> None:
    path = tmp_path / "store"
    LocalStore(path).create_index(INDEX, SPEC)
    context = multiprocessing.get_context("spawn")
    acknowledged = context.Queue()
    writer = context.Process(target=_write_and_search, args=(str(path), acknowledged))
    writer.start()
    assert acknowledged.get(timeout=120) == 40
    time.sleep(after_s)
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL
    written = 40
    while not acknowledged.empty():
        written = acknowledged.get()

    store = LocalStore(path)
    count = store.count(INDEX)
    assert count >= written and count % 40 == 0  # every acknowledged batch, and no half of one
    assert len(store.search(INDEX, [TextQuery("text", 10_000)])[0]) == min(count, 10_000)  # the result window
    stored = {doc.document.id: doc.embedding for doc in store.get(INDEX, [f"d{i}" for i in range(count)])}
    query = vectors(1, seed=12)[0]
    matrix = np.vstack(list(stored.values()))
    exact = scoring.knn_scores(matrix, query, SPEC.space_type, scoring.squared_norms(matrix))
    best = sorted(zip(stored, exact.tolist(), strict=True), key=lambda hit: -hit[1])[:10]
    assert knn(store, INDEX, query.tolist(), 10) == best
    assert graph_file(path).stat().st_size > 0


@pytest.mark.parametrize("content", [b"SQLite format 3\x00" + bytes(range(256)) * 20, b"{\"not\": \"a store\"}"])
def test_a_corrupted_or_foreign_database_file_is_refused_with_its_name(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "store").mkdir()
    database = tmp_path / "store" / "neurank.sqlite3"
    database.write_bytes(content)
    store = LocalStore(tmp_path / "store")
    for attempt in (lambda: store.search(INDEX, [TextQuery("text", 1)]), lambda: store.create_index(INDEX, SPEC)):
        with pytest.raises(StoreError, match=f"{database} is not a readable neurank store .*ingest again"):
            attempt()
