"""Soundness of the PTR RDP accountant by exact enumeration, and its shape.

The oracle (DESIGN.md §5, notes/ptr.md §9): every multiset of size n over a small integer
domain, every replace-one neighbouring pair, the distance to instability Δ by breadth-first
search over brute-force local sensitivities (no closed form), exact pass probabilities of the
Laplace test, and closed-form Gaussian Rényi moments per branch. The exact worst-case Rényi
divergence of the output (branch, value) must never exceed ``ptr_rdp``. A deliberately broken
PTR (noisy local sensitivity tested instead of the distance) must exceed it.
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import dp_accounting
import numpy as np
import pytest
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import special, stats

from accountants.events import PTRDpEvent
from accountants.ptr import (
    DEFAULT_ORDERS,
    calibrate_ptr,
    laplace_rdp,
    ptr_direct_epsilon,
    ptr_epsilon,
    ptr_epsilon_delta,
    ptr_rdp,
    ptr_rdp_terms,
    ptr_threshold,
    rdp_to_epsilon,
)

ALPHAS = np.array([1.25, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0])


# --------------------------------------------------------------------------- brute force
def _trimmed_mean(x: tuple[int, ...], t: int) -> float:
    s = sorted(x)
    return float(np.mean(s[t : len(s) - t]))


def _neighbours(x: tuple[int, ...], domain: int) -> set[tuple[int, ...]]:
    """Replace-one neighbours of a multiset (as a sorted tuple) over {0..domain}."""
    out = set()
    for i in set(range(len(x))):
        rest = x[:i] + x[i + 1 :]
        for v in range(domain + 1):
            y = tuple(sorted(rest + (v,)))
            if y != x:
                out.add(y)
    return out


class _World:
    """All multisets of size n over {0..domain}, a statistic and brute-force Δ for β."""

    def __init__(self, n: int, domain: int, t: int, beta: float) -> None:
        self.sets = list(itertools.combinations_with_replacement(range(domain + 1), n))
        self.index = {x: i for i, x in enumerate(self.sets)}
        self.nbrs = [[self.index[y] for y in _neighbours(x, domain)] for x in self.sets]
        self.f2 = np.array([_trimmed_mean(x, t) for x in self.sets])
        self.f1 = np.array([float(np.mean(x)) for x in self.sets])
        self.ls = np.array([max(abs(self.f2[i] - self.f2[j]) for j in nb) for i, nb in
                            enumerate(self.nbrs)])
        self.gs1 = domain / n
        self.gs2 = float(max(self.ls))
        unstable = self.ls > beta + 1e-12
        self.delta = np.full(len(self.sets), np.inf)
        queue = deque(np.flatnonzero(unstable).tolist())
        self.delta[unstable] = 0
        while queue:  # multi-source BFS: Δ(x) = graph distance to the unstable set
            i = queue.popleft()
            for j in self.nbrs[i]:
                if self.delta[j] == np.inf:
                    self.delta[j] = self.delta[i] + 1
                    queue.append(j)
        self.pairs = np.array([(i, j) for i, nb in enumerate(self.nbrs) for j in nb])


def _pass_probability(d: np.ndarray, b: float, threshold: float) -> np.ndarray:
    """P[d + Lap(b) > B], exactly (d = inf passes surely)."""
    d = np.asarray(d, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        below = 0.5 * np.exp(-(threshold - d) / b)
        above = 1.0 - 0.5 * np.exp(-(d - threshold) / b)
    return np.where(np.isinf(d), 1.0, np.where(d <= threshold, below, above))


def _gaussian_pass_probability(d: np.ndarray, b: float, threshold: float) -> np.ndarray:
    """P[d + N(0, b²) > B] = Φ((d − B)/b), exactly (d = inf passes surely)."""
    d = np.asarray(d, dtype=float)
    with np.errstate(invalid="ignore"):
        p = special.ndtr((d - threshold) / b)
    return np.where(np.isinf(d), 1.0, p)


def _pass_for(event: PTRDpEvent):
    """The pass-probability function of the event's test and its threshold, from scipy."""
    b, d0 = event.test_scale, event.delta0
    if event.test_noise == "gaussian":
        return _gaussian_pass_probability, b * float(stats.norm.isf(d0))
    return _pass_probability, b * math.log(1 / (2 * d0))


