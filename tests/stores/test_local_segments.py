"""The local store's segments: however the corpus was written, scores are the same to the last bit."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import encoded

from neurank.index_spec import IndexSpec
from neurank.retrieval import ScoredIds, SparseQuery, SubQuery, TextQuery, VectorQuery
from neurank.stores import LocalStore
from neurank.stores.local.segment import MAX_SEGMENTS, MERGE_RATIO
from neurank.stores.protocol import EncodedDocument

INDEX = "segments"
SPEC = IndexSpec(dense_dimension=8, bm25_k1=1.2, bm25_b=0.75)
WORDS = ["neural", "ranking", "search", "index", "segment", "merge", "score", "query", "document", "lucene", "vector",
         "sparse", "dense", "token", "weight", "length", "norm", "cluster", "shard", "replica", "refresh", "commit",
         "write", "delete"]


def corpus(count: int = 210) -> list[EncodedDocument]:
    rng = np.random.default_rng(5)
    documents = []
    for number in range(count):
        words = rng.choice(len(WORDS), int(rng.integers(1, 40)), p=np.linspace(2, 1, len(WORDS)) / 36.0)
        text = " ".join(WORDS[i] for i in words)
        weights = {WORDS[i]: float(w) for i, w in zip(rng.choice(len(WORDS), 5, replace=False),
                                                      rng.uniform(0.01, 4, 5), strict=True)}
        documents.append(encoded(f"d{number}", text, sparse={"splade": weights},
                                 embedding=rng.standard_normal(8).tolist()))
    return documents


QUERIES: list[SubQuery] = [
    TextQuery("neural ranking", 50), TextQuery("segment segment merge lucene", 50), TextQuery("norm", 500),
    SparseQuery("splade", {"query": 1.5, "token": 0.25, "shard": 3.0}, 50),
    VectorQuery(np.linspace(-1, 1, 8, dtype=np.float32), 50),
]


def written(path: Path, batches: int) -> tuple[LocalStore, list[ScoredIds]]:
    """The corpus in `batches` writes (a search after each makes it a segment), then the same replacements and
    deletes; the answers to QUERIES."""
    store = LocalStore(path)
    store.create_index(INDEX, SPEC)
    documents = corpus()
    for chunk in np.array_split(np.arange(len(documents)), batches):
        store.upsert(INDEX, [documents[i] for i in chunk])
        store.search(INDEX, QUERIES[:1])
    store.upsert(INDEX, [encoded("d3", "merge merge merge", embedding=[1.0] * 8), documents[100]])
    store.delete(INDEX, ["d7", "d150", "d209"])
    return store, store.search(INDEX, QUERIES)


def test_one_seven_or_fifty_write_batches_give_the_same_scores_to_the_last_bit(tmp_path: Path) -> None:
    _, expected = written(tmp_path / "one", 1)
    assert all(expected) and len(expected[2]) > 50  # "norm": many documents, many lengths
    for batches in (7, 50):
        store, answers = written(tmp_path / f"b{batches}", batches)
        assert answers == expected  # ids, order and float scores all equal
        assert 1 < len(store._searchers[INDEX].segments) < batches


def test_a_new_write_adds_a_segment_and_merges_keep_few_segments(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    documents = corpus()
    store.upsert(INDEX, documents[:150])
    store.search(INDEX, QUERIES[:1])
    first = store._searchers[INDEX].segments[0]
    for document in documents[150:]:
        store.upsert(INDEX, [document])
        store.search(INDEX, QUERIES[:1])
        sizes = [len(segment) for segment in store._searchers[INDEX].segments]
        assert all(older > MERGE_RATIO * newer for older, newer in itertools.pairwise(sizes))
        assert len(sizes) <= MAX_SEGMENTS  # single-document writes would leave five here without the bound
    assert store._searchers[INDEX].segments[0] is first and sum(sizes) == len(documents)


@pytest.mark.parametrize(("deleted", "sizes"), [(1, [210, 1]), (127, [210])])
def test_masked_rows_leave_the_statistics_and_merges_drop_them(tmp_path: Path, deleted: int, sizes: list[int]) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    documents = corpus()
    store.upsert(INDEX, documents)
    store.search(INDEX, QUERIES[:1])
    store.delete(INDEX, [f"d{i}" for i in range(deleted)])
    fresh = LocalStore(tmp_path / "fresh")
    fresh.create_index(INDEX, SPEC)
    fresh.upsert(INDEX, documents[deleted:])
    assert store.search(INDEX, QUERIES) == fresh.search(INDEX, QUERIES)
    assert sum(len(segment) for segment in store._searchers[INDEX].segments) == len(documents)
    store.upsert(INDEX, documents[:deleted])  # 127 rows outweigh the 83 live ones: both merge, masked rows go
    fresh.upsert(INDEX, documents[:deleted])
    assert store.search(INDEX, QUERIES) == fresh.search(INDEX, QUERIES)
    assert [len(segment) for segment in store._searchers[INDEX].segments] == sizes


def test_deletes_and_inserts_by_another_writer_between_two_searches_are_masked_exactly(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_index(INDEX, SPEC)
    documents = corpus()
    store.upsert(INDEX, documents[:100])
    store.search(INDEX, QUERIES[:1])
    other = LocalStore(tmp_path / "store")  # another process's writes: this store learns of them by searching
    fresh = LocalStore(tmp_path / "fresh")
    fresh.create_index(INDEX, SPEC)
    fresh.upsert(INDEX, documents[:5] + documents[6:100])
    other.delete(INDEX, ["d5"])
    for batch in (documents[100:101], documents[101:104], documents[104:105]):  # a delete, then inserts only
        other.upsert(INDEX, batch)
        fresh.upsert(INDEX, batch)
        assert store.search(INDEX, QUERIES) == fresh.search(INDEX, QUERIES)
    other.upsert(INDEX, [documents[0]])  # a replacement: the old row goes, the new one comes last
    fresh.upsert(INDEX, [documents[0]])
    assert store.search(INDEX, QUERIES) == fresh.search(INDEX, QUERIES)
    twice = encoded("d1", "refresh commit", embedding=[0.5] * 8)
    other.upsert(INDEX, [documents[1], twice])  # one batch writes d1 twice: the first of its rows goes too
    fresh.upsert(INDEX, [documents[1], twice])
    assert store.search(INDEX, QUERIES) == fresh.search(INDEX, QUERIES)
    hits = store.search(INDEX, [TextQuery("refresh commit", 500)])[0]
    assert [doc_id for doc_id, _ in hits].count("d1") == 1
    assert int(np.count_nonzero(store._searchers[INDEX].live_slots)) == store.count(INDEX)
