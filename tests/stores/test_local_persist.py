"""Persisted, memory-mapped segments: a new process maps them instead of parsing stored rows, a crash at any step
of persisting or merging loses no acknowledged write, and a damaged or foreign file is detected and rebuilt."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import encoded
from tests.stores.test_local_segments import INDEX, QUERIES, SPEC, corpus, written

from neurank.errors import StoreError
from neurank.retrieval import ScoredIds, TextQuery
from neurank.stores import LocalStore
from neurank.stores.local import manifest
from neurank.stores.local.manifest import MANIFEST
from neurank.stores.local.persist import CRASH_POINT_VARIABLE
from neurank.stores.local.store import SEGMENTS_FOLDER

SMALL = 16
"""Segments of at least this many rows are persisted in these tests (the corpus has 210 documents)."""


@pytest.fixture(autouse=True)
def persist_small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "PERSIST_MIN_ROWS", SMALL)


def folder_of(path: Path) -> Path:
    (folder,) = (path / SEGMENTS_FOLDER / INDEX).iterdir()
    return folder


def listed(path: Path) -> list[str]:
    return list(json.loads((folder_of(path) / MANIFEST).read_text())["segments"])


def unpersisted(store: LocalStore) -> int:
    """The live rows of the segments that live in memory only: what a new process reads from SQLite."""
    index = store._searchers[INDEX]
    return sum(int(np.count_nonzero(live)) for segment, live in zip(index.segments, index.live, strict=True)
               if segment.file is None)


def rows_read(store: LocalStore) -> int:
    return next(iter(store._caches.values())).rows_read


def _searched_in_a_new_process(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    manifest.PERSIST_MIN_ROWS = SMALL
    store = LocalStore(Path(path))
    answers = store.search(INDEX, QUERIES)
    out.put((answers, rows_read(store), [segment.file for segment in store._searchers[INDEX].segments]))


def test_a_new_process_maps_the_persisted_segments_and_reads_only_newer_rows(tmp_path: Path) -> None:
    _, expected = written(tmp_path / "one", 1)
    store, answers = written(tmp_path / "seven", 7)
    assert answers == expected
    files = listed(tmp_path / "seven")
    assert files and all((folder_of(tmp_path / "seven") / name).is_file() for name in files)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_searched_in_a_new_process, args=(str(tmp_path / "seven"), out))
    child.start()
    child_answers, child_rows_read, segment_files = out.get(timeout=120)
    child.join(timeout=30)
    assert child_answers == expected  # ids, order and float scores, from mapped files
    # the rows the files cover were not parsed: only those of the small newest segment were read from SQLite
    assert segment_files[: len(files)] == files and child_rows_read == unpersisted(store) < 10
    store.upsert(INDEX, [corpus()[5]])  # a replacement: one new row, one masked in a mapped segment
    after = store.search(INDEX, QUERIES)
    fresh = LocalStore(tmp_path / "seven")
    assert fresh.search(INDEX, QUERIES) == after
    assert rows_read(fresh) == unpersisted(store)


def test_a_row_deleted_after_its_segment_was_written_is_masked_in_a_new_process(tmp_path: Path) -> None:
    written(tmp_path / "seven", 7)
    LocalStore(tmp_path / "seven").delete(INDEX, ["d11"])  # no search after it: the files still hold the row
    reference = LocalStore(tmp_path / "reference")
    reference.create_index(INDEX, SPEC)
    documents = corpus()
    reference.upsert(INDEX, [doc for doc in documents if doc.document.id != "d11"])
    reference.upsert(INDEX, [encoded("d3", "merge merge merge", embedding=[1.0] * 8), documents[100]])
    reference.delete(INDEX, ["d7", "d150", "d209"])
    assert LocalStore(tmp_path / "seven").search(INDEX, QUERIES) == reference.search(INDEX, QUERIES)


def _write_until_killed(path: str, step: str, acknowledged: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Batches of 30, each followed by a search that persists or merges segments; in the third (which merges the
    60 rows persisted so far with its 30), the process kills itself with SIGKILL at `step` of persisting."""
    manifest.PERSIST_MIN_ROWS = SMALL
    store = LocalStore(Path(path))
    documents = corpus()
    for number, first in enumerate(range(0, len(documents), 30)):
        if number == 2:
            os.environ[CRASH_POINT_VARIABLE] = step
        assert not store.upsert(INDEX, documents[first : first + 30]).failed
        acknowledged.put(first + 30)
        store.search(INDEX, QUERIES[:1])


