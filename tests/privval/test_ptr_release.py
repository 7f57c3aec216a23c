"""PTR releases: distance to instability against brute force, pass rates, ledger, bad input.

Oracles: breadth-first search over every multiset of a small integer domain with brute-force
local sensitivities (replace-one neighbours), and the exact Laplace tail for pass rates
(binomial limits at a false-alarm rate of 1e-6 per check).
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import pytest
from scipy import stats

from accountants.events import PTRDpEvent
from privval.ptr import (
    PTRRelease,
    distance_to_instability,
    local_sensitivity_at_distance,
    private_value_summary,
    ptr_release,
)

ALPHA = 1e-6


# --------------------------------------------------------------------------- brute force (1-D)
def _stat(x: tuple, t: int) -> np.ndarray:
    s = np.sort(np.asarray(x, dtype=float).reshape(len(x), -1), axis=0)
    return s[t : len(x) - t].mean(axis=0)


class _Graph:
    """Multisets of size n over ``values`` (scalars or tuples), replace-one graph."""

    def __init__(self, n: int, values: list, t: int) -> None:
        self.sets = list(itertools.combinations_with_replacement(values, n))
        index = {x: i for i, x in enumerate(self.sets)}
        self.nbrs = []
        for x in self.sets:
            out = set()
            for i in range(n):
                rest = x[:i] + x[i + 1 :]
                for v in values:
                    y = tuple(sorted(rest + (v,)))
                    if y != x:
                        out.add(index[y])
            self.nbrs.append(sorted(out))
        f = np.array([_stat(x, t) for x in self.sets])
        self.ls = np.array([max(np.linalg.norm(f[i] - f[j]) for j in nb)
                            for i, nb in enumerate(self.nbrs)])

    def ls_at_distance(self, k_max: int) -> np.ndarray:
        """LS^(k)(x) = max of LS over the k-ball, k = 0..k_max (rows)."""
        rows = [self.ls]
        for _ in range(k_max):
            prev = rows[-1]
            rows.append(np.array([max(prev[i], max(prev[j] for j in nb))
                                  for i, nb in enumerate(self.nbrs)]))
        return np.array(rows)

    def distance(self, beta: float) -> np.ndarray:
        unstable = self.ls > beta + 1e-12
        dist = np.full(len(self.sets), np.inf)
        dist[unstable] = 0
        queue = deque(np.flatnonzero(unstable).tolist())
        while queue:
            i = queue.popleft()
            for j in self.nbrs[i]:
                if dist[j] == np.inf:
                    dist[j] = dist[i] + 1
                    queue.append(j)
        return dist


CASES_1D = [  # (n, domain size, statistic, trim)
    (5, 7, "median", None),
    (6, 7, "median", None),
    (5, 7, "trimmed_mean", 1),
    (6, 6, "trimmed_mean", 1),
    (6, 6, "trimmed_mean", 2),
    (4, 7, "trimmed_mean", 0),
]


def _t(n: int, statistic: str, trim: int | None) -> int:
    return (n - 1) // 2 if statistic == "median" else trim


@pytest.mark.parametrize(("n", "m", "statistic", "trim"), CASES_1D)
def test_closed_form_local_sensitivity_at_distance_equals_brute_force(n, m, statistic, trim):
    t = _t(n, statistic, trim)
    graph = _Graph(n, list(range(m)), t)
    k_max = 2 * t + 2
    brute = graph.ls_at_distance(k_max)
    gs = (m - 1) / (n - 2 * t)
    for i, x in enumerate(graph.sets):
        closed = [local_sensitivity_at_distance(x, k, statistic=statistic, bounds=(0, m - 1),
                                                trim=0 if trim is None else trim)
                  for k in range(k_max + 1)]
        np.testing.assert_allclose(closed, brute[:, i], atol=1e-12)
        assert np.all(np.diff(closed) >= 0)
        assert closed[2 * t + 1] == pytest.approx(gs)
    # the brute-force GS agrees with the formula used for the event
    assert brute.max() == pytest.approx(gs)


@pytest.mark.parametrize(("n", "m", "statistic", "trim"), CASES_1D)
def test_distance_to_instability_properties_for_every_neighbouring_pair(n, m, statistic, trim):
    t = _t(n, statistic, trim)
    graph = _Graph(n, list(range(m)), t)
    gs = (m - 1) / (n - 2 * t)
    for beta in (0.0, 0.3, 0.5, 1.0, gs * 0.99, gs):
        bfs = graph.distance(beta)
        ours = np.array([distance_to_instability(x, statistic=statistic, proposed_bound=beta,
                                                 bounds=(0, m - 1),
                                                 trim=0 if trim is None else trim)
                         for x in graph.sets])
        np.testing.assert_array_equal(ours, bfs)  # exact, not just a valid surrogate
        for i, nb in enumerate(graph.nbrs):
            finite = ours[nb][np.isfinite(ours[nb])]
            if math.isfinite(ours[i]):
                assert np.all(np.abs(finite - ours[i]) <= 1)
            else:
                assert finite.size == 0
            if ours[i] >= 1:
                assert graph.ls[i] <= beta + 1e-12
    assert np.all(np.isinf(ours)) == (gs <= beta)


def test_worked_example_from_the_research_note():
    x = [10, 20, 30, 40, 45, 50, 55, 60, 70, 80, 90]
    a = [local_sensitivity_at_distance(x, k, statistic="median", bounds=(0, 100))
         for k in range(8)]
    assert a == [5, 10, 20, 30, 40, 50, 55, 60]
    tm = [local_sensitivity_at_distance(x, k, statistic="trimmed_mean", trim=2, bounds=(0, 100))
          for k in range(8)]
    np.testing.assert_allclose(tm, [7.1429, 8.5714, 10, 11.4286, 12.8571, 14.2857, 14.2857,
                                    14.2857], atol=1e-4)
    dist = [distance_to_instability(x, statistic="median", proposed_bound=b, bounds=(0, 100))
            for b in (4, 12, 25)]
    assert dist == [0, 2, 3]
    assert distance_to_instability(x, statistic="trimmed_mean", trim=2, proposed_bound=8,
                                   bounds=(0, 100)) == 1


def test_coordinate_wise_envelope_properties_in_two_dimensions():
    values = [(a, b) for a in range(3) for b in range(3)]
    n, t = 4, 1
    graph = _Graph(n, values, t)
    brute = graph.ls_at_distance(3)
    for beta in (0.4, 0.8, 1.2):
        dist = np.array([distance_to_instability(np.array(x), proposed_bound=beta, bounds=(0, 2),
                                                 trim=t) for x in graph.sets])
        for i, nb in enumerate(graph.nbrs):
            assert np.all(np.abs(np.where(np.isinf(dist[nb]), 99, dist[nb])
                                 - (99 if np.isinf(dist[i]) else dist[i])) <= 1)
            if dist[i] >= 1:
                assert graph.ls[i] <= beta + 1e-12  # ℓ2 local sensitivity
    for i, x in enumerate(graph.sets):
        for k in range(4):
            envelope = local_sensitivity_at_distance(np.array(x), k, bounds=(0, 2), trim=t)
            assert envelope >= brute[k, i] - 1e-12


def test_trim_fraction_and_median_for_even_n():
    x = np.arange(20.0)
    assert local_sensitivity_at_distance(x, 0, trim=0.1, bounds=(0, 19)) == pytest.approx(
        local_sensitivity_at_distance(x, 0, trim=2, bounds=(0, 19)))
    # even n: the median is the average of the two middle values (t = n/2 − 1)
    r = ptr_release([0.0, 1.0, 3.0, 10.0] * 50, "median", bounds=(0, 10), proposed_bound=10.0,
                    test_scale=1.0, delta0=0.1, sigma_pass=1e-9, sigma_fail=1.0, rng=0)
    assert r.passed and r.trim == 99 and r.value == pytest.approx(2.0)


# --------------------------------------------------------------------------- Monte Carlo
def _expected_pass(d: float, b: float, threshold: float) -> float:
    if d <= threshold:
        return 0.5 * math.exp(-(threshold - d) / b)
    return 1 - 0.5 * math.exp(-(d - threshold) / b)


@pytest.mark.slow
@pytest.mark.parametrize(("beta", "distance"), [(4.0, 0), (12.0, 2), (35.0, 4), (45.0, 5)])
def test_pass_rate_matches_the_laplace_tail(beta, distance):
    x = np.array([10, 20, 30, 40, 45, 50, 55, 60, 70, 80, 90], dtype=float)
    b, delta0 = 1.5, 0.05
    threshold = b * math.log(1 / (2 * delta0))
    d = distance_to_instability(x, statistic="median", proposed_bound=beta, bounds=(0, 100))
    assert d == distance  # A^(k) = 5, 10, 20, 30, 40, 50, ... (notes/ptr.md §7); B ≈ 3.45
    trials = 4000
    passes = sum(
        ptr_release(x, "median", bounds=(0, 100), proposed_bound=beta, test_scale=b,
                    delta0=delta0, sigma_pass=1.0, fallback=None, rng=seed).passed
        for seed in range(trials)
    )
    p = _expected_pass(d, b, threshold)
    lo, hi = stats.binom.ppf(ALPHA / 2, trials, p), stats.binom.isf(ALPHA / 2, trials, p)
    assert lo <= passes <= hi, (d, p, passes / trials)


@pytest.mark.slow
@pytest.mark.parametrize(("beta", "distance"), [(4.0, 0), (12.0, 2), (35.0, 4)])
def test_pass_rate_matches_the_gaussian_tail(beta, distance):
    """test_noise="gaussian": P[pass] = Φ((Δ − B)/b) with B = b·Φ̄⁻¹(δ0) (scipy's quantile)."""
    x = np.array([10, 20, 30, 40, 45, 50, 55, 60, 70, 80, 90], dtype=float)
    b, delta0 = 1.5, 0.05
    threshold = b * stats.norm.isf(delta0)  # ≈ 2.47, vs the Laplace test's 3.45
    d = distance_to_instability(x, statistic="median", proposed_bound=beta, bounds=(0, 100))
    assert d == distance
    trials = 4000
    releases = [ptr_release(x, "median", bounds=(0, 100), proposed_bound=beta, test_scale=b,
                            delta0=delta0, sigma_pass=1.0, fallback=None, rng=seed,
                            test_noise="gaussian") for seed in range(trials)]
    assert releases[0].event.test_noise == "gaussian"
    assert releases[0].threshold == pytest.approx(threshold, rel=1e-9)
    passes = sum(r.passed for r in releases)
    p = float(stats.norm.cdf((d - threshold) / b))
    lo, hi = stats.binom.ppf(ALPHA / 2, trials, p), stats.binom.isf(ALPHA / 2, trials, p)
    assert lo <= passes <= hi, (d, p, passes / trials)


def test_zero_proposed_bound_passing_releases_a_finite_value():
    # β = 0: unstable data pass w.p. δ0 = 0.5; the pass branch must still release (its
    # gaussian_release sensitivity falls back to GS2), not crash after the charge.
    x = np.random.default_rng(0).uniform(0, 100, 200)
    releases = [ptr_release(x, "median", bounds=(0, 100), proposed_bound=0.0, test_scale=1.0,
                            delta0=0.5, sigma_pass=5.0, sigma_fail=5.0, rng=seed)
                for seed in range(20)]
    assert any(r.passed for r in releases)
    assert all(np.isfinite(r.value) for r in releases)


def test_unknown_test_noise_is_refused():
    with pytest.raises(ValueError, match="'test_noise'"):
        ptr_release(np.arange(11.0), "median", bounds=(0, 100), proposed_bound=4.0,
                    test_scale=1.0, delta0=1e-3, sigma_pass=1.0, fallback=None,
                    test_noise="cauchy")


def test_released_noise_has_the_stated_variance_in_each_branch():
    rng = np.random.default_rng(5)
    data = rng.normal(0.0, 1.0, size=(401, 3))
    out = {True: [], False: []}
    for seed in range(300):
        for beta, expect in ((0.5, True), (1e-6, False)):
            r = ptr_release(data, "trimmed_mean", bounds=(-4, 4), proposed_bound=beta,
                            test_scale=0.5, delta0=1e-9, sigma_pass=2.0, sigma_fail=3.0,
                            trim=40, rng=seed)
            assert r.passed is expect
            out[expect].append(r.value)
    clipped = np.sort(np.clip(data, -4, 4), axis=0)
    for branch, centre, sigma in ((True, clipped[40:361].mean(axis=0), 2.0),
                                  (False, clipped.mean(axis=0), 3.0)):
        v = np.array(out[branch]) - centre
        dof = v.size
        statistic = float(np.sum(v**2) / sigma**2)
        assert stats.chi2.ppf(ALPHA / 2, dof) <= statistic <= stats.chi2.isf(ALPHA / 2, dof)


# --------------------------------------------------------------------------- release API
def test_release_carries_the_event_and_marks_seeding():
    x = np.linspace(0, 1, 101)
    secure = ptr_release(x, "trimmed_mean", bounds=(0, 1), proposed_bound=0.05, test_scale=1.0,
                         delta0=1e-3, sigma_pass=0.1, sigma_fail=0.2)
    seeded = ptr_release(x, "trimmed_mean", bounds=(0, 1), proposed_bound=0.05, test_scale=1.0,
                         delta0=1e-3, sigma_pass=0.1, sigma_fail=0.2, rng=3)
    assert isinstance(secure, PTRRelease) and not secure.seeded and seeded.seeded
    assert secure.neighboring_relation == "replace_one" and secure.ledger_entry is None
    e = seeded.event
    assert e == PTRDpEvent(1.0, 1e-3, 0.05, 0.1, 1 / (101 - 20), 0.2, 1 / 101)
    assert seeded.threshold == pytest.approx(math.log(500))
    with pytest.raises(AttributeError):
        seeded.value = 0.0  # frozen
    bottom = ptr_release(x, "median", bounds=(0, 1), proposed_bound=0.0, test_scale=1.0,
                         delta0=1e-3, sigma_pass=0.1, fallback=None, rng=1)
    assert not bottom.passed and bottom.value is None and bottom.event.sigma_fail is None


def _ledger(tmp_path, epsilon=5.0):
    ledger_mod = pytest.importorskip("accountants.ledger")
    ledger = ledger_mod.Ledger(tmp_path / "ledger.db")
    ledger.set_budget("values", epsilon=epsilon, delta=1e-6, accountant="rdp")
    return ledger_mod, ledger


def test_release_is_charged_to_the_ledger_before_it_is_returned(tmp_path):
    ledger_mod, ledger = _ledger(tmp_path, epsilon=8.0)
    x = np.random.default_rng(0).uniform(0, 1, 501)
    kwargs = {"bounds": (0, 1), "proposed_bound": 0.001, "test_scale": 2.0, "delta0": 1e-8,
              "sigma_pass": 0.002, "sigma_fail": 0.004, "trim": 50, "ledger": ledger,
              "dataset": "values"}
    r = ptr_release(x, "trimmed_mean", purpose="trimmed mean value", **kwargs)
    history = ledger.history("values")
    assert len(history) == 1 and history[0].id == r.ledger_entry
    assert history[0].neighboring_relation == "replace_one" and history[0].event == r.event
    from accountants.ptr import ptr_epsilon
    assert ledger.spent("values").epsilon == pytest.approx(ptr_epsilon(r.event, 1e-6), rel=1e-3)
    released = 1
    with pytest.raises(ledger_mod.BudgetExceededError):
        for _ in range(10):
            ptr_release(x, "trimmed_mean", **kwargs)
            released += 1
    # ε(1 release) ≈ 3.33, ε(3) ≈ 5.61 under the cap 8; a refused charge leaves no trace
    assert released == len(ledger.history("values")) and 3 <= released < 10
    assert ledger.spent("values").epsilon <= 8.0


def test_a_pld_budget_refuses_ptr_and_nothing_is_charged_or_released(tmp_path):
    ledger_mod = pytest.importorskip("accountants.ledger")
    from accountants.accountant import UnsupportedEventError
    ledger = ledger_mod.Ledger(tmp_path / "pld.db")
    ledger.set_budget("values", epsilon=5.0, delta=1e-6, accountant="pld")
    with pytest.raises(UnsupportedEventError):
        ptr_release(np.linspace(0, 1, 101), "median", bounds=(0, 1), proposed_bound=0.01,
                    test_scale=2.0, delta0=1e-8, sigma_pass=0.1, sigma_fail=0.1,
                    ledger=ledger, dataset="values")
    assert ledger.history("values") == []


def test_value_summary_charges_each_group_in_its_own_scope(tmp_path):
    _, ledger = _ledger(tmp_path)
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.3, 0.05, 800), rng.normal(-0.2, 0.05, 800),
                             rng.normal(0.0, 0.05, 800)])
    groups = np.repeat([7, 8, 9], 800)
    s = private_value_summary(values, groups, bounds=(-1, 1), proposed_bound=0.01,
                              test_scale=1.0, delta0=1e-6, sigma_pass=0.02, sigma_fail=0.01,
                              rng=2, ledger=ledger, dataset="values", purpose="per source")
    assert s.groups == (7, 8, 9)
    assert all(r.passed for r in s.releases.values())
    np.testing.assert_allclose(list(s.values().values()), [0.3, -0.2, 0.0], atol=0.15)
    history = ledger.history("values")
    assert sorted(h.scope for h in history) == [7, 8, 9]
    # parallel composition: three disjoint groups cost what one group costs
    single = private_value_summary(values[:800], groups[:800], bounds=(-1, 1),
                                   proposed_bound=0.01, test_scale=1.0, delta0=1e-6,
                                   sigma_pass=0.02, sigma_fail=0.01, rng=2)
    from accountants.ptr import ptr_epsilon
    assert ledger.spent("values").epsilon == pytest.approx(
        ptr_epsilon(single.releases[7].event, 1e-6), rel=1e-3)