def _exact_worst_rdp(p: np.ndarray, shift_pass: np.ndarray, sigma_pass: float,
                     shift_fail: np.ndarray | None, sigma_fail: float | None,
                     pairs: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """max over ordered pairs of D_α((bit, value)(x) ‖ (bit, value)(x′)), exactly.

    Moment = Σ_branch P^α P′^{1−α} exp(α(α−1)·shift²/(2σ²)); ⊥ has moment 1 in its branch.
    """
    i, j = pairs[:, 0], pairs[:, 1]

    def log_term(w0: np.ndarray, w1: np.ndarray, a: float) -> np.ndarray:
        # w0^α w1^{1−α}, with 0 when w0 = 0 and +inf when only w1 = 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            value = a * np.log(w0) + (1 - a) * np.log(w1)
        value = np.where(w0 == 0, -np.inf, value)
        return np.where((w0 > 0) & (w1 == 0), np.inf, value)

    out = []
    for a in alphas:
        lp = log_term(p[i], p[j], a) + a * (a - 1) * shift_pass**2 / (2 * sigma_pass**2)
        lf = log_term(1 - p[i], 1 - p[j], a)
        if sigma_fail is not None:
            lf = lf + a * (a - 1) * shift_fail**2 / (2 * sigma_fail**2)
        out.append(float(np.max(np.logaddexp(lp, lf))) / (a - 1))
    return np.array(out)


def _exact_ptr(world: _World, event: PTRDpEvent, alphas: np.ndarray,
               noise_scale: float | None = None) -> np.ndarray:
    """Exact worst case; ``noise_scale`` overrides the test noise's scale (negative control)."""
    pass_probability, threshold = _pass_for(event)
    p = pass_probability(world.delta, noise_scale or event.test_scale, threshold)
    i, j = world.pairs[:, 0], world.pairs[:, 1]
    return _exact_worst_rdp(
        p, world.f2[i] - world.f2[j], event.sigma_pass,
        None if event.sigma_fail is None else world.f1[i] - world.f1[j], event.sigma_fail,
        world.pairs, alphas,
    )


def _event(world: _World, *, b: float, delta0: float, beta: float, sigma_pass: float,
           sigma_fail: float | None, test_noise: str = "laplace") -> PTRDpEvent:
    return PTRDpEvent(b, delta0, beta, sigma_pass, world.gs2, sigma_fail,
                      world.gs1 if sigma_fail is not None else 0.0, test_noise=test_noise)


# Configurations: (n, domain, t, beta, b, delta0, sigma_pass, sigma_fail)
CONFIGS = {
    "median n=5 (notes §9 reference)": (5, 6, 2, 1.0, 1.0, 1e-3, 2.0, 2.4),
    "median n=5, bottom fallback": (5, 6, 2, 1.0, 1.0, 1e-3, 2.0, None),
    "trimmed mean n=6 t=1, easy pass": (6, 6, 1, 1.0, 0.5, 0.1, 1.0, 1.5),
    "trimmed mean n=6 t=2, small noise": (6, 5, 2, 0.5, 0.7, 0.05, 0.8, 0.7),
    "median n=4 (two-middle average)": (4, 6, 1, 1.5, 0.8, 0.02, 1.2, None),
    "beta above GS": (5, 4, 2, 5.0, 1.0, 1e-2, 2.0, 2.0),
}

_WORLDS: dict[tuple, _World] = {}


def _world(n: int, domain: int, t: int, beta: float) -> _World:
    key = (n, domain, t, beta)
    if key not in _WORLDS:
        _WORLDS[key] = _World(n, domain, t, beta)
    return _WORLDS[key]


# --------------------------------------------------------------------------- soundness
@pytest.mark.parametrize("name", list(CONFIGS))
def test_bound_dominates_exact_worst_case_over_all_neighbouring_pairs(name: str) -> None:
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS[name]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1)
    exact = _exact_ptr(world, event, ALPHAS)
    bound = ptr_rdp(event, ALPHAS)
    print(f"\n[{name}] Δ values {sorted(set(world.delta.tolist()))}, pairs {len(world.pairs)}")
    for a, e, u in zip(ALPHAS, exact, bound):
        print(f"  alpha={a:6.2f} exact={e:12.6f} bound={u:12.6f} exact/bound={e / u:.4f}")
    assert np.all(np.isfinite(bound))
    assert np.all(bound >= exact * (1 - 1e-9)), (exact, bound)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gaussian_test_bound_dominates_exact_worst_case(name: str) -> None:
    """The same exhaustive oracle for the Gaussian test (pass probability Φ((Δ − B)/b))."""
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS[name]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1,
                   test_noise="gaussian")
    exact = _exact_ptr(world, event, ALPHAS)
    bound = ptr_rdp(event, ALPHAS)
    assert np.all(np.isfinite(bound))
    assert np.all(bound >= exact * (1 - 1e-9)), (exact, bound)
    # the library's threshold gives an unstable dataset a pass probability of at most δ0
    threshold = ptr_threshold(event)
    assert threshold == pytest.approx(b * stats.norm.isf(d0), rel=1e-9)
    assert stats.norm.sf(threshold / b) <= d0


