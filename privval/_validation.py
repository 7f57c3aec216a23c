"""Parameter checks shared by privval's public functions.

Every public function validates its parameters once, at the edge, and fails closed with a
``ValueError`` or ``TypeError`` whose message names the parameter and the function, in the form

    The 'tau' parameter of tknn_shapley must be a float in (0, inf]. Got -1.0 instead.

Internals trust what these checks return and do not re-check. The helpers are generic (each takes
the parameter ``name`` and the calling function's name ``func``) so that every module of privval
can reuse them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

__all__ = [
    "METRICS",
    "check_choice",
    "check_features",
    "check_fraction",
    "check_int",
    "check_labels",
    "check_metric",
    "check_positive_float",
    "check_tau",
    "check_train_val",
    "encode_labels",
    "fail",
]

#: Distance metrics understood by privval (cosine distance = 1 - cosine similarity).
METRICS: tuple[str, ...] = ("euclidean", "cosine")


def _show(value: Any) -> str:
    """A short representation of a bad value for an error message."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def fail(name: str, func: str, requirement: str, got: Any, *, error: type = ValueError) -> NoReturn:
    """Raise ``error`` with privval's standard message naming the parameter.

    Parameters
    ----------
    name : str
        The parameter's name.
    func : str
        The public function whose parameter it is.
    requirement : str
        What the parameter must be, e.g. ``"a float in (0, inf]"``.
    got : Any
        The offending value (shown shortened), or a ``_Described`` text for values too large
        to show.
    error : type
        ``ValueError`` (default) or ``TypeError``.

    Raises
    ------
    ValueError or TypeError
        Always.

    Example
    -------
    >>> fail("tau", "tknn_shapley", "a float in (0, inf]", -1.0)
    Traceback (most recent call last):
    ...
    ValueError: The 'tau' parameter of tknn_shapley must be a float in (0, inf]. Got -1.0 instead.
    """
    shown = got.text if isinstance(got, _Described) else _show(got)
    raise error(f"The {name!r} parameter of {func} must be {requirement}. Got {shown} instead.")


class _Described:
    """A pre-formatted description of a bad value (used when the value itself is too large)."""

    def __init__(self, text: str) -> None:
        self.text = text


