"""BEIR-layout datasets: `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` in one folder.

Readers validate every line and name `file:line` when one is wrong, so a broken download fails loudly
instead of quietly scoring fewer queries. The corpus itself is read by `neurank.documents.read_corpus`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from neurank.documents import Document, corpus_path, read_corpus
from neurank.errors import InputError

__all__ = ["BeirDataset", "Qrels", "available_splits", "load_qrels", "load_queries", "read_passages"]

Qrels = dict[str, dict[str, int]]
"""query id → {document id: relevance grade}."""
QRELS_HEADER = ("query-id", "corpus-id", "score")


def available_splits(directory: Path | str) -> list[str]:
    """The splits that have a `qrels/<split>.tsv`, sorted."""
    return sorted(path.stem for path in (Path(directory) / "qrels").glob("*.tsv"))


def load_queries(directory: Path | str) -> dict[str, str]:
    """`queries.jsonl` as query id → text; every line must be an object with `_id` and a non-empty `text`."""
    path = Path(directory) / "queries.jsonl"
    if not path.is_file():
        raise InputError(f"no queries.jsonl in {directory} (expected the BEIR layout)")
    queries: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc.msg} (column {exc.colno})", source=source) from exc
            query_id, text = _query_fields(record, source)
            if query_id in queries:
                raise InputError(f"duplicate query id {query_id!r}", source=source, field="_id")
            queries[query_id] = text
    return queries


def load_qrels(directory: Path | str, split: str) -> Qrels:
    """`qrels/<split>.tsv` (tab-separated, header `query-id corpus-id score`, integer grades)."""
    path = Path(directory) / "qrels" / f"{split}.tsv"
    if not path.is_file():
        available = ", ".join(available_splits(directory)) or "none"
        raise InputError(f"no qrels for split {split!r} in {Path(directory) / 'qrels'}; available: {available}")
    qrels: Qrels = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            source = f"{path}:{line_no}"
            fields = tuple(line.rstrip("\r\n").split("\t"))
            if line_no == 1:
                if fields != QRELS_HEADER:
                    raise InputError(f"expected the header {' '.join(QRELS_HEADER)!r} (tab-separated)",
                                     source=source)
                continue
            if not line.strip():
                continue
            query_id, doc_id, grade = _qrel_fields(fields, source)
            judged = qrels.setdefault(query_id, {})
            if doc_id in judged:
                raise InputError(f"document {doc_id!r} is judged twice for query {query_id!r}", source=source)
            judged[doc_id] = grade
    return qrels


def read_passages(dataset: Path) -> dict[str, str]:
    """Document id → passage (title, then text) of every valid document of the dataset's corpus."""
    return {doc.id: doc.passage for doc in read_corpus(dataset) if isinstance(doc, Document)}


@dataclass(frozen=True, slots=True)
class BeirDataset:
    """One split of a BEIR folder: the queries it judges and their judgements, and where the corpus is."""

    name: str
    split: str
    corpus: Path
    queries: dict[str, str]
    """Only the queries that the split's qrels judge (BEIR keeps every split's queries in one file)."""
    qrels: Qrels

    @classmethod
    def load(cls, directory: Path | str, split: str = "test") -> BeirDataset:
        directory = Path(directory)
        qrels = load_qrels(directory, split)
        all_queries = load_queries(directory)
        missing = sorted(set(qrels) - set(all_queries))
        if missing:
            raise InputError(f"{len(missing)} query ids in qrels/{split}.tsv are not in queries.jsonl, "
                             f"e.g. {missing[:5]}", source=str(directory))
        return cls(
            name=directory.name,
            split=split,
            corpus=corpus_path(directory),
            queries={query_id: all_queries[query_id] for query_id in qrels},
            qrels=qrels,
        )


def _query_fields(record: object, source: str) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", source=source)
    query_id, text = record.get("_id"), record.get("text")
    if isinstance(query_id, bool) or not isinstance(query_id, str | int) or not str(query_id).strip():
        raise InputError("missing or invalid query id", source=source, field="_id")
    if not isinstance(text, str) or not text.strip():
        raise InputError("missing or empty query text", source=source, field="text")
    return str(query_id).strip(), text


def _qrel_fields(fields: tuple[str, ...], source: str) -> tuple[str, str, int]:
    if len(fields) != len(QRELS_HEADER):
        raise InputError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}",
                         source=source)
    query_id, doc_id, grade = (field.strip() for field in fields)
    if not query_id or not doc_id:
        raise InputError("empty query or document id", source=source)
    try:
        return query_id, doc_id, int(grade)
    except ValueError:
        raise InputError(f"score must be an integer, got {grade!r}", source=source, field="score") from None
