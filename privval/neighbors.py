"""Distances and integer neighbour counts, computed in bounded-memory tiles with BLAS or torch.

The counts here are the interface between data and privacy (DESIGN.md §3): for each validation
point ``v`` the number of training points in the ball ``d(x_j, x_v) <= tau`` whose label matches
``y_v`` (``Ca``) and whose label does not (``Cm``). Adding or removing one training record changes
exactly one of the two by 1 (l1 = l2 sensitivity 1). Counts are int64, so counts of disjoint parts
of a training set add up exactly, in any order.

How distances are computed, and why they are exact at the boundary
-----------------------------------------------------------------
Distances come from one matrix product per tile: for the Euclidean metric, the squared distance
minus ``tau**2`` is the product of the augmented rows ``[x_v, 1, |x_v|^2 - tau^2]`` and
``[-2 x_j, |x_j|^2, 1]`` (the squared-norm trick, folded into the GEMM so no extra pass over the
tile is needed); for the cosine metric ``1 - tau - <x_v/|x_v|, x_j/|x_j|>``. The computation runs
in float32 when both feature matrices are float32, else in float64.

The squared-norm trick loses absolute accuracy of order ``n_features * eps * (|x_v|^2 + |x_j|^2)``,
so near ``tau`` its sign cannot be trusted. Each tile therefore uses a rigorous floating-point error
bound (Higham's ``gamma_n`` for dot products, widened fourfold): pairs further than the bound from
the boundary are decided by the fast product; the few pairs inside the band are recomputed in
float64 from the original features. The **reference decision** is therefore, for every pair,
``np.sqrt(np.sum((x_train - x_v) ** 2, axis=1)) <= tau`` evaluated in float64 (Euclidean;
the same as ``numpy.linalg.norm(x_train - x_v, axis=1) <= tau``), or
``1 - np.sum(x_train * x_v, axis=1) / (|x_j| |x_v|) <= tau`` in float64 with norms computed the
same way (cosine). It does not depend on the chunk
size, the BLAS library or the device, which the tests check bit for bit.

Threads
-------
Tiles are computed by a small thread pool (as many threads as CPU cores, at most 4), each tile
with single-threaded BLAS: numpy and BLAS release the GIL, so the passes over each tile run in
parallel with the products. While privval computes, BLAS is limited to one thread per caller
thread (through threadpoolctl, which ships with scikit-learn).

Memory
------
No tile holds more than ``chunk_size`` distances (default 2**23, about 32 MiB in float32); an
``N x M`` matrix is never built when ``N * M`` exceeds it (TKNN-Shapley also keeps the in-ball
mask of one block of validation points, at most ``4 * chunk_size`` booleans: the same bytes). The
training features are copied once into the augmented layout (``N x (d + 2)`` in the working
precision).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from privval._validation import (
    check_int,
    check_metric,
    check_tau,
    check_train_val,
    encode_labels,
    fail,
)

__all__ = ["neighbor_counts"]

logger = logging.getLogger(__name__)

#: Default tile budget: the most distances (validation x training pairs) held at once.
DEFAULT_CHUNK_SIZE = 2**23

#: Threads computing distance tiles in parallel (numpy/BLAS path).
_TILE_THREADS = max(1, min(4, os.cpu_count() or 1))

_U32 = 2.0**-24
_U64 = 2.0**-53


def _check_chunk_size(chunk_size: Any, func: str) -> int:
    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    return check_int(chunk_size, "chunk_size", func, minimum=1)


def _progress_bar(total: int, desc: str, progress: bool | None) -> tqdm:
    """A tqdm bar that is off when ``progress`` is False or stderr is not a terminal."""
    disable = progress is False or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="val", disable=disable, leave=False)


def _resolve_device(device: Any, func: str) -> Any:
    """``None`` for the numpy/BLAS path, else a ``torch.device``.

    ``"cpu"`` (the default) selects numpy. Any other string (``"cuda"``, ``"cuda:1"``, ``"mps"``)
    or a ``torch.device`` object selects torch; pass ``torch.device("cpu")`` to run torch on the
    CPU.
    """
    if isinstance(device, str) and device == "cpu":
        return None
    module = type(device).__module__
    if not isinstance(device, str) and not module.startswith("torch"):
        fail("device", func, "'cpu', a torch device string such as 'cuda', or a torch.device",
             device, error=TypeError)
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is part of the test extra
        raise ImportError(
            f"device={device!r} needs torch: pip install 'privval[torch]'"
        ) from exc
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        fail("device", func, "a valid torch device", device)


#: threadpoolctl controller, cached with the number of imported modules it was built under:
#: building one scans the loaded libraries (a few milliseconds), so it is rebuilt only after new
#: imports (which may load another BLAS).
_BLAS_CONTROLLER: list[Any] = [None, -1]


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Context limiting BLAS to one thread (threadpoolctl ships with scikit-learn)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - scikit-learn, a core dependency, requires it
        return contextlib.nullcontext()
    controller, n_modules = _BLAS_CONTROLLER
    if controller is None or n_modules != len(sys.modules):
        controller = ThreadpoolController()
        _BLAS_CONTROLLER[:] = [controller, len(sys.modules)]
    return controller.limit(limits=1, user_api="blas")


def _gamma(n: int, u: float) -> float:
    """Higham's gamma_n = n u / (1 - n u): relative error bound of an n-term dot product."""
    return n * u / (1.0 - n * u)