def test_gaussian_test_oracle_catches_a_test_noisier_than_declared() -> None:
    # Negative control: noise 2b with the threshold for b passes unstable data far more
    # often than δ0, which the mixture term does not cover.
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS["median n=5 (notes §9 reference)"]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1,
                   test_noise="gaussian")
    broken = _exact_ptr(world, event, ALPHAS, noise_scale=2 * b)
    assert np.any(broken > ptr_rdp(event, ALPHAS) * 1.01)


def test_gaussian_threshold_is_lower_and_direct_analysis_refuses_it() -> None:
    lap = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    gau = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0, test_noise="gaussian")
    assert ptr_threshold(lap) == pytest.approx(2.0 * math.log(1 / 2e-8))
    assert ptr_threshold(gau) < ptr_threshold(lap) / 3
    # same mixture term (δ0), composition with the Gaussian's α/(2b²) instead of ε_Lap
    tl, tg = ptr_rdp_terms(lap, ALPHAS), ptr_rdp_terms(gau, ALPHAS)
    np.testing.assert_allclose(tg.mixture, tl.mixture)
    np.testing.assert_allclose(tg.composition, ALPHAS / 8 + ALPHAS / 8, rtol=1e-9)
    for call in (lambda: ptr_epsilon_delta(gau, 1e-6), lambda: ptr_direct_epsilon(gau, 1e-5)):
        with pytest.raises(ValueError, match="Laplace test"):
            call()
    cal = calibrate_ptr(2.0, 1e-5, 10, proposed_bound=0.1, global_sensitivity_pass=1.0,
                        global_sensitivity_fail=0.2, test_noise="gaussian")
    assert cal.event.test_noise == "gaussian" and cal.epsilon <= 2.0
    assert cal.threshold == pytest.approx(ptr_threshold(cal.event))
    with pytest.raises(ValueError, match="'test_noise'"):
        calibrate_ptr(2.0, 1e-5, proposed_bound=0.1, global_sensitivity_pass=1.0,
                      test_noise="uniform")


def test_oracle_reproduces_independent_reference_values() -> None:
    # notes/ptr.md §9 (computed by the note's author with separate scratch code).
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS["median n=5 (notes §9 reference)"]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1)
    assert world.gs2 == 6 and world.gs1 == pytest.approx(6 / 5)
    exact = _exact_ptr(world, event, np.array([1.5, 2.0, 32.0]))
    np.testing.assert_allclose(exact, [0.23807, 2.23920, 143.77717], atol=1e-5)
    # the note's bound at α = 1.5 is the paper's form; ours (exact test moments) is lower
    terms = ptr_rdp_terms(event, [1.5])
    np.testing.assert_allclose(np.maximum(terms.mixture, terms.composition), [0.70038],
                               atol=1e-5)
    assert 0.23807 <= ptr_rdp(event, [1.5])[0] < 0.70038


def test_mixture_term_is_tight_in_the_reference_run() -> None:
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS["median n=5 (notes §9 reference)"]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1)
    alphas = np.array([2.0, 4.0, 8.0, 32.0])
    np.testing.assert_allclose(_exact_ptr(world, event, alphas), ptr_rdp(event, alphas),
                               rtol=1e-9)


