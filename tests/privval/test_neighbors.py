"""Tests for privval.neighbors: counts against a direct float64 oracle, boundary, chunking, torch."""

from __future__ import annotations

import numpy as np
import pytest

from privval import neighbor_counts


def _oracle_counts(xt, yt, xv, yv, tau, metric="euclidean"):
    """Direct per-pair float64 computation, one validation point at a time (no BLAS tricks)."""
    xt = np.asarray(xt, dtype=np.float64)
    xv = np.asarray(xv, dtype=np.float64)
    out = []
    for v in range(xv.shape[0]):
        if metric == "euclidean":
            d = np.linalg.norm(xt - xv[v], axis=1)
        else:
            norms = np.linalg.norm(xt, axis=1) * np.linalg.norm(xv[v][None, :], axis=1)
            d = 1.0 - np.sum(xt * xv[v], axis=1) / norms
        inb = d <= tau
        match = np.asarray(yt) == np.asarray(yv)[v]
        out.append([np.sum(inb & match), np.sum(inb & ~match)])
    return np.array(out, dtype=np.int64)


def _pair_distance(xt, xv, j, v, metric="euclidean"):
    """The float64 distance of one pair, evaluated as the documented reference does."""
    a = xt[j:j + 1].astype(np.float64)
    b = xv[v:v + 1].astype(np.float64)
    if metric == "euclidean":
        return np.linalg.norm(a - b, axis=1)[0]
    return 1.0 - np.sum(a * b, axis=1)[0] / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))[0]


