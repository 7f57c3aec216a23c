"""Exact KNN-Shapley values: hard-label (Jia et al. 2019) and soft-label (Wang & Jia 2023).

Both need, for each validation point, the training set sorted by distance; the values then follow
from a recursion over the ranks, which we evaluate for a whole block of validation points at once
with cumulative sums along the sorted axis (DESIGN.md §2).

Ranks ``i = 1..N`` order the training points by distance to ``x_v`` with ties broken by training
index (the lower index is nearer): a stable, documented tie-break, since tied points can receive
different values. ``a_i = 1[y_(i) = y_v]`` is the label match of the i-th nearest point.

- **Hard label** (Jia et al. 2019, "Efficient task-specific data valuation for nearest neighbor
  algorithms", Thm. 1): utility of S = (1/K) * number of matches among the min(K, |S|) nearest
  points of S (0 for the empty set). ``s_N = a_N / max(N, K)`` and
  ``s_i = s_{i+1} + (a_i - a_{i+1}) / max(K, i)``. The base ``a_N / max(N, K)`` (not ``a_N / N``)
  keeps the values exact when N < K.
- **Soft label** (Wang & Jia 2023, arXiv 2304.04258): utility = fraction of matches among the
  min(K, |S|) nearest points of S, ``1/C`` for the empty set. For N > K, with
  ``c_A = sum_{j<N} a_j`` and ``H_K`` the K-th harmonic number,
  ``s_N = (a_N - 1/C)/N + (a_N - c_A/(N-1)) (H_K - 1)/N`` and
  ``s_i = s_{i+1} + (a_i - a_{i+1}) [(H_K - 1)/(N-1) + 1/max(i, K)]``. For N <= K every
  coalition keeps all of its points, so the game is Threshold-KNN with every point in the ball and
  the TKNN closed form with ``Ct = N`` applies.

Ordering is exact: distances come from a BLAS product (as in :mod:`privval.neighbors`), and any
run of training points whose fast distances lie within the rounding bound of each other is
re-ordered by their float64 reference distances, then by index. So the result does not depend on
the block size, the BLAS library or the device. For float32 features the float32 bound can exceed
the typical gap between distances (dense data, large norms); rows where many neighbours are
near-tied are first re-sorted from a float64 product with its own, far smaller, bound, so that only
pairs tied within that bound need the per-pair reference.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from privval._validation import (
    check_choice,
    check_int,
    check_metric,
    check_train_val,
    encode_labels,
    fail,
)
from privval.neighbors import (
    _U64,
    _check_chunk_size,
    _Geometry,
    _prepare,
    _progress_bar,
    _resolve_device,
    single_threaded_blas,
)
from privval.tknn import _point_values, harmonic_number

__all__ = ["knn_shapley"]

logger = logging.getLogger(__name__)

#: Per-distance working arrays of a validation block (distances, order, keys, values...).
_ARRAYS_PER_DISTANCE = 8

#: Threads sorting the rows of a validation block.
_SORT_THREADS = max(1, min(4, os.cpu_count() or 1))


#: A row in which more than ``1 / _REFINE_FRACTION`` of the neighbours are near-tied in float32
#: is re-sorted from a float64 product rather than pair by pair: one per-pair reference distance
#: (gathered rows, casts) costs about as much as that refinement does for 20-30 positions of a row.
_REFINE_FRACTION = 32


#: (process id, executor) of the sorting threads: kept between calls, restarted in a forked child
#: (which inherits the executor but not its threads).
_POOL: list[tuple[int, ThreadPoolExecutor]] = []
_POOL_LOCK = threading.Lock()


def _sort_pool() -> ThreadPoolExecutor:
    """The sorting threads, started on first use and kept (starting them costs ~1 ms a call)."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0][0] != os.getpid():
            _POOL[:] = [(os.getpid(), ThreadPoolExecutor(max_workers=_SORT_THREADS,
                                                         thread_name_prefix="privval-knn"))]
        return _POOL[0][1]