# --------------------------------------------------------------------------- negative control
def _exact_broken_noisy_ls(world: _World, event: PTRDpEvent, alphas: np.ndarray) -> np.ndarray:
    """The anti-pattern of notes/ptr.md §8: pass iff LS(x) + Lap(b) ≤ β, then release f2."""
    b = event.test_scale
    # P[LS + Lap(b) ≤ β] = 1 − P[Lap > β − LS].
    p = 1.0 - _pass_probability(-world.ls, b, -event.proposed_bound)
    i, j = world.pairs[:, 0], world.pairs[:, 1]
    return _exact_worst_rdp(
        p, world.f2[i] - world.f2[j], event.sigma_pass,
        None if event.sigma_fail is None else world.f1[i] - world.f1[j], event.sigma_fail,
        world.pairs, alphas,
    )


@pytest.mark.parametrize("name", ["median n=5 (notes §9 reference)",
                                  "trimmed mean n=6 t=1, easy pass"])
def test_broken_ptr_testing_noisy_local_sensitivity_fails_the_oracle(name: str) -> None:
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS[name]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1)
    broken = _exact_broken_noisy_ls(world, event, ALPHAS)
    bound = ptr_rdp(event, ALPHAS)
    assert np.any(broken > bound * 1.01), (broken, bound)


def test_oracle_rejects_a_bound_that_ignores_the_mixture_term() -> None:
    # Another negative control: dropping case B (unstable datasets) is caught.
    n, domain, t, beta, b, d0, s2, s1 = CONFIGS["median n=5 (notes §9 reference)"]
    world = _world(n, domain, t, beta)
    event = _event(world, b=b, delta0=d0, beta=beta, sigma_pass=s2, sigma_fail=s1)
    composition_only = ptr_rdp_terms(event, ALPHAS).composition
    assert np.any(_exact_ptr(world, event, ALPHAS) > composition_only * 1.01)


# --------------------------------------------------------------------------- components
def test_laplace_rdp_matches_dp_accounting() -> None:
    for b in (0.3, 1.0, 2.0, 7.0):
        acc = rdp_privacy_accountant.RdpAccountant(list(ALPHAS))
        acc.compose(dp_accounting.LaplaceDpEvent(b))
        np.testing.assert_allclose(laplace_rdp(ALPHAS, b), acc._rdp, rtol=1e-9)
    assert laplace_rdp([1.0], 2.0)[0] == pytest.approx(0.5 + math.exp(-0.5) - 1)


def test_golden_numbers_from_the_research_note() -> None:
    # notes/ptr.md §3 tables (b=2, δ0=1e-8, σ1=2, GS1=1, GS2/σ2 = 1, β/σ2 = 1/2), computed
    # by the note's author from the paper's form max(mixture, composition).
    e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    alphas = np.array([2.0, 4.0, 8.0, 16.0, 32.0])
    terms = ptr_rdp_terms(e, alphas)
    paper = np.maximum(terms.mixture, terms.composition)
    np.testing.assert_allclose(paper, [0.450304, 0.820927, 1.410268, 6.771955, 15.405784],
                               atol=2e-6)
    np.testing.assert_allclose(terms.composition - laplace_rdp(alphas, 2.0), alphas / 8,
                               rtol=1e-9)
    # the exact-test form is never above the paper's and never below the mixture term
    curve = ptr_rdp(e, alphas)
    assert np.all(curve <= paper) and np.all(curve >= terms.mixture)
    orders = np.linspace(1.05, 256, 5000)
    terms = ptr_rdp_terms(e, orders)
    paper = np.maximum(terms.mixture, terms.composition)
    got = [rdp_to_epsilon(t * paper, orders, 1e-5) for t in (1, 10, 100)]
    assert [round(got[0], 2), round(got[1], 2), round(got[2], 1)] == [2.62, 11.12, 53.5]
    ours = [ptr_epsilon(e, 1e-5, n_compositions=t, orders=orders) for t in (1, 10, 100)]
    assert all(o <= g for o, g in zip(ours, got))
    direct = [ptr_direct_epsilon(e, 1e-5, t) for t in (1, 10, 100)]
    assert direct[0] == pytest.approx(2.49, abs=0.01)
    assert direct[1] <= 27.56 and direct[2] <= 300.1