def test_value_summary_refused_for_one_group_spends_nothing_for_the_others(tmp_path):
    """A summary whose last group does not fit must be refused before any group is charged
    (the earlier groups' releases would be spent and never returned). Oracle: the one-event
    ε from accountants.ptr.ptr_epsilon fixes a cap that holds one charge per scope but not
    two; the ledger's history is the witness."""
    from accountants.ptr import ptr_epsilon

    kw = {"bounds": (-1, 1), "proposed_bound": 0.01, "test_scale": 1.0, "delta0": 1e-6,
          "sigma_pass": 0.02, "sigma_fail": 0.01}
    values = np.random.default_rng(4).normal(0.1, 0.05, 1600)
    groups = np.repeat(["a", "b"], 800)
    one = private_value_summary(values[800:], groups[800:], rng=0, **kw).releases["b"].event
    eps_one = ptr_epsilon(one, 1e-6)
    ledger_mod, ledger = _ledger(tmp_path, epsilon=1.5 * eps_one)
    private_value_summary(values[800:], groups[800:], rng=1, ledger=ledger, dataset="values",
                          **kw)  # scope "b" now holds one charge
    assert len(ledger.history("values")) == 1
    with pytest.raises(ledger_mod.BudgetExceededError):
        private_value_summary(values, groups, rng=2, ledger=ledger, dataset="values", **kw)
    assert [h.scope for h in ledger.history("values")] == ["b"]  # "a" was not charged
    # "a" alone still fits: the refusal above spent nothing
    alone = private_value_summary(values[:800], groups[:800], rng=3, ledger=ledger,
                                  dataset="values", **kw)
    assert alone.releases["a"].ledger_entry is not None


