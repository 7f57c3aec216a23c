"""Threshold-KNN Shapley values (TKNN-Shapley), from neighbour counts.

Wang, Zhu, Wang, Jia, Mittal 2023, "Threshold KNN-Shapley: a linear-time and privacy-friendly
approach to data valuation", arXiv 2308.15709 (closed form: Thm. 13 / eq. (7) there). We use the
equivalent harmonic-number form derived in DESIGN.md §2, which does not depend on the training set
size N and never evaluates a binomial coefficient (those overflow float64 for N in the thousands).

For a validation point ``v`` with ``Ct`` training points in its ball, ``Ca`` of which match its
label, and ``C`` classes, the utility of a subset S is the fraction of matching points among the
in-ball points of S (``1/C`` if there are none). Its Shapley value is

- 0 for a point outside the ball (null player);
- ``e_i - 1/C`` if the point is alone in the ball (``Ct = 1``);
- ``(1/Ct) [(e_i - 1/C) + (e_i - (Ca - e_i)/(Ct - 1)) (H_Ct - 1)]`` for ``Ct >= 2``,

with ``e_i = 1[y_i = y_v]`` and ``H_c`` the c-th harmonic number. So each validation point hands
one value to all its matching neighbours and one to all its non-matching neighbours.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from scipy.special import digamma

from privval._validation import (
    check_choice,
    check_int,
    check_metric,
    check_tau,
    check_train_val,
    encode_labels,
    fail,
)
from privval.neighbors import (
    _check_chunk_size,
    _class_segments,
    _count_blocks,
    _prepare,
    _resolve_device,
)

__all__ = ["harmonic_number", "tknn_point_values", "tknn_shapley"]

logger = logging.getLogger(__name__)

#: Mask entries per masked mat-vec slice (its float64 copy, 2 MiB, stays in cache).
_MATVEC_ELEMENTS = 2**18

_EULER_GAMMA = 0.57721566490153286060651209008240243


def harmonic_number(c: Any) -> np.ndarray:
    """The harmonic numbers ``H_c = 1 + 1/2 + ... + 1/c`` (``H_0 = 0``), vectorised.

    Computed as ``digamma(c + 1) + euler_gamma`` (relative error about 1e-15 for every c, no
    table, no overflow).

    Example
    -------
    >>> np.round(harmonic_number([0, 1, 2, 3]), 12).tolist()
    [0.0, 1.0, 1.5, 1.833333333333]
    """
    c = np.asarray(c, dtype=np.float64)
    return np.where(c == 0, 0.0, digamma(c + 1.0) + _EULER_GAMMA)


def _check_counts(value: Any, name: str, func: str) -> np.ndarray:
    arr = np.asarray(value)
    requirement = "an array of non-negative integer counts"
    if arr.dtype.kind not in "iuf" or arr.dtype == bool:
        fail(name, func, requirement, arr, error=TypeError)
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        fail(name, func, requirement + " (float input must hold whole numbers)", arr)
    if np.any(arr < 0):
        fail(name, func, requirement, arr)
    return arr.astype(np.float64)


def _point_values(ca: np.ndarray, cm: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tknn_point_values` on checked float64 arrays."""
    ct = ca + cm
    inv_c = 1.0 / n_classes
    h1 = harmonic_number(ct) - 1.0  # H_Ct - 1, zero when Ct = 1
    ct_safe = np.maximum(ct, 1.0)
    others = np.maximum(ct - 1.0, 1.0)  # Ct - 1 (unused when Ct = 1, where h1 = 0)
    value_match = ((1.0 - inv_c) + (1.0 - (ca - 1.0) / others) * h1) / ct_safe
    value_mismatch = (-inv_c - (ca / others) * h1) / ct_safe
    value_match = np.where(ca >= 1, value_match, 0.0)
    value_mismatch = np.where(cm >= 1, value_mismatch, 0.0)
    return value_match, value_mismatch