def _radix_argsort(bits: np.ndarray) -> np.ndarray:
    """Stable row-wise argsort of non-negative int32 keys, as two passes over 16-bit halves.

    numpy sorts 16-bit integers by radix sort when ``kind="stable"``: the two passes (low half,
    then high half) take about half the time of a comparison sort of the 32-bit keys. Equal keys
    keep index order.
    """
    low = (bits & 0xFFFF).astype(np.uint16)
    order = np.argsort(low, axis=1, kind="stable")
    del low
    high = np.take_along_axis((bits >> 16).astype(np.uint16), order, axis=1)
    return np.take_along_axis(order, np.argsort(high, axis=1, kind="stable"), axis=1)


def _sort_runs(order: np.ndarray, link: np.ndarray, key: Any) -> int:
    """Sort each run of linked neighbours of ``order`` (in place) by ``(key, training index)``.

    ``link[r, p]`` says that positions ``p`` and ``p + 1`` of row ``r`` are in one run;
    ``key(rows, cols)`` gives the float64 sort key of the training indices ``cols`` for the rows
    ``rows`` (positions in the block). Only the members of runs are gathered and sorted.
    Returns how many positions were in runs.
    """
    n = order.shape[1]
    in_run = np.zeros(order.shape, dtype=bool)
    in_run[:, :-1] = link
    in_run[:, 1:] |= link
    flat = np.flatnonzero(in_run)
    if flat.size == 0:
        return 0
    # A run starts at a member whose left neighbour is not linked to it.
    starts = in_run
    starts[:, 1:] &= ~link
    run_id = np.cumsum(starts.ravel()[flat])
    members = order.ravel()[flat]
    keys = key(flat // n, members)
    order.ravel()[flat] = members[np.lexsort((members, keys, run_id))]
    return flat.size


def _exact_order(geom: _Geometry, dist: np.ndarray, v0: int, budget: int) -> np.ndarray:
    """Training indices sorted by (reference distance, index) for validation rows v0:v0+len.

    ``dist`` holds the fast distances of those rows (squared Euclidean or cosine, with rounding
    error) against every training point; it is overwritten.
    """
    v = np.arange(v0, v0 + dist.shape[0])
    tol = geom.tolerance(v0, v0 + dist.shape[0], 0, dist.shape[1])
    order, link = _fast_order(dist, tol)
    del dist
    if dist_is_float32 := geom.unit_roundoff > _U64:
        # Rows with many near ties: re-order them from float64 distances (a BLAS product with a
        # far smaller rounding bound), leaving only pairs tied within that bound to the reference.
        heavy = np.flatnonzero(link.sum(axis=1) * _REFINE_FRACTION > link.shape[1])
        if heavy.size:
            dist64, tol64 = geom.tile64(v[heavy], budget)
            order[heavy], link[heavy] = _fast_order(dist64, tol64, order[heavy])
            del dist64
    count = _sort_runs(order, link, lambda r, t: geom.reference(v[r], t, budget))
    logger.debug("re-ordered %d near-tied distances exactly (float32 tile: %s)", count,
                 dist_is_float32)
    return order


def _fast_order(
    dist: np.ndarray, tol: float, presorted: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise order of ``dist`` by (fast distance, index), and its near ties.

    ``link[r, p]`` says that positions p and p+1 of the sorted row r are within ``2 * tol`` of
    each other. Every fast distance is within ``tol`` of the exact one, so two neighbours in the
    fast order can be swapped in the exact order only if their gap is at most ``2 * tol``; runs
    of such neighbours are ordered correctly relative to each other already. ``dist`` is clamped
    at +0.0 in place.
    """
    # Clamp rounding below zero (and -0.0) to +0.0: non-negative IEEE floats sort like their bit
    # patterns read as integers, and integer sorts are faster. No stable sort is needed: equal
    # fast distances are always linked as near ties.
    np.maximum(dist, 0.0, out=dist)
    dist += 0.0
    if dist.dtype == np.float32:
        order = _radix_argsort(dist.view(np.int32))
        fast = np.take_along_axis(dist, order, axis=1).astype(np.float64)
    elif presorted is not None:
        # Rows already in float32 order are nearly sorted: timsort (numpy's stable sort of int64
        # keys) handles them in a fraction of the time of a full sort.
        fast = np.take_along_axis(dist, presorted, axis=1)
        perm = np.argsort(fast.view(np.int64), axis=1, kind="stable")
        order = np.take_along_axis(presorted, perm, axis=1)
        fast = np.take_along_axis(fast, perm, axis=1)
    elif dist.shape[1] <= 2**31:
        # Sort (float32-rounded distance, index) pairs packed into int64 values: sorting values
        # in place is faster than an argsort of the float64 bits. Rounding is monotone, so the
        # order is right up to runs of equal float32 keys, which are then sorted by the float64
        # distance alone. The halves are written through 32-bit views, with no temporaries
        # (fresh pages in worker threads are slow to fault in).
        order = np.empty(dist.shape, dtype=np.int64)
        high, low = (1, 0) if np.little_endian else (0, 1)
        with np.errstate(over="ignore"):
            order.view(np.float32)[:, high::2] = dist
        order.view(np.int32)[:, low::2] = np.arange(dist.shape[1], dtype=np.int32)
        order.sort(axis=1)
        keys = order.view(np.int32)[:, high::2]
        equal = keys[:, 1:] == keys[:, :-1]
        order &= 0x7FFFFFFF
        _sort_runs(order, equal, lambda r, t: dist[r, t])
        fast = np.take_along_axis(dist, order, axis=1)
        gaps = np.subtract(fast[:, 1:], fast[:, :-1], out=dist[:, :-1])  # dist is spent
        return order, gaps <= 2.0 * tol
    else:  # pragma: no cover - more than 2**31 training points
        order = np.argsort(dist.view(np.int64), axis=1)
        fast = np.take_along_axis(dist, order, axis=1)
    return order, np.diff(fast, axis=1) <= 2.0 * tol


def _hard_values(a: np.ndarray, k: int) -> np.ndarray:
    """Jia et al. 2019 recursion for a block: ``a`` is (m, N) in rank order (0/1 label matches,
    any numeric type); values in rank order."""
    n = a.shape[1]
    steps = np.subtract(a[:, :-1], a[:, 1:], dtype=np.float64)
    steps *= 1.0 / np.maximum(np.arange(1, n, dtype=np.float64), k)
    return _suffix_sums_plus(steps, a[:, -1:] / max(n, k))


def _soft_values(a: np.ndarray, k: int, n_classes: int) -> np.ndarray:
    """Wang & Jia 2023 soft-label values for a block (rank order)."""
    n = a.shape[1]
    if n <= k:
        ca = a.sum(axis=1)
        value_match, value_mismatch = _point_values(ca, n - ca, n_classes)
        return np.where(a == 1.0, value_match[:, None], value_mismatch[:, None])
    h1 = float(harmonic_number(k)) - 1.0
    c_a = a[:, :-1].sum(axis=1, keepdims=True)
    a_n = a[:, -1:]
    base = (a_n - 1.0 / n_classes) / n + (a_n - c_a / (n - 1)) * h1 / n
    steps = np.subtract(a[:, :-1], a[:, 1:])
    steps *= h1 / (n - 1) + 1.0 / np.maximum(np.arange(1, n, dtype=np.float64), k)
    return _suffix_sums_plus(steps, base)


def _suffix_sums_plus(steps: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``out[:, i] = base + sum_{j >= i} steps[:, j]`` for ranks i < N, and ``base`` at rank N."""
    out = np.empty((steps.shape[0], steps.shape[1] + 1), dtype=np.float64)
    out[:, -1] = 0.0
    np.cumsum(steps[:, ::-1], axis=1, out=out[:, -2::-1])
    out += base
    return out


def knn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    k: int = 5,
    metric: str = "euclidean",
    soft_label: bool = False,
    n_classes: int | None = None,
    reduce: str = "mean",
    chunk_size: int | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
) -> np.ndarray:
    """Exact KNN-Shapley values of the training points.

    Hard-label values follow Jia et al. 2019 (utility: (1/K) * matches among the K nearest);
    soft-label values follow Wang & Jia 2023, arXiv 2304.04258 (utility: fraction of matches
    among the K nearest, ``1/C`` on the empty set). Both are exact also when N < K. Ties in
    distance are broken by training index (lower index = nearer).

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        Training and validation features (2-D, finite) and labels (integers or strings).
    k : int
        Number of neighbours K >= 1.
    metric : {"euclidean", "cosine"}
        Distance; cosine distance is ``1 - cosine similarity``.
    soft_label : bool
        Soft-label utility (Wang & Jia 2023) instead of Jia et al.'s hard-label utility.
    n_classes : int, optional
        Number of classes C (soft label only; the empty set is worth ``1/C``). Defaults to the
        number of distinct labels in ``y_train`` and ``y_val``.
    reduce : {"mean", "sum"}
        Average (pyDVL, OpenDataVal) or sum (the papers' code) over validation points.
    chunk_size : int, optional
        Memory budget in distances (default ``2**23``); validation points are processed in blocks
        of about ``chunk_size / (8 N)`` points (at least one). Results do not depend on it.
    device : str or torch.device
        ``"cpu"`` for numpy/BLAS, or a torch device for the distance products.
    progress : bool, optional
        tqdm progress bar on a terminal; ``False`` turns it off.

    Returns
    -------
    np.ndarray of shape (N,), float64
        Value of each training point, in the order of ``x_train``.

    Raises
    ------
    ValueError, TypeError
        Invalid parameters: see :func:`privval.neighbor_counts`; ``k < 1``; ``soft_label`` not a
        bool; ``reduce`` not in {"mean", "sum"}.

    Example
    -------
    >>> import numpy as np
    >>> from privval import knn_shapley
    >>> x_train = np.array([[0.0], [1.0], [2.0]])
    >>> np.round(knn_shapley(x_train, [0, 1, 0], np.array([[0.0]]), [0], k=1), 4).tolist()
    [0.8333, -0.1667, 0.3333]
    """
    func = "knn_shapley"
    xt, yt, xv, yv = check_train_val(x_train, y_train, x_val, y_val, func)
    k = check_int(k, "k", func, minimum=1)
    metric = check_metric(metric, func)
    if not isinstance(soft_label, (bool, np.bool_)):
        fail("soft_label", func, "a bool", soft_label, error=TypeError)
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    budget = _check_chunk_size(chunk_size, func)
    torch_device = _resolve_device(device, func)
    codes_t, codes_v, n_classes = encode_labels(yt, yv, n_classes, func)

    n, m = xt.shape[0], xv.shape[0]
    geom = _prepare(xt, xv, metric=metric, tau=None, train_order=None, device=torch_device,
                    func=func)
    val_block = max(1, min(m, budget // (_ARRAYS_PER_DISTANCE * n)))
    values = np.zeros(n, dtype=np.float64)

    # Label codes in the narrowest integer type: the gather by rank order is the largest pass.
    small = np.int16 if n_classes < 2**15 else np.int64
    codes_t, codes_v = codes_t.astype(small), codes_v.astype(small)

    def block_values(v0: int, v1: int, dist: np.ndarray) -> np.ndarray:
        order = _exact_order(geom, geom.tile(v0, v1, 0, n, out=dist), v0, budget)
        match = codes_t[order] == codes_v[v0:v1, None]
        if soft_label:
            ranked = _soft_values(match.astype(np.float64), k, n_classes)
        else:
            ranked = _hard_values(match.view(np.int8), k)
        return np.bincount(order.ravel(), weights=ranked.ravel(), minlength=n)

    # Sorting dominates and numpy releases the GIL while sorting: split each block's rows
    # between threads, each computing its own distance tile (into memory allocated here: the
    # main thread's allocator reuses it, where fresh pages in each worker would be faulted in).
    # The products are small next to the sorts, so BLAS runs single-threaded here: its idle
    # worker threads would otherwise spin on the sorting cores.
    pool = _sort_pool()
    with _progress_bar(m, "KNN-Shapley", progress) as bar, single_threaded_blas():
        for v0 in range(0, m, val_block):
            v1 = min(m, v0 + val_block)
            dist = np.empty((v1 - v0, n), dtype=geom.work_dtype)
            cuts = np.linspace(0, v1 - v0, min(_SORT_THREADS, v1 - v0) + 1).astype(int)
            tiles = [dist[a:b] for a, b in itertools.pairwise(cuts)]
            for part in pool.map(block_values, v0 + cuts[:-1], v0 + cuts[1:], tiles):
                values += part
            bar.update(v1 - v0)
    if reduce == "mean":
        values /= m
    return values
