"""Tests of the Monte Carlo accountant against independent oracles.

Oracles: the exact Gaussian curve δ(ε) = Φ(-ε/μ + μ/2) - e^ε Φ(-ε/μ - μ/2) (Balle & Wang
2018, Thm 8); the hockey-stick divergence ∫(P - e^ε Q)_+ computed by quadrature/summation
from the densities of the dominating pair (single step, both directions); dp-accounting's PLD
accountant (used directly, not through accountants.pld). Statistical checks use fixed seeds;
a 4-SE (3-SE against PLD) gate has a two-sided false-alarm rate of 6e-5 (2.7e-3) per check
under the normal approximation.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from dp_accounting import dp_event as dpe
from dp_accounting.pld import PLDAccountant, privacy_loss_distribution
from scipy import integrate, optimize, stats

from accountants.accountant import UnsupportedEventError, make_accountant
from accountants.events import (
    ComposedDpEvent,
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    GaussianDpEvent,
    LaplaceDpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SampledWithoutReplacementDpEvent,
    SelfComposedDpEvent,
)
from accountants.monte_carlo import (
    MonteCarloAccountant,
    MonteCarloEstimate,
    _discrete_gaussian,
    _discrete_laplace,
    _NumpyBackend,
    choose_importance_factor,
    delta_from_losses,
)


def gaussian_delta(eps: float, mu: float) -> float:
    return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)


def gaussian_epsilon(delta: float, mu: float) -> float:
    return optimize.brentq(lambda e: gaussian_delta(e, mu) - delta, 0.0, 100.0, xtol=1e-12)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("eps", [0.5, 1.0, 2.0])
def test_self_composed_gaussian_delta_matches_closed_form(eps: float) -> None:
    acc = MonteCarloAccountant(n_samples=100_000, rng=11)
    acc.compose(GaussianDpEvent(2.0), count=4)  # μ = √4 / 2 = 1
    est = acc.estimate_delta(eps)
    exact = gaussian_delta(eps, 1.0)
    assert abs(est.value - exact) <= 4 * est.standard_error
    assert est.standard_error < 0.05 * exact


def test_heterogeneous_gaussian_epsilon_matches_closed_form() -> None:
    acc = MonteCarloAccountant(n_samples=100_000, rng=12)
    acc.compose(ComposedDpEvent([GaussianDpEvent(1.0), SelfComposedDpEvent(GaussianDpEvent(2.0), 3)]))
    mu = math.sqrt(1.0 + 3 / 4.0)
    est = acc.estimate_epsilon(1e-3)
    exact = gaussian_epsilon(1e-3, mu)
    assert abs(est.value - exact) <= 4 * est.standard_error
    assert est.standard_error < 0.05
    # get_epsilon / get_delta are the (rounded) point estimates.
    assert acc.get_epsilon(1e-3) == pytest.approx(est.value, rel=1e-9)
    assert acc.get_delta(2.0) == pytest.approx(acc.estimate_delta(2.0).value, rel=1e-9)


# --------------------------------------------------------------------------- one-step oracle
def _hockey_stick_continuous(pdf0, pdf1, q: float, eps: float, lo: float, hi: float) -> dict:
    """∫(P - e^ε Q)_+ with P = (1-q)μ0 + qμ1, Q = μ0 (remove) and with P, Q swapped (add)."""
    mix = lambda x: (1 - q) * pdf0(x) + q * pdf1(x)
    remove = integrate.quad(lambda x: max(mix(x) - math.exp(eps) * pdf0(x), 0.0), lo, hi,
                            limit=1000, points=[0.0, 1.0])[0]
    add = integrate.quad(lambda x: max(pdf0(x) - math.exp(eps) * mix(x), 0.0), lo, hi,
                         limit=1000, points=[0.0, 1.0])[0]
    return {"remove": remove, "add": add}


def _hockey_stick_discrete(pmf0: np.ndarray, pmf1: np.ndarray, q: float, eps: float) -> dict:
    mix = (1 - q) * pmf0 + q * pmf1
    remove = np.clip(mix - math.exp(eps) * pmf0, 0, None).sum()
    add = np.clip(pmf0 - math.exp(eps) * mix, 0, None).sum()
    return {"remove": float(remove), "add": float(add)}


def _discrete_gaussian_pmf(sigma: float, shift: int, support: np.ndarray) -> np.ndarray:
    w = np.exp(-((support - shift) ** 2) / (2 * sigma**2))
    return w / np.exp(-(support**2) / (2 * sigma**2)).sum()


def _discrete_laplace_pmf(t: float, shift: int, support: np.ndarray) -> np.ndarray:
    w = np.exp(-np.abs(support - shift) / t)
    return w / np.exp(-np.abs(support) / t).sum()


ONE_STEP_CASES = [
    ("gaussian", 1.0, 1, 0.3, 0.5),
    ("gaussian", 1.0, 1, 1.0, 1.0),
    ("laplace", 1.0, 1, 0.3, 0.2),
    ("laplace", 2.0, 1, 1.0, 0.25),
    ("discrete_gaussian", 1.5, 2, 0.3, 0.5),
    ("discrete_gaussian", 1.5, 2, 1.0, 1.0),
    ("discrete_laplace", 2.0, 2, 0.3, 0.2),
    ("discrete_laplace", 2.0, 2, 1.0, 0.5),
]


def _one_step_event(kind: str, scale: float, sens: int, q: float) -> dpe.DpEvent:
    base = {
        "gaussian": lambda: GaussianDpEvent(scale),
        "laplace": lambda: LaplaceDpEvent(scale),
        "discrete_gaussian": lambda: DiscreteGaussianDpEvent(scale, sens),
        "discrete_laplace": lambda: DiscreteLaplaceDpEvent(scale, sens),
    }[kind]()
    return base if q == 1.0 else PoissonSampledDpEvent(q, base)


def _one_step_oracle(kind: str, scale: float, sens: int, q: float, eps: float) -> float:
    return max(_one_step_oracle_directions(kind, scale, sens, q, eps).values())


def _one_step_oracle_directions(kind: str, scale: float, sens: int, q: float, eps: float) -> dict:
    if kind == "gaussian":
        return _hockey_stick_continuous(stats.norm(0, scale).pdf, stats.norm(1, scale).pdf,
                                        q, eps, -40 * scale, 40 * scale + 1)
    if kind == "laplace":
        return _hockey_stick_continuous(stats.laplace(0, scale).pdf, stats.laplace(1, scale).pdf,
                                        q, eps, -60 * scale, 60 * scale + 1)
    support = np.arange(-400, 401)
    pmf = _discrete_gaussian_pmf if kind == "discrete_gaussian" else _discrete_laplace_pmf
    return _hockey_stick_discrete(pmf(scale, 0, support), pmf(scale, sens, support), q, eps)


@pytest.mark.parametrize("kind,scale,sens,q,eps", ONE_STEP_CASES)
def test_one_step_delta_matches_hockey_stick_oracle(kind, scale, sens, q, eps) -> None:
    acc = MonteCarloAccountant(n_samples=100_000, rng=zlib.crc32(f"{kind}{q}".encode()))
    acc.compose(_one_step_event(kind, scale, sens, q))
    est = acc.estimate_delta(eps)
    exact = _one_step_oracle(kind, scale, sens, q, eps)
    assert exact > 1e-3  # the check is informative
    assert abs(est.value - exact) <= 4 * est.standard_error + 1e-12
    # Each direction separately (the reported maximum could hide an error in the other one).
    for direction, truth in _one_step_oracle_directions(kind, scale, sens, q, eps).items():
        value, se = delta_from_losses(*acc.loss_samples(direction)[:1], eps)
        assert abs(value - truth) <= 4 * se + 1e-12, direction


@pytest.mark.parametrize("kind,scale,sens,q,eps", [c for c in ONE_STEP_CASES if c[3] < 1.0])
def test_one_step_importance_sampling_per_direction(kind, scale, sens, q, eps) -> None:
    acc = MonteCarloAccountant(n_samples=100_000, rng=zlib.crc32(f"IS{kind}".encode()),
                               importance_factor=2.5)
    acc.compose(_one_step_event(kind, scale, sens, q))
    for direction, truth in _one_step_oracle_directions(kind, scale, sens, q, eps).items():
        losses, logw = acc.loss_samples(direction)
        assert logw is not None
        value, se = delta_from_losses(losses, eps, logw)
        assert abs(value - truth) <= 4 * se + 1e-12, direction
        # The weights average to 1 (they are a likelihood ratio).
        w = np.exp(logw)
        assert abs(w.mean() - 1.0) <= 4 * w.std() / math.sqrt(w.size)


def test_dp_accounting_discrete_laplace_event_uses_inverse_parameter() -> None:
    acc = MonteCarloAccountant(n_samples=50_000, rng=3)
    acc.compose(dpe.DiscreteLaplaceDpEvent(noise_parameter=0.5, sensitivity=1))
    support = np.arange(-300, 301)
    exact = _hockey_stick_discrete(_discrete_laplace_pmf(2.0, 0, support),
                                   _discrete_laplace_pmf(2.0, 1, support), 1.0, 0.2)["remove"]
    est = acc.estimate_delta(0.2)
    assert abs(est.value - exact) <= 4 * est.standard_error


# --------------------------------------------------------------------------- vs PLD
def test_subsampled_gaussian_epsilon_matches_pld() -> None:
    q, sigma, steps, delta = 0.05, 1.0, 100, 1e-4
    event = PoissonSampledDpEvent(q, GaussianDpEvent(sigma))
    pld = PLDAccountant(value_discretization_interval=1e-4).compose(event, steps).get_epsilon(delta)
    est = MonteCarloAccountant(n_samples=100_000, rng=21).compose(event, steps).estimate_epsilon(delta)
    assert abs(est.value - pld) <= 3 * est.standard_error
    assert est.standard_error < 0.05 * pld


def test_subsampled_discrete_gaussian_epsilon_matches_pld() -> None:
    q, sigma, sens, steps, delta = 0.05, 2.0, 2, 60, 1e-4
    pld = privacy_loss_distribution.from_discrete_gaussian_mechanism(
        sigma, sensitivity=sens, sampling_prob=q, value_discretization_interval=1e-4
    ).self_compose(steps).get_epsilon_for_delta(delta)
    event = PoissonSampledDpEvent(q, DiscreteGaussianDpEvent(sigma, sens))
    est = MonteCarloAccountant(n_samples=100_000, rng=22).compose(event, steps).estimate_epsilon(delta)
    assert abs(est.value - pld) <= 3 * est.standard_error
    assert est.standard_error < 0.05 * pld


def test_importance_sampling_agrees_with_plain_and_is_sharper() -> None:
    q, sigma, steps, delta = 0.04, 1.5, 150, 1e-5
    event = PoissonSampledDpEvent(q, GaussianDpEvent(sigma))
    plain = MonteCarloAccountant(50_000, rng=31).compose(event, steps).estimate_epsilon(delta)
    weighted = MonteCarloAccountant(50_000, rng=32, importance_factor=4.0).compose(
        event, steps).estimate_epsilon(delta)
    combined = math.hypot(plain.standard_error, weighted.standard_error)
    assert abs(plain.value - weighted.value) <= 3 * combined
    assert weighted.standard_error < plain.standard_error / 2
    pld = PLDAccountant().compose(event, steps).get_epsilon(delta)
    assert abs(weighted.value - pld) <= 3 * weighted.standard_error


def test_choose_importance_factor_prefers_sampling_that_reaches_the_tail() -> None:
    small_eps = SelfComposedDpEvent(PoissonSampledDpEvent(0.01, GaussianDpEvent(3.8)), 200)
    factor = choose_importance_factor(small_eps, 1e-5, rng=0)
    assert factor > 1.0
    # The chosen factor's estimate is sharper than plain Monte Carlo's at the same m.
    plain = MonteCarloAccountant(5_000, rng=1).compose(small_eps).estimate_epsilon(1e-5)
    tuned = MonteCarloAccountant(5_000, rng=1, importance_factor=factor).compose(
        small_eps).estimate_epsilon(1e-5)
    assert tuned.effective_sample_size > 10 * plain.effective_sample_size
    pld = PLDAccountant().compose(small_eps).get_epsilon(1e-5)
    assert abs(tuned.value - pld) <= 3 * tuned.standard_error
    # Without subsampling there is nothing to tilt: every factor is plain Monte Carlo.
    assert choose_importance_factor(GaussianDpEvent(1.0), 1e-3, candidates=(1.0,), rng=0) == 1.0
    with pytest.raises(ValueError, match="candidates"):
        choose_importance_factor(GaussianDpEvent(1.0), 1e-3, candidates=())


def test_incremental_composition_matches_one_shot() -> None:
    event = PoissonSampledDpEvent(0.1, GaussianDpEvent(1.0))
    stepwise = MonteCarloAccountant(50_000, rng=41)
    for _ in range(30):
        stepwise.compose(event)
    stepwise.compose(event, count=20)
    once = MonteCarloAccountant(50_000, rng=42).compose(event, 50)
    a, b = stepwise.estimate_epsilon(1e-3), once.estimate_epsilon(1e-3)
    assert abs(a.value - b.value) <= 4 * math.hypot(a.standard_error, b.standard_error)
    assert len(stepwise.history) == 31


def test_torch_backend_same_distribution() -> None:
    pytest.importorskip("torch")
    acc = MonteCarloAccountant(50_000, rng=51, backend="torch", device="cpu")
    acc.compose(GaussianDpEvent(2.0), count=4)
    est = acc.estimate_delta(1.0)
    assert abs(est.value - gaussian_delta(1.0, 1.0)) <= 4 * est.standard_error
    for kind, scale, sens, q, eps in (ONE_STEP_CASES[4], ONE_STEP_CASES[6], ONE_STEP_CASES[2]):
        acc = MonteCarloAccountant(50_000, rng=52, backend="torch")
        est = acc.compose(_one_step_event(kind, scale, sens, q)).estimate_delta(eps)
        assert abs(est.value - _one_step_oracle(kind, scale, sens, q, eps)) <= 4 * est.standard_error
        value, se = delta_from_losses(acc.loss_samples("add")[0], eps)
        assert abs(value - _one_step_oracle_directions(kind, scale, sens, q, eps)["add"]) <= 4 * se + 1e-12


# --------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("sigma", [0.7, 3.5])
def test_discrete_gaussian_sampler_chi_square(sigma: float) -> None:
    x = _discrete_gaussian(_NumpyBackend(61), sigma, (200_000,))
    _chi_square(x, _discrete_gaussian_pmf, sigma)


@pytest.mark.parametrize("t", [0.5, 3.0])
def test_discrete_laplace_sampler_chi_square(t: float) -> None:
    x = _discrete_laplace(_NumpyBackend(62), t, (200_000,))
    _chi_square(x, _discrete_laplace_pmf, t)


def _chi_square(x: np.ndarray, pmf, scale: float) -> None:
    assert np.all(x == np.round(x))
    support = np.arange(-2000, 2001)
    probs = pmf(scale, 0, support)
    expected = probs * x.size
    keep = expected >= 5  # lump the tails into one cell
    observed = np.array([np.sum(x == k) for k in support[keep]] + [np.sum(~np.isin(x, support[keep]))])
    exp_cells = np.append(expected[keep], x.size - expected[keep].sum())
    assert stats.chisquare(observed, exp_cells).pvalue > 1e-6


# --------------------------------------------------------------------------- edge cases
def test_empty_noop_and_non_private() -> None:
    acc = MonteCarloAccountant(1000, rng=0)
    assert acc.get_epsilon(1e-5) == 0.0 and acc.get_delta(0.0) == 0.0
    acc.compose(NoOpDpEvent(), 5)
    assert acc.get_epsilon(1e-5) == 0.0 and acc.estimate_epsilon(1e-5).value == 0.0
    acc.compose(NonPrivateDpEvent())
    assert acc.get_epsilon(1e-5) == math.inf and acc.get_delta(3.0) == 1.0
    zero_noise = MonteCarloAccountant(1000, rng=0).compose(GaussianDpEvent(0.0))
    assert zero_noise.get_epsilon(0.1) == math.inf and zero_noise.estimate_delta(1.0).value == 1.0


def test_never_negative_and_no_overflow() -> None:
    acc = MonteCarloAccountant(10_000, rng=1).compose(
        PoissonSampledDpEvent(0.5, GaussianDpEvent(0.01)), 3)  # losses in the thousands
    for eps in (0.0, 1.0, 50.0, 1e4, math.inf):
        est = acc.estimate_delta(eps)
        assert 0.0 <= est.value <= 1.0 and np.isfinite(est.standard_error)
    for delta in (1e-12, 1e-3, 0.5, 0.999999):
        est = acc.estimate_epsilon(delta)
        assert est.value >= 0.0 and np.isfinite(est.value)
    weak = MonteCarloAccountant(10_000, rng=2).compose(GaussianDpEvent(100.0))
    assert weak.get_epsilon(0.5) == 0.0 and weak.get_delta(1.0) == 0.0
    assert weak.get_epsilon(0.0) == math.inf


def test_epsilon_and_delta_estimates_are_mutually_consistent() -> None:
    acc = MonteCarloAccountant(20_000, rng=3).compose(DiscreteLaplaceDpEvent(1.0, 1), 5)
    for delta in (1e-3, 0.05, 0.3):
        eps = acc.estimate_epsilon(delta).value
        # δ̂ is right-continuous and non-increasing: δ̂(ε̂) ≤ δ ≤ δ̂(ε̂ - tiny).
        assert acc.estimate_delta(eps).value <= delta + 1e-12
        assert acc.estimate_delta(max(eps - 1e-6, 0.0)).value >= delta - 1e-12 or eps == 0.0


def test_registered_and_result_type() -> None:
    acc = make_accountant("mc", n_samples=1000, rng=0)
    assert isinstance(acc, MonteCarloAccountant) and acc.name == "mc"
    acc.compose(GaussianDpEvent(1.0))
    est = acc.estimate_epsilon(1e-2)
    assert isinstance(est, MonteCarloEstimate) and est.n_samples == 1000
    with pytest.raises(AttributeError):
        est.value = 0.0  # frozen


def test_poisson_over_composed_gaussians_is_one_gaussian() -> None:
    # Σ σ_i⁻² = 1/4 + 3/4·... : a batch with Gaussians σ=2 and σ=2/√3 is one Gaussian σ=1.
    event = PoissonSampledDpEvent(
        0.2, ComposedDpEvent([GaussianDpEvent(2.0), GaussianDpEvent(2.0 / math.sqrt(3.0))]))
    est = MonteCarloAccountant(100_000, rng=4).compose(event, 20).estimate_epsilon(1e-3)
    pld = PLDAccountant().compose(PoissonSampledDpEvent(0.2, GaussianDpEvent(1.0)), 20).get_epsilon(1e-3)
    assert abs(est.value - pld) <= 4 * est.standard_error


@pytest.mark.parametrize(
    "event",
    [
        SampledWithoutReplacementDpEvent(100, 10, GaussianDpEvent(1.0)),
        PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 10.0, None, 0.0),
        dpe.RandomizedResponseDpEvent(0.5, 2),
        PoissonSampledDpEvent(0.1, ComposedDpEvent([LaplaceDpEvent(1.0), LaplaceDpEvent(2.0)])),
        PoissonSampledDpEvent(0.1, PoissonSampledDpEvent(0.5, GaussianDpEvent(1.0))),
        PoissonSampledDpEvent(0.1, NonPrivateDpEvent()),
        dpe.UnsupportedDpEvent(),
    ],
)
def test_unsupported_events_raise_and_leave_state(event) -> None:
    acc = MonteCarloAccountant(1000, rng=0).compose(GaussianDpEvent(1.0))
    before = acc.get_epsilon(1e-2)
    assert not acc.supports(event)
    with pytest.raises(UnsupportedEventError):
        acc.compose(event)
    assert acc.get_epsilon(1e-2) == before and len(acc.history) == 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 10.5}, "n_samples"),
        ({"importance_factor": 0.5}, "importance_factor"),
        ({"neighboring_relation": "replace_one"}, "neighboring_relation"),
        ({"backend": "jax"}, "backend"),
        ({"device": "cuda", "backend": "numpy"}, "device"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MonteCarloAccountant(**kwargs)


def test_bad_query_arguments() -> None:
    acc = MonteCarloAccountant(1000, rng=0).compose(GaussianDpEvent(1.0))
    with pytest.raises(TypeError, match="rng"):
        MonteCarloAccountant(1000, rng="seed")
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="epsilon"):
            acc.estimate_delta(bad)
        with pytest.raises(ValueError, match="epsilon"):
            acc.get_delta(bad)
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="delta"):
            acc.estimate_epsilon(bad)
    with pytest.raises(ValueError, match="count"):
        acc.compose(GaussianDpEvent(1.0), count=-1)
    with pytest.raises(ValueError, match="direction"):
        acc.loss_samples("sideways")


def test_seeded_flag_and_loss_samples_copy() -> None:
    assert MonteCarloAccountant(10).seeded is False
    assert MonteCarloAccountant(10, rng=np.random.default_rng(1)).seeded is True
    acc = MonteCarloAccountant(100, rng=0, importance_factor=2.0).compose(
        PoissonSampledDpEvent(0.1, GaussianDpEvent(1.0)), 3)
    losses, logw = acc.loss_samples("add")
    assert losses.shape == (100,) and logw is not None and np.all(losses <= 3 * -math.log1p(-0.1) + 1e-12)
    losses[:] = 1e9
    assert acc.loss_samples("add")[0].max() < 1.0