def test_value_summary_with_string_groups_and_median():
    values = np.r_[np.full(51, 0.1), np.full(51, 0.4)]
    groups = np.array(["s1"] * 51 + ["s2"] * 51)
    s = private_value_summary(values, groups, statistic="median", bounds=(0, 1),
                              proposed_bound=0.05, test_scale=1.0, delta0=1e-3,
                              sigma_pass=1e-6, fallback=None, rng=0)
    assert s.statistic == "median" and s.groups == ("s1", "s2")
    assert s.values() == pytest.approx({"s1": 0.1, "s2": 0.4}, abs=1e-4)


GOOD = {"bounds": (0, 1), "proposed_bound": 0.1, "test_scale": 1.0, "delta0": 1e-3,
        "sigma_pass": 0.1, "sigma_fail": 0.1}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"statistic": "mean"}, "statistic"),
        ({"data": [[[1.0]]]}, "data"),
        ({"data": [0.1, float("nan")]}, "data"),
        ({"data": []}, "data"),
        ({"bounds": (1, 0)}, "bounds"),
        ({"bounds": 3}, "bounds"),
        ({"proposed_bound": -1.0}, "proposed_bound"),
        ({"proposed_bound": float("inf")}, "proposed_bound"),
        ({"test_scale": 0.0}, "test_scale"),
        ({"delta0": 0.7}, "delta0"),
        ({"delta0": 0.0}, "delta0"),
        # below 1e-12 the floating-point test noise cannot resolve the tail (review finding)
        ({"delta0": 1e-15}, "delta0"),
        ({"sigma_pass": -2.0}, "sigma_pass"),
        ({"sigma_fail": None}, "sigma_fail"),
        ({"fallback": None}, "sigma_fail"),
        ({"fallback": "sum"}, "fallback"),
        ({"trim": 0.5}, "trim"),
        ({"trim": 3}, "trim"),
        ({"trim": True}, "trim"),
        ({"ledger": object()}, "ledger"),
        ({"ledger_no_dataset": True}, "dataset"),
        ({"dataset": "values"}, "dataset"),  # a dataset without a ledger would charge nothing
    ],
)
def test_bad_input_is_refused_and_nothing_is_charged(change, match, tmp_path):
    args = {**GOOD, "data": [0.1, 0.2, 0.3, 0.4, 0.5], "statistic": "trimmed_mean"}
    ledger = None
    if change.pop("ledger_no_dataset", False):
        _, ledger = _ledger(tmp_path)
        args["ledger"] = ledger
    args.update(change)
    data, statistic = args.pop("data"), args.pop("statistic")
    with pytest.raises((ValueError, TypeError), match=match):
        ptr_release(data, statistic, **args)
    if ledger is not None:
        assert ledger.history("values") == []


def test_value_summary_bad_input():
    with pytest.raises(ValueError, match="groups"):
        private_value_summary([0.1, 0.2], [1], **GOOD)
    with pytest.raises((ValueError, TypeError), match="values"):
        private_value_summary([[0.1], [0.2]], [1, 2], **GOOD)
    with pytest.raises(TypeError, match="groups"):
        private_value_summary([0.1, 0.2], [1.5, 2.5], **GOOD)
    with pytest.raises(ValueError, match="'dataset' parameter of private_value_summary"):
        private_value_summary([0.1, 0.2], [1, 2], dataset="values", **GOOD)