def test_boundary_is_included_and_counts_split_by_label():
    xt = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 5.0], [6.0, 8.0], [1.0, 1.0]])
    yt = np.array([1, 1, 0, 1, 0])
    xv = np.zeros((1, 2))
    # distances 0, 5, 5, 10, sqrt(2): tau = 5 keeps the two points at exactly 5
    counts = neighbor_counts(xt, yt, xv, [1], tau=5.0)
    assert counts.dtype == np.int64 and counts.shape == (1, 2)
    assert counts.tolist() == [[2, 2]]
    assert neighbor_counts(xt, yt, xv, [1], tau=np.nextafter(5.0, 0)).tolist() == [[1, 1]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_counts_match_direct_oracle_with_tau_on_pair_distances(rng, dtype, metric):
    xt = rng.normal(size=(300, 7)).astype(dtype)
    xv = rng.normal(size=(40, 7)).astype(dtype)
    yt = rng.integers(0, 3, 300)
    yv = rng.integers(0, 3, 40)
    # tau equal to the exact (float64) distance of some pairs puts pairs right on the boundary,
    # where the fast float32 product cannot decide alone.
    tau = float(_pair_distance(xt, xv, 5, 3, metric))
    got = neighbor_counts(xt, yt, xv, yv, tau=tau, metric=metric)
    expected = _oracle_counts(xt, yt, xv, yv, tau, metric)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() > 0


def test_float32_pairs_just_inside_and_outside_tau_are_decided_exactly(rng):
    # Integer features in float32 make every reference distance exact. Validation points sit
    # at distance exactly 5, just above (25 + 2**-20 squared) and just below 5 from a training
    # point: all far inside the float32 rounding band of |x|^2 ~ 1e7, so the fast product alone
    # cannot separate them.
    xt = rng.integers(-1000, 1000, size=(300, 16)).astype(np.float32)
    on = np.zeros(16, np.float32)
    on[:2] = [3.0, 4.0]
    above = on.copy()
    above[2] = 2.0**-10
    below = on.copy()
    below[1] = 4.0 - 2.0**-10
    xv = np.vstack([xt[:50] + on, xt[50:100] + above, xt[100:150] + below])
    yt = rng.integers(0, 2, 300)
    yv = rng.integers(0, 2, 150)
    got = neighbor_counts(xt, yt, xv, yv, tau=5.0)
    np.testing.assert_array_equal(got, _oracle_counts(xt, yt, xv, yv, 5.0))
    assert got[:50].sum() == 50 and got[50:100].sum() == 0 and got[100:].sum() == 50


def test_counts_are_additive_over_training_parts(rng):
    xt = rng.normal(size=(120, 4))
    yt = rng.integers(0, 4, 120)
    xv = rng.normal(size=(30, 4))
    yv = rng.integers(0, 4, 30)
    whole = neighbor_counts(xt, yt, xv, yv, tau=1.5)
    parts = [slice(0, 17), slice(17, 90), slice(90, 120)]
    summed = sum(neighbor_counts(xt[p], yt[p], xv, yv, tau=1.5) for p in parts)
    np.testing.assert_array_equal(whole, summed)
    np.testing.assert_array_equal(whole, _oracle_counts(xt, yt, xv, yv, 1.5))


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunk_size_does_not_change_counts(rng, chunk_size):
    xt = rng.normal(size=(90, 5)).astype(np.float32)
    xv = rng.normal(size=(13, 5)).astype(np.float32)
    yt = rng.integers(0, 3, 90)
    yv = rng.integers(0, 3, 13)
    ref = neighbor_counts(xt, yt, xv, yv, tau=2.0)
    got = neighbor_counts(xt, yt, xv, yv, tau=2.0, chunk_size=chunk_size)
    np.testing.assert_array_equal(got, ref)


def test_infinite_tau_counts_every_training_point():
    xt = np.arange(12.0).reshape(6, 2)
    yt = ["a", "b", "a", "a", "c", "b"]
    counts = neighbor_counts(xt, yt, [[100.0, -3.0], [0.0, 0.0]], ["a", "c"], tau=np.inf)
    assert counts.tolist() == [[3, 3], [1, 5]]


def test_string_and_integer_labels_give_the_same_counts(rng):
    xt = rng.normal(size=(40, 3))
    xv = rng.normal(size=(9, 3))
    yt = rng.integers(0, 3, 40)
    yv = rng.integers(0, 3, 9)
    names = np.array(["cat", "dog", "eel"])
    np.testing.assert_array_equal(
        neighbor_counts(xt, yt, xv, yv, tau=1.2),
        neighbor_counts(xt, names[yt], xv, names[yv], tau=1.2),
    )


@pytest.mark.torch
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_torch_device_equals_numpy(rng, metric):
    torch = pytest.importorskip("torch")
    xt = rng.normal(size=(150, 6)).astype(np.float32)
    xv = rng.normal(size=(20, 6)).astype(np.float32)
    yt = rng.integers(0, 2, 150)
    yv = rng.integers(0, 2, 20)
    tau = 2.5 if metric == "euclidean" else 0.6
    a = neighbor_counts(xt, yt, xv, yv, tau=tau, metric=metric)
    b = neighbor_counts(xt, yt, xv, yv, tau=tau, metric=metric, device=torch.device("cpu"),
                        chunk_size=50)
    np.testing.assert_array_equal(a, b)


def _good():
    return {"x_train": np.zeros((3, 2)) + np.arange(3)[:, None], "y_train": [0, 1, 0],
            "x_val": np.ones((2, 2)), "y_val": [1, 0], "tau": 1.0}


@pytest.mark.parametrize(
    ("change", "error", "name"),
    [
        ({"y_train": [0, 1]}, ValueError, "y_train"),
        ({"y_val": [0, 1, 1]}, ValueError, "y_val"),
        ({"x_train": np.array([[0.0, np.nan], [1, 1], [2, 2]])}, ValueError, "x_train"),
        ({"x_val": np.array([[np.inf, 0.0], [1, 1]])}, ValueError, "x_val"),
        ({"x_train": np.zeros((0, 2)), "y_train": []}, ValueError, "x_train"),
        ({"x_val": np.ones((2, 3))}, ValueError, "x_val"),
        ({"x_train": np.zeros(3)}, ValueError, "x_train"),
        ({"tau": 0.0}, ValueError, "tau"),
        ({"tau": -1.0}, ValueError, "tau"),
        ({"tau": float("nan")}, ValueError, "tau"),
        ({"tau": "1"}, TypeError, "tau"),
        ({"metric": "manhattan"}, ValueError, "metric"),
        ({"y_train": [0.0, 1.0, 0.0]}, TypeError, "y_train"),
        ({"y_train": [True, False, True]}, TypeError, "y_train"),
        ({"y_val": ["a", "b"]}, TypeError, "y_val"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"device": 3}, TypeError, "device"),
        ({"x_train": np.array([["a", "b"]] * 3)}, TypeError, "x_train"),
    ],
)
def test_bad_input_names_the_parameter(change, error, name):
    kwargs = _good()
    kwargs.update(change)
    with pytest.raises(error, match=f"'{name}' parameter of neighbor_counts"):
        neighbor_counts(**kwargs)


def test_cosine_refuses_zero_rows():
    with pytest.raises(ValueError, match="x_train"):
        neighbor_counts([[0.0, 0.0], [1.0, 0.0]], [0, 1], [[1.0, 1.0]], [0], tau=0.5,
                        metric="cosine")
