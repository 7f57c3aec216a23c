"""gaussian_release: a real-valued release with Gaussian RDP and no floating-point noise.

Oracle for the privacy claim: the exact Rényi divergence between the two output
distributions (integer centres plus discrete Gaussian noise, pmfs summed over their whole
effective support), on a coarse grid where the rounding matters, against the claimed bound
α·max(G, S)²/(2σ²) of the continuous Gaussian mechanism. A negative control (no σ inflation)
shows the oracle catches the rounding's extra shift.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from accountants.noise import (
    _grid_exponent,
    gaussian_release,
    make_noise_source,
    sample_gaussian,
)


def _log_pmf(scale: float, support: np.ndarray) -> np.ndarray:
    """log P(N_Z(0, scale²) = k) on ``support`` (normalised over a wide window)."""
    window = np.arange(-int(60 * scale) - 60, int(60 * scale) + 61)
    log_norm = special.logsumexp(-(window.astype(float) ** 2) / (2 * scale * scale))
    return -(support.astype(float) ** 2) / (2 * scale * scale) - log_norm


def _exact_renyi(v: np.ndarray, w: np.ndarray, sigma: float, s: float, alpha: float,
                 grid_bits: int, inflate: bool = True) -> float:
    """Exact D_α(release(v) ‖ release(w)) for vectors, as the sum over coordinates."""
    e = _grid_exponent(sigma, grid_bits)
    gamma = math.ldexp(1.0, e)
    d = v.size
    scale = sigma * (1 + gamma * math.sqrt(d) / s) if inflate else sigma
    z = scale / gamma
    total = 0.0
    for a, b in zip(np.rint(v / gamma).astype(int), np.rint(w / gamma).astype(int)):
        k = np.arange(min(a, b) - int(60 * z) - 60, max(a, b) + int(60 * z) + 61)
        lp, lq = _log_pmf(z, k - a), _log_pmf(z, k - b)
        total += special.logsumexp(alpha * lp + (1 - alpha) * lq) / (alpha - 1)
    return total


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("alpha", [1.5, 2.0, 8.0, 32.0])
def test_exact_divergence_within_gaussian_bound(d: int, alpha: float) -> None:
    # Coarse grid (γ = σ/4..σ/8) so that the rounding shift is a visible fraction of σ.
    rng = np.random.default_rng(7)
    sigma, s = 1.3, 0.9
    worst = 0.0
    for _ in range(60):
        v = rng.normal(0, 3, d)
        g = rng.uniform(0, 1.5 * s)  # both G < S and G > S
        direction = rng.normal(size=d)
        w = v + g * direction / np.linalg.norm(direction)
        exact = _exact_renyi(v, w, sigma, s, alpha, grid_bits=2)
        bound = alpha * max(g, s) ** 2 / (2 * sigma**2)
        assert exact <= bound * (1 + 1e-9) + 1e-12, (v, w, exact, bound)
        worst = max(worst, exact / bound)
    assert worst > 0.3  # the oracle is not vacuous: some pairs come close to the bound


def test_negative_control_without_inflation_breaks_the_bound() -> None:
    # Values that straddle rounding boundaries: γ = 0.25, S/γ = 1.2, but v/γ = 0.45 rounds to
    # 0 and w/γ = 1.65 rounds to 2, an integer shift of 2 > 1.2.
    sigma, s, alpha = 1.0, 0.3, 4.0
    e = _grid_exponent(sigma, 2)
    gamma = math.ldexp(1.0, e)
    assert gamma == 0.25
    v = np.array([gamma * 0.45])
    w = v + s
    broken = _exact_renyi(v, w, sigma, s, alpha, grid_bits=2, inflate=False)
    assert broken > alpha * s**2 / (2 * sigma**2) * 1.5
    fixed = _exact_renyi(v, w, sigma, s, alpha, grid_bits=2, inflate=True)
    assert fixed <= alpha * s**2 / (2 * sigma**2) * (1 + 1e-9)


def test_outputs_on_the_grid_and_distribution_matches_the_gaussian() -> None:
    sigma = 0.7
    values = np.full(40_000, 3.25)
    out = gaussian_release(values, sigma, 1.0, make_noise_source(11))
    e = _grid_exponent(sigma, 30)
    assert np.all(np.ldexp(out, -e) == np.rint(np.ldexp(out, -e)))
    # Kolmogorov-Smirnov against N(3.25, σ²): the grid is 2^-31 σ fine, so the continuous
    # reference fits; false-alarm rate 1e-6 at the fixed seed.
    assert stats.kstest(out, stats.norm(3.25, sigma).cdf).pvalue > 1e-6
    # and a deliberately wrong σ is rejected by the same test (it can fail).
    assert stats.kstest(out, stats.norm(3.25, 1.05 * sigma).cdf).pvalue < 1e-6


def test_shapes_seeding_and_scalar() -> None:
    a = gaussian_release(np.zeros((2, 3)), 1.0, 1.0, make_noise_source(3))
    b = gaussian_release(np.zeros((2, 3)), 1.0, 1.0, make_noise_source(3))
    assert a.shape == (2, 3) and np.array_equal(a, b)
    assert gaussian_release(2.5, 1.0, 1.0, make_noise_source(0)).shape == ()
    assert gaussian_release([], 1.0, 1.0).shape == (0,)
    # default source: the OS CSPRNG (two draws differ)
    assert not np.array_equal(gaussian_release(np.zeros(8), 1.0, 1.0),
                              gaussian_release(np.zeros(8), 1.0, 1.0))


def test_grid_does_not_depend_on_the_value() -> None:
    # Regression (found in review): the grid was coarsened for |value| > 2^21·σ, so two
    # neighbours either side of 2^22 (σ = S = 1, G = 0.5) had disjoint output sets: one
    # released only even multiples of 2^-30, the other odd ones half the time.
    src = make_noise_source(0)
    odd = []
    for v in (2.0**22 - 0.25, 2.0**22 + 0.25):
        k = np.ldexp(gaussian_release(np.full(4000, v), 1.0, 1.0, src), 30)
        assert np.all(k == np.rint(k))  # on the same 2^-30 grid
        odd.append(int(np.sum(np.mod(k, 2) == 1)))
    for count in odd:  # parity of the released integer is a fair coin for both
        assert stats.binomtest(count, 4000, 0.5).pvalue > 1e-6


def test_huge_values_stay_exact_integers_then_round() -> None:
    out = gaussian_release([1e30, -1e30, 3.0], 1.0, 1.0, make_noise_source(0))
    assert np.all(np.isfinite(out)) and np.allclose(out, [1e30, -1e30, 3.0], rtol=1e-12, atol=10)
    assert gaussian_release([1e300], 1e-300, 1.0, make_noise_source(0))[0] == pytest.approx(1e300)


@pytest.mark.parametrize("kwargs, name", [
    ({"value": [np.nan], "sigma": 1.0, "sensitivity": 1.0}, "value"),
    ({"value": [np.inf], "sigma": 1.0, "sensitivity": 1.0}, "value"),
    ({"value": [1.0], "sigma": 0.0, "sensitivity": 1.0}, "sigma"),
    ({"value": [1.0], "sigma": -1.0, "sensitivity": 1.0}, "sigma"),
    ({"value": [1.0], "sigma": 1.0, "sensitivity": 0.0}, "sensitivity"),
    ({"value": [1.0], "sigma": 1.0, "sensitivity": math.nan}, "sensitivity"),
    ({"value": "abc", "sigma": 1.0, "sensitivity": 1.0}, "value"),
])
def test_bad_parameters_name_themselves(kwargs, name) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        gaussian_release(**kwargs)


def test_noise_scale_is_the_continuous_one() -> None:
    # Same spread as sample_gaussian at the same σ (two-sample F-test on variances, α = 1e-6).
    src = make_noise_source(5)
    a = gaussian_release(np.zeros(50_000), 2.0, 1.0, src)
    b = sample_gaussian(2.0, 50_000, src)
    f = a.var(ddof=1) / b.var(ddof=1)
    p = 2 * min(stats.f.cdf(f, 49_999, 49_999), stats.f.sf(f, 49_999, 49_999))
    assert p > 1e-6
