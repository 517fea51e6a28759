"""Late-interaction token vectors: validation as a write refuses them, and the local store's compact records.

Every compression turns one float32 row of `dim` values into one fixed-size record of bytes, so a document's
token vectors are n records and a whole index is one (rows × record size) uint8 matrix with offsets, which a
search slices for its candidates only (SCORING.md §7):
- `float16`: the row as IEEE half floats (2·dim bytes).
- `int8`: a per-row scale s = max|x| / 127 (float32, little-endian) then round(x / s) as int8 (dim + 4 bytes);
  decoded as q · s. A per-row scale keeps the error of each token independent of the document's other tokens.
- `binary`: one bit per dimension, set when x > 0 (`np.packbits`, as Vespa's `pack_bits`): ceil(dim / 8) bytes;
  decoded as ±1, so a float query scores Σ_i q_i · sign(x_i) per token. The decoded rows are not unit vectors:
  the scale of binary MaxSim differs from float32 MaxSim, its ranks are what is compared.
"""

from __future__ import annotations

import numpy as np

from neurank.index_spec import TokenCompression

_SCALE = np.dtype("<f4")


class BadTokenVectors(ValueError):
    """Token vectors a store refuses; the message is the reason."""


def check_token_vectors(values: object, dimension: int | None) -> np.ndarray | None:
    """float32 rows of `dimension` values, None for a document that kept no token, or BadTokenVectors."""
    if dimension is None:
        raise BadTokenVectors("the index has no token vectors field (it was created without colbert_dimension)")
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            vectors = np.asarray(values, dtype=np.float64).astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise BadTokenVectors(f"token vectors must be a matrix of numbers: {exc}") from exc
    if vectors.size == 0 and vectors.ndim in (1, 2):
        return None
    if vectors.ndim != 2 or vectors.shape[1] != dimension:
        given = vectors.shape[1] if vectors.ndim == 2 else f"shape {vectors.shape}"
        raise BadTokenVectors(f"token vector dimension mismatch. Expected: {dimension}, Given: {given}")
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise BadTokenVectors(f"token vector values cannot be NaN or infinite (row {row})")
    return vectors


def record_size(compression: TokenCompression, dimension: int) -> int:
    """Bytes per token row."""
    if compression == "float16":
        return 2 * dimension
    if compression == "int8":
        return _SCALE.itemsize + dimension
    return (dimension + 7) // 8


def encode(vectors: np.ndarray, compression: TokenCompression) -> np.ndarray:
    """n × dim float32 → n × record_size uint8 records."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if compression == "float16":
        return vectors.astype("<f2").view(np.uint8).reshape(len(vectors), -1)
    if compression == "int8":
        scales = (np.abs(vectors).max(axis=1, initial=0.0) / np.float32(127)).astype(_SCALE)
        safe = np.where(scales > 0, scales, np.float32(1))[:, None]
        quantized = np.clip(np.rint(vectors / safe), -127, 127).astype(np.int8)
        return np.hstack([scales[:, None].view(np.uint8), quantized.view(np.uint8)])
    return np.packbits(vectors > 0, axis=1)


def decode(records: np.ndarray, compression: TokenCompression, dimension: int) -> np.ndarray:
    """n × record_size uint8 records → n × dim float32 (the values MaxSim scores)."""
    records = np.ascontiguousarray(records, dtype=np.uint8)
    if compression == "float16":
        return records.view("<f2").astype(np.float32)
    if compression == "int8":
        scales = records[:, : _SCALE.itemsize].copy().view(_SCALE)
        return records[:, _SCALE.itemsize :].view(np.int8).astype(np.float32) * scales
    bits = np.unpackbits(records, axis=1, count=dimension)
    return np.where(bits == 1, np.float32(1), np.float32(-1))


def from_blob(blob: bytes, compression: TokenCompression, dimension: int) -> np.ndarray:
    """The records of one document as stored (a SQLite BLOB), without copying."""
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, record_size(compression, dimension))
