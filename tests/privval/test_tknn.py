"""Tests for privval.tknn against brute-force Shapley values and independent identities."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from privval import neighbor_counts, tknn_point_values, tknn_shapley


def _shapley_by_enumeration(n, utility):
    """Shapley values of an n-player game by summing over all subsets (n <= 8)."""
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                values[i] += weight * (utility(set(subset) | {i}) - utility(set(subset)))
    return values


def _tknn_utility(in_ball, match, n_classes):
    """Soft-label threshold-NN accuracy of a coalition, straight from the definition."""

    def utility(subset):
        members = [j for j in subset if in_ball[j]]
        if not members:
            return 1.0 / n_classes
        return sum(match[j] for j in members) / len(members)

    return utility


def _brute_force_tknn(xt, yt, xv, yv, tau, n_classes):
    per_val = []
    for v in range(xv.shape[0]):
        d = np.linalg.norm(xt - xv[v], axis=1)
        per_val.append(_shapley_by_enumeration(
            xt.shape[0], _tknn_utility(d <= tau, yt == yv[v], n_classes)))
    return np.array(per_val)


@pytest.mark.parametrize("case", range(24))
def test_matches_brute_force_shapley(case):
    rng = np.random.default_rng(1000 + case)
    n = int(rng.integers(1, 9))
    n_classes = int(rng.choice([2, 3, 4]))
    # integer coordinates create ties, and tau on a lattice distance puts points on the boundary
    xt = rng.integers(0, 4, size=(n, 2)).astype(float)
    xv = rng.integers(0, 4, size=(3, 2)).astype(float)
    yt = rng.integers(0, n_classes, n)
    yv = rng.integers(0, n_classes, 3)
    tau = float(rng.choice([1.0, math.sqrt(2.0), 2.0, 3.0]))
    expected = _brute_force_tknn(xt, yt, xv, yv, tau, n_classes)
    got_sum = tknn_shapley(xt, yt, xv, yv, tau=tau, n_classes=n_classes, reduce="sum")
    got_mean = tknn_shapley(xt, yt, xv, yv, tau=tau, n_classes=n_classes)
    np.testing.assert_allclose(got_sum, expected.sum(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_mean, expected.mean(axis=0), rtol=0, atol=1e-12)


def test_point_values_small_cases_by_hand():
    # Ct = 1: alone in the ball
    a, b = tknn_point_values([1, 0], [0, 1], 4)
    assert a.tolist() == [0.75, 0.0] and b.tolist() == [0.0, -0.25]
    # Ct = 2, one match one mismatch, C = 2: v(match) = 1/2 [1/2 + 1 * 1/2] = 1/2
    a, b = tknn_point_values([1], [1], 2)
    assert a.tolist() == [0.5] and b.tolist() == [-0.5]
    # Ct = 0: nothing to value
    a, b = tknn_point_values([0], [0], 3)
    assert a.tolist() == [0.0] and b.tolist() == [0.0]


@pytest.mark.parametrize("n_classes", [2, 3, 7])
def test_efficiency_per_validation_point(rng, n_classes):
    ca = rng.integers(0, 40, 200)
    cm = rng.integers(0, 40, 200)
    a, b = tknn_point_values(ca, cm, n_classes)
    ct = ca + cm
    total = ca * a + cm * b
    expected = np.where(ct > 0, ca / np.maximum(ct, 1) - 1.0 / n_classes, 0.0)
    np.testing.assert_allclose(total, expected, rtol=0, atol=1e-13)
    assert np.all(a[ca > 0] > 0) and np.all(b[cm > 0] < 0)


def test_efficiency_of_full_values(rng):
    xt = rng.normal(size=(300, 3))
    yt = rng.integers(0, 3, 300)
    xv = rng.normal(size=(25, 3))
    yv = rng.integers(0, 3, 25)
    values = tknn_shapley(xt, yt, xv, yv, tau=0.8, reduce="sum")
    counts = neighbor_counts(xt, yt, xv, yv, tau=0.8)
    ct = counts.sum(axis=1)
    expected = np.sum(np.where(ct > 0, counts[:, 0] / np.maximum(ct, 1) - 1 / 3, 0.0))
    assert values.sum() == pytest.approx(expected, abs=1e-11)


def test_null_player_and_far_points_change_nothing(rng):
    xt = rng.normal(size=(60, 4))
    yt = rng.integers(0, 2, 60)
    xv = rng.normal(size=(10, 4))
    yv = rng.integers(0, 2, 10)
    base = tknn_shapley(xt, yt, xv, yv, tau=1.5)
    far = rng.normal(size=(40, 4)) + 100.0
    more = tknn_shapley(np.vstack([xt, far]), np.concatenate([yt, rng.integers(0, 2, 40)]),
                        xv, yv, tau=1.5)
    assert np.all(more[60:] == 0.0)
    np.testing.assert_array_equal(more[:60], base)


def _paper_form_a2(n_other, c_x):
    """The paper's sum sum_{k=0}^{c} 1/(k+1) (1 - C(c-k, c_x)/C(c+1, c_x)) - 1 with c = n_other,
    binomial ratios as running products (no binomial coefficient is ever formed)."""
    total = 0.0
    ratio = 1.0  # C(c - k, c_x) / C(c + 1, c_x) for k = -1 is 1
    for k in range(n_other + 1):
        # C(c-k, c_x)/C(c-k+1, c_x) = (c-k+1-c_x)/(c-k+1)
        top = n_other - k + 1
        ratio *= max(top - c_x, 0) / top
        total += (1.0 - ratio) / (k + 1)
    return total - 1.0


def test_overflow_case_is_finite_and_equals_paper_form():
    n, ct, ca = 5000, 2500, 1700
    with pytest.raises(OverflowError):
        float(math.comb(n, ct))
    a, b = tknn_point_values([ca], [ct - ca], 10)
    a2 = _paper_form_a2(n - 1, ct)
    expected_a = (1 - 0.1) / ct + (1 / ct - (ca - 1) / (ct * (ct - 1))) * a2
    expected_b = (-0.1) / ct + (-(ca) / (ct * (ct - 1))) * a2
    assert np.isfinite(a[0]) and np.isfinite(b[0])
    assert a[0] == pytest.approx(expected_a, rel=1e-9)
    assert b[0] == pytest.approx(expected_b, rel=1e-9)
    # the harmonic number itself, exactly
    h = Fraction(0)
    for m in range(1, ct + 1):
        h += Fraction(1, m)
    exact_a = (Fraction(9, 10) + (1 - Fraction(ca - 1, ct - 1)) * (h - 1)) / ct
    assert a[0] == pytest.approx(float(exact_a), rel=1e-13)


def test_overflow_case_end_to_end():
    n = 5000
    xt = np.concatenate([np.linspace(0.0, 1.0, 2500), np.linspace(10.0, 20.0, 2500)])[:, None]
    yt = np.arange(n) % 3
    values = tknn_shapley(xt, yt, np.array([[0.5]]), np.array([1]), tau=0.5, reduce="sum")
    assert np.all(np.isfinite(values))
    assert np.all(values[2500:] == 0.0)
    ca = int(np.sum(yt[:2500] == 1))
    a, b = tknn_point_values([ca], [2500 - ca], 3)
    np.testing.assert_array_equal(values[:2500], np.where(yt[:2500] == 1, a[0], b[0]))


@pytest.mark.parametrize("chunk_size", [1, 5, 97])
def test_chunk_size_does_not_change_values(rng, chunk_size):
    xt = rng.normal(size=(70, 3)).astype(np.float32)
    yt = rng.integers(0, 3, 70)
    xv = rng.normal(size=(11, 3)).astype(np.float32)
    yv = rng.integers(0, 3, 11)
    ref = tknn_shapley(xt, yt, xv, yv, tau=1.1)
    got = tknn_shapley(xt, yt, xv, yv, tau=1.1, chunk_size=chunk_size)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-15)


@pytest.mark.torch
def test_torch_device_equals_numpy(rng):
    torch = pytest.importorskip("torch")
    xt = rng.normal(size=(120, 5))
    yt = rng.integers(0, 4, 120)
    xv = rng.normal(size=(15, 5))
    yv = rng.integers(0, 4, 15)
    for metric, tau in (("euclidean", 2.0), ("cosine", 0.7)):
        ref = tknn_shapley(xt, yt, xv, yv, tau=tau, metric=metric)
        got = tknn_shapley(xt, yt, xv, yv, tau=tau, metric=metric, device=torch.device("cpu"))
        np.testing.assert_array_equal(got, ref)


def test_cosine_metric_uses_one_minus_cosine_similarity():
    xt = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    # cosine distances to (1, 0): 0, 1 - 1/sqrt(2) ~ 0.293, 1, 2
    values = tknn_shapley(xt, [0, 1, 0, 0], [[3.0, 0.0]], [0], tau=0.5, metric="cosine")
    a, b = tknn_point_values([1], [1], 2)
    np.testing.assert_array_equal(values, [a[0], b[0], 0.0, 0.0])


def test_n_classes_sets_the_empty_ball_utility():
    xt = np.array([[0.0], [9.0]])
    values = tknn_shapley(xt, [0, 1], [[0.0]], [0], tau=1.0, n_classes=5)
    assert values.tolist() == [0.8, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"reduce": "median"}, ValueError, "reduce"),
        ({"n_classes": 1}, ValueError, "n_classes"),
        ({"n_classes": 2.0}, TypeError, "n_classes"),
        ({"tau": -1.0}, ValueError, "tau"),
        ({"metric": "l1"}, ValueError, "metric"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, error, name):
    args = (np.zeros((2, 1)), [0, 1], np.zeros((1, 1)), [0])
    params = {"tau": 1.0, **kwargs}
    with pytest.raises(error, match=f"'{name}' parameter of tknn_shapley"):
        tknn_shapley(*args, **params)


@pytest.mark.parametrize(
    ("ca", "cm", "n_classes", "error", "name"),
    [
        ([-1], [0], 2, ValueError, "ca"),
        ([1.5], [0], 2, ValueError, "ca"),
        ([1], [0, 1], 2, ValueError, "cm"),
        (["a"], [0], 2, TypeError, "ca"),
        ([1], [0], 0, ValueError, "n_classes"),
    ],
)
def test_point_values_bad_input(ca, cm, n_classes, error, name):
    with pytest.raises(error, match=f"'{name}' parameter of tknn_point_values"):
        tknn_point_values(ca, cm, n_classes)