@pytest.mark.integration
@pytest.mark.parametrize("step", ["segment-written", "segment-renamed", "manifest-written", "manifest-renamed",
                                  "collect"])
def test_a_process_killed_while_it_persists_or_merges_leaves_every_acknowledged_write(
    tmp_path: Path, step: str
) -> None:
    path = tmp_path / "store"
    LocalStore(path).create_index(INDEX, SPEC)
    context = multiprocessing.get_context("spawn")
    acknowledged = context.Queue()
    writer = context.Process(target=_write_until_killed, args=(str(path), step, acknowledged))
    writer.start()
    writer.join(timeout=120)
    assert writer.exitcode == -signal.SIGKILL
    count = 0
    while not acknowledged.empty():
        count = acknowledged.get()
    assert count == 90  # killed in the search after the third batch

    reference = LocalStore(tmp_path / "reference")
    reference.create_index(INDEX, SPEC)
    reference.upsert(INDEX, corpus()[:count])
    store = LocalStore(path)
    assert store.count(INDEX) == count
    assert store.search(INDEX, QUERIES) == reference.search(INDEX, QUERIES)
    folder = folder_of(path)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*listed(path), MANIFEST, "lock"])


@pytest.mark.parametrize("damage", ["truncated", "foreign", "manifest"])
def test_a_damaged_or_foreign_file_is_named_and_its_rows_are_read_again(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, expected = written(tmp_path / "store", 7)
    folder = folder_of(tmp_path / "store")
    victim = folder / listed(tmp_path / "store")[-1]
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        message = "is truncated or damaged"
    elif damage == "foreign":
        other = LocalStore(tmp_path / "other")
        other.create_index("other", SPEC)
        other.upsert("other", corpus()[:40])
        other.search("other", QUERIES[:1])
        (foreign,) = [p for p in (tmp_path / "other" / SEGMENTS_FOLDER / "other").rglob("*.seg")]
        shutil.copyfile(foreign, victim)
        message = "belongs to another index"
    else:
        victim = folder / MANIFEST
        victim.write_text('{"format": 1, "segments": ')
        message = "cannot be read"
    with caplog.at_level(logging.WARNING, logger=manifest.__name__):
        store = LocalStore(tmp_path / "store")
        assert store.search(INDEX, QUERIES) == expected
    assert f"{victim} {message}" in caplog.text
    assert rows_read(store) > unpersisted(store)
    again = LocalStore(tmp_path / "store")  # rebuilt and persisted anew: the next process maps it
    assert again.search(INDEX, QUERIES) == expected
    assert rows_read(again) == unpersisted(store)


def test_a_store_whose_segment_folder_cannot_be_made_names_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    store.upsert(INDEX, corpus()[:40])
    (tmp_path / "store" / SEGMENTS_FOLDER).write_text("in the way")
    with pytest.raises(StoreError, match=f"{tmp_path / 'store' / SEGMENTS_FOLDER}.* cannot write its segment files"):
        store.search(INDEX, [TextQuery("neural", 5)])


def test_mapped_segments_score_exactly_as_segments_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest, "PERSIST_MIN_ROWS", 10**9)
    _, in_memory = written(tmp_path / "memory", 7)
    assert not (tmp_path / "memory" / SEGMENTS_FOLDER).exists()
    monkeypatch.setattr(manifest, "PERSIST_MIN_ROWS", 1)
    _, mapped = written(tmp_path / "mapped", 7)
    answers: list[ScoredIds] = mapped
    assert answers == in_memory and np.all([len(a) for a in answers])
