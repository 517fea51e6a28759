"""The persisted segments of one index: a folder beside the database, one file per segment (`persist.py`) and a
manifest naming the live ones, oldest first, with the stored rows they cover.

SQLite stays the source of truth. The manifest says which segment files hold the rows up to its `upto` seq
(rows deleted or replaced since are masked by the snapshot as usual); a new process maps them and reads from
SQLite only the rows written after. A segment file is written before the manifest that names it, and the
manifest is replaced atomically, so a crash at any step leaves the previous manifest or the new one, each
naming complete files; files no manifest names (a crashed writer's, merged-away segments) are deleted under the
folder's lock. A manifest or segment file that cannot be used (truncated, foreign, missing) is reported in the
log and its rows are read from SQLite again, then persisted anew. Processes share the folder: writing takes
its lock exclusively, reading shares it, and a manifest never replaces one that covers more rows.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from neurank.errors import StoreError
from neurank.stores.local.persist import (
    SegmentFileError,
    crash_point,
    read_segment,
    write_atomically,
    write_segment,
)
from neurank.stores.local.segment import Segment

MANIFEST = "manifest.json"
_LOCK = "lock"
_SUFFIX = ".seg"
FORMAT = 1
PERSIST_MIN_ROWS = 1000
"""Segments smaller than this stay in memory only: a new process reads their few rows from SQLite, and a write
followed by a search pays no file sync."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Manifest:
    """The live segment files, oldest first, and the highest seq they cover."""

    files: tuple[str, ...]
    upto: int


class SegmentFolder:
    """`<store>/segments/<index>/<created>/`: the persisted segments of one index as it was created."""

    def __init__(self, folder: Path, index: str, created: int) -> None:
        self.folder = folder
        self.identity = {"index": index, "created": created}
        self._written: Manifest | None = None

    @contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        with (self.folder / _LOCK).open("a") as handle:
            fcntl.flock(handle.fileno(), operation)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _manifest(self) -> Manifest | None:
        path = self.folder / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SegmentFileError(f"{path} cannot be read ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SegmentFileError(f"{path} is not a neurank segment manifest (format {FORMAT})")
        foreign = {key: data.get(key) for key, value in self.identity.items() if data.get(key) != value}
        if foreign:
            raise SegmentFileError(f"{path} belongs to another index ({foreign}, expected {self.identity})")
        files, upto = data.get("segments"), data.get("upto")
        if not isinstance(files, list) or not all(isinstance(f, str) and f.endswith(_SUFFIX) for f in files) \
                or not isinstance(upto, int):
            raise SegmentFileError(f"{path} has no valid segment list")
        return Manifest(tuple(files), upto)

    def load(self) -> tuple[list[Segment], int]:
        """The persisted segments, mapped, and the seq they cover up to; ([], 0) when there are none. Segments from
        the first unusable file on are left out (logged): their rows are read from SQLite again."""
        segments: list[Segment] = []
        if self.folder.is_dir():
            with self._locked(fcntl.LOCK_EX):
                try:
                    manifest = self._manifest()
                except SegmentFileError as exc:
                    log.warning("%s; reading its rows from the database instead", exc)
                    manifest = None
                for name in manifest.files if manifest is not None else ():
                    try:
                        segments.append(_mapped(self.folder / name, self.identity))
                    except SegmentFileError as exc:
                        log.warning("%s; reading its rows and the newer ones from the database instead", exc)
                        break
                if manifest is not None:
                    with suppress(OSError):  # a read-only store is searched all the same
                        self._collect(manifest)
        self._written = Manifest(tuple(s.file or "" for s in segments), segments[-1].upto if segments else 0)
        return segments, self._written.upto

    def sync(self, segments: Sequence[Segment]) -> list[Segment]:
        """`segments` with the oldest ones of at least `PERSIST_MIN_ROWS` rows written to files (and mapped from
        them instead), and the manifest naming them; files no manifest names are deleted."""
        count = 0
        while count < len(segments) and (segments[count].file or len(segments[count]) >= PERSIST_MIN_ROWS):
            count += 1
        wanted = tuple(s.file or "" for s in segments[:count])
        if self._written is not None and wanted == self._written.files:
            return list(segments)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked(fcntl.LOCK_EX):
                persisted = [self._persisted(segment) for segment in segments[:count]]
                manifest = Manifest(tuple(s.file or "" for s in persisted), persisted[-1].upto if persisted else 0)
                try:
                    current = self._manifest()
                except SegmentFileError:
                    current = None
                if current is None or current.upto <= manifest.upto:
                    self._write(manifest)
                    current = manifest
                crash_point("collect")
                self._collect(current)
        except SegmentFileError as exc:  # a file this process has just written does not read back
            raise StoreError(f"{exc}; the local store cannot persist its segments there") from exc
        except OSError as exc:
            where = exc.filename or self.folder
            raise StoreError(f"{where}: the local store cannot write its segment files ({exc.strerror or exc}); "
                             f"make {self.folder.parent.parent} writable (or move away what is in the way)") from exc
        self._written = manifest
        return [*persisted, *segments[count:]]

    def _persisted(self, segment: Segment) -> Segment:
        """The segment mapped from its file, written first when it lives in memory only."""
        if segment.file is not None and (self.folder / segment.file).is_file():
            return segment
        name = f"{int(segment.seqs[0])}-{segment.upto}-{os.urandom(4).hex()}{_SUFFIX}"
        write_segment(self.folder / name, self.identity, segment.upto, segment.arrays())
        return _mapped(self.folder / name, self.identity)

    def _write(self, manifest: Manifest) -> None:
        body = {"format": FORMAT, **self.identity, "upto": manifest.upto, "segments": list(manifest.files)}
        write_atomically(self.folder / MANIFEST, [json.dumps(body, indent=1).encode("utf-8")], "manifest")

    def _collect(self, manifest: Manifest) -> None:
        """Delete the segment and temporary files `manifest` does not name (their processes crashed or lost)."""
        keep = {*manifest.files, MANIFEST, _LOCK}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def drop_older(self) -> None:
        """Delete the folders of earlier indexes of the same name (dropped, then created again)."""
        created = int(str(self.identity["created"]))
        for sibling in self.folder.parent.glob("*"):
            if sibling.name.isdigit() and int(sibling.name) < created:
                shutil.rmtree(sibling, ignore_errors=True)


def _mapped(path: Path, identity: dict[str, object]) -> Segment:
    upto, arrays = read_segment(path, identity)
    try:
        return Segment.from_arrays(arrays, upto, path.name)
    except (KeyError, ValueError) as exc:
        raise SegmentFileError(f"{path} lacks or mismatches an array ({exc})") from exc
