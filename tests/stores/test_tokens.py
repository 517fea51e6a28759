"""Token-vector records (SCORING.md §7): each compression's size, round trip and error, and MaxSim by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from tests.stores.contract import LATE_CORPUS, LATE_QUERY, encoded, late_interaction

from neurank.index_spec import TOKEN_COMPRESSIONS, IndexSpec, TokenCompression
from neurank.stores import LocalStore, scoring
from neurank.stores.local.store import DATABASE_FILE
from neurank.stores.tokens import BadTokenVectors, check_token_vectors, decode, encode, from_blob, record_size


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize(("compression", "size"), [("float16", 256), ("int8", 132), ("binary", 16)])
def test_record_size_for_128_dimensions(compression: TokenCompression, size: int) -> None:
    assert record_size(compression, 128) == size
    assert encode(unit_rows(3, 128), compression).shape == (3, size)


def test_float16_round_trip_is_half_precision() -> None:
    rows = unit_rows(20, 96)
    np.testing.assert_array_equal(decode(encode(rows, "float16"), "float16", 96), rows.astype(np.float16))


def test_int8_keeps_a_scale_per_row() -> None:
    rows = unit_rows(20, 96) * np.float32(3.0)
    rows[0] = 0.0  # a zero row has scale 0 and decodes to zeros, without dividing by zero
    decoded = decode(encode(rows, "int8"), "int8", 96)
    scale = np.abs(rows).max(axis=1, keepdims=True) / 127
    assert (np.abs(decoded - rows) <= scale / 2 + 1e-6).all()
    np.testing.assert_array_equal(decoded[0], np.zeros(96, np.float32))
    np.testing.assert_allclose(np.abs(decoded[1:]).max(axis=1), np.abs(rows[1:]).max(axis=1), rtol=1e-6)


def test_binary_keeps_the_sign_of_each_dimension() -> None:
    rows = np.array([[0.5, -0.1, 0.0, 2.0, -3.0, 0.1, 0.2, -0.2, 0.3]], np.float32)
    records = encode(rows, "binary")
    assert records.tolist() == [[0b10010110, 0b10000000]]
    np.testing.assert_array_equal(decode(records, "binary", 9), [[1, -1, -1, 1, -1, 1, 1, -1, 1]])


@pytest.mark.parametrize("compression", TOKEN_COMPRESSIONS)
def test_records_survive_a_blob(compression: TokenCompression) -> None:
    records = encode(unit_rows(5, 33), compression)
    np.testing.assert_array_equal(from_blob(records.tobytes(), compression, 33), records)


def test_check_token_vectors() -> None:
    assert check_token_vectors(np.zeros((0, 4)), 4) is None
    assert check_token_vectors([], 4) is None
    assert check_token_vectors([[1, 2, 3, 4]], 4).dtype == np.float32  # type: ignore[union-attr]
    with pytest.raises(BadTokenVectors, match="Expected: 4, Given: 3"):
        check_token_vectors([[1, 2, 3]], 4)
    with pytest.raises(BadTokenVectors, match=r"NaN or infinite \(row 1\)"):
        check_token_vectors([[1, 2, 3, 4], [1, float("nan"), 3, 4]], 4)
    with pytest.raises(BadTokenVectors, match="NaN or infinite"):
        check_token_vectors([[1e39, 0, 0, 0]], 4)
    with pytest.raises(BadTokenVectors, match="without colbert_dimension"):
        check_token_vectors([[1, 2, 3, 4]], None)
    with pytest.raises(BadTokenVectors, match="matrix of numbers"):
        check_token_vectors([["a", "b", "c", "d"]], 4)


def test_maxsim_by_hand() -> None:
    documents = [np.array(LATE_CORPUS[doc_id], np.float32) for doc_id in ("a", "b", "c")]
    np.testing.assert_array_equal(scoring.maxsim(np.array(LATE_QUERY, np.float32), documents), [1.5, 2.0, -1.5])
    with pytest.raises(ValueError, match="at least one token vector"):
        scoring.maxsim(np.array(LATE_QUERY, np.float32), [np.zeros((0, 4), np.float32)])


def test_maxsim_sums_in_query_row_order_in_float32() -> None:
    query = np.array([[1.0], [1e-8], [-1.0]], np.float32)
    # float32: (1 + 1e-8) rounds to 1, then 1 - 1 = 0; a float64 sum or another order would give 1e-8.
    assert scoring.maxsim(query, [np.array([[1.0]], np.float32)])[0] == np.float32(0.0)


@pytest.mark.parametrize("compression", TOKEN_COMPRESSIONS)
def test_local_store_scores_the_decoded_records(tmp_path: Path, compression: TokenCompression) -> None:
    store = LocalStore(tmp_path / "store")
    store.create_index("late", IndexSpec(colbert_dimension=16, token_compression=compression))
    documents = {f"d{i}": unit_rows(3 + i, 16, seed=i) for i in range(6)}
    store.upsert("late", [encoded(doc_id, token_vectors=rows) for doc_id, rows in documents.items()])
    query = unit_rows(4, 16, seed=99)
    decoded = {doc_id: decode(encode(rows, compression), compression, 16) for doc_id, rows in documents.items()}
    expected = scoring.maxsim(query, list(decoded.values()))
    hits = late_interaction(store, "late", query, list(documents), 10)
    assert dict(hits) == pytest.approx(dict(zip(documents, expected.tolist(), strict=True)), abs=0)
    stored = store.get("late", ["d2"])[0].token_vectors
    np.testing.assert_array_equal(stored, decoded["d2"])


def test_a_store_of_schema_version_1_gains_the_tokens_column(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = LocalStore(folder)
    store.create_index("old", IndexSpec())
    store.upsert("old", [encoded("kept")])
    with sqlite3.connect(folder / DATABASE_FILE) as db:  # the table as version 1 made it
        db.execute("ALTER TABLE documents DROP COLUMN tokens")
        db.execute("PRAGMA user_version = 1")
    reopened = LocalStore(folder)
    assert [doc.document.id for doc in reopened.get("old", ["kept"])] == ["kept"]
    reopened.create_index("late", IndexSpec(colbert_dimension=4))
    assert reopened.upsert("late", [encoded("b", token_vectors=LATE_CORPUS["b"])]).written == 1
    assert late_interaction(reopened, "late", LATE_QUERY, ["b"], 1) == [("b", 2.0)]


def test_rebuilds_after_writes_and_deletes_score_the_current_vectors(tmp_path: Path) -> None:
    """Cached rows point into the previous build's matrix; the next build must still read each one's own rows."""
    store = LocalStore(tmp_path / "store")
    store.create_index("late", IndexSpec(colbert_dimension=4))
    every = ["a", "b", "c", "d"]
    store.upsert("late", [encoded(doc_id, token_vectors=LATE_CORPUS[doc_id]) for doc_id in ("a", "b", "c")])
    assert late_interaction(store, "late", LATE_QUERY, every, 10) == [("b", 2.0), ("a", 1.5), ("c", -1.5)]
    store.upsert("late", [encoded("d", token_vectors=[[0.0, 0.0, 0.0, 1.0]]),
                          encoded("b", token_vectors=[[0.0, 1.0, 0.0, 0.0]])])
    store.delete("late", ["a"])
    assert late_interaction(store, "late", LATE_QUERY, every, 10) == [("d", 1.5), ("b", 0.5), ("c", -1.5)]
    store.upsert("late", [encoded("a", token_vectors=LATE_CORPUS["a"])])  # a tie with d: insertion order
    assert late_interaction(store, "late", LATE_QUERY, every, 10) == [
        ("d", 1.5), ("a", 1.5), ("b", 0.5), ("c", -1.5)
    ]


def test_records_are_held_once_between_builds(tmp_path: Path) -> None:
    """A write adds a segment: the next build shares the earlier segment's records instead of copying them."""
    store = LocalStore(tmp_path / "store")
    store.create_index("late", IndexSpec(colbert_dimension=4))
    store.upsert("late", [encoded(doc_id, token_vectors=LATE_CORPUS[doc_id]) for doc_id in ("a", "b", "c")])
    late_interaction(store, "late", LATE_QUERY, ["a"], 1)
    before = store._searchers["late"]
    store.upsert("late", [encoded("d", token_vectors=[[0.0, 0.0, 0.0, 1.0]])])
    assert late_interaction(store, "late", LATE_QUERY, ["a", "d"], 2) == [("a", 1.5), ("d", 1.5)]
    after = store._searchers["late"]
    assert [len(segment) for segment in after.segments] == [3, 1]
    assert after.segments[0].tokens.items is before.segments[0].tokens.items
