"""PLD accountant against independent oracles.

Oracles: the exact Gaussian privacy curve (Balle & Wang 2018, Thm. 8); the PRV accountant's
published estimate for the Opacus setting (notes/evr.md §5.3, prv_accountant 0.2.0); brute-force
hockey-stick divergences of the (subsampled) discrete Gaussian summed over the integers; the
pure-DP guarantee of the discrete Laplace mechanism.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from accountants import (
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    GaussianDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SelfComposedDpEvent,
    UnsupportedEventError,
)
from accountants.pld import PldAccountant
from accountants.rdp import RdpAccountant


def gaussian_delta(eps: float, mu: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism with μ = Δ/σ (Balle & Wang 2018, Thm. 8)."""
    return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)


@pytest.mark.parametrize("sigma, count", [(1.0, 1), (2.0, 1), (3.0, 9), (10.0, 100), (1.0, 4)])
def test_gaussian_composition_is_tight(sigma, count):
    mu = math.sqrt(count) / sigma
    acc = PldAccountant().compose(SelfComposedDpEvent(GaussianDpEvent(sigma), count))
    for eps in (0.5, 1.0, 2.0, 4.0):
        exact = gaussian_delta(eps, mu)
        got = acc.get_delta(eps)
        assert got >= exact
        assert got <= exact * (1 + 2e-3) + 1e-12


def test_matches_prv_estimate_on_opacus_setting():
    # prv_accountant 0.2.0 (eps_error 0.01): lower 6.758431 / estimate 6.768781 / upper 6.779132
    acc = PldAccountant().compose(PoissonSampledDpEvent(0.04, GaussianDpEvent(1.5)), 2250)
    eps = acc.get_epsilon(1e-5)
    assert 6.758431 <= eps <= 6.779132
    assert eps == pytest.approx(6.768781, abs=1e-3)


def _dg_pmf(sigma: float, shift: int, xs: np.ndarray) -> np.ndarray:
    log_w = -((xs - shift) ** 2) / (2 * sigma**2)
    return np.exp(log_w - special.logsumexp(-(np.arange(-2000, 2001) ** 2) / (2 * sigma**2)))


@pytest.mark.parametrize("sigma, sensitivity, q", [(1.5, 1, 1.0), (0.6, 1, 1.0), (2.0, 3, 1.0), (1.5, 1, 0.04), (0.8, 2, 0.3)])
def test_discrete_gaussian_against_brute_force(sigma, sensitivity, q):
    xs = np.arange(-400, 401, dtype=np.float64)
    p = _dg_pmf(sigma, 0, xs)
    mix = (1 - q) * p + q * _dg_pmf(sigma, sensitivity, xs)
    event = DiscreteGaussianDpEvent(sigma, sensitivity)
    if q < 1:
        event = PoissonSampledDpEvent(q, event)
    acc = PldAccountant().compose(event)
    for eps in (0.0, 0.05, 0.3, 1.0):
        exact = max(
            np.sum(np.maximum(mix - math.exp(eps) * p, 0.0)),
            np.sum(np.maximum(p - math.exp(eps) * mix, 0.0)),
        )
        got = acc.get_delta(eps)
        assert got >= exact
        assert got <= exact * (1 + 5e-3) + 1e-12


def test_discrete_gaussian_two_fold_against_brute_force():
    # two compositions: the product pair's hockey stick, by explicit outer products
    sigma, q = 1.0, 0.2
    xs = np.arange(-40, 42, dtype=np.float64)
    p = _dg_pmf(sigma, 0, xs)
    mix = (1 - q) * p + q * _dg_pmf(sigma, 1, xs)
    p2, m2 = np.outer(p, p), np.outer(mix, mix)
    acc = PldAccountant().compose(PoissonSampledDpEvent(q, DiscreteGaussianDpEvent(sigma)), 2)
    for eps in (0.1, 0.5):
        exact = max(np.sum(np.maximum(m2 - math.exp(eps) * p2, 0)), np.sum(np.maximum(p2 - math.exp(eps) * m2, 0)))
        assert exact <= acc.get_delta(eps) <= exact * (1 + 5e-3) + 1e-12


def test_discrete_laplace_is_pure_dp():
    count, scale, sens = 5, 3.0, 2
    acc = PldAccountant().compose(DiscreteLaplaceDpEvent(scale, sens), count)
    eps0 = count * sens / scale
    assert acc.get_delta(eps0 + 1e-3) == 0.0
    assert eps0 <= acc.get_epsilon(0.0) <= eps0 + count * 1e-4 * 1.01
    # below the pure-DP level δ is positive: the bound is attained
    assert acc.get_delta(eps0 - 0.1) > 0.0