def test_improved_conversion_against_dp_accounting() -> None:
    # Gaussian mechanism with noise multiplier 3: RDP α/18 on the default grid.
    acc = rdp_privacy_accountant.RdpAccountant(list(DEFAULT_ORDERS))
    acc.compose(dp_accounting.GaussianDpEvent(3.0))
    ours = rdp_to_epsilon(DEFAULT_ORDERS / 18.0, DEFAULT_ORDERS, 1e-6)
    assert ours == pytest.approx(acc.get_epsilon(1e-6), rel=1e-6)


def test_rdp_accountant_dispatches_to_ptr_rdp_when_available() -> None:
    rdp = pytest.importorskip("accountants.rdp")
    e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    acc = rdp.RdpAccountant()
    acc.compose(e, count=10)
    assert acc.get_epsilon(1e-5) == pytest.approx(ptr_epsilon(e, 1e-5, n_compositions=10),
                                                  rel=1e-3)
    sub = rdp.RdpAccountant()
    sub.compose(dp_accounting.PoissonSampledDpEvent(0.1, e))
    assert sub.get_epsilon(1e-5) == pytest.approx(ptr_epsilon(e, 1e-5, sampling_rate=0.1),
                                                  rel=1e-3)


def test_ptr_composes_with_other_events_in_one_rdp_accountant() -> None:
    rdp = pytest.importorskip("accountants.rdp")
    e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    acc = rdp.RdpAccountant(orders=DEFAULT_ORDERS)
    acc.compose(dp_accounting.ComposedDpEvent(
        [dp_accounting.SelfComposedDpEvent(e, 5), dp_accounting.GaussianDpEvent(3.0)]))
    expected = rdp_to_epsilon(5 * ptr_rdp(e, DEFAULT_ORDERS) + DEFAULT_ORDERS / 18,
                              DEFAULT_ORDERS, 1e-5)
    assert acc.get_epsilon(1e-5) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- reductions
def test_reductions() -> None:
    a = ALPHAS
    base = {"test_scale": 1.0, "delta0": 1e-4, "proposed_bound": 0.5, "sigma_pass": 1.0,
            "global_sensitivity_pass": 3.0, "sigma_fail": 2.0, "global_sensitivity_fail": 1.0}
    # β ≥ GS2: the Gaussian mechanism (sensitivity GS2) plus the test term.
    e = PTRDpEvent(**{**base, "proposed_bound": 5.0, "sigma_fail": None,
                      "global_sensitivity_fail": 0.0})
    np.testing.assert_allclose(ptr_rdp_terms(e, a).composition,
                               a * 9 / 2 + laplace_rdp(a, 1.0), rtol=1e-9)
    # b → ∞: the test term vanishes.
    e = PTRDpEvent(**{**base, "test_scale": 1e9})
    np.testing.assert_allclose(ptr_rdp_terms(e, a).composition,
                               a * max(0.25 / 2, 1 / 8), rtol=1e-6)
    # δ0 → 0: the mixture term tends to the fallback's Gaussian RDP (pointwise in α).
    previous = np.full(len(a), np.inf)
    for d0 in (1e-4, 1e-10, 1e-40, 1e-300):
        mixture = ptr_rdp_terms(PTRDpEvent(**{**base, "delta0": d0}), a).mixture
        assert np.all(mixture <= previous) and np.all(mixture >= a / 8)
        previous = mixture
    np.testing.assert_allclose(previous[a <= 12], a[a <= 12] / 8, rtol=1e-9)
    # ⊥ fallback: ε_fail = 0.
    e = PTRDpEvent(**{**base, "sigma_fail": None})
    small = a <= 12  # the closed form below overflows beyond
    a_small = a[small]
    expected = np.log1p(1e-4 * np.expm1((a_small - 1) * a_small * 9 / 2)) / (a_small - 1)
    np.testing.assert_allclose(ptr_rdp_terms(e, a).mixture[small], expected, rtol=1e-9)
    np.testing.assert_allclose(ptr_rdp_terms(e, a).composition,
                               a * 0.125 + laplace_rdp(a, 1.0), rtol=1e-9)
    # α = ∞ (accepted by RdpAccountant): Gaussian release ⇒ infinite; Laplace alone ⇒ 1/b.
    assert np.isinf(ptr_rdp(PTRDpEvent(**base), [np.inf], 0.1)[0])
    assert laplace_rdp([np.inf], 4.0)[0] == pytest.approx(0.25)
    # infinite GS2: no finite RDP.
    e = PTRDpEvent(**{**base, "global_sensitivity_pass": math.inf})
    assert np.all(np.isinf(ptr_rdp(e, a)))


