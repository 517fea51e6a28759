"""The readers name file, line and field for every refused record, and keep every good one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurank.documents import MAX_DOCUMENT_BYTES, Document, read_corpus
from neurank.errors import InputError


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def record(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode("utf-8")


@pytest.fixture
def messy_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "docs.jsonl", [
        record(_id="a", title="Alpha", text="first good document"),
        b'{"_id": "broken", "text": ',
        record(title="no id", text="this one has no id"),
        record(_id="empty", text="   "),
        record(_id="a", text="duplicate of the first"),
        b'{"_id": "bad-utf8", "text": "caf\xe9"}',
        record(_id="huge", text="x" * (MAX_DOCUMENT_BYTES * 2)),
        record(_id="typed", text=42),
        record(id=7, text="integer ids are accepted as strings"),
        b'{"_id": "surrogate", "text": "lone \\ud800 half"}',
    ])


def test_every_bad_record_is_named_and_good_ones_survive(messy_file: Path) -> None:
    results = list(read_corpus(messy_file))
    documents = [r for r in results if isinstance(r, Document)]
    errors = [r for r in results if isinstance(r, InputError)]
    assert [d.id for d in documents] == ["a", "7"]
    assert documents[0].source == f"{messy_file}:1"
    by_line = {int(e.source.rsplit(":", 1)[1]): e for e in errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 10]
    assert "malformed JSON" in str(by_line[2])
    assert by_line[3].field == "_id" and "missing document id" in str(by_line[3])
    assert by_line[4].field == "text" and "empty text" in str(by_line[4])
    assert by_line[5].field == "id" and "first seen on line 1" in str(by_line[5])
    assert "invalid UTF-8" in str(by_line[6])
    assert by_line[7].field == "text" and "above the limit" in str(by_line[7])
    assert by_line[8].field == "text" and "must be a string" in str(by_line[8])
    assert by_line[10].field == "text" and "unpaired surrogate" in str(by_line[10])
    assert all(str(messy_file) in str(e) for e in errors)


def test_beir_folder_without_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"corpus\.jsonl"):
        list(read_corpus(tmp_path))


def test_passage_and_hash_follow_title_and_text() -> None:
    doc = Document(id="1", title="T", text="body")
    assert doc.passage == "T body"
    assert doc.content_hash != Document(id="1", title="T", text="body!").content_hash
    assert doc.content_hash == Document(id="2", title="T", text="body", metadata={"x": 1}).content_hash