def test_subsampled_discrete_laplace_is_below_full():
    full = PldAccountant().compose(DiscreteLaplaceDpEvent(1.0), 10).get_epsilon(1e-6)
    sub = PldAccountant().compose(PoissonSampledDpEvent(0.1, DiscreteLaplaceDpEvent(1.0)), 10).get_epsilon(1e-6)
    assert 0 < sub < full


def test_truncation_slack_is_accounted_and_tiny():
    acc = PldAccountant().compose(PoissonSampledDpEvent(0.04, DiscreteGaussianDpEvent(1.5)), 100)
    slack = acc._core.truncation_slack
    assert 0 < slack < 1e-25
    assert acc.get_delta(1.0) >= acc._core.delta(1.0) + slack
    assert acc.get_epsilon(0.0) == math.inf  # δ = 0 cannot be certified with a truncation slack
    assert slack <= acc.get_delta(math.inf) < 1e-12  # dp-accounting keeps ~1e-15 at infinity


def test_ptr_is_unsupported_and_relation_checks():
    with pytest.raises(UnsupportedEventError, match="RDP"):
        PldAccountant().compose(PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, None, 0.0))
    with pytest.raises(UnsupportedEventError):
        PldAccountant(neighboring_relation="replace_one").compose(
            PoissonSampledDpEvent(0.1, DiscreteGaussianDpEvent(1.0))
        )
    with pytest.raises(UnsupportedEventError):
        PldAccountant(neighboring_relation="replace_one").compose(DiscreteLaplaceDpEvent(1.0))


def test_coarser_grid_is_more_pessimistic():
    event = PoissonSampledDpEvent(0.01, GaussianDpEvent(1.0))
    fine = PldAccountant(value_discretization_interval=1e-4).compose(event, 500).get_epsilon(1e-6)
    coarse = PldAccountant(value_discretization_interval=1e-2).compose(event, 500).get_epsilon(1e-6)
    assert coarse >= fine


def test_interval_validation():
    with pytest.raises(ValueError, match="value_discretization_interval"):
        PldAccountant(value_discretization_interval=0.0)


def test_many_compositions_of_discrete_gaussian_stay_below_rdp():
    # Regression: dp-accounting's default "privacy buckets" PLD for discrete mechanisms moves
    # each atom up by up to one grid step, adding ~T·interval to ε (here +0.3, above the RDP
    # bound). Both accountants are upper bounds, so the tight one must not exceed RDP.
    event = PoissonSampledDpEvent(0.004, DiscreteGaussianDpEvent(0.8))
    pld = PldAccountant().compose(event, 3000).get_epsilon(1e-5)
    rdp = RdpAccountant().compose(event, 3000).get_epsilon(1e-5)
    continuous = PldAccountant().compose(PoissonSampledDpEvent(0.004, GaussianDpEvent(0.8)), 3000).get_epsilon(1e-5)
    assert pld <= rdp
    assert pld == pytest.approx(continuous, rel=0.02)


@pytest.mark.parametrize("make", [
    lambda: __import__("dp_accounting").dp_event.GaussianDpEvent(0.0),
    lambda: __import__("dp_accounting").dp_event.LaplaceDpEvent(0.0),
    lambda: __import__("dp_accounting").dp_event.PoissonSampledDpEvent(
        0.5, __import__("dp_accounting").dp_event.GaussianDpEvent(0.0)),
])
def test_zero_noise_is_non_private(make, tmp_path):
    # A mechanism with no noise releases f(D) exactly: for neighbours with f(D) != f(D') the
    # hockey-stick divergence is 1 at every epsilon (closed form), so epsilon(delta < 1) = inf
    # and delta(epsilon) = 1. dp-accounting's PLD flags these events as non-DP, which our
    # wrapper must honour instead of reading the identity PLD (epsilon 0).
    event = make()
    for count in (1, 3):
        acc = PldAccountant().compose(event, count)
        assert acc.get_epsilon(1e-5) == math.inf
        assert acc.get_delta(10.0) == 1.0
    # A ledger with the default (PLD) accountant must refuse such a charge.
    from accountants.ledger import BudgetExceededError, Ledger

    ledger = Ledger(tmp_path / "l.db", record=())
    ledger.set_budget("d", epsilon=1.0, delta=1e-6)
    with pytest.raises(BudgetExceededError):
        with ledger.charge("d", event, sensitivity=1.0, sampling="none", seeded=False):
            pass