def tknn_point_values(ca: Any, cm: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """TKNN-Shapley value of one in-ball training point, per validation point, from its counts.

    Pure and vectorised; the DP mechanism applies it unchanged to noisy counts.

    Parameters
    ----------
    ca : array-like of int
        Matching neighbours of each validation point, **including the point being valued** if
        it matches.
    cm : array-like of int
        Non-matching neighbours, including the point being valued if it does not match. Same
        shape as ``ca``.
    n_classes : int
        Number of classes C (>= 1); the empty ball's utility is ``1/C``.

    Returns
    -------
    (value_match, value_mismatch) : tuple of np.ndarray, float64, shaped like ``ca``
        The value of an in-ball training point whose label matches the validation label (needs
        ``ca >= 1``; 0 where ``ca == 0``, as no such point exists), resp. does not match (needs
        ``cm >= 1``; 0 where ``cm == 0``). A point outside the ball is worth 0. With
        ``Ct = ca + cm = 1`` the values are ``1 - 1/C`` and ``-1/C``; otherwise
        ``(1/Ct)[(1 - 1/C) + (1 - (Ca - 1)/(Ct - 1))(H_Ct - 1)]`` and
        ``(1/Ct)[-1/C - Ca/(Ct - 1) (H_Ct - 1)]`` (Wang et al. 2023, arXiv 2308.15709, in the
        harmonic-number form of DESIGN.md §2).

    Raises
    ------
    ValueError
        Negative or non-integral counts, shapes that differ, ``n_classes < 1``.
    TypeError
        Non-numeric counts.

    Example
    -------
    >>> a, b = tknn_point_values([1, 1], [0, 1], 2)
    >>> a.tolist(), b.tolist()
    ([0.5, 0.5], [0.0, -0.5])
    """
    func = "tknn_point_values"
    ca_arr = _check_counts(ca, "ca", func)
    cm_arr = _check_counts(cm, "cm", func)
    if ca_arr.shape != cm_arr.shape:
        fail("cm", func, f"an array of the same shape as ca {ca_arr.shape}", cm_arr)
    n_classes = check_int(n_classes, "n_classes", func, minimum=1)
    return _point_values(ca_arr, cm_arr, n_classes)


def tknn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float,
    metric: str = "euclidean",
    n_classes: int | None = None,
    reduce: str = "mean",
    chunk_size: int | None = None,
    device: Any = "cpu",
    progress: bool | None = None,
) -> np.ndarray:
    """Exact Threshold-KNN Shapley values of the training points (Wang et al. 2023).

    For each validation point the training points within ``tau`` (``d <= tau``) share the
    value of the soft-label threshold-NN classifier; the closed form (module docstring) needs
    only the two neighbour counts, so the cost is one distance evaluation per pair plus masked
    matrix-vector products, with no sorting. Distances are computed once: each block of
    validation points keeps its in-ball mask (bounded by ``chunk_size``) between the counting
    and the value-assignment steps.

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        Training and validation features (2-D, finite) and labels (integers or strings).
    tau : float
        Neighbourhood radius in (0, inf]; boundary included.
    metric : {"euclidean", "cosine"}
        Distance; cosine distance is ``1 - cosine similarity``.
    n_classes : int, optional
        Number of classes C; defaults to the number of distinct labels in ``y_train`` and
        ``y_val``. An empty ball is worth ``1/C``.
    reduce : {"mean", "sum"}
        Average the per-validation-point values (as pyDVL does) or sum them (as the paper's
        code does). Rankings do not depend on it.
    chunk_size : int, optional
        Most distances held at once (default ``2**23``); results do not depend on it.
    device : str or torch.device
        ``"cpu"`` for numpy/BLAS, or a torch device (see :func:`privval.neighbor_counts`).
    progress : bool, optional
        tqdm progress bar on a terminal; ``False`` turns it off.

    Returns
    -------
    np.ndarray of shape (N,), float64
        Value of each training point, in the order of ``x_train``.

    Raises
    ------
    ValueError, TypeError
        Invalid parameters (see :func:`privval.neighbor_counts`), ``n_classes`` below the number
        of distinct labels, ``reduce`` not in {"mean", "sum"}.

    Example
    -------
    >>> import numpy as np
    >>> from privval import tknn_shapley
    >>> x_train = np.array([[0.0], [1.0], [5.0]])
    >>> tknn_shapley(x_train, [0, 1, 0], np.array([[0.5]]), [0], tau=1.0).tolist()
    [0.5, -0.5, 0.0]
    """
    func = "tknn_shapley"
    xt, yt, xv, yv = check_train_val(x_train, y_train, x_val, y_val, func)
    tau = check_tau(tau, func)
    metric = check_metric(metric, func)
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    budget = _check_chunk_size(chunk_size, func)
    torch_device = _resolve_device(device, func)
    codes_t, codes_v, n_classes = encode_labels(yt, yv, n_classes, func)

    order = np.argsort(codes_t, kind="stable")
    segments = _class_segments(codes_t[order], n_classes)
    geom = _prepare(xt, xv, metric=metric, tau=tau, train_order=order, device=torch_device,
                    func=func)
    values_sorted = np.zeros(xt.shape[0], dtype=np.float64)
    for block in _count_blocks(geom, segments, budget=budget, keep_mask=True,
                               progress=progress, desc="TKNN-Shapley"):
        block_codes = codes_v[block.v0:block.v1]
        ct = block.class_counts.sum(axis=1).astype(np.float64)
        ca = block.class_counts[np.arange(block_codes.shape[0]), block_codes].astype(np.float64)
        value_match, value_mismatch = _point_values(ca, ct - ca, n_classes)
        # Masked mat-vec per class segment (training rows are sorted by class, so every
        # column of a segment has the same label). Columns go in slices whose float64 copy of
        # the mask stays in cache. (Threads do not help here: the cast holds the GIL.)
        step = max(1, _MATVEC_ELEMENTS // block.mask.shape[0])
        for c in range(n_classes):
            weights = np.where(block_codes == c, value_match, value_mismatch)
            for s in range(int(segments[c]), int(segments[c + 1]), step):
                e = min(s + step, int(segments[c + 1]))
                values_sorted[s:e] += weights @ block.mask[:, s:e]
    values = np.empty_like(values_sorted)
    values[order] = values_sorted
    if reduce == "mean":
        values /= xv.shape[0]
    return values
