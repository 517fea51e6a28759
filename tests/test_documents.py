"""The readers name file, line and field for every refused record, and keep every good one."""

from __future__ import annotations

import bz2
import codecs
import gzip
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


def test_passage_follows_title_and_text_and_the_hash_all_that_is_stored() -> None:
    doc = Document(id="1", title="T", text="body", metadata={"year": 2019})
    assert doc.passage == "T body"
    assert doc.content_hash != Document(id="1", title="T", text="body!", metadata={"year": 2019}).content_hash
    assert doc.content_hash != Document(id="1", title="T", text="body", metadata={"year": 2020}).content_hash
    assert doc.content_hash == Document(id="2", title="T", text="body", metadata={"year": 2019}).content_hash


def test_a_byte_order_mark_does_not_cost_the_first_document(tmp_path: Path) -> None:
    corpus = write_lines(tmp_path / "bom.jsonl", [codecs.BOM_UTF8 + record(_id="first", text="one"),
                                                  record(_id="second", text="two")])
    assert [r.id for r in read_corpus(corpus) if isinstance(r, Document)] == ["first", "second"]


def test_a_gzip_file_is_read_through_gzip(tmp_path: Path) -> None:
    plain = write_lines(tmp_path / "docs.jsonl", [record(_id="a", text="one"), record(_id="b", text="two")])
    packed = tmp_path / "docs.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    results = list(read_corpus(packed))
    assert [r.id for r in results if isinstance(r, Document)] == ["a", "b"]
    assert results[1].source == f"{packed}:2"


def test_a_truncated_gzip_file_is_reported_where_it_breaks(tmp_path: Path) -> None:
    lines = [record(_id=str(i), text="some words " * 20) for i in range(50)]
    packed = tmp_path / "cut.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(lines) + b"\n")[:-40])
    results = list(read_corpus(packed))
    assert isinstance(results[-1], InputError) and "cannot be read past here" in str(results[-1])
    assert all(isinstance(r, Document) for r in results[:-1])


def test_ids_are_refused_with_surrounding_spaces_or_above_512_bytes(tmp_path: Path) -> None:
    corpus = write_lines(tmp_path / "ids.jsonl", [
        record(_id=" padded", text="one"),
        record(_id="é" * 257, text="two"),  # 514 bytes in UTF-8
        record(_id="é" * 256, text="three"),  # 512 bytes: the limit itself is fine
    ])
    results = list(read_corpus(corpus))
    assert isinstance(results[0], InputError) and results[0].field == "id" and "whitespace" in str(results[0])
    assert isinstance(results[1], InputError) and results[1].field == "id" and "514 bytes" in str(results[1])
    assert f"{corpus}:2" in str(results[1])
    assert isinstance(results[2], Document)


def test_lines_python_cannot_parse_fail_alone(tmp_path: Path) -> None:
    corpus = write_lines(tmp_path / "deep.jsonl", [
        b"[" * 100_000,
        b'{"_id": "big", "text": "t", "n": ' + b"9" * 5000 + b"}",
        record(_id="good", text="still indexed"),
    ])
    results = list(read_corpus(corpus))
    assert [type(r) for r in results] == [InputError, InputError, Document]
    assert "nested too deeply" in str(results[0]) and f"{corpus}:1" in str(results[0])
    assert "4300 digits" in str(results[1]) and f"{corpus}:2" in str(results[1])


def test_other_compressed_files_are_refused_by_name(tmp_path: Path) -> None:
    packed = tmp_path / "docs.jsonl.bz2"
    packed.write_bytes(bz2.compress(record(_id="a", text="one")))
    with pytest.raises(InputError, match="is a bzip2 file"):
        list(read_corpus(packed))