def test_shape_and_monotonicity() -> None:
    base = {"test_scale": 1.0, "delta0": 1e-4, "proposed_bound": 0.5, "sigma_pass": 1.0,
            "global_sensitivity_pass": 3.0, "sigma_fail": 2.0, "global_sensitivity_fail": 1.0}
    grid = np.linspace(1.01, 40, 400)
    eps = ptr_rdp(PTRDpEvent(**base), grid)
    assert np.all(np.diff(eps) >= -1e-12)
    log_moment = (grid - 1) * eps
    assert np.all(np.diff(log_moment, 2) >= -1e-9)  # (α−1)ε(α) convex
    ref = ptr_rdp(PTRDpEvent(**base), ALPHAS)
    for key in ("test_scale", "sigma_pass", "sigma_fail"):
        bigger = ptr_rdp(PTRDpEvent(**{**base, key: base[key] * 1.5}), ALPHAS)
        assert np.all(bigger <= ref + 1e-12), key
    t1 = ptr_rdp_terms(PTRDpEvent(**base), ALPHAS)
    t2 = ptr_rdp_terms(PTRDpEvent(**{**base, "delta0": 1e-2}), ALPHAS)
    assert np.all(t2.mixture >= t1.mixture) and np.array_equal(t2.composition, t1.composition)


# --------------------------------------------------------------------------- subsampling
def _log_gauss(y: np.ndarray, mean: float, sigma: float) -> np.ndarray:
    return -0.5 * ((y - mean) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi))


def _numeric_subsampled(event: PTRDpEvent, q: float, alphas: np.ndarray, max_d: int = 20,
                        half_width: float = 60.0, points: int = 24001) -> np.ndarray:
    """Worst case over per-sample pairs of both Rényi directions, by numerical integration.

    Pairs: case B (both at Δ = 0, pass shift GS2) and case A (Δ = d, Δ′ = d ± 1, pass shift
    min(β, GS2)); fallback shift GS1. Output (bit, y); μ0 = M(T), μ1 = M(T ∪ {z}),
    mix = (1−q)μ0 + qμ1; integrate ∫mix^α μ0^{1−α} and ∫μ0^α mix^{1−α} per branch.
    """
    b = event.test_scale
    pass_probability, threshold = _pass_for(event)
    y = np.linspace(-half_width, half_width, points)
    dy = y[1] - y[0]
    cases = [(0, 0, event.global_sensitivity_pass)]
    shift_safe = min(event.proposed_bound, event.global_sensitivity_pass)
    for d in range(max_d + 1):
        cases += [(d, d + 1, shift_safe), (d + 1, d, shift_safe)]
    worst = np.full(len(alphas), -np.inf)
    for d_0, d_1, shift in cases:
        p0, p1 = pass_probability(np.array([d_0, d_1]), b, threshold)
        # 1 − p without cancellation: P[noise ≤ B − d] = P[−noise > d − B] by symmetry
        f0, f1 = pass_probability(-np.array([d_0, d_1], dtype=float), b, -threshold)
        branches = [(p0, p1, shift, event.sigma_pass)]
        if event.sigma_fail is None:
            branches.append((f0, f1, None, None))
        else:
            branches.append((f0, f1, event.global_sensitivity_fail, event.sigma_fail))
        for k, a in enumerate(alphas):
            forward, backward = [], []
            for w0, w1, s, sig in branches:
                if s is None:  # ⊥: point masses
                    mix = (1 - q) * w0 + q * w1
                    forward.append(a * math.log(mix) + (1 - a) * math.log(w0))
                    backward.append(a * math.log(w0) + (1 - a) * math.log(mix))
                    continue
                l0 = math.log(w0) + _log_gauss(y, 0.0, sig)
                l1 = math.log(w1) + _log_gauss(y, s, sig)
                lm = np.logaddexp(math.log1p(-q) + l0, math.log(q) + l1)
                forward.append(special.logsumexp(a * lm + (1 - a) * l0) + math.log(dy))
                backward.append(special.logsumexp(a * l0 + (1 - a) * lm) + math.log(dy))
            value = max(special.logsumexp(forward), special.logsumexp(backward)) / (a - 1)
            worst[k] = max(worst[k], value)
    return worst


