"""TKNN-Shapley and DP-TKNN-Shapley on training data that lives on a Dask cluster.

The neighbour counts ``(Ca, Cm)`` are int64 and add exactly across shards, in any order
(DESIGN.md §3). That makes the distributed algorithm short:

1. **Count pass.** Every chunk of training rows computes its own ``(M, 2)`` counts against the
   broadcast validation set (``dask.array.map_blocks``); a tree reduction
   (``sum(axis=0, split_every=...)``) adds them to one ``(M, 2)`` array that reaches the client.
   Only counts travel; training rows never leave their worker.
2. **Noise, once, on the client.** For DP-TKNN-Shapley the client charges the ledger, then draws
   the noise for the summed counts (:mod:`accountants.noise`, OS CSPRNG by default). A task that
   Dask re-runs after a worker dies only recomputes exact integers, so a retry can neither change
   the result nor cause a second noisy release.
3. **Value pass.** The per-record values are a function of the (noisy) counts and of each
   record's own data, so they are computed chunk by chunk on the workers and returned as a lazy
   Dask array of shape ``(N,)``; nothing of size N is gathered unless the caller asks for it.

Training data can be a Dask array (rows chunked, any number of chunks), a NumPy array (chunked
here) or a list of shard files (``.npy`` matrices whose last column is the label, or Parquet
tables with a label column; see :func:`shards_to_dask`). The same code runs on the threaded
scheduler, a ``dask.distributed.LocalCluster`` and any cluster reached with
``dask.distributed.Client("tcp://scheduler:8786")``: a ``Client`` created before the call becomes
the default scheduler, so nothing here names a cluster.

Secret subsamples on a cluster
------------------------------
DP-TKNN-Shapley Poisson-subsamples the training set, afresh for every validation point
(Wang et al. 2023, arXiv 2308.15709; DESIGN.md §4). The count pass and the value pass must see
the *same* subsample, and so must a re-run task. The client therefore draws a 128-bit key from
the release's noise source (the OS CSPRNG, or ``rng`` when seeded; :func:`subsample_key` for
other callers), and each worker derives the inclusion bits of a
fixed tile of 4096 global training rows from a Philox-4x64 stream keyed by ``(key, tile)``. The
subsample is thus a pure function of the key, identical for every chunking of the data and every
retry. Inclusion is ``U < floor(q * 2**32)`` with ``U`` uniform on 32 bits, so the realised rate
never exceeds the ``q`` the accountant composes. The key travels inside the task graph: workers
are part of the trusted curator (the counts they compute are not private either).

Options shared with the in-memory path
--------------------------------------
:func:`dask_dp_tknn_shapley` supports every option of :func:`privval.dp_tknn_shapley` and calls
that module's own functions for validation, calibration, events, the ledger charge and the
choice of validation points, so the accounting cannot drift between the two paths:

* ``max_contributions=k``: each record keeps only its k nearest in-ball validation points
  (:func:`privval.private._bounded_pairs`, applied per tile of records on the worker that
  holds them; the kept set depends on the record and the public validation set only).
* ``tau="auto"``: :func:`privval.threshold.tau_from_validation` on the client (no cost).
* ``tau="private"``: each record's vote (:func:`privval.private._vote_histogram`) is computed
  on its worker; the int64 chunk histograms add exactly, the client adds the selection noise
  after the charge and keeps the noisy argmax. This costs one more pass over the data.
* ``accountant="evr"``: estimate-verify-release calibration on the client, the certificate
  stored in the guarantee and the ledger.

Dask is an optional dependency (``pip install 'privval[dask]'``); it is imported only when a
function here needs it.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from privval._validation import (
    _Described,
    check_choice,
    check_features,
    check_int,
    check_labels,
    check_metric,
    check_tau,
    fail,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import dask.array as da

    from privval.private import ValuationRelease

__all__ = [
    "dask_dp_tknn_shapley",
    "dask_neighbor_counts",
    "dask_tknn_shapley",
    "default_sampling_rate",
    "shard_counts",
    "shard_values",
    "shards_to_dask",
    "subsample_key",
]

logger = logging.getLogger(__name__)

#: Global training rows per subsample tile: the inclusion bits of a tile come from one keyed
#: Philox stream, so they do not depend on how the rows are chunked.
SUBSAMPLE_TILE = 4096

#: Default number of training rows per chunk when NumPy input is wrapped into a Dask array.
DEFAULT_CHUNK_ROWS = 65536

#: Default fan-in of the tree reduction of per-chunk counts.
DEFAULT_SPLIT_EVERY = 8

_DASK_HINT = "pip install 'privval[dask]'"


# --------------------------------------------------------------------------- dask import
def _import_dask() -> Any:
    """Import ``dask.array`` or fail with the name of the extra to install."""
    try:
        import dask.array as dask_array
    except ImportError as exc:  # pragma: no cover - dask is in the test extra
        raise ImportError(
            f"privval.distributed needs Dask; install the extra with: {_DASK_HINT}"
        ) from exc
    return dask_array


def _is_dask_array(value: Any) -> bool:
    return type(value).__module__.startswith("dask.array") and hasattr(value, "chunks")


# --------------------------------------------------------------------------- shard primitives
def _ball_masks(
    x: np.ndarray, x_val: np.ndarray, *, tau: float, metric: str, budget: int, func: str,
    max_contributions: int | None = None,
) -> Any:
    """Yield ``(r0, r1, mask)`` with ``mask[v, j] = d(x[r0 + j], x_val[v]) <= tau``.

    With ``max_contributions=k`` each record (column) keeps only its ``k`` nearest in-ball
    validation points (:func:`_bounded_masks`).

    Uses the exact boundary decision of :mod:`privval.neighbors` (fast product, float64
    recomputation inside the rounding band), so every chunking and both passes agree bit for
    bit with the in-memory path.
    """
    from privval.neighbors import _ball_tile, _prepare

    m, n = x_val.shape[0], x.shape[0]
    rows = max(1, min(n, budget // max(m, 1)))
    if max_contributions is not None:
        yield from _bounded_masks(x, x_val, tau=tau, metric=metric, budget=budget, func=func,
                                  k=max_contributions, rows=rows)
        return
    geom = _prepare(x, x_val, metric=metric, tau=tau, train_order=None, device=None, func=func)
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        mask = np.empty((m, r1 - r0), dtype=bool)
        _ball_tile(geom, 0, m, r0, r1, budget, mask)
        yield r0, r1, mask


def _bounded_masks(
    x: np.ndarray, x_val: np.ndarray, *, tau: float, metric: str, budget: int, func: str,
    k: int, rows: int,
) -> Any:
    """:func:`_ball_masks` with each record kept only in its ``k`` nearest in-ball points.

    The bound is the in-memory one, :func:`privval.private._bounded_pairs` (ties by validation
    index, float64 reference distances), applied to one tile of records at a time: a record's
    kept set depends only on the record and the public validation set, so it is the same for
    every chunking and equals the in-memory path's.
    """
    from privval.neighbors import _prepare
    from privval.private import _bounded_pairs

    m, n = x_val.shape[0], x.shape[0]
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        geom = _prepare(x[r0:r1], x_val, metric=metric, tau=tau, train_order=None, device=None,
                        func=func)
        mask = np.zeros((m, r1 - r0), dtype=bool)
        for v0, _v1, val_rows, cols in _bounded_pairs(geom, m, r1 - r0, k, budget, False):
            mask[v0 + val_rows, cols] = True
        yield r0, r1, mask


def _inclusion_bits(key: int, row0: int, n_rows: int, n_val: int, rate: float) -> np.ndarray:
    """Poisson-subsample inclusion ``(n_val, n_rows)`` for global rows ``row0 .. row0+n_rows``.

    Row ``j`` is in the subsample of validation point ``v`` iff ``U[v, j] < floor(rate*2**32)``,
    ``U`` from the Philox stream of the tile containing ``j`` (see the module docstring).
    """
    if rate >= 1.0:
        return np.ones((n_val, n_rows), dtype=bool)
    threshold = np.uint32(math.floor(rate * 2.0**32))
    out = np.empty((n_val, n_rows), dtype=bool)
    first, last = row0 // SUBSAMPLE_TILE, (row0 + n_rows - 1) // SUBSAMPLE_TILE
    for tile in range(first, last + 1):
        gen = np.random.Generator(
            np.random.Philox(np.random.SeedSequence(entropy=key, spawn_key=(tile,)))
        )
        bits = gen.integers(0, 2**32, size=(n_val, SUBSAMPLE_TILE), dtype=np.uint32) < threshold
        t0 = tile * SUBSAMPLE_TILE
        lo, hi = max(row0, t0), min(row0 + n_rows, t0 + SUBSAMPLE_TILE)
        out[:, lo - row0:hi - row0] = bits[:, lo - t0:hi - t0]
    return out


def shard_counts(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    tau: float,
    metric: str = "euclidean",
    sampling_rate: float = 1.0,
    key: int | None = None,
    row0: int = 0,
    cap: int | None = None,
    max_contributions: int | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Exact ``(Ca, Cm)`` counts of one shard, optionally on its secret Poisson subsample.

    This is the per-shard primitive of the Dask path and of a federated participant
    (:class:`privval.federated.Participant`): pure integers, no noise. With
    ``sampling_rate < 1`` row ``row0 + j`` counts for validation point ``v`` only when it is in
    the subsample that ``key`` defines (module docstring); :func:`shard_values` regenerates the
    same subsample from the same key.

    Parameters
    ----------
    x, y : np.ndarray
        The shard's features (validated, 2-D) and labels.
    x_val, y_val : np.ndarray
        Validation features and labels.
    tau : float
        Radius; boundary included.
    metric : {"euclidean", "cosine"}
        Distance.
    sampling_rate : float, default 1.0
        Poisson rate q in (0, 1].
    key : int, optional
        Subsample key (:func:`subsample_key`); required when ``sampling_rate < 1``.
    row0 : int, default 0
        Global index of the shard's first row (selects the subsample tiles).
    cap : int, optional
        Clip each of the shard's two counts per validation point at ``cap`` (a participant's
        contribution bound, see :mod:`privval.federated`).
    max_contributions : int, optional
        Record-level contribution bound k of :func:`privval.dp_tknn_shapley`: each record
        counts only in its k nearest in-ball validation points (before subsampling).
    chunk_size : int, optional
        Most distances held at once (default ``2**23``).

    Returns
    -------
    np.ndarray of shape (M, 2), int64

    Example
    -------
    >>> import numpy as np
    >>> shard_counts(np.array([[0.0], [1.0], [5.0]]), np.array([0, 1, 0]),
    ...              np.array([[0.5]]), np.array([0]), tau=1.0).tolist()
    [[1, 1]]
    """
    from privval.neighbors import DEFAULT_CHUNK_SIZE

    budget = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    m = x_val.shape[0]
    counts = np.zeros((m, 2), dtype=np.int64)
    if x.shape[0] == 0:
        return counts
    match_all = y[None, :] == y_val[:, None] if m * x.shape[0] <= budget else None
    for r0, r1, mask in _ball_masks(x, x_val, tau=tau, metric=metric, budget=budget,
                                    func="shard_counts", max_contributions=max_contributions):
        if sampling_rate < 1.0:
            mask &= _inclusion_bits(int(key), row0 + r0, r1 - r0, m, sampling_rate)
        match = match_all[:, r0:r1] if match_all is not None else y[None, r0:r1] == y_val[:, None]
        ca = np.count_nonzero(mask & match, axis=1)
        counts[:, 0] += ca
        counts[:, 1] += np.count_nonzero(mask, axis=1) - ca
    if cap is not None:
        np.minimum(counts, cap, out=counts)
    return counts