def check_choice(value: Any, name: str, func: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of the strings ``choices`` and return it.

    Example
    -------
    >>> check_choice("mean", "reduce", "tknn_shapley", ("mean", "sum"))
    'mean'
    """
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        fail(name, func, f"one of {{{options}}}", value, error=ValueError)
    return value


def check_metric(metric: Any, func: str, name: str = "metric") -> str:
    """Check a distance metric name (one of :data:`METRICS`) and return it."""
    return check_choice(metric, name, func, METRICS)


def check_int(
    value: Any, name: str, func: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Check that ``value`` is an integer (not a bool) within ``[minimum, maximum]``.

    Example
    -------
    >>> check_int(5, "k", "knn_shapley", minimum=1)
    5
    """
    lo = "-inf" if minimum is None else str(minimum)
    hi = "inf" if maximum is None else str(maximum)
    requirement = f"an int in [{lo}, {hi}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(name, func, requirement, value, error=TypeError)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        fail(name, func, requirement, value)
    return value


def _as_float(value: Any, name: str, func: str, requirement: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, func, requirement, value, error=TypeError)
    value = float(value)
    if math.isnan(value):
        fail(name, func, requirement, value)
    return value


def check_positive_float(value: Any, name: str, func: str, *, allow_inf: bool = False) -> float:
    """Check that ``value`` is a real number in (0, inf) (or (0, inf] with ``allow_inf``).

    Example
    -------
    >>> check_positive_float(0.5, "tau", "neighbor_counts")
    0.5
    """
    requirement = "a float in (0, inf]" if allow_inf else "a float in (0, inf)"
    value = _as_float(value, name, func, requirement)
    if not value > 0 or (value == math.inf and not allow_inf):
        fail(name, func, requirement, value)
    return value


def check_fraction(
    value: Any, name: str, func: str, *, low_open: bool = False, high_open: bool = False
) -> float:
    """Check that ``value`` is a real number in the unit interval (ends open or closed).

    Example
    -------
    >>> check_fraction(0.1, "fraction", "flip_labels")
    0.1
    """
    requirement = f"a float in {'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    value = _as_float(value, name, func, requirement)
    if value < 0 or value > 1 or (low_open and value == 0) or (high_open and value == 1):
        fail(name, func, requirement, value)
    return value


def check_tau(tau: Any, func: str, name: str = "tau") -> float:
    """Check a neighbourhood radius: a float in (0, inf]; ``inf`` puts every point in the ball.

    Distances are non-negative for both metrics, so a radius of 0 or below is refused (it would
    keep only exact duplicates, which is never what a caller means).
    """
    return check_positive_float(tau, name, func, allow_inf=True)


def check_features(x: Any, name: str, func: str) -> np.ndarray:
    """Check a feature matrix: 2-D, non-empty, real, finite; return it as a float array.

    float32 input is kept as float32 (privval computes distances in the input precision and
    corrects the rounding near decision boundaries); any other real dtype becomes float64.

    Example
    -------
    >>> check_features([[0, 1], [2, 3]], "x_train", "neighbor_counts").dtype
    dtype('float64')
    """
    try:
        arr = np.asarray(x)
    except Exception:  # noqa: BLE001 - anything unconvertible is a type error for the caller
        fail(name, func, "a 2-D array of real numbers", x, error=TypeError)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        fail(name, func, "a 2-D array of real numbers", arr, error=TypeError)
    if arr.ndim != 2:
        fail(name, func, "a 2-D array of shape (n_samples, n_features)", arr)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        fail(name, func, "a non-empty 2-D array", arr)
    if arr.dtype == np.float32:
        out = arr
    else:
        out = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        fail(name, func, "finite (no NaN or inf)", _Described("non-finite values"))
    return out


def check_labels(y: Any, name: str, func: str, n_samples: int | None = None) -> np.ndarray:
    """Check a label vector: 1-D, integer or string labels, optionally of length ``n_samples``.

    Floats (even integral ones) and booleans are refused: a label is a category, and silently
    treating 1.0 and 1 alike hides bugs.

    Example
    -------
    >>> check_labels([0, 2, 1], "y_train", "neighbor_counts", 3)
    array([0, 2, 1])
    """
    requirement = "a 1-D array of integer or string labels"
    arr = np.asarray(y)
    if arr.dtype == object:
        items = arr.ravel().tolist()
        if all(isinstance(v, str) for v in items):
            arr = arr.astype(str)
        elif all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
            arr = arr.astype(np.int64)
        else:
            fail(name, func, requirement, _Described("an object array of other values"),
                 error=TypeError)
    if arr.dtype.kind not in "iuUS":
        fail(name, func, requirement, arr, error=TypeError)
    if arr.ndim != 1:
        fail(name, func, requirement, arr)
    if n_samples is not None and arr.shape[0] != n_samples:
        fail(name, func, f"of length {n_samples} (one label per feature row)",
             _Described(f"length {arr.shape[0]}"))
    return arr


def encode_labels(
    y_train: np.ndarray, y_val: np.ndarray, n_classes: Any, func: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Map training and validation labels to integer codes 0..K-1 over their union.

    Parameters
    ----------
    y_train, y_val : np.ndarray
        Labels already checked by :func:`check_labels`; both integer or both strings.
    n_classes : int or None
        The number of classes C of the task. ``None`` uses the number of distinct labels seen
        in ``y_train`` and ``y_val`` together. An explicit value must be at least that number
        (a class can be absent from both sets).
    func : str
        The calling public function, for error messages.

    Returns
    -------
    (codes_train, codes_val, n_classes) : tuple
        int64 codes and the number of classes.

    Raises
    ------
    TypeError
        If one label vector holds strings and the other integers.
    ValueError
        If ``n_classes`` is smaller than the number of distinct labels.

    Example
    -------
    >>> encode_labels(np.array(["b", "a"]), np.array(["a"]), None, "f")
    (array([1, 0]), array([0]), 2)
    """
    if (y_train.dtype.kind in "US") != (y_val.dtype.kind in "US"):
        fail("y_val", func, "labels of the same kind as y_train (both integers or both strings)",
             y_val, error=TypeError)
    classes, codes = np.unique(np.concatenate([y_train, y_val]), return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    seen = int(classes.shape[0])
    if n_classes is None:
        n = seen
    else:
        n = check_int(n_classes, "n_classes", func, minimum=max(seen, 1))
    return codes[: y_train.shape[0]], codes[y_train.shape[0]:], n


def check_train_val(
    x_train: Any, y_train: Any, x_val: Any, y_val: Any, func: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check a training set and a validation set together.

    Features must be 2-D, finite and have the same number of columns; labels must match their
    feature rows in length. float32 features stay float32 only if both sets are float32.

    Returns
    -------
    (x_train, y_train, x_val, y_val) : tuple of np.ndarray

    Example
    -------
    >>> xt, yt, xv, yv = check_train_val([[0.0], [1.0]], [0, 1], [[0.5]], [1], "f")
    >>> xt.shape, yv.tolist()
    ((2, 1), [1])
    """
    xt = check_features(x_train, "x_train", func)
    xv = check_features(x_val, "x_val", func)
    yt = check_labels(y_train, "y_train", func, xt.shape[0])
    yv = check_labels(y_val, "y_val", func, xv.shape[0])
    if xt.shape[1] != xv.shape[1]:
        fail("x_val", func, f"an array with {xt.shape[1]} columns, like x_train",
             _Described(f"{xv.shape[1]} columns"))
    if xt.dtype != xv.dtype:
        xt = xt.astype(np.float64, copy=False)
        xv = xv.astype(np.float64, copy=False)
    return xt, yt, xv, yv
