"""BEIR folders: the shipped SciFact copy, and small folders with one thing wrong each."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurank.errors import InputError
from neurank.eval import BeirDataset, available_splits, load_qrels, load_queries

SCIFACT = Path("/work/shared/data/scifact")
needs_scifact = pytest.mark.skipif(not SCIFACT.is_dir(), reason="the shared SciFact copy is not here")
HEADER = "query-id\tcorpus-id\tscore\n"


def make_dataset(root: Path, qrels: str, queries: str | None = None) -> Path:
    """A BEIR folder with one `test` split."""
    (root / "qrels").mkdir(parents=True)
    (root / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "a document"}\n', encoding="utf-8")
    if queries is None:
        queries = '{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n{"_id": "q3", "text": "x"}\n'
    (root / "queries.jsonl").write_text(queries, encoding="utf-8")
    return root


@needs_scifact
def test_scifact_test_split() -> None:
    assert available_splits(SCIFACT) == ["test", "train"]
    qrels = load_qrels(SCIFACT, "test")
    assert len(qrels) == 300
    assert sum(len(judged) for judged in qrels.values()) == 339
    assert qrels["1"] == {"31715818": 1}


@needs_scifact
def test_scifact_dataset_keeps_only_the_judged_queries() -> None:
    dataset = BeirDataset.load(SCIFACT, "test")
    assert (dataset.name, dataset.split, dataset.corpus) == ("scifact", "test", SCIFACT / "corpus.jsonl")
    assert len(load_queries(SCIFACT)) == 1109
    assert set(dataset.queries) == set(dataset.qrels)
    assert len(dataset.queries) == 300
    assert dataset.queries["1"] == "0-dimensional biomaterials show inductive properties."


@needs_scifact
def test_a_missing_split_names_the_available_ones() -> None:
    with pytest.raises(InputError, match=r"no qrels for split 'dev'.*available: test, train"):
        load_qrels(SCIFACT, "dev")


def test_tiny_dataset_loads(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "tiny", HEADER + "q1\td1\t1\nq1\td2\t0\n\nq2\td1\t2\n")
    dataset = BeirDataset.load(root)
    assert dataset.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"d1": 2}}
    assert dataset.queries == {"q1": "first", "q2": "second"}


@pytest.mark.parametrize(
    ("qrels", "line", "reason"),
    [
        (HEADER + "q1\td1\t1\nq1\td2\n", 3, "expected 3 tab-separated fields"),
        (HEADER + "q1\td1\tyes\n", 2, "score must be an integer"),
        (HEADER + "q1\td1 1\n", 2, "expected 3 tab-separated fields"),
        (HEADER + "q1\t\t1\n", 2, "empty query or document id"),
        (HEADER + "q1\td1\t1\nq1\td1\t0\n", 3, "judged twice"),
        ("q1\td1\t1\n", 1, "expected the header"),
    ],
)
def test_a_bad_qrels_line_is_named(tmp_path: Path, qrels: str, line: int, reason: str) -> None:
    root = make_dataset(tmp_path / "bad", qrels)
    with pytest.raises(InputError, match=reason) as caught:
        load_qrels(root, "test")
    assert caught.value.source == f"{root / 'qrels' / 'test.tsv'}:{line}"


@pytest.mark.parametrize(
    ("queries", "line", "reason"),
    [
        ('{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": \n', 2, "malformed JSON"),
        ('{"_id": "q1"}\n', 1, "missing or empty query text"),
        ('{"text": "first"}\n', 1, "missing or invalid query id"),
        ('["q1", "first"]\n', 1, "expected a JSON object"),
        ('{"_id": "q1", "text": "a"}\n\n{"_id": "q1", "text": "b"}\n', 3, "duplicate query id"),
    ],
)
def test_a_bad_query_line_is_named(tmp_path: Path, queries: str, line: int, reason: str) -> None:
    root = make_dataset(tmp_path / "bad", HEADER, queries)
    with pytest.raises(InputError, match=reason) as caught:
        load_queries(root)
    assert caught.value.source == f"{root / 'queries.jsonl'}:{line}"


def test_judged_queries_must_have_a_text(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "tiny", HEADER + "q1\td1\t1\nq9\td1\t1\n")
    with pytest.raises(InputError, match=r"1 query ids in qrels/test.tsv are not in queries.jsonl, e.g. \['q9'\]"):
        BeirDataset.load(root)


def test_a_folder_without_queries(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "tiny", HEADER)
    (root / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"no queries\.jsonl"):
        load_queries(root)
    assert available_splits(tmp_path / "nowhere") == []