def _own_record_weights(
    noisy_counts: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per validation point, the value of an in-ball record from the shared noisy counts.

    DESIGN.md §4 step 3: a record that was in the subsample is already counted (its own class
    count is raised to at least 1); a record that was not adds its own +1. Returns the values
    for (matching, in subsample), (matching, not in), (non-matching, in), (non-matching, not in).
    """
    from privval.tknn import tknn_point_values

    ca = noisy_counts[:, 0].astype(np.int64)
    cm = noisy_counts[:, 1].astype(np.int64)
    a_in, _ = tknn_point_values(np.maximum(ca, 1), cm, n_classes)
    a_out, _ = tknn_point_values(ca + 1, cm, n_classes)
    _, b_in = tknn_point_values(ca, np.maximum(cm, 1), n_classes)
    _, b_out = tknn_point_values(ca, cm + 1, n_classes)
    return a_in, a_out, b_in, b_out


def shard_values(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    counts: np.ndarray,
    *,
    tau: float,
    n_classes: int,
    metric: str = "euclidean",
    sampling_rate: float | None = None,
    key: int | None = None,
    row0: int = 0,
    own_record: str = "subsample",
    max_contributions: int | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Per-record TKNN-Shapley values of one shard, summed over the validation points.

    Two modes:

    * ``sampling_rate=None``: ``counts`` are the exact global counts; each in-ball record gets
      the TKNN value of its class (non-private TKNN-Shapley, Wang et al. 2023).
    * ``sampling_rate=q``: ``counts`` are the shared *noisy* counts of DP-TKNN-Shapley; each
      record's own contribution enters exactly, depending on whether it was in the subsample
      that ``key`` defines (DESIGN.md §4). This is post-processing of the noisy counts and of
      the record's own data only.

    Parameters
    ----------
    x, y, x_val, y_val : np.ndarray
        Shard and validation data (validated).
    counts : np.ndarray of shape (M, 2)
        Global ``(Ca, Cm)``, exact or noisy (non-negative integers).
    tau : float
        Radius; boundary included.
    n_classes : int
        Number of classes C.
    metric : {"euclidean", "cosine"}
        Distance.
    sampling_rate : float, optional
        None for exact counts; the Poisson rate q for noisy counts.
    key : int, optional
        The subsample key used for the counts (needed when ``sampling_rate < 1``).
    row0 : int, default 0
        Global index of the shard's first row.
    own_record : {"subsample", "added"}, default "subsample"
        With noisy counts: ``"subsample"`` corrects each record by its own subsample
        membership (DESIGN.md §4); ``"added"`` always adds the record's own +1, so the value
        depends only on the noisy counts and the record itself, not on the secret subsample
        (what a participant's DP *score* needs, see :mod:`privval.federated`).
    max_contributions : int, optional
        The contribution bound k the counts were made with (:func:`shard_counts`): a record
        gets a value only in the balls it is kept in.
    chunk_size : int, optional
        Most distances held at once.

    Returns
    -------
    np.ndarray of shape (n,), float64
        Sum over validation points (divide by M for the mean).

    Example
    -------
    >>> import numpy as np
    >>> x, y = np.array([[0.0], [1.0], [5.0]]), np.array([0, 1, 0])
    >>> xv, yv = np.array([[0.5]]), np.array([0])
    >>> c = shard_counts(x, y, xv, yv, tau=1.0)
    >>> shard_values(x, y, xv, yv, c, tau=1.0, n_classes=2).tolist()
    [0.5, -0.5, 0.0]
    """
    from privval.neighbors import DEFAULT_CHUNK_SIZE
    from privval.tknn import tknn_point_values

    budget = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    m = x_val.shape[0]
    out = np.zeros(x.shape[0], dtype=np.float64)
    if x.shape[0] == 0:
        return out
    if sampling_rate is None:
        a, b = tknn_point_values(counts[:, 0], counts[:, 1], n_classes)
    else:
        a_in, a_out, b_in, b_out = _own_record_weights(counts, n_classes)
    # One weight vector per training class (its value in each ball: matching or not), so each
    # record's value is a single masked mat-vec, as in the in-memory path.
    classes, codes = np.unique(y, return_inverse=True)
    for r0, r1, mask in _ball_masks(x, x_val, tau=tau, metric=metric, budget=budget,
                                    func="shard_values", max_contributions=max_contributions):
        if sampling_rate is not None:
            if own_record == "added":
                inside = None
            elif sampling_rate < 1.0:
                inside = _inclusion_bits(int(key), row0 + r0, r1 - r0, m, sampling_rate)
            else:
                inside = True
        chunk_codes = codes[r0:r1]
        for c in np.unique(chunk_codes):
            cols = np.flatnonzero(chunk_codes == c)
            same = y_val == classes[c]
            ball = mask[:, cols]
            if sampling_rate is None:
                out[r0 + cols] = np.where(same, a, b) @ ball
            elif inside is None:
                out[r0 + cols] = np.where(same, a_out, b_out) @ ball
            elif inside is True:
                out[r0 + cols] = np.where(same, a_in, b_in) @ ball
            else:
                sub = inside[:, cols]
                out[r0 + cols] = (np.where(same, a_in, b_in) @ (ball & sub)
                                  + np.where(same, a_out, b_out) @ (ball & ~sub))
    return out


def default_sampling_rate() -> float:
    """The default Poisson rate q of DP-TKNN-Shapley, shared with the in-memory path.

    Example
    -------
    >>> 0 < default_sampling_rate() <= 1
    True
    """
    from privval.private import DEFAULT_SAMPLING_RATE

    return float(DEFAULT_SAMPLING_RATE)


def subsample_key(rng: Any = None) -> int:
    """A 128-bit subsample key: from the OS CSPRNG, or from ``rng`` (an int seed or Generator).

    Example
    -------
    >>> subsample_key(0) == subsample_key(0)
    True
    """
    if rng is None:
        return secrets.randbits(128)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    hi, lo = (int(v) for v in gen.integers(0, 2**63, size=2, dtype=np.int64))
    return (hi << 64) | lo


# --------------------------------------------------------------------------- shard files
def _shard_metadata(path: Path, label_column: str | int | None) -> tuple[int, int, np.dtype]:
    """Rows, feature count and label dtype of one shard, read from its header only."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ValueError(f"Shard file {str(path)!r} does not exist (or is not a file). "
                         f"Check the path in x_train.")
    if suffix == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise ValueError(f"Shard file {str(path)!r} must hold a 2-D array with at least one "
                             f"feature column and a label column. Got shape {arr.shape}.")
        return int(arr.shape[0]), int(arr.shape[1]) - 1, np.dtype(np.int64)
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        label = "y" if label_column is None else str(label_column)
        if label not in schema.names:
            raise ValueError(f"Shard file {str(path)!r} has no label column {label!r}; its "
                             f"columns are {schema.names[:12]}. Pass label_column=.")
        kind = schema.field(label).type
        import pyarrow as pa

        dtype = np.dtype(str) if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) \
            else np.dtype(np.int64)
        return int(pq.read_metadata(path).num_rows), len(schema.names) - 1, dtype
    raise ValueError(f"Shard file {str(path)!r} has the unsupported suffix {path.suffix!r}. "
                     f"Use .npy or .parquet shards.")


def _load_shard(path: str, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    """Read one shard on a worker (privval.io's checks and messages apply)."""
    from privval.io import read_labeled

    data = read_labeled(path, label_column)
    return data.x, data.y


def shards_to_dask(
    paths: Sequence[str | os.PathLike[str]], *, label_column: str | int | None = None
) -> tuple[da.Array, da.Array]:
    """Lazy Dask arrays ``(x, y)`` over a list of shard files, one chunk per shard.

    Only each file's header is read here (row count, columns); the workers read the shards
    themselves when a computation needs them, with :func:`privval.io.read_labeled`.

    Parameters
    ----------
    paths : sequence of str or PathLike
        ``.npy`` files (a 2-D matrix; the label column is ``label_column``, default the last)
        or Parquet files (``.parquet``/``.pq``; every column but ``label_column``, default
        ``"y"``, is a feature). All shards must have the same number of features.
    label_column : str or int, optional
        The label column (see :func:`privval.io.read_labeled`).

    Returns
    -------
    (x, y) : tuple of dask.array.Array
        Features (N, d) float64 and labels (N,).

    Raises
    ------
    ValueError
        An empty list, a missing or unsupported file, shards with different feature counts.
    ImportError
        Without the ``privval[dask]`` extra.

    Example
    -------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for i in range(2):
    ...     np.save(os.path.join(d, f"s{i}.npy"), np.array([[0.0, 1.0, i], [2.0, 3.0, 1]]))
    >>> x, y = shards_to_dask([os.path.join(d, "s0.npy"), os.path.join(d, "s1.npy")])
    >>> x.shape, x.numblocks, y.compute().tolist()
    ((4, 2), (2, 1), [0, 1, 1, 1])
    """
    func = "shards_to_dask"
    da_mod = _import_dask()
    import dask

    if isinstance(paths, (str, os.PathLike)) or not isinstance(paths, Sequence) or not paths:
        fail("paths", func, "a non-empty list of .npy or Parquet shard files", paths)
    xs, ys = [], []
    n_features: int | None = None
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            fail("paths", func, "a list of file paths (str or PathLike)", p, error=TypeError)
        path = Path(p)
        n_rows, d, label_dtype = _shard_metadata(path, label_column)
        if n_features is None:
            n_features = d
        elif d != n_features:
            fail("paths", func, f"shards with the same number of features ({n_features})",
                 _Described(f"{str(path)!r} with {d} features"))
        loaded = dask.delayed(_load_shard, pure=True)(str(path), label_column)
        xs.append(da_mod.from_delayed(loaded[0], shape=(n_rows, d), dtype=np.float64))
        ys.append(da_mod.from_delayed(loaded[1], shape=(n_rows,), dtype=label_dtype))
    return da_mod.concatenate(xs, axis=0), da_mod.concatenate(ys, axis=0)


# --------------------------------------------------------------------------- input checks
@dataclass(frozen=True)
class _Training:
    """Validated, aligned training arrays (rows chunked identically, one column chunk)."""

    x: Any
    y: Any


def _training(
    x_train: Any, y_train: Any, x_val: np.ndarray, func: str, *,
    label_column: str | int | None, chunk_rows: int,
) -> _Training:
    """Turn the accepted training inputs into aligned Dask arrays; check shapes and kinds."""
    da_mod = _import_dask()
    is_paths = isinstance(x_train, (list, tuple)) and len(x_train) > 0 and all(
        isinstance(p, (str, os.PathLike)) for p in x_train)
    if is_paths:
        if y_train is not None:
            fail("y_train", func, "None when x_train is a list of shard files (labels are read "
                 "from the shards)", y_train)
        x, y = shards_to_dask(x_train, label_column=label_column)
    else:
        if _is_dask_array(x_train):
            x = x_train
            if x.ndim != 2:
                fail("x_train", func, "a 2-D array of shape (n_samples, n_features)",
                     _Described(f"a {x.ndim}-D Dask array"))
            if x.dtype == object or x.dtype.kind not in "biuf":
                fail("x_train", func, "a 2-D array of real numbers",
                     _Described(f"a Dask array of dtype {x.dtype}"), error=TypeError)
        else:
            x = da_mod.from_array(check_features(x_train, "x_train", func),
                                  chunks=(chunk_rows, -1))
        if y_train is None:
            fail("y_train", func, "a 1-D array of labels (None only with shard files)", y_train)
        if _is_dask_array(y_train):
            y = y_train
            if y.ndim != 1:
                fail("y_train", func, "a 1-D array of integer or string labels",
                     _Described(f"a {y.ndim}-D Dask array"))
        else:
            y_np = check_labels(y_train, "y_train", func)
            y = da_mod.from_array(y_np, chunks=(x.chunks[0],) if not any(
                math.isnan(c) for c in x.chunks[0]) else -1)
    if any(math.isnan(c) for c in x.chunks[0]):
        x = x.compute_chunk_sizes()
    if any(math.isnan(c) for c in y.chunks[0]):
        y = y.compute_chunk_sizes()
    if y.dtype.kind not in "iuUSO":
        fail("y_train", func, "a 1-D array of integer or string labels",
             _Described(f"labels of dtype {y.dtype}"), error=TypeError)
    if x.shape[0] == 0:
        fail("x_train", func, "a non-empty 2-D array", _Described("0 rows"))
    if y.shape[0] != x.shape[0]:
        fail("y_train", func, f"of length {x.shape[0]} (one label per feature row)",
             _Described(f"length {y.shape[0]}"))
    if x.shape[1] != x_val.shape[1]:
        fail("x_val", func, f"an array with {x.shape[1]} columns, like x_train",
             _Described(f"{x_val.shape[1]} columns"))
    x = x.rechunk({1: -1})
    if y.chunks[0] != x.chunks[0]:
        y = y.rechunk((x.chunks[0],))
    return _Training(x, y)


def _check_val(x_val: Any, y_val: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    xv = check_features(x_val, "x_val", func)
    yv = check_labels(y_val, "y_val", func, xv.shape[0])
    return xv, yv


def _check_label_kinds(y: Any, y_val: np.ndarray, func: str) -> None:
    if (y.dtype.kind in "USO") != (y_val.dtype.kind in "US"):
        fail("y_val", func, "labels of the same kind as y_train (both integers or both strings)",
             y_val, error=TypeError)


def _block_inputs(
    xb: np.ndarray, yb: np.ndarray, x_val: np.ndarray, func: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check one chunk on its worker; align float precision as the in-memory path does.

    A chunk may have no rows (a boolean mask can empty one; the whole array was checked to be
    non-empty by :func:`_training`): it is returned as it is, and contributes nothing.
    """
    if xb.ndim == 2 and xb.shape[0] == 0:
        return xb, yb.reshape(-1), x_val
    xb = check_features(xb, "x_train", func)
    yb = check_labels(yb.reshape(-1), "y_train", func, xb.shape[0])
    xv = x_val
    if xb.dtype != xv.dtype:
        xb, xv = xb.astype(np.float64, copy=False), xv.astype(np.float64, copy=False)
    return xb, yb, xv


def _check_split_every(split_every: Any, func: str) -> int:
    if split_every is None:
        return DEFAULT_SPLIT_EVERY
    return check_int(split_every, "split_every", func, minimum=2)


def _check_chunk_rows(chunk_rows: Any, func: str) -> int:
    if chunk_rows is None:
        return DEFAULT_CHUNK_ROWS
    return check_int(chunk_rows, "chunk_rows", func, minimum=1)


def _check_budget(chunk_size: Any, func: str) -> int:
    from privval.neighbors import DEFAULT_CHUNK_SIZE

    if chunk_size is None:
        return DEFAULT_CHUNK_SIZE
    return check_int(chunk_size, "chunk_size", func, minimum=1)


# --------------------------------------------------------------------------- chunk tasks
def _count_chunk(
    xb: np.ndarray, yb: np.ndarray, rows: np.ndarray, *, x_val: np.ndarray, y_val: np.ndarray,
    tau: float, metric: str, rate: float, key: int | None, budget: int, caller: str,
    max_contributions: int | None = None,
) -> np.ndarray:
    """Counts of one chunk, shaped (1, M, 2) for the tree reduction.

    ``rows`` holds the chunk's global row indices (its first one selects the subsample tiles).
    """
    xb, yb, xv = _block_inputs(xb, yb, x_val, caller)
    if xb.shape[0] == 0:
        return np.zeros((1, x_val.shape[0], 2), dtype=np.int64)
    counts = shard_counts(xb, yb, xv, y_val, tau=tau, metric=metric, sampling_rate=rate,
                          key=key, row0=int(rows[0]), max_contributions=max_contributions,
                          chunk_size=budget)
    return counts[None]


def _count_label_chunk(
    xb: np.ndarray, yb: np.ndarray, rows: np.ndarray, **kwargs: Any
) -> np.ndarray:
    """Counts (:func:`_count_chunk`) and distinct labels of one chunk, from one task.

    Returned as a one-element object block holding ``(counts, labels)``.
    """
    out = np.empty(1, dtype=object)
    out[0] = (_count_chunk(xb, yb, rows, **kwargs), np.unique(yb))
    return out


def _pair_counts(block: np.ndarray) -> np.ndarray:
    return block[0][0]


def _pair_labels(block: np.ndarray) -> np.ndarray:
    return block[0][1]


def _vote_chunk(
    xb: np.ndarray, yb: np.ndarray, *, x_val: np.ndarray, y_val: np.ndarray, n_classes: int,
    grid: np.ndarray, metric: str, budget: int, caller: str,
) -> np.ndarray:
    """The ``tau="private"`` vote histogram of one chunk, shaped (1, G).

    Each record's vote depends only on the record and the public validation set
    (:func:`privval.private._vote_histogram`), so the int64 chunk histograms add exactly to
    the in-memory one. Labels are compared directly (the vote only tests label equality).
    """
    from privval.private import _vote_histogram

    xb, yb, xv = _block_inputs(xb, yb, x_val, caller)
    if xb.shape[0] == 0:
        return np.zeros((1, grid.shape[0]), dtype=np.int64)
    return _vote_histogram(xb, yb, xv, y_val, n_classes, grid, metric, budget)[None]


def _value_chunk(
    xb: np.ndarray, yb: np.ndarray, rows: np.ndarray, *, x_val: np.ndarray, y_val: np.ndarray,
    counts: np.ndarray, tau: float, metric: str, n_classes: int, rate: float | None,
    key: int | None, budget: int, divisor: float, caller: str,
    max_contributions: int | None = None,
) -> np.ndarray:
    """Per-record values of one chunk (the second pass)."""
    xb, yb, xv = _block_inputs(xb, yb, x_val, caller)
    if xb.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    values = shard_values(xb, yb, xv, y_val, counts, tau=tau, n_classes=n_classes,
                          metric=metric, sampling_rate=rate, key=key, row0=int(rows[0]),
                          max_contributions=max_contributions, chunk_size=budget)
    if divisor != 1.0:
        values /= divisor
    return values


def _row_index(train: _Training) -> Any:
    """Global row indices, chunked like the training rows (generated on the workers)."""
    da_mod = _import_dask()
    return da_mod.arange(train.x.shape[0], chunks=(train.x.chunks[0],), dtype=np.int64)


def _count_graph(
    train: _Training, x_val: np.ndarray, y_val: np.ndarray, *, tau: float, metric: str,
    rate: float, key: int | None, budget: int, split_every: int, func: str,
    max_contributions: int | None = None,
) -> Any:
    """Lazy (M, 2) int64 counts: per-chunk counts (one block each), then a tree reduction."""
    da_mod = _import_dask()
    m = x_val.shape[0]
    per_chunk = da_mod.blockwise(
        _count_chunk, "icp", train.x, "ij", train.y, "i", _row_index(train), "i",
        new_axes={"c": m, "p": 2}, adjust_chunks={"i": 1}, concatenate=True,
        dtype=np.int64, meta=np.empty((0, 0, 0), dtype=np.int64),
        x_val=x_val, y_val=y_val, tau=tau, metric=metric, rate=rate, key=key, budget=budget,
        caller=func, max_contributions=max_contributions,
    )
    return per_chunk.sum(axis=0, dtype=np.int64, split_every=split_every)


def _count_label_graph(
    train: _Training, x_val: np.ndarray, y_val: np.ndarray, *, tau: float, metric: str,
    budget: int, split_every: int, func: str,
) -> tuple[Any, Any]:
    """Lazy exact (M, 2) counts (as :func:`_count_graph`) and the distinct training labels.

    Both come from one task per chunk. A second task reading the label chunks (such as
    ``da.unique(train.y)``) would give those chunks two readers here but one in the value
    pass, so Dask would fuse the input tasks differently in the two graphs: the scheduler,
    which may not yet have forgotten this pass's keys when the value pass arrives, would then
    see one key with two different task specs ("Detected different `run_spec`", a deadlock
    risk; dask/dask#9888).
    """
    da_mod = _import_dask()
    pair = da_mod.blockwise(
        _count_label_chunk, "i", train.x, "ij", train.y, "i", _row_index(train), "i",
        adjust_chunks={"i": 1}, concatenate=True, dtype=object,
        meta=np.empty((0,), dtype=object),
        x_val=x_val, y_val=y_val, tau=tau, metric=metric, rate=1.0, key=None, budget=budget,
        caller=func,
    )
    per_chunk = da_mod.blockwise(
        _pair_counts, "icp", pair, "i", new_axes={"c": x_val.shape[0], "p": 2},
        dtype=np.int64, meta=np.empty((0, 0, 0), dtype=np.int64),
    )
    labels = pair.map_blocks(_pair_labels, chunks=((math.nan,) * pair.numblocks[0],),
                             dtype=train.y.dtype, meta=np.empty((0,), dtype=train.y.dtype))
    return (per_chunk.sum(axis=0, dtype=np.int64, split_every=split_every),
            da_mod.unique(labels))


def _vote_graph(
    train: _Training, x_val: np.ndarray, y_val: np.ndarray, *, n_classes: int,
    grid: np.ndarray, metric: str, budget: int, split_every: int, func: str,
) -> Any:
    """Lazy (G,) int64 vote histogram of ``tau="private"``: per-chunk histograms, tree sum."""
    da_mod = _import_dask()
    per_chunk = da_mod.blockwise(
        _vote_chunk, "ig", train.x, "ij", train.y, "i",
        new_axes={"g": grid.shape[0]}, adjust_chunks={"i": 1}, concatenate=True,
        dtype=np.int64, meta=np.empty((0, 0), dtype=np.int64),
        x_val=x_val, y_val=y_val, n_classes=n_classes, grid=grid, metric=metric,
        budget=budget, caller=func,
    )
    return per_chunk.sum(axis=0, dtype=np.int64, split_every=split_every)


def _value_graph(
    train: _Training, x_val: np.ndarray, y_val: np.ndarray, counts: np.ndarray, *,
    tau: float, metric: str, n_classes: int, rate: float | None, key: int | None,
    budget: int, divisor: float, func: str, max_contributions: int | None = None,
) -> Any:
    da_mod = _import_dask()
    return da_mod.blockwise(
        _value_chunk, "i", train.x, "ij", train.y, "i", _row_index(train), "i",
        concatenate=True, dtype=np.float64, meta=np.empty((0,), dtype=np.float64),
        x_val=x_val, y_val=y_val, counts=counts, tau=tau, metric=metric, n_classes=n_classes,
        rate=rate, key=key, budget=budget, divisor=divisor, caller=func,
        max_contributions=max_contributions,
    )


def _n_classes(labels_train: np.ndarray, y_val: np.ndarray, n_classes: Any, func: str) -> int:
    """Distinct labels of training and validation together (as the in-memory path counts)."""
    train = np.asarray(labels_train)
    if y_val.dtype.kind in "US":
        train, y_val = train.astype(str), y_val.astype(str)
    seen = int(np.unique(np.concatenate([train, y_val])).shape[0])
    if n_classes is None:
        return seen
    return check_int(n_classes, "n_classes", func, minimum=max(seen, 1))


# --------------------------------------------------------------------------- public API
def dask_neighbor_counts(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float,
    metric: str = "euclidean",
    label_column: str | int | None = None,
    chunk_rows: int | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
) -> np.ndarray:
    """:func:`privval.neighbor_counts` for training data on a Dask cluster.

    Each chunk of training rows counts its in-ball matching (``Ca``) and non-matching
    (``Cm``) points for every validation point; a tree reduction adds the int64 chunk counts
    (exact in any order), and only the ``(M, 2)`` result reaches the client. Identical to the
    in-memory :func:`privval.neighbor_counts` (same boundary rule ``d <= tau``), whatever the
    chunking.

    Parameters
    ----------
    x_train : dask.array.Array, np.ndarray, or list of shard paths
        Training features (N, d), chunked along rows; or ``.npy``/Parquet shard files
        (:func:`shards_to_dask`), in which case ``y_train`` must be None.
    y_train : dask.array.Array, np.ndarray or None
        Training labels (N,).
    x_val, y_val : array-like
        Validation set, held by the client and broadcast to the workers.
    tau : float
        Radius in (0, inf]; boundary included.
    metric : {"euclidean", "cosine"}
        Distance.
    label_column : str or int, optional
        Label column of shard files.
    chunk_rows : int, optional
        Rows per chunk when ``x_train`` is a NumPy array (default 65536).
    chunk_size : int, optional
        Most distances a task holds at once (default ``2**23``).
    split_every : int, optional
        Fan-in of the tree reduction (default 8).

    Returns
    -------
    np.ndarray of shape (M, 2), int64

    Raises
    ------
    ValueError, TypeError
        Invalid parameters; mismatched feature dimensions; non-finite features (raised from
        the worker that reads them).
    ImportError
        Without the ``privval[dask]`` extra.

    Example
    -------
    >>> import numpy as np, dask, dask.array as da
    >>> x = da.from_array(np.array([[0.0], [1.0], [2.0], [5.0]]), chunks=(2, 1))
    >>> with dask.config.set(scheduler="synchronous"):
    ...     dask_neighbor_counts(x, np.array([0, 1, 0, 0]), np.array([[1.0]]), [0], tau=1.0)
    array([[2, 1]])
    """
    func = "dask_neighbor_counts"
    xv, yv = _check_val(x_val, y_val, func)
    tau = check_tau(tau, func)
    metric = check_metric(metric, func)
    budget = _check_budget(chunk_size, func)
    split = _check_split_every(split_every, func)
    rows = _check_chunk_rows(chunk_rows, func)
    train = _training(x_train, y_train, xv, func, label_column=label_column, chunk_rows=rows)
    _check_label_kinds(train.y, yv, func)
    graph = _count_graph(train, xv, yv, tau=tau, metric=metric, rate=1.0, key=None,
                         budget=budget, split_every=split, func=func)
    return np.asarray(graph.compute(), dtype=np.int64)


def dask_tknn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float,
    metric: str = "euclidean",
    n_classes: int | None = None,
    reduce: str = "mean",
    label_column: str | int | None = None,
    chunk_rows: int | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
) -> da.Array:
    """:func:`privval.tknn_shapley` for training data on a Dask cluster; returns a Dask array.

    Two passes (Wang et al. 2023, arXiv 2308.15709; DESIGN.md §2): the counts pass of
    :func:`dask_neighbor_counts` runs now (with the training label set, which infers or
    checks ``n_classes``);
    the value pass is returned lazily, chunk-aligned with ``x_train``, so values are computed
    where the data lives and gathered only if the caller calls ``.compute()``.

    Parameters
    ----------
    x_train, y_train, x_val, y_val, tau, metric, label_column, chunk_rows, chunk_size, split_every
        As in :func:`dask_neighbor_counts`.
    n_classes : int, optional
        Number of classes C; default the distinct labels of ``y_train`` and ``y_val``.
    reduce : {"mean", "sum"}
        Average or sum over validation points.

    Returns
    -------
    dask.array.Array of shape (N,), float64
        Equal (to rounding) to the in-memory :func:`privval.tknn_shapley`.

    Raises
    ------
    ValueError, TypeError, ImportError
        As in :func:`dask_neighbor_counts`; ``n_classes`` below the number of labels.

    Example
    -------
    >>> import numpy as np, dask, dask.array as da
    >>> x = da.from_array(np.array([[0.0], [1.0], [5.0]]), chunks=(2, 1))
    >>> with dask.config.set(scheduler="synchronous"):
    ...     dask_tknn_shapley(x, np.array([0, 1, 0]), np.array([[0.5]]), [0], tau=1.0).compute()
    array([ 0.5, -0.5,  0. ])
    """
    import dask

    func = "dask_tknn_shapley"
    xv, yv = _check_val(x_val, y_val, func)
    tau = check_tau(tau, func)
    metric = check_metric(metric, func)
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    if n_classes is not None:
        check_int(n_classes, "n_classes", func, minimum=1)
    budget = _check_budget(chunk_size, func)
    split = _check_split_every(split_every, func)
    rows = _check_chunk_rows(chunk_rows, func)
    train = _training(x_train, y_train, xv, func, label_column=label_column, chunk_rows=rows)
    _check_label_kinds(train.y, yv, func)
    counts, labels = dask.compute(*_count_label_graph(train, xv, yv, tau=tau, metric=metric,
                                                      budget=budget, split_every=split,
                                                      func=func))
    n_cls = _n_classes(labels, yv, n_classes, func)
    divisor = float(xv.shape[0]) if reduce == "mean" else 1.0
    return _value_graph(train, xv, yv, np.asarray(counts, dtype=np.int64), tau=tau,
                        metric=metric, n_classes=n_cls, rate=None, key=None, budget=budget,
                        divisor=divisor, func=func)


# --------------------------------------------------------------------------- DP-TKNN-Shapley
def _draw_count_noise(noise: str, sigma: float, shape: tuple[int, ...], source: Any) -> np.ndarray:
    """Noise for the summed counts, drawn on the client (integers; Gaussian noise is rounded)."""
    from accountants import noise as nz

    if noise == "discrete_gaussian":
        return np.asarray(nz.sample_discrete_gaussian(sigma, shape, source), dtype=np.int64)
    return np.rint(nz.sample_gaussian(sigma, shape, source)).astype(np.int64)


def _check_epsilon_delta(epsilon: Any, delta: Any, func: str) -> tuple[float, float]:
    from privval._validation import check_fraction, check_positive_float

    eps = check_positive_float(epsilon, "epsilon", func)
    dlt = check_fraction(delta, "delta", func, low_open=True, high_open=True)
    return eps, dlt


def _check_ledger(ledger: Any, dataset: Any, func: str) -> None:
    if ledger is None:
        if dataset is not None:
            fail("ledger", func, "a Ledger when 'dataset' is given", ledger)
        return
    if not isinstance(dataset, str) or not dataset:
        fail("dataset", func, "the name of a dataset registered in the ledger", dataset,
             error=TypeError if not isinstance(dataset, str) else ValueError)
    for method in ("charge", "spent"):
        if not callable(getattr(ledger, method, None)):
            fail("ledger", func, "an accountants.ledger.Ledger", ledger, error=TypeError)


def dask_dp_tknn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float | str,
    epsilon: float,
    delta: float,
    sampling_rate: float | None = None,
    n_val_used: int | None = None,
    max_contributions: int | None = None,
    noise: str = "discrete_gaussian",
    accountant: str = "pld",
    ledger: Any = None,
    dataset: str | None = None,
    purpose: str | None = None,
    rng: Any = None,
    metric: str = "euclidean",
    n_classes: int | None = None,
    reduce: str = "mean",
    label_column: str | int | None = None,
    chunk_rows: int | None = None,
    chunk_size: int | None = None,
    split_every: int | None = None,
) -> ValuationRelease:
    """DP-TKNN-Shapley (Wang et al. 2023, arXiv 2308.15709) on a Dask cluster.

    The mechanism, its options and its privacy accounting are those of the in-memory
    :func:`privval.dp_tknn_shapley` (DESIGN.md §4), whose functions this one calls: per used
    validation point, a fresh secret Poisson subsample of the training set at rate q, exact
    counts ``(Ca, Cm)`` summed over the chunks by a tree reduction, then independent noise on
    each count **once, on the client**, clamped at 0. Every owner's value is the TKNN formula
    on those shared noisy counts plus its own record (added when it was not in the
    subsample), computed chunk-wise on the workers.

    Privacy: add/remove one training record; the count pair has l1 = l2 sensitivity 1. The
    release is the T-fold composition of ``PoissonSampled(q, DiscreteGaussian(σ, 1))`` (or
    ``Gaussian(σ)`` with ``noise="gaussian"``; T = min(T, k) with ``max_contributions=k``),
    composed with the selection event when ``tau="private"``; σ is calibrated exactly as
    in memory (same event, same accountant, same σ). With a ledger the charge is committed
    before any noise is drawn. With a float or ``"auto"`` tau the exact counts are computed
    first, so a failure in the count pass spends nothing; with ``tau="private"`` the exact
    vote histogram is computed before the charge and the counts (which depend on the chosen
    radius) after it, so a cluster failure in that last pass leaves the charge spent with
    nothing released (as in memory, where the counts follow the charge). A task Dask
    retries (a worker died) recomputes integers only, so it cannot cause a second noisy
    release.

    With ``rng`` seeded and ``sampling_rate=1`` the release (validation choice, τ, noise,
    values) equals the in-memory release for the same seed: both draw from the same
    :class:`accountants.noise.NoiseSource` in the same order. With q < 1 the subsample comes
    from keyed Philox tiles (module docstring), so the two paths agree in distribution only.

    Parameters
    ----------
    x_train, y_train, x_val, y_val, metric, label_column, chunk_rows, chunk_size, split_every
        As in :func:`dask_neighbor_counts`.
    tau : float or {"auto", "private"}
        Ball radius (``d <= tau``). ``"auto"``: :func:`privval.threshold.tau_from_validation`
        on the validation set (no privacy cost). ``"private"``: report-noisy-max over the
        per-record vote histogram of :func:`privval.dp_tknn_shapley`, computed chunk-wise on
        the cluster (int64 histograms add exactly), charged with the release; it spends
        :data:`privval.private.TAU_SELECTION_SHARE` of ε and δ.
    epsilon : float
        Target ε in (0, inf) of this release.
    delta : float
        Target δ in (0, 1).
    sampling_rate : float, optional
        Poisson rate q in (0, 1] of the per-validation-point subsample; default the in-memory
        path's :data:`privval.private.DEFAULT_SAMPLING_RATE` (see :func:`privval.dp_tknn_shapley`
        for the reasoning).
    n_val_used : int, optional
        Number T of validation points used (drawn without replacement; default all M). The
        validation set is not protected, so the choice costs no privacy.
    max_contributions : int, optional
        Contribution bound k ≥ 1: each training record counts only in its k nearest in-ball
        validation points (ties by validation index), decided per record on the worker that
        holds it, so the event composes min(T, k) times. **This changes the value
        definition**, exactly as in :func:`privval.dp_tknn_shapley`.
    noise : {"discrete_gaussian", "gaussian"}
        Exact integer noise (default) or floating-point Gaussian noise, rounded.
    accountant : {"pld", "rdp", "evr"}
        Accountant used to calibrate σ and state ε; ``"evr"`` is estimate-verify-release and
        attaches its certificate to the guarantee and the ledger charge.
    ledger : accountants.ledger.Ledger, optional
        Charged (with ``dataset``, ``purpose``) before the release.
    dataset : str, optional
        Dataset name registered in ``ledger``.
    purpose : str, optional
        Description stored with the charge.
    rng : int or numpy.random.Generator, optional
        Seed for the validation choice, the subsample key and the noise: reproducible, not
        secure (the release says ``seeded=True``). Default: the OS CSPRNG.
    n_classes : int, optional
        Number of classes C (public); default the number of distinct validation labels, as
        in memory (the training label set is private).
    reduce : {"mean", "sum"}
        Average (over the T used points) or sum.

    Returns
    -------
    privval.private.ValuationRelease
        As for :func:`privval.dp_tknn_shapley`, except that ``values`` is a lazy Dask array
        of shape (N,), chunk-aligned with the training data.

    Raises
    ------
    ValueError, TypeError
        Invalid parameters (nothing is computed or charged).
    accountants.ledger.BudgetExceededError
        The ledger refused the charge; nothing was released.
    ImportError
        Without the ``privval[dask]`` extra.

    Example
    -------
    >>> import numpy as np, dask, dask.array as da
    >>> rng = np.random.default_rng(0)
    >>> x = da.from_array(rng.normal(size=(200, 3)), chunks=(50, 3))
    >>> y = rng.integers(0, 2, 200)
    >>> with dask.config.set(scheduler="synchronous"):
    ...     rel = dask_dp_tknn_shapley(x, y, rng.normal(size=(10, 3)), rng.integers(0, 2, 10),
    ...                                tau=1.5, epsilon=1.0, delta=1e-5, rng=1)
    ...     rel.values.compute().shape, rel.noisy_counts.shape, rel.seeded
    ((200,), (10, 2), True)
    """
    from privval import private as pv

    func = "dask_dp_tknn_shapley"
    xv, yv = _check_val(x_val, y_val, func)
    metric = check_metric(metric, func)
    tau, tau_source = pv._check_tau_choice(tau, func)
    eps = pv._check_epsilon(epsilon, func)
    dlt = pv._check_delta(delta, func)
    from privval._validation import check_fraction

    rate = check_fraction(default_sampling_rate() if sampling_rate is None else sampling_rate,
                          "sampling_rate", func, low_open=True)
    m = xv.shape[0]
    t_used = m if n_val_used is None else check_int(n_val_used, "n_val_used", func, minimum=1,
                                                     maximum=m)
    k = None if max_contributions is None else check_int(max_contributions, "max_contributions",
                                                         func, minimum=1)
    noise = check_choice(noise, "noise", func, pv.NOISES)
    accountant = check_choice(accountant, "accountant", func, pv.ACCOUNTANTS)
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    n_seen = int(np.unique(yv).shape[0])
    n_cls = n_seen if n_classes is None else check_int(n_classes, "n_classes", func,
                                                       minimum=n_seen)
    pv._check_ledger(ledger, dataset, purpose, func)
    budget = _check_budget(chunk_size, func)
    split = _check_split_every(split_every, func)
    rows = _check_chunk_rows(chunk_rows, func)
    if rng is not None and not isinstance(rng, np.random.Generator) and not (
            isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0):
        fail("rng", func, "None, a non-negative int seed or a numpy Generator", rng,
             error=TypeError)
    train = _training(x_train, y_train, xv, func, label_column=label_column, chunk_rows=rows)
    _check_label_kinds(train.y, yv, func)
    source = pv.make_noise_source(rng)
    if accountant == "evr":
        pv._evr_module()  # fail early, before anything is computed, if EVR is unavailable

    # The same steps, in the same order and on the same noise source, as dp_tknn_shapley.
    grid = pv._tau_grid(xv, metric) if tau_source == "private" else None
    if tau_source == "auto":
        tau = pv._auto_tau(xv, metric)
    used = pv._select_validation(m, t_used, source)
    steps = t_used if k is None else min(t_used, k)
    if tau_source == "private":
        sel_eps, sel_delta = pv.TAU_SELECTION_SHARE * eps, pv.TAU_SELECTION_SHARE * dlt
        sel_sigma, _ = pv._calibrate_cached("selection", (noise,), sel_eps, sel_delta,
                                            "pld" if accountant == "evr" else accountant)
        cal = pv._calibrate("selection+counts", (sel_sigma, rate, noise, steps), eps, dlt,
                            accountant, source, sel_sigma)
    else:
        cal = pv._calibrate("counts", (rate, noise, steps), eps, dlt, accountant, source)
    # 128 secret bits for the Philox subsample tiles (none needed at q = 1).
    key = None if rate >= 1.0 else int.from_bytes(source.words(2).tobytes(), "little")
    xu, yu = xv[used], yv[used]

    def counts_graph(radius: float) -> Any:
        return _count_graph(train, xu, yu, tau=radius, metric=metric, rate=rate, key=key,
                            budget=budget, split_every=split, func=func, max_contributions=k)

    hist = counts = None
    if tau_source == "private":
        assert grid is not None
        hist = np.asarray(_vote_graph(train, xu, yu, n_classes=n_cls, grid=grid, metric=metric,
                                      budget=budget, split_every=split, func=func).compute(),
                          dtype=np.int64)
    else:
        counts = np.asarray(counts_graph(float(tau)).compute(), dtype=np.int64)

    details = {"mechanism": "dp_tknn_shapley", "backend": "dask", "noise": noise,
               "sigma": cal.sigma, "sampling_rate": rate, "n_val_used": t_used,
               "max_contributions": k, "tau_source": tau_source, "count_pair": "(Ca, Cm)",
               "selection_sigma": cal.selection_sigma}
    with pv._charged(ledger, dataset, cal.event, sensitivity=1.0,
                     sampling=({"type": "poisson", "rate": rate, "per": "validation point"}
                               if rate < 1 else "none"),
                     seeded=source.seeded, purpose=purpose, certificate=cal.certificate,
                     details=details) as entry:
        if tau_source == "private":
            assert grid is not None and hist is not None and cal.selection_sigma is not None
            z = _draw_count_noise(noise, cal.selection_sigma, (1, grid.shape[0]), source)[0]
            noisy_hist = hist + z
            tau = float(grid[grid.shape[0] - 1 - int(np.argmax(noisy_hist[::-1]))])
            logger.info("tau chosen privately: %g from %d candidates", tau, grid.shape[0])
            counts = np.asarray(counts_graph(tau).compute(), dtype=np.int64)
        assert counts is not None
        noisy = np.maximum(counts + _draw_count_noise(noise, cal.sigma, counts.shape, source), 0)
    divisor = float(t_used) if reduce == "mean" else 1.0
    noisy.flags.writeable = False
    used.flags.writeable = False
    values = _value_graph(train, xu, yu, noisy, tau=float(tau), metric=metric, n_classes=n_cls,
                          rate=rate, key=key, budget=budget, divisor=divisor, func=func,
                          max_contributions=k)
    logger.info("dask_dp_tknn_shapley: released %d noisy count pairs (sigma=%.4g, q=%.4g)",
                t_used, cal.sigma, rate)
    guarantee = pv.PrivacyGuarantee(epsilon=cal.epsilon, delta=cal.delta,
                                    accountant=cal.accountant, event_json=pv.to_json(cal.event),
                                    certificate=cal.certificate)
    return pv.ValuationRelease(
        values=values, guarantee=guarantee, noise_scale=cal.sigma, sampling_rate=rate,
        noisy_counts=noisy, validation_indices=used, tau=float(tau), tau_source=tau_source,
        n_classes=n_cls, reduce=reduce, max_contributions=k,
        ledger_entry=pv._entry_id(entry), seeded=source.seeded)