SUB_EVENTS = {
    "gaussian fallback": PTRDpEvent(1.0, 1e-4, 1.0, 1.5, 3.0, 1.5, 1.0),
    "bottom fallback": PTRDpEvent(2.0, 1e-3, 0.5, 1.0, 2.0, None, 0.0),
    "gaussian test": PTRDpEvent(1.0, 1e-4, 1.0, 1.5, 3.0, 1.5, 1.0, test_noise="gaussian"),
    "gaussian test, bottom": PTRDpEvent(2.0, 1e-3, 0.5, 1.0, 2.0, None, 0.0,
                                        test_noise="gaussian"),
}


@pytest.mark.parametrize("name", list(SUB_EVENTS))
@pytest.mark.parametrize("q", [0.01, 0.1, 0.5])
def test_subsampled_bound_dominates_numerical_integration(name: str, q: float) -> None:
    event = SUB_EVENTS[name]
    alphas = np.array([1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0, 16.0])
    numeric = _numeric_subsampled(event, q, alphas)
    bound = ptr_rdp(event, alphas, sampling_rate=q)
    print(f"\n[{name}, q={q}]")
    for a, e, u in zip(alphas, numeric, bound):
        print(f"  alpha={a:5.2f} numeric={e:.6g} bound={u:.6g} ratio={e / u:.3f}")
    assert np.all(bound >= numeric * (1 - 1e-6)), (numeric, bound)  # quadrature error ≪ 1e-6


# The PTR-SGD regime: small shifts relative to the noise (s = 5), a moderate sampling rate.
# Here the white-box add-direction moments (Minkowski on each branch, closed-form Gaussian
# likelihood-ratio moments) bind; the generic 1 + e^{c_j} bound gave no amplification at all.
PRIVATE_EVENT = PTRDpEvent(test_scale=20.0, delta0=1e-3, proposed_bound=1.1, sigma_pass=5.5,
                           global_sensitivity_pass=1.72, sigma_fail=5.0,
                           global_sensitivity_fail=1.0)


@pytest.mark.parametrize("q", [0.05, 0.2])
def test_white_box_subsampled_bound_dominates_numerical_integration(q: float) -> None:
    from accountants import ptr as ptr_module

    event = PRIVATE_EVENT
    alphas = np.array([2.0, 3.0, 4.0, 8.0, 12.0])
    threshold = event.test_scale * math.log(1 / (2 * event.delta0))
    numeric = _numeric_subsampled(event, q, alphas, max_d=int(threshold + 20 * event.test_scale),
                                  half_width=12 * event.sigma_pass + 2, points=6001)
    bound = ptr_rdp(event, alphas, sampling_rate=q)

    # the generic (black-box) bound of the same module, without the white-box moments
    def case_a(a):
        return np.minimum(ptr_module._terms(event, a)[1], ptr_module._exact_test_case_a(event, a))

    def case_b(a):
        return ptr_module._terms(event, a)[0]

    generic = np.maximum(ptr_module._subsampled_curve(case_a, q, alphas),
                         ptr_module._subsampled_curve(case_b, q, alphas))
    print(f"\n[white box, q={q}]")
    for a, e, u, g in zip(alphas, numeric, bound, generic):
        print(f"  alpha={a:5.2f} numeric={e:.6g} bound={u:.6g} generic={g:.6g}")
    assert np.all(bound >= numeric * (1 - 1e-6)), (numeric, bound)
    assert np.all(bound <= generic * (1 + 1e-9))
    assert np.any(bound < 0.5 * generic)  # the white-box moments matter here


