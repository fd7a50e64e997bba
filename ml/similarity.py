"""Nearest descriptors: an index over L2-normalised vectors (faiss), and the exact search it is
measured against.

Descriptors are L2-normalised, so the inner product is the cosine similarity and the distance we
report is the cosine distance, ``1 - cos`` (0 for the same direction, 2 for opposite ones).

Below ``EXACT_BELOW`` vectors the index is exact (faiss's flat inner-product scan: every vector
compared, recall 1). From there on it is an inverted file (IVF): k-means cells of about
``sqrt(n)`` vectors each, vectors kept as float16 (half the memory of float32, with no loss of
ranking at these dimensions), and a query scans the ``nprobe`` cells nearest to it. An IVF is built
in seconds from the rows (no graph to grow, unlike HNSW), so every process can rebuild it from
the database and agree with the others; vectors added later go into their cells without retraining.
How many cells a query scans (``nprobe``) is calibrated when the index is built: the fewest that
find ``TARGET_RECALL`` of the exact 10 nearest neighbours of a sample of the stored vectors, so
recall holds on clustered and on diffuse descriptors alike (diffuse ones need more cells).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss


def _faiss():
    """faiss, imported on first use: a process that never searches does not load it (tens of MB),
    and its loader's INFO lines (each missing CPU-specific build tried, "ModuleNotFoundError") are
    kept out of the log."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


EXACT_BELOW = 20_000  # under this, the exact scan is already a few milliseconds
TRAIN_PER_CELL = 40  # k-means sample per cell: faiss's own lower bound for a stable clustering
MIN_NPROBE = 16  # cells scanned per query at the least
TARGET_RECALL = 0.97  # recall@10 an IVF is calibrated to on its own vectors (the goal is 0.95)
CALIBRATION_QUERIES = 64  # stored vectors used as queries to calibrate nprobe
SEED = 1234  # the k-means start, so every process builds the same cells from the same rows

_THREADS_LOCK = threading.Lock()


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Float32 rows of unit length (a zero row stays zero)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def default_cells(n: int) -> int:
    """IVF cells for ``n`` vectors: about sqrt(n) (so a cell holds about sqrt(n) vectors)."""
    return max(16, int(np.sqrt(n)))


def calibrate_nprobe(
    ivf, x: np.ndarray, ids: np.ndarray, *, target: float = TARGET_RECALL, seed: int = SEED
) -> int:
    """The fewest cells to scan (doubling from ``MIN_NPROBE``) for which the index finds
    ``target`` of the exact 10 nearest neighbours of ``CALIBRATION_QUERIES`` stored vectors (each
    vector itself left out of both lists)."""
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), min(len(x), CALIBRATION_QUERIES), replace=False)]
    # The ids of a vector's exact neighbours; the vector itself is the first of both lists.
    exact, _ = exact_search(x, sample, 11)
    truth = [set(ids[row[1:]].tolist()) for row in exact]
    nprobe = min(MIN_NPROBE, ivf.nlist)
    while True:
        ivf.nprobe = nprobe
        _, found = ivf.search(sample, 11)
        recall = np.mean([len(t & set(f.tolist())) / 10 for t, f in zip(truth, found, strict=True)])
        if recall >= target or nprobe >= ivf.nlist:
            return nprobe
        nprobe = min(ivf.nlist, nprobe * 2)


@dataclass
class Index:
    """A searchable set of ``(id, vector)``: ids are int64 keys the caller maps back to its rows."""

    index: faiss.Index
    dim: int
    exact: bool

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ``ids`` (an IVF puts them into its existing cells)."""
        if len(ids):
            self.index.add_with_ids(normalise(vectors), np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query: ``(ids, distances)``, each ``(len(queries), k)``,
        nearest first; cosine distances; id -1 (distance inf) pads a row when fewer exist."""
        q = normalise(queries)
        if self.size == 0 or k <= 0:
            empty = np.full((len(q), max(k, 0)), -1, dtype=np.int64)
            return empty, np.full(empty.shape, np.inf, dtype=np.float32)
        sims, ids = self.index.search(q, k)
        distances = np.where(ids >= 0, 1.0 - sims, np.inf).astype(np.float32)
        return ids, np.maximum(distances, 0.0)


def build_index(ids: np.ndarray, vectors: np.ndarray, *, exact_below: int | None = None) -> Index:
    """An index over ``vectors`` (``(n, dim)``, normalised here) keyed by int64 ``ids``: exact under
    ``exact_below`` vectors, an IVF of float16 vectors from there on (see the module's docstring)."""
    x = normalise(vectors)
    n, dim = x.shape
    ids = np.asarray(ids, dtype=np.int64)
    exact_below = EXACT_BELOW if exact_below is None else exact_below
    if n < exact_below:
        index = _faiss().IndexIDMap2(_faiss().IndexFlatIP(dim))
        index.add_with_ids(x, ids)
        return Index(index=index, dim=dim, exact=True)
    cells = default_cells(n)
    quantizer = _faiss().IndexFlatIP(dim)
    ivf = _faiss().IndexIVFScalarQuantizer(
        quantizer, dim, cells, _faiss().ScalarQuantizer.QT_fp16, _faiss().METRIC_INNER_PRODUCT
    )
    ivf.cp.seed = SEED
    sample = x[np.random.default_rng(SEED).choice(n, min(n, cells * TRAIN_PER_CELL), replace=False)]
    ivf.train(sample)
    ivf.add_with_ids(x, ids)
    ivf.nprobe = calibrate_nprobe(ivf, x, ids)
    return Index(index=ivf, dim=dim, exact=False)


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every vector compared with numpy. ``(positions, distances)`` nearest first."""
    x, q = normalise(vectors), normalise(queries)
    sims = q @ x.T
    k = min(k, x.shape[0])
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
    positions = np.take_along_axis(top, order, axis=1)
    return positions, 1.0 - np.take_along_axis(sims, positions, axis=1)


def set_threads(count: int) -> None:
    """faiss's OpenMP threads for this process (a web process keeps it small beside its requests)."""
    with _THREADS_LOCK:
        _faiss().omp_set_num_threads(max(1, int(count)))


def dumps(index: Index) -> bytes:
    """The index as bytes (faiss's own format: vectors, cells and ``nprobe``), to store and share."""
    return _faiss().serialize_index(index.index).tobytes()


def loads(data: bytes) -> Index:
    """An index from ``dumps``' bytes."""
    raw = _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8))  # already of its own class
    return Index(index=raw, dim=int(raw.d), exact=isinstance(raw, _faiss().IndexIDMap2))
