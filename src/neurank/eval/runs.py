"""TREC run files (`qid Q0 docid rank score tag`), each with a metadata JSON beside it (`<run>.json`).

Runs are the interchange format between `neurank search`, `neurank eval` and offline fusion tuning, as in
pyserini; the metadata (commit, model fingerprints, runtime, BM25 k1/b, plan, …) makes a number traceable
to what produced it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurank.errors import InputError

__all__ = ["Run", "git_commit", "metadata_path", "read_metadata", "read_run", "write_run"]

Run = dict[str, dict[str, float]]
"""query id → {document id: score}, the shape `neurank.eval.evaluate` takes."""


def metadata_path(run_path: Path | str) -> Path:
    """Where the metadata of a run lives: the run's file name plus `.json`."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + ".json")


def write_run(path: Path | str, run: Mapping[str, Mapping[str, float]], *, tag: str = "neurank",
              metadata: Mapping[str, Any] | None = None) -> Path:
    """Write `run` and its metadata JSON; return the run's path.

    Queries keep their order in `run`; within a query documents go by score, descending, ties by document
    id, ascending (the order `evaluate` scores). Scores are written with `repr`, so they read back exactly.
    The metadata is `metadata` plus `tag`, the query count, the time written and, when it can be found and
    `metadata` has none, the git commit of the neurank checkout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_token(tag, "tag")
    lines = []
    for query_id, scores in run.items():
        _check_token(query_id, "query id")
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        for rank, (doc_id, score) in enumerate(ranked, start=1):
            _check_token(doc_id, "document id")
            lines.append(f"{query_id} Q0 {doc_id} {rank} {float(score)!r} {tag}\n")
    path.write_text("".join(lines), encoding="utf-8")
    record = {
        "run": path.name,
        "tag": tag,
        "queries": len(run),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        **(metadata or {}),
    }
    metadata_path(path).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_run(path: Path | str) -> Run:
    """Read a TREC run; a malformed line, a bad rank or score, or a repeated document raises `InputError`
    naming `file:line`. The rank column is checked but not used: scores decide the order, as in trec_eval."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"run file {path} does not exist")
    run: Run = {}
    first_seen: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{path}:{line_no}"
            query_id, doc_id, score = _run_fields(line.split(), source)
            if (query_id, doc_id) in first_seen:
                raise InputError(f"document {doc_id!r} appears twice for query {query_id!r} "
                                 f"(first on line {first_seen[query_id, doc_id]})", source=source)
            first_seen[query_id, doc_id] = line_no
            run.setdefault(query_id, {})[doc_id] = score
    return run


def read_metadata(run_path: Path | str) -> dict[str, Any]:
    """The metadata written beside a run."""
    path = metadata_path(run_path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"no metadata beside the run: {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", source=f"{path}:{exc.lineno}") from exc
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", source=str(path))
    return record


def git_commit(start: Path | None = None) -> str | None:
    """The commit checked out in the git work tree holding `start` (default: this package), read from the
    `.git` files without running git; None outside a work tree, before the first commit, or if unreadable."""
    start = (start or Path(__file__)).resolve()
    try:
        for folder in (start, *start.parents):
            git_dir = folder / ".git"
            if git_dir.is_file():
                git_dir = folder / git_dir.read_text(encoding="utf-8").removeprefix("gitdir:").strip()
            if git_dir.is_dir():
                return _resolve_head(git_dir)
    except OSError:
        return None
    return None


def _resolve_head(git_dir: Path) -> str | None:
    """HEAD as a commit id: detached, a loose ref, or a packed ref (refs of a linked work tree live in the
    common git folder)."""
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if not head.startswith("ref:"):
        return head or None
    ref = head.removeprefix("ref:").strip()
    common = git_dir / "commondir"
    if common.is_file():
        git_dir = git_dir / common.read_text(encoding="utf-8").strip()
    loose = git_dir / ref
    if loose.is_file():
        return loose.read_text(encoding="utf-8").strip()
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    return None


def _run_fields(fields: list[str], source: str) -> tuple[str, str, float]:
    if len(fields) != 6:
        raise InputError(f"expected 6 fields (qid Q0 docid rank score tag), got {len(fields)}", source=source)
    query_id, _, doc_id, rank, score, _ = fields
    if not rank.isdigit() or int(rank) < 1:
        raise InputError(f"rank must be a positive integer, got {rank!r}", source=source, field="rank")
    try:
        value = float(score)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"score must be a finite number, got {score!r}", source=source, field="score")
    return query_id, doc_id, value


def _check_token(value: str, what: str) -> None:
    """TREC runs are whitespace-separated, so an id or tag with whitespace cannot be written."""
    if not value or any(character.isspace() for character in value):
        raise InputError(f"{what} {value!r} is empty or contains whitespace; a TREC run cannot hold it")
