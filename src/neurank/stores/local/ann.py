"""Approximate dense search for the local store: a faiss HNSW graph kept in a file beside the database.

faiss (faiss-cpu) because it is the library behind the k-NN plugin's `faiss` engine, so `hnsw_m`,
`hnsw_ef_construction` and `hnsw_ef_search` mean here what they mean on a cluster; it is maintained by Meta with
wheels for every current CPython, and it filters during the graph walk (`IDSelectorBitmap`), which masks the
rows a snapshot no longer holds without over-fetching. (hnswlib has had no release since 2023 and ships no
wheels; usearch would do, but with its own parameter names.)

The graph holds each vector under its row's `seq`. Rows are never updated in place, so a graph only ever
grows: a new snapshot adds the rows written since, and a search masks the seqs that are not in its snapshot
(replaced, deleted, or newer). Once masked rows outnumber live ones it is built again. The graph only picks
candidates; their scores are computed exactly from the stored vectors (SCORING.md §4). It is saved with an
atomic rename once a twentieth of it is new, so a new process loads it and adds only the rows written since.

A saved graph is opened memory-mapped (faiss's `IO_FLAG_MMAP_IFC`: the vectors stay in the file, read as the
walks touch them), so a new process answers at once instead of reading the whole file. faiss cannot add to a
mapped graph, so the rows written since its save are *pending*: every search offers them all as candidates
(their exact scores decide), until they pass a share of the graph; then the graph is read into memory, they
are added, and it is saved.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neurank.errors import StoreError
from neurank.index_spec import IndexSpec

log = logging.getLogger(__name__)

_SAVE_SHARE = 20
"""Save once 1/_SAVE_SHARE of the graph was added since the last save (the rest is cheap to add again)."""
_PREFETCH_CHUNK = 1 << 24
"""Bytes per read when a mapped graph is read through (`_prefetch`)."""
_PENDING_MIN = 1_000
"""A mapped graph keeps at least this many new rows pending (or 1/_SAVE_SHARE of it) before it is read in."""
_BUILD_THREADS = os.cpu_count() or 1
"""faiss threads for adding rows; one query is searched on one thread: OpenMP threads that wait for each other
on shared cores made a query 150× slower (64 ms against 0.4 ms on SciFact, 2 busy cores)."""


def _faiss() -> Any:
    import faiss  # imported where it is used: a store that never goes past the threshold does not load it

    return faiss


class HnswGraph:
    """One index's graph file (`path`); created empty, loaded on first use. Thread-safe."""

    def __init__(self, path: Path, spec: IndexSpec) -> None:
        self.path = path
        self.spec = spec
        self._lock = threading.Lock()
        self._index: Any = None
        self._seqs = np.zeros(0, np.int64)
        """Every seq in the graph, ascending (rows are added in seq order)."""
        self._unsaved = 0
        self._mapped = False
        """Whether the graph is the saved file memory-mapped (read-only for faiss)."""
        self._pending = np.zeros(0, np.int64)
        """The live seqs newer than the mapped graph, offered to every search as candidates."""

    def _new(self) -> Any:
        faiss = _faiss()
        dimension = self.spec.dense_dimension or 0
        metric = faiss.METRIC_L2 if self.spec.space_type == "l2" else faiss.METRIC_INNER_PRODUCT
        graph = faiss.IndexHNSWFlat(dimension, self.spec.hnsw_m, metric)
        graph.hnsw.efConstruction = self.spec.hnsw_ef_construction
        return faiss.IndexIDMap2(graph)

    def _load(self, *, mapped: bool) -> Any:
        """The saved graph, mapped or read, checked against the spec; a file faiss cannot read, or another
        index's, is refused."""
        faiss = _faiss()
        try:
            index = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
            inner = faiss.downcast_index(index.index)
        except (RuntimeError, AttributeError) as exc:
            raise StoreError(f"{self.path} is not a faiss HNSW graph ({exc}); delete it: the local store builds "
                             "it again from its documents") from exc
        if not isinstance(inner, faiss.IndexHNSWFlat):
            raise StoreError(f"{self.path} holds a faiss {type(inner).__name__}, not an HNSW graph; delete it: "
                             "the local store builds it again from its documents")
        fresh = self._new()
        expected = (fresh.d, fresh.metric_type, self.spec.hnsw_m, self.spec.hnsw_ef_construction)
        found = (index.d, index.metric_type, inner.hnsw.nb_neighbors(1), inner.hnsw.efConstruction)
        if found != expected:
            raise StoreError(f"{self.path} was built for another index (dimension, metric, m, ef_construction "
                             f"{found}, expected {expected}); delete it: the local store builds it again")
        self._seqs = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
        self._mapped = mapped
        if mapped:
            _prefetch(self.path)
        return index

    def _vectors(self, vectors: np.ndarray) -> np.ndarray:
        if self.spec.space_type != "cosinesimil":
            return np.ascontiguousarray(vectors, dtype=np.float32)
        return np.ascontiguousarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)

    def _add(self, seqs: np.ndarray, vectors: np.ndarray) -> None:
        _faiss().omp_set_num_threads(_BUILD_THREADS)
        self._index.add_with_ids(self._vectors(vectors), seqs)
        self._seqs = np.concatenate([self._seqs, seqs])
        self._unsaved += seqs.size

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        _faiss().write_index(self._index, str(temporary))
        os.replace(temporary, self.path)
        self._unsaved = 0

    def update(self, seqs: np.ndarray, vectors_from: Callable[[int], np.ndarray]) -> None:
        """Bring the graph up to a snapshot whose vector rows are `seqs` (ascending); `vectors_from(i)` gives the
        vectors of `seqs[i:]` (only the rows the graph lacks are asked for)."""
        with self._lock:
            if self._index is None:
                self._index = self._load(mapped=True) if self.path.is_file() else self._new()
            start = self._lacking(seqs)
            if self._mapped and seqs.size - start > max(_PENDING_MIN, self._seqs.size // _SAVE_SHARE):
                self._index = self._load(mapped=False)  # the file may have grown since it was mapped
                start = self._lacking(seqs)
            self._pending = seqs[start:] if self._mapped else seqs[:0]
            if start < seqs.size and not self._mapped:
                self._add(seqs[start:], vectors_from(start))
            if self._unsaved and self._unsaved * _SAVE_SHARE >= self._seqs.size:
                self._save()

    def _lacking(self, seqs: np.ndarray) -> int:
        """Where the rows the graph lacks begin in the snapshot's `seqs`: its rows up to the graph's newest are in
        the graph (seqs only grow), the graph's other rows are masked. A graph whose masked rows outnumber the
        snapshot's is started anew."""
        newest = int(self._seqs[-1]) if self._seqs.size else 0
        start = int(np.searchsorted(seqs, newest, side="right"))
        if self._seqs.size - start > seqs.size:
            self._index, self._seqs, self._mapped = self._new(), np.zeros(0, np.int64), False
            return 0
        return start

    def search(self, query: np.ndarray, live: np.ndarray, k: int) -> np.ndarray:
        """The seqs of up to k approximate nearest vectors among those set in `live` (a `seq_bitmap`), and the
        pending ones set in it."""
        faiss = _faiss()
        with self._lock:
            selector = faiss.IDSelectorBitmap(live.size, faiss.swig_ptr(live))  # n: bytes, not bits
            params = faiss.SearchParametersHNSW(efSearch=max(self.spec.hnsw_ef_search, k), sel=selector)
            faiss.omp_set_num_threads(1)
            _, found = self._index.search(self._vectors(query[None, :]), k, params=params)
            pending = self._pending[self._pending < live.size * 8]
            pending = pending[(live[pending // 8] >> (pending % 8).astype(np.uint8)) & 1 == 1]
        found = found[0]
        return np.concatenate([found[found >= 0], pending])


def _prefetch(path: Path) -> None:
    """Read a mapped graph file through once, in the background, so that the page cache holds it: the walks of a
    cold mapping read it from disk a page at a time (dense p50 440 ms at a million documents, against 3.8 ms
    warm), while one sequential read of its 1.6 GiB took 3 s. A file that cannot be read only stays cold."""

    def read() -> None:
        try:
            with path.open("rb") as handle:
                while handle.read(_PREFETCH_CHUNK):
                    pass
        except OSError as exc:
            log.debug("could not read %s ahead: %s", path, exc)

    threading.Thread(target=read, name="neurank-graph-prefetch", daemon=True).start()


def seq_bitmap(seqs: np.ndarray) -> np.ndarray:
    """The bitmap of `seqs` (ascending) that faiss's `IDSelectorBitmap` reads: bit s of byte s // 8, low first;
    a seq past its end (a row newer than the snapshot) is not selected."""
    mask = np.zeros(int(seqs[-1]) + 1 if seqs.size else 0, bool)
    mask[seqs] = True
    return np.packbits(mask, bitorder="little")
