"""Document and Hit types, and readers for JSONL / BEIR corpora that validate every record.

A reader never raises on a bad record: it yields an `InputError` naming file, line and field, and goes on,
so one bad document never takes the rest of the file down with it.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neurank.errors import InputError

MAX_DOCUMENT_BYTES = 512 * 1024
"""Above this a document is rejected: encoders read 256-512 tokens, so the rest would be dead weight."""
MAX_ID_BYTES = 512
"""OpenSearch refuses a longer `_id`; the local store takes the same rule so an index can move between them."""
_GZIP_MAGIC = b"\x1f\x8b"
_UNREAD_FORMATS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip"}
"""Compressed formats read by no reader here: refused by name instead of as lines of invalid UTF-8."""


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    """`file:line` the document came from, for error messages and dead letters."""

    @property
    def passage(self) -> str:
        """What the encoders read: the title, then the text (the BEIR convention)."""
        return f"{self.title} {self.text}".strip() if self.title else self.text

    @property
    def content_hash(self) -> str:
        """sha256 of everything stored (title, text, metadata): a re-ingest skips a document only when none of
        it changed, so a corrected metadata field is written again."""
        payload = json.dumps([self.title, self.text, self.metadata], ensure_ascii=False, sort_keys=True,
                             default=str)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StageScore:
    """One stage's view of a hit: its raw score, its score after normalization, and its 1-based rank."""

    raw: float
    normalized: float | None = None
    rank: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return {"raw": self.raw, "normalized": self.normalized, "rank": self.rank}


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    stages: dict[str, StageScore] = field(default_factory=dict)
    title: str = ""
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "stages": {name: stage.to_dict() for name, stage in self.stages.items()},
        }


def checked_id(doc_id: str, source: str) -> str:
    """`doc_id` when every store accepts it as given; one rule for the local store and OpenSearch."""
    if not doc_id.strip():
        raise InputError("empty document id", source=source, field="id")
    if doc_id != doc_id.strip():
        raise InputError(f"id {doc_id!r} has leading or trailing whitespace; remove it (ids are kept as given)",
                         source=source, field="id")
    try:
        id_bytes = len(doc_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InputError(f"unpaired surrogate in id at character {exc.start}", source=source, field="id") from exc
    if id_bytes > MAX_ID_BYTES:
        raise InputError(f"id is {id_bytes:,} bytes in UTF-8, above OpenSearch's limit of {MAX_ID_BYTES}",
                         source=source, field="id")
    return doc_id


def read_ids(path: Path) -> list[str]:
    """The ids in a file, one per line (blank lines skipped); the first bad line raises `InputError`."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    ids = []
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            source = f"{path}:{line_no}"
            try:
                line = raw.removeprefix(codecs.BOM_UTF8 if line_no == 1 else b"").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 at byte {exc.start}", source=source) from None
            if line.strip():
                ids.append(checked_id(line.rstrip("\r\n"), source))
    return ids


def document_from_record(record: Any, source: str, *, id_keys: tuple[str, ...] = ("_id", "id")) -> Document:
    """Validate one decoded JSON record; raise `InputError` naming `source` and the field at fault."""
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", source=source)
    doc_id = next((record[key] for key in id_keys if key in record), None)
    if doc_id is None:
        raise InputError(f"missing document id (one of {', '.join(id_keys)})", source=source, field=id_keys[0])
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
        raise InputError(f"id must be a string or integer, got {type(doc_id).__name__}", source=source,
                         field="id")
    doc_id = checked_id(str(doc_id), source)
    title = record.get("title") or ""
    text = record.get("text")
    for name, value in (("title", title), ("text", text)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"must be a string, got {type(value).__name__}", source=source, field=name)
    if text is None or not (text.strip() or title.strip()):
        raise InputError("empty text (and no title)", source=source, field="text")
    try:
        size = len(text.encode("utf-8")) + len(title.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InputError(f"unpaired surrogate {exc.object[exc.start:exc.end]!r} at character {exc.start}",
                         source=source, field="text" if exc.object is text else "title") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"document is {size:,} bytes, above the limit of {MAX_DOCUMENT_BYTES:,}; split it into passages",
            source=source, field="text",
        )
    metadata = {k: v for k, v in record.items() if k not in {*id_keys, "title", "text"}}
    return Document(id=doc_id, text=text, title=title, metadata=metadata, source=source)


def read_jsonl(path: Path) -> Iterator[Document | InputError]:
    """Yield each line's Document, or the InputError that explains why the line was refused.

    A gzip file is read through gzip; a UTF-8 byte order mark before the first line is skipped.
    """
    seen: dict[str, int] = {}
    line_no = 0
    with open_corpus(path) as handle:
        try:
            for line_no, raw in enumerate(handle, start=1):
                if not raw.strip() or (line_no == 1 and not raw.removeprefix(codecs.BOM_UTF8).strip()):
                    continue
                source = f"{path}:{line_no}"
                result = _parse_line(raw.removeprefix(codecs.BOM_UTF8) if line_no == 1 else raw, source)
                if isinstance(result, Document) and result.id in seen:
                    result = InputError(f"duplicate id {result.id!r} (first seen on line {seen[result.id]})",
                                        source=source, field="id")
                elif isinstance(result, Document):
                    seen[result.id] = line_no
                yield result
        except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
            yield InputError(f"the file cannot be read past here: {exc}", source=f"{path}:{line_no + 1}")


def _parse_line(raw: bytes, source: str) -> Document | InputError:
    """One line's Document or the reason it is refused; no exception a line can cause escapes."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InputError(f"invalid UTF-8 at byte {exc.start}", source=source)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", source=source)
    except RecursionError:
        return InputError("JSON nested too deeply to read", source=source)
    except ValueError as exc:  # e.g. an integer above Python's 4,300-digit conversion limit
        return InputError(f"unreadable JSON value: {str(exc).split(';')[0]}", source=source)
    try:
        document = document_from_record(record, source)
        document.content_hash  # noqa: B018 (metadata too deep to serialize is refused here, not at write time)
    except InputError as exc:
        return exc
    except (RecursionError, ValueError) as exc:
        return InputError(f"metadata cannot be stored: {type(exc).__name__}", source=source)
    return document


def open_corpus(path: Path) -> Any:
    """The file as a binary stream, decompressed when it starts with the gzip magic bytes."""
    with path.open("rb") as probe:
        head = probe.read(8)
    for magic, name in _UNREAD_FORMATS.items():
        if head.startswith(magic):
            raise InputError(f"{path} is a {name} file; decompress it, or recompress it with gzip")
    return gzip.open(path, "rb") if head.startswith(_GZIP_MAGIC) else path.open("rb")


def corpus_path(path: Path) -> Path:
    """A BEIR folder (holding corpus.jsonl) or a JSONL file (plain or gzip)."""
    if path.is_dir():
        corpus = path / "corpus.jsonl"
        if not corpus.is_file():
            raise InputError(f"{path} is a folder without corpus.jsonl (expected the BEIR layout)")
        return corpus
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    return path


def read_corpus(path: Path) -> Iterator[Document | InputError]:
    return read_jsonl(corpus_path(path))