def test_subsampled_bound_shape() -> None:
    event = SUB_EVENTS["gaussian fallback"]
    alphas = np.array([1.1, 1.5, 2.0, 3.0, 5.5, 8.0, 32.0, 256.0])
    np.testing.assert_array_equal(ptr_rdp(event, alphas, 1.0), ptr_rdp(event, alphas))
    previous = np.zeros(len(alphas))
    for q in (1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.9, 0.999, 1.0):
        cur = ptr_rdp(event, alphas, q)
        assert np.all(cur >= previous - 1e-15), q
        previous = cur
    # q → 0 gives ε → 0 pointwise in α (at huge α the q^α·e^{c_α} term needs smaller q).
    low = alphas <= 8
    assert np.all(ptr_rdp(event, alphas[low], 1e-6) < 1e-3 * ptr_rdp(event, alphas[low]))
    grid = np.linspace(1.05, 20, 200)
    assert np.all(np.diff(ptr_rdp(event, grid, 0.1)) >= -1e-12)


# --------------------------------------------------------------------------- direct, calibration
def test_direct_analysis_is_consistent_with_the_exact_gaussian_curve() -> None:
    e = PTRDpEvent(1.0, 1e-8, 1.0, 2.0, 4.0, 3.0, 1.0)
    eps, delta = ptr_epsilon_delta(e, 1e-6)
    assert delta == pytest.approx(1e-6 + 1e-8)
    # σ/sensitivity = 2 (pass); the Gaussian part at δ′ = 1e-6 via dp-accounting's PLD.
    pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    pld.compose(dp_accounting.GaussianDpEvent(2.0))
    assert eps - 1.0 == pytest.approx(pld.get_epsilon(1e-6), abs=2e-3)
    assert ptr_direct_epsilon(e, 1e-5, 1000) > ptr_direct_epsilon(e, 1e-5, 10)
    assert math.isinf(ptr_direct_epsilon(e, 1e-5, 10**4))


def test_calibration_meets_target_and_is_tight() -> None:
    for bottom in (False, True):
        c = calibrate_ptr(1.0, 1e-6, 100, proposed_bound=0.05, global_sensitivity_pass=1.0,
                          global_sensitivity_fail=None if bottom else 0.1)
        assert c.epsilon <= 1.0
        assert ptr_epsilon(c.event, 1e-6, n_compositions=100) <= 1.0
        assert c.threshold == pytest.approx(c.test_scale * math.log(1 / (2 * c.delta0)))
        assert c.sigma_pass == pytest.approx(c.noise_multiplier * 0.05)
        assert (c.sigma_fail is None) == bottom
        smaller = calibrate_ptr(1.0, 1e-6, 100, proposed_bound=0.05,
                                global_sensitivity_pass=1.0,
                                global_sensitivity_fail=None if bottom else 0.1,
                                test_scale=c.test_scale * 0.999)
        assert smaller.noise_multiplier >= c.noise_multiplier * 0.99
    fixed = calibrate_ptr(2.0, 1e-5, 10, proposed_bound=0.1, global_sensitivity_pass=1.0,
                          test_scale=20.0)
    assert fixed.test_scale == 20.0 and fixed.epsilon <= 2.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ptr_rdp(PTRDpEvent(1.0, 0.7, 1.0, 1.0, 1.0, None, 0.0), [2.0]), "delta0"),
        (lambda: ptr_rdp("event", [2.0]), "event"),
        (lambda: ptr_rdp(SUB_EVENTS["bottom fallback"], [0.5]), "orders"),
        (lambda: ptr_rdp(SUB_EVENTS["bottom fallback"], [2.0], 0.0), "sampling_rate"),
        (lambda: ptr_rdp(SUB_EVENTS["bottom fallback"], [2.0], 1.5), "sampling_rate"),
        (lambda: rdp_to_epsilon([1.0], [2.0], 0.0), "delta"),
        (lambda: calibrate_ptr(-1.0, 1e-5, proposed_bound=1.0, global_sensitivity_pass=2.0),
         "epsilon"),
        (lambda: calibrate_ptr(1.0, 1e-5, 0, proposed_bound=1.0, global_sensitivity_pass=2.0),
         "n_compositions"),
        (lambda: calibrate_ptr(1.0, 1e-5, proposed_bound=3.0, global_sensitivity_pass=2.0),
         "global_sensitivity_pass"),
        (lambda: calibrate_ptr(0.01, 1e-5, proposed_bound=1.0, global_sensitivity_pass=2.0,
                               test_scale=1.0), "epsilon"),
    ],
)
def test_bad_input_is_refused(call, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()
