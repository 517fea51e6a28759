"""One segment in one file beside the database, read back memory-mapped: a new process maps what an older one
built instead of parsing the stored rows again.

A file is `MAGIC`, the length of a JSON header (8 bytes, little-endian), the header, then every array of the
segment, each at a 64-byte aligned offset. The header names the format version, the index and its creation
clock (so that another index's file, or one of an index dropped and created again, is refused), the rows it
covers (`upto`), each array's dtype, shape and offset, and the bytes of array data (so that a truncated file is
refused before any array is read). Files are written to a temporary name, flushed to disk and renamed, so a reader
never sees half of one. No pickle: dtypes are plain numeric.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"NRSEG\x00\x00\x01"
FORMAT = 1
_ALIGN = 64
_HEADER_LENGTH = 8
CRASH_POINT_VARIABLE = "NEURANK_LOCAL_CRASH_POINT"
"""Names a step of persisting (`crash_point`) at which the process kills itself with SIGKILL: how the tests prove
that a crash at any step loses no acknowledged write."""


class SegmentFileError(Exception):
    """A segment or manifest file that cannot be used (missing, truncated, foreign); the message says why."""


def crash_point(step: str) -> None:
    """Die here, as by `kill -9`, when `CRASH_POINT_VARIABLE` names this step."""
    if os.environ.get(CRASH_POINT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _aligned(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _data_start(header_length: int) -> int:
    return _aligned(len(MAGIC) + _HEADER_LENGTH + header_length)


def write_atomically(path: Path, chunks: Sequence[bytes | memoryview], step: str) -> None:
    """`chunks` written to a temporary name beside `path`, flushed to disk, then renamed over `path` (a crash
    leaves the old file or the new one, never a mix); `step` names the crash points around the rename."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    crash_point(f"{step}-written")
    os.replace(temporary, path)
    sync_folder(path.parent)
    crash_point(f"{step}-renamed")


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_segment(path: Path, identity: Mapping[str, Any], upto: int, arrays: Mapping[str, np.ndarray]) -> None:
    """One segment's `arrays` (C order) in one file, with `identity` (index name and creation clock) and `upto`."""
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    for name, array in contiguous.items():
        offset = _aligned(offset)
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += array.nbytes
    header = {"format": FORMAT, **identity, "upto": upto, "arrays": layout, "data_bytes": offset}
    encoded = json.dumps(header, sort_keys=True).encode("utf-8")
    encoded = encoded.ljust(_data_start(len(encoded)) - len(MAGIC) - _HEADER_LENGTH)
    chunks: list[bytes | memoryview] = [MAGIC, len(encoded).to_bytes(_HEADER_LENGTH, "little"), encoded]
    written = 0
    for name, array in contiguous.items():
        chunks.append(b"\x00" * (layout[name]["offset"] - written))
        chunks.append(array.reshape(-1).view(np.uint8).data)
        written = layout[name]["offset"] + array.nbytes
    write_atomically(path, chunks, "segment")


def read_segment(path: Path, identity: Mapping[str, Any]) -> tuple[int, dict[str, np.ndarray]]:
    """`upto` and the arrays of the segment file at `path`, mapped read-only; SegmentFileError when the file is
    missing, truncated, of another format or of another index."""
    try:
        with path.open("rb") as handle:
            magic, length = handle.read(len(MAGIC)), handle.read(_HEADER_LENGTH)
            if magic != MAGIC or len(length) != _HEADER_LENGTH:
                raise SegmentFileError(f"{path} is not a neurank segment file (format {FORMAT})")
            header_length = int.from_bytes(length, "little")
            try:
                header = json.loads(handle.read(header_length))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SegmentFileError(f"{path} has an unreadable header ({exc})") from exc
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise SegmentFileError(f"{path} is not a neurank segment file (format {FORMAT})")
            start, size = _data_start(header_length), os.fstat(handle.fileno()).st_size
            if not isinstance(header.get("data_bytes"), int) or size != start + header["data_bytes"]:
                raise SegmentFileError(f"{path} is truncated or damaged: {size} bytes, its header says "
                                       f"{start + int(header.get('data_bytes') or 0)}")
            foreign = {key: header.get(key) for key in identity if header.get(key) != identity[key]}
            if foreign:
                raise SegmentFileError(f"{path} belongs to another index ({foreign}, expected {dict(identity)})")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise SegmentFileError(f"{path} cannot be read ({exc})") from exc
    try:
        arrays = {
            name: np.frombuffer(mapped, np.dtype(spec["dtype"]), int(np.prod(spec["shape"], dtype=np.int64)),
                                start + spec["offset"]).reshape(spec["shape"])
            for name, spec in header["arrays"].items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise SegmentFileError(f"{path} has an inconsistent header ({exc})") from exc
    return int(header["upto"]), arrays