@dataclass
class _Geometry:
    """Features in the augmented layout for one metric and one offset (tau, tau**2 or 0).

    ``tile(v0, v1, t0, t1)`` returns ``dist - offset`` for a block of validation rows and
    training rows (training rows in ``train_order``), ``tolerance`` a bound on its error, and
    ``reference`` the float64 distances that define the exact answer.
    """

    metric: str
    x_train: np.ndarray
    x_val: np.ndarray
    train_order: np.ndarray | None
    aug_train: Any
    aug_val: Any
    sq_train: np.ndarray
    sq_val: np.ndarray
    offset: float
    unit_roundoff: float
    torch_device: Any

    def tile(self, v0: int, v1: int, t0: int, t1: int, out: np.ndarray | None = None) -> np.ndarray:
        if self.torch_device is None:
            return np.matmul(self.aug_val[v0:v1], self.aug_train[t0:t1].T, out=out)
        result = (self.aug_val[v0:v1] @ self.aug_train[t0:t1].T).cpu().numpy()
        if out is None:
            return result
        out[...] = result
        return out

    @property
    def work_dtype(self) -> np.dtype:
        """dtype of the distances :meth:`tile` returns (float32 or float64)."""
        if self.torch_device is None:
            return self.aug_val.dtype
        return np.dtype(np.float32 if self.aug_val.element_size() == 4 else np.float64)

    def tolerance(self, v0: int, v1: int, t0: int, t1: int) -> float:
        d = self.x_train.shape[1]
        g = _gamma(d + 2, self.unit_roundoff)
        if self.metric == "euclidean":
            scale = float(self.sq_val[v0:v1].max()) + float(self.sq_train[t0:t1].max())
            return 4.0 * g * (scale + abs(self.offset))
        return 4.0 * g * (2.0 + abs(1.0 - self.offset))

    def tile64(self, v: np.ndarray, budget: int) -> tuple[np.ndarray, float]:
        """float64 distances ``dist - offset`` of validation rows ``v`` against every training row.

        The same augmented product as :meth:`tile`, but in float64 from the original features
        (squared norms in float64 too), on the host: a refinement for tiles computed in float32,
        whose rounding bound is too coarse to order the pairs. Returns the distances and their
        rounding bound (the :meth:`tolerance` of the float64 product, Higham's ``gamma_{d+2}``
        widened fourfold). Training rows are cast in slices of at most ``budget`` numbers.
        """
        xv = self.x_val[v].astype(np.float64)
        n, d = self.x_train.shape
        g = _gamma(d + 2, _U64)
        out = np.empty((v.shape[0], n), dtype=np.float64)
        step = max(1, budget // (d + 2))
        if self.metric == "euclidean":
            sq_v = np.einsum("ij,ij->i", xv, xv)
            aug_v = np.empty((v.shape[0], d + 2))
            aug_v[:, :-2] = xv
            aug_v[:, -2] = 1.0
            aug_v[:, -1] = sq_v - self.offset
            sq_max = 0.0
            for t0 in range(0, n, step):
                t1 = min(n, t0 + step)
                xt = self.x_train[self.train_rows(np.arange(t0, t1))].astype(np.float64)
                aug_t = np.empty((t1 - t0, d + 2))
                aug_t[:, -2] = np.einsum("ij,ij->i", xt, xt)
                np.multiply(xt, -2.0, out=aug_t[:, :-2])
                aug_t[:, -1] = 1.0
                sq_max = max(sq_max, float(aug_t[:, -2].max()))
                np.matmul(aug_v, aug_t.T, out=out[:, t0:t1])
            tol = 4.0 * g * (float(sq_v.max()) + sq_max + abs(self.offset))
        else:
            aug_v = np.empty((v.shape[0], d + 1))
            aug_v[:, :-1] = xv / np.sqrt(np.einsum("ij,ij->i", xv, xv))[:, None]
            aug_v[:, -1] = 1.0 - self.offset
            for t0 in range(0, n, step):
                t1 = min(n, t0 + step)
                xt = self.x_train[self.train_rows(np.arange(t0, t1))].astype(np.float64)
                aug_t = np.empty((t1 - t0, d + 1))
                np.divide(xt, -np.sqrt(np.einsum("ij,ij->i", xt, xt))[:, None],
                          out=aug_t[:, :-1])
                aug_t[:, -1] = 1.0
                np.matmul(aug_v, aug_t.T, out=out[:, t0:t1])
            tol = 4.0 * g * (2.0 + abs(1.0 - self.offset))
        return out, tol

    def train_rows(self, t: np.ndarray) -> np.ndarray:
        """Original training indices of tile columns ``t`` (absolute positions)."""
        return t if self.train_order is None else self.train_order[t]

    def reference(self, v: np.ndarray, t: np.ndarray, budget: int) -> np.ndarray:
        """float64 distances of the pairs (x_val[v], x_train[train_rows(t)])."""
        rows = self.train_rows(t)
        out = np.empty(v.shape[0], dtype=np.float64)
        step = max(1, budget // self.x_train.shape[1])
        for s in range(0, v.shape[0], step):
            a = self.x_val[v[s:s + step]].astype(np.float64)
            b = self.x_train[rows[s:s + step]].astype(np.float64)
            # Row sums exactly as numpy.linalg.norm(..., axis=1) evaluates them.
            if self.metric == "euclidean":
                diff = b - a
                out[s:s + step] = np.sqrt(np.sum(diff * diff, axis=1))
            else:
                dot = np.sum(a * b, axis=1)
                na = np.sqrt(np.sum(a * a, axis=1))
                nb = np.sqrt(np.sum(b * b, axis=1))
                out[s:s + step] = 1.0 - dot / (na * nb)
        return out


def _prepare(
    x_train: np.ndarray,
    x_val: np.ndarray,
    *,
    metric: str,
    tau: float | None,
    train_order: np.ndarray | None,
    device: Any,
    func: str,
) -> _Geometry:
    """Build the augmented matrices; ``tau=None`` means plain distances (offset 0).

    For the Euclidean metric the offset is ``tau**2`` (tile = squared distance - tau**2);
    for cosine it is ``tau``. The caller handles ``tau = inf`` without distances.
    """
    work = np.float32 if x_train.dtype == np.float32 else np.float64
    if metric == "euclidean":
        offset = 0.0 if tau is None else tau * tau
        # Squared norms in the working precision: their rounding is inside the tolerance bound.
        sq_v = np.einsum("ij,ij->i", x_val, x_val).astype(np.float64)
        n, d = x_train.shape
        aug_t = np.empty((n, d + 2), dtype=work)
        sq_t = np.empty(n, dtype=np.float64)

        def fill(rows: slice) -> None:  # rows of the augmented training matrix, in order
            src = x_train[rows] if train_order is None else x_train[train_order[rows]]
            sq_t[rows] = np.einsum("ij,ij->i", src, src)
            np.multiply(src, -2.0, out=aug_t[rows, :-2])

        cuts = np.linspace(0, n, _TILE_THREADS + 1).astype(int)
        with ThreadPoolExecutor(_TILE_THREADS) as pool:
            list(pool.map(fill, [slice(a, b) for a, b in itertools.pairwise(cuts)]))
        aug_t[:, -2] = sq_t
        aug_t[:, -1] = 1.0
        aug_v = np.empty((x_val.shape[0], d + 2), dtype=work)
        aug_v[:, :-2] = x_val
        aug_v[:, -2] = 1.0
        aug_v[:, -1] = sq_v - offset if math.isfinite(offset) else sq_v  # inf: no distances
        # Features are finite (validated), so the augmented rows are finite iff the squared
        # norms are (|2 x| <= 1 + |x|^2) and so are the sums of the last column.
        if not (np.all(np.isfinite(sq_t)) and np.all(np.isfinite(aug_v[:, -1]))
                and np.all(np.isfinite(aug_t[:, -2]))):
            if work is np.float32:  # squared norms overflow float32: redo in float64
                return _prepare(x_train.astype(np.float64), x_val.astype(np.float64),
                                metric=metric, tau=tau, train_order=train_order, device=device,
                                func=func)
            raise ValueError("Feature values are too large: their squared norms overflow float64.")
    else:
        xt = x_train if train_order is None else x_train[train_order]
        offset = 0.0 if tau is None else tau
        nt = np.sqrt(np.einsum("ij,ij->i", xt, xt, dtype=np.float64))
        nv = np.sqrt(np.einsum("ij,ij->i", x_val, x_val, dtype=np.float64))
        if np.any(nt == 0) or np.any(nv == 0):
            name = "x_train" if np.any(nt == 0) else "x_val"
            fail(name, func, "free of all-zero rows (cosine distance is undefined "
                 "for a zero vector)", np.int64(int(np.sum(nt == 0) + np.sum(nv == 0))))
        aug_t = np.empty((xt.shape[0], xt.shape[1] + 1), dtype=work)
        np.divide(xt, -nt[:, None], out=aug_t[:, :-1], casting="unsafe")
        aug_t[:, -1] = 1.0
        aug_v = np.empty((x_val.shape[0], x_val.shape[1] + 1), dtype=work)
        aug_v[:, :-1] = x_val / nv[:, None]
        aug_v[:, -1] = 1.0 - offset if math.isfinite(offset) else 1.0
        sq_t = np.ones(xt.shape[0])
        sq_v = np.ones(x_val.shape[0])
    u = _U32 if work is np.float32 else _U64
    if device is not None:
        import torch

        aug_t = torch.from_numpy(aug_t).to(device)
        aug_v = torch.from_numpy(aug_v).to(device)
        if work is np.float32 and device.type != "cpu":
            # TF32 / bfloat16 matmuls round their inputs: widen the band accordingly.
            precision = torch.get_float32_matmul_precision()
            if precision == "medium":
                u = 2.0**-8
            elif precision == "high" or torch.backends.cuda.matmul.allow_tf32:
                u = 2.0**-11
    return _Geometry(metric, x_train, x_val, train_order, aug_t, aug_v, sq_t, sq_v, offset, u,
                     device)


def _ball_tile(
    geom: _Geometry, v0: int, v1: int, t0: int, t1: int, budget: int, out: np.ndarray
) -> None:
    """Write the in-ball mask ``dist <= tau`` of a tile into ``out`` (shape (v1-v0, t1-t0)).

    Pairs within the rounding band of the fast product are decided by the float64 reference.
    """
    if geom.offset == math.inf:
        out[...] = True
        return
    r = geom.tile(v0, v1, t0, t1)
    tol = geom.tolerance(v0, v1, t0, t1)
    np.less_equal(r, tol, out=out)  # every pair that may be in the ball
    n_cand = np.count_nonzero(out)
    if n_cand == 0:
        return
    # The band -tol < r <= tol, where the fast product cannot decide. (flatnonzero is much
    # faster than a 2-D nonzero.) Tiny balls (< 0.4% of pairs): look only at the candidates.
    if 256 * n_cand <= out.size:
        flat = np.flatnonzero(out)
        flat = flat[r.reshape(-1)[flat] > -tol]
    else:
        band = r > -tol
        band &= out
        flat = np.flatnonzero(band)
    if flat.size == 0:
        return
    rows, cols = np.divmod(flat, out.shape[1])
    dist = geom.reference(rows + v0, cols + t0, budget)
    tau = math.sqrt(geom.offset) if geom.metric == "euclidean" else geom.offset
    out[rows, cols] = dist <= tau
    logger.debug("recomputed %d boundary pairs exactly", rows.shape[0])


def _class_segments(sorted_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Start positions of each class in class-sorted training labels (length n_classes + 1)."""
    return np.searchsorted(sorted_codes, np.arange(n_classes + 1), side="left")


@dataclass(frozen=True)
class _CountBlock:
    """Counts for validation rows ``v0:v1``: per-class in-ball counts, and optionally the mask."""

    v0: int
    v1: int
    class_counts: np.ndarray  # (v1 - v0, n_classes) int64
    mask: np.ndarray | None  # (v1 - v0, N) bool, training in class-sorted order


def _count_blocks(
    geom: _Geometry,
    segments: np.ndarray,
    *,
    budget: int,
    keep_mask: bool,
    progress: bool | None,
    desc: str,
) -> Iterator[_CountBlock]:
    """Iterate over validation blocks, counting in-ball training points per class.

    Training rows must be in class order (``geom.train_order`` sorts them); ``segments`` gives
    the class boundaries. With ``keep_mask`` each block also carries its full in-ball mask
    (``m_b x N`` booleans with ``m_b * N <= 4 * budget`` where possible), so a caller can assign
    values without recomputing distances.
    """
    m, n = geom.x_val.shape[0], geom.x_train.shape[0]
    n_classes = segments.shape[0] - 1
    if keep_mask:
        # A mask entry is one byte against four or eight for a distance: same memory budget.
        val_block = max(1, min(m, 4 * budget // n))
    else:
        val_block = max(1, min(m, 256, budget))
    # Tiles of one block run in parallel threads, each with single-threaded BLAS: numpy and
    # BLAS release the GIL, so the passes after each product run in parallel too (multi-threaded
    # BLAS would leave its workers spinning while one thread does them). The tiles in flight
    # together hold at most `budget` distances.
    threads = _TILE_THREADS if geom.torch_device is None else 1
    train_chunk = max(1, min(n, budget // (val_block * threads)))

    def tile_counts(v0: int, v1: int, t0: int, mask: np.ndarray | None) -> np.ndarray:
        t1 = min(n, t0 + train_chunk)
        tile = mask[:, t0:t1] if mask is not None else np.empty((v1 - v0, t1 - t0), bool)
        _ball_tile(geom, v0, v1, t0, t1, budget, tile)
        counts = np.zeros((v1 - v0, n_classes), dtype=np.int64)
        lo = np.searchsorted(segments, t0, side="right") - 1
        hi = np.searchsorted(segments, t1, side="left")
        for c in range(lo, hi):
            s, e = max(segments[c], t0), min(segments[c + 1], t1)
            if e > s:
                # an int32 row sum of the bytes is about twice as fast as count_nonzero(axis=1);
                # it cannot overflow (fewer than 2**31 columns)
                acc = np.int32 if e - s < 2**31 else np.int64
                counts[:, c] = np.add.reduce(tile[:, s - t0:e - t0].view(np.uint8), axis=1,
                                             dtype=acc)
        return counts

    blas = single_threaded_blas() if threads > 1 else contextlib.nullcontext()
    with _progress_bar(m, desc, progress) as bar, ThreadPoolExecutor(threads) as pool, blas:
        for v0 in range(0, m, val_block):
            v1 = min(m, v0 + val_block)
            mask = np.empty((v1 - v0, n), dtype=bool) if keep_mask else None
            starts = range(0, n, train_chunk)
            counts = sum(pool.map(tile_counts, [v0] * len(starts), [v1] * len(starts), starts,
                                  [mask] * len(starts)))
            yield _CountBlock(v0, v1, counts, mask)
            bar.update(v1 - v0)


def neighbor_counts(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
) -> np.ndarray:
    """Count, for each validation point, matching and non-matching training points within ``tau``.

    A training point ``j`` is a neighbour of validation point ``v`` when
    ``d(x_j, x_v) <= tau`` (boundary included, as in the DP-TKNN-Shapley paper, Wang et al. 2023,
    arXiv 2308.15709). It matches when ``y_j == y_v``. These are the counting queries behind
    TKNN-Shapley (DESIGN.md §2-3); adding or removing one training record changes exactly one of
    the two counts of each validation point by 1.

    Parameters
    ----------
    x_train : array-like of shape (N, d)
        Training features (finite reals). float32 input is computed in float32.
    y_train : array-like of shape (N,)
        Training labels (integers or strings).
    x_val : array-like of shape (M, d)
        Validation features.
    y_val : array-like of shape (M,)
        Validation labels, of the same kind as ``y_train``.
    tau : float
        Radius in (0, inf]; ``inf`` makes every training point a neighbour.
    metric : {"euclidean", "cosine"}
        Euclidean distance, or cosine distance ``1 - cos(x_j, x_v)`` (in [0, 2]).
    chunk_size : int, optional
        Most distances held in memory at once (default ``2**23``). Results do not depend on it.
    device : str or torch.device
        ``"cpu"`` (default) computes with numpy/BLAS; another torch device string
        (``"cuda"``) or a ``torch.device`` computes distance tiles with torch. Results are
        identical (boundary pairs are always settled in float64 on the host).
    progress : bool, optional
        Show a tqdm progress bar (only ever on a terminal). ``False`` turns it off.

    Returns
    -------
    np.ndarray of shape (M, 2), int64
        Column 0: ``Ca`` (matching neighbours); column 1: ``Cm`` (non-matching neighbours).

    Raises
    ------
    ValueError
        Mismatched lengths, non-finite or empty features, different feature dimensions,
        ``tau <= 0``, an unknown metric, a zero row under the cosine metric.
    TypeError
        Labels that are not integers or strings, non-numeric features or parameters.

    Example
    -------
    >>> import numpy as np
    >>> from privval import neighbor_counts
    >>> x_train = np.array([[0.0], [1.0], [2.0], [5.0]])
    >>> neighbor_counts(x_train, [0, 1, 0, 0], np.array([[1.0]]), [0], tau=1.0)
    array([[2, 1]])
    """
    func = "neighbor_counts"
    xt, yt, xv, yv = check_train_val(x_train, y_train, x_val, y_val, func)
    tau = check_tau(tau, func)
    metric = check_metric(metric, func)
    budget = _check_chunk_size(chunk_size, func)
    torch_device = _resolve_device(device, func)
    codes_t, codes_v, n_classes = encode_labels(yt, yv, None, func)
    return _neighbor_counts(xt, codes_t, xv, codes_v, n_classes, tau=tau, metric=metric,
                            budget=budget, device=torch_device, progress=progress)


def _neighbor_counts(
    xt: np.ndarray,
    codes_t: np.ndarray,
    xv: np.ndarray,
    codes_v: np.ndarray,
    n_classes: int,
    *,
    tau: float,
    metric: str,
    budget: int,
    device: Any,
    progress: bool | None,
) -> np.ndarray:
    """:func:`neighbor_counts` on validated, label-encoded input."""
    order = np.argsort(codes_t, kind="stable")
    segments = _class_segments(codes_t[order], n_classes)
    geom = _prepare(xt, xv, metric=metric, tau=tau, train_order=order, device=device,
                    func="neighbor_counts")
    out = np.empty((xv.shape[0], 2), dtype=np.int64)
    for block in _count_blocks(geom, segments, budget=budget, keep_mask=False,
                               progress=progress, desc="neighbour counts"):
        rows = np.arange(block.v1 - block.v0)
        ca = block.class_counts[rows, codes_v[block.v0:block.v1]]
        out[block.v0:block.v1, 0] = ca
        out[block.v0:block.v1, 1] = block.class_counts.sum(axis=1) - ca
    return out
