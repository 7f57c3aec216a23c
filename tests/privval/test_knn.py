"""Tests for privval.knn against brute-force Shapley values by subset enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from privval import knn_shapley, tknn_shapley


def _shapley_by_enumeration(n, utility):
    """Shapley values of an n-player game by summing over all subsets (n <= 8)."""
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                values[i] += weight * (utility(subset + (i,)) - utility(subset))
    return values


def _knn_utility(dist, match, k, soft, n_classes):
    """KNN utility straight from the definition: sort the coalition by (distance, index)."""

    def utility(subset):
        if not subset:
            return 1.0 / n_classes if soft else 0.0
        nearest = sorted(subset, key=lambda j: (dist[j], j))[:k]
        hits = sum(match[j] for j in nearest)
        return hits / len(nearest) if soft else hits / k

    return utility


def _brute_force_knn(xt, yt, xv, yv, k, soft, n_classes):
    rows = []
    for v in range(xv.shape[0]):
        dist = np.linalg.norm(xt - xv[v], axis=1)
        rows.append(_shapley_by_enumeration(
            xt.shape[0], _knn_utility(dist, yt == yv[v], k, soft, n_classes)))
    return np.array(rows)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("case", range(16))
def test_matches_brute_force_shapley(case, soft):
    rng = np.random.default_rng(2000 + case)
    n = int(rng.integers(1, 9))
    k = int(rng.integers(1, 7))  # often k > n
    n_classes = int(rng.choice([2, 3, 4]))
    # a coarse integer grid produces many exact distance ties
    xt = rng.integers(0, 3, size=(n, 2)).astype(float)
    xv = rng.integers(0, 3, size=(3, 2)).astype(float)
    yt = rng.integers(0, n_classes, n)
    yv = rng.integers(0, n_classes, 3)
    expected = _brute_force_knn(xt, yt, xv, yv, k, soft, n_classes)
    got = knn_shapley(xt, yt, xv, yv, k=k, soft_label=soft, n_classes=n_classes, reduce="sum")
    np.testing.assert_allclose(got, expected.sum(axis=0), rtol=0, atol=1e-12)
    got_mean = knn_shapley(xt, yt, xv, yv, k=k, soft_label=soft, n_classes=n_classes)
    np.testing.assert_allclose(got_mean, expected.mean(axis=0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("soft", [False, True])
def test_ties_are_broken_by_training_index(soft):
    # two identical training points with different labels: the lower index counts as nearer
    xt = np.array([[1.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    xv = np.zeros((1, 2))
    for yt in ([0, 1, 0], [1, 0, 0]):
        yt = np.array(yt)
        expected = _brute_force_knn(xt, yt, xv, np.array([0]), 1, soft, 2)[0]
        got = knn_shapley(xt, yt, xv, [0], k=1, soft_label=soft, reduce="sum")
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert got[0] != got[1]


def test_float32_near_ties_are_ordered_exactly(rng):
    # float32 features whose distances differ by less than float32 BLAS rounding: the result
    # must equal the one computed from float64 copies of the same features.
    base = rng.normal(size=(1, 24)).astype(np.float32) * np.float32(50)
    xt = np.repeat(base, 40, axis=0)
    xt[np.arange(40), np.arange(40) % 24] += np.float32(2.0**-10)
    xt = np.vstack([xt, rng.normal(size=(60, 24)).astype(np.float32) * np.float32(50)])
    yt = rng.integers(0, 2, 100)
    xv = base + rng.normal(size=(5, 24)).astype(np.float32)
    yv = rng.integers(0, 2, 5)
    a = knn_shapley(xt, yt, xv, yv, k=3)
    b = knn_shapley(xt.astype(np.float64), yt, xv.astype(np.float64), yv, k=3)
    np.testing.assert_array_equal(a, b)


def _jia_values_by_loop(xt, yt, xv, yv, k):
    """Jia et al. 2019 (Thm. 1) value recursion, one validation point at a time, summed over them;
    ranks come from float64 ``numpy.linalg.norm`` distances, ties broken by training index."""
    n = xt.shape[0]
    total = np.zeros(n)
    for v in range(xv.shape[0]):
        dist = np.linalg.norm(xt.astype(np.float64) - xv[v].astype(np.float64), axis=1)
        order = np.lexsort((np.arange(n), dist))
        match = (yt[order] == yv[v]).astype(float)
        s = match[n - 1] / max(n, k)
        total[order[n - 1]] += s
        for i in range(n - 2, -1, -1):  # rank i + 1
            s += (match[i] - match[i + 1]) / max(k, i + 1)
            total[order[i]] += s
    return total


def test_float32_with_mostly_near_ties_is_refined_in_float64(rng, monkeypatch):
    # Points far from the origin and close together, coordinates on scales 2**-6 .. 2**8: float32
    # rounding of the squared-norm trick is far larger than the gaps between distances, so every
    # row is re-ordered from a float64 product. Pairs x_v +- e are exactly tied but rounded apart
    # by that product (within its bound); exact duplicates and one-ulp perturbations add ties.
    from privval.neighbors import _Geometry

    calls = []
    tile64 = _Geometry.tile64
    monkeypatch.setattr(_Geometry, "tile64",
                        lambda self, v, budget: calls.append(v.size) or tile64(self, v, budget))
    n = 3000
    scale = np.float32(2.0) ** np.arange(-6, 10, 2).astype(np.float32)
    xt = ((100.0 + rng.normal(size=(n, 8))) * scale).astype(np.float32)
    xt[n - 200:] = xt[:200]  # exact duplicates
    xt[100:150, 0] = np.nextafter(xt[100:150, 0], np.float32(np.inf))  # one float32 ulp apart
    yt = rng.integers(0, 3, n)
    xv = ((100.0 + rng.normal(size=(4, 8))) * scale).astype(np.float32)
    yv = rng.integers(0, 3, 4)
    e = (rng.integers(-64, 64, size=(40, 8)) * np.spacing(xv[0])).astype(np.float32)
    xt[200:240], xt[240:280] = xv[0] + e, xv[0] - e
    got = knn_shapley(xt, yt, xv, yv, k=5, reduce="sum")
    assert sum(calls) == 4  # every validation row took the float64 refinement
    np.testing.assert_allclose(got, _jia_values_by_loop(xt, yt, xv, yv, 5), rtol=0, atol=1e-10)
    for metric in ("euclidean", "cosine"):
        for soft in (False, True):
            a = knn_shapley(xt, yt, xv, yv, k=5, metric=metric, soft_label=soft, chunk_size=7000)
            b = knn_shapley(xt.astype(np.float64), yt, xv.astype(np.float64), yv, k=5,
                            metric=metric, soft_label=soft)
            # blocks of one row sum in another order: equal up to rounding, while one swapped
            # pair of ranks would move values by about 1e-4
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    assert len(calls) > 1 + 4  # cosine too; chunk_size=7000 makes one-row blocks


@pytest.mark.parametrize("scale", [1.0, 1e20])
def test_float64_distances_equal_in_float32_are_ordered_by_float64(rng, scale):
    # float64 rows are sorted by float32-rounded keys first: perturbations of 1e-9 give
    # distances that round to the same float32 key (and, at scale 1e20, squared distances that
    # overflow float32 to inf) but that differ far beyond the float64 rounding bound.
    n = 400
    xt = (rng.normal(size=(1, 6)) + 1e-9 * rng.normal(size=(n, 6))) * scale
    xt[::7] = rng.normal(size=(len(xt[::7]), 6)) * scale
    yt = rng.integers(0, 3, n)
    xv = rng.normal(size=(3, 6)) * scale
    yv = rng.integers(0, 3, 3)
    got = knn_shapley(xt, yt, xv, yv, k=3, reduce="sum")
    np.testing.assert_allclose(got, _jia_values_by_loop(xt, yt, xv, yv, 3), rtol=0, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3, 10, 200])
def test_efficiency(rng, k):
    xt = rng.normal(size=(60, 3))
    yt = rng.integers(0, 3, 60)
    xv = rng.normal(size=(7, 3))
    yv = rng.integers(0, 3, 7)
    hard = knn_shapley(xt, yt, xv, yv, k=k, reduce="sum")
    soft = knn_shapley(xt, yt, xv, yv, k=k, soft_label=True, reduce="sum")
    hard_total = soft_total = 0.0
    for v in range(7):
        nearest = np.argsort(np.linalg.norm(xt - xv[v], axis=1), kind="stable")[:k]
        hits = np.sum(yt[nearest] == yv[v])
        hard_total += hits / k
        soft_total += hits / len(nearest) - 1 / 3
    assert hard.sum() == pytest.approx(hard_total, abs=1e-12)
    assert soft.sum() == pytest.approx(soft_total, abs=1e-12)


def test_soft_label_with_k_at_least_n_equals_tknn_with_infinite_tau(rng):
    xt = rng.normal(size=(30, 4))
    yt = rng.integers(0, 3, 30)
    xv = rng.normal(size=(6, 4))
    yv = rng.integers(0, 3, 6)
    for k in (30, 45):
        soft = knn_shapley(xt, yt, xv, yv, k=k, soft_label=True)
        tknn = tknn_shapley(xt, yt, xv, yv, tau=np.inf)
        np.testing.assert_allclose(soft, tknn, rtol=0, atol=1e-14)
    # the recursion (N > K) and the closed form (N <= K) meet at K = N - 1 / N
    a = knn_shapley(xt, yt, xv, yv, k=29, soft_label=True)
    assert np.all(np.isfinite(a))


@pytest.mark.parametrize("chunk_size", [1, 50, 10_000])
def test_chunk_size_does_not_change_values(rng, chunk_size):
    xt = rng.normal(size=(50, 3)).astype(np.float32)
    yt = rng.integers(0, 2, 50)
    xv = rng.normal(size=(9, 3)).astype(np.float32)
    yv = rng.integers(0, 2, 9)
    for soft in (False, True):
        ref = knn_shapley(xt, yt, xv, yv, k=4, soft_label=soft)
        got = knn_shapley(xt, yt, xv, yv, k=4, soft_label=soft, chunk_size=chunk_size)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15)


@pytest.mark.torch
def test_torch_device_equals_numpy(rng):
    torch = pytest.importorskip("torch")
    xt = rng.normal(size=(80, 5)).astype(np.float32)
    yt = rng.integers(0, 3, 80)
    xv = rng.normal(size=(10, 5)).astype(np.float32)
    yv = rng.integers(0, 3, 10)
    for metric in ("euclidean", "cosine"):
        ref = knn_shapley(xt, yt, xv, yv, k=5, metric=metric)
        got = knn_shapley(xt, yt, xv, yv, k=5, metric=metric, device=torch.device("cpu"))
        np.testing.assert_array_equal(got, ref)


def test_cosine_orders_by_angle():
    xt = np.array([[10.0, 0.0], [0.0, 0.1], [1.0, 1.0]])
    values = knn_shapley(xt, [1, 0, 0], [[1.0, 0.0]], [1], k=1, metric="cosine", reduce="sum")
    # nearest by angle: point 0 (angle 0), then 2 (45 degrees), then 1 (90 degrees)
    expected = _shapley_by_enumeration(
        3, _knn_utility({0: 0.0, 2: 1.0, 1: 2.0}, {0: True, 1: False, 2: False}, 1, False, 2))
    np.testing.assert_allclose(values, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"k": 0}, ValueError, "k"),
        ({"k": 2.5}, TypeError, "k"),
        ({"soft_label": "yes"}, TypeError, "soft_label"),
        ({"reduce": "max"}, ValueError, "reduce"),
        ({"metric": "hamming"}, ValueError, "metric"),
        ({"n_classes": 1}, ValueError, "n_classes"),
        ({"x_val": np.ones((1, 3))}, ValueError, "x_val"),
        ({"y_train": [0, 1, 2]}, ValueError, "y_train"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, error, name):
    params = {"x_train": np.zeros((2, 2)), "y_train": [0, 1], "x_val": np.ones((1, 2)),
              "y_val": [0], **kwargs}
    with pytest.raises(error, match=f"'{name}' parameter of knn_shapley"):
        knn_shapley(**params)
