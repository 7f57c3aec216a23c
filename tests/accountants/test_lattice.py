"""The lattice Gaussian mechanism: grid, exact release, calibration, and the privacy claim.

Oracle for the privacy claim: the exact hockey-stick divergence δ_{v,v′}(ε) between the two
output distributions of :func:`lattice_release` (integer centres plus discrete Gaussian pmfs
summed over their whole effective support), on a coarse grid where the rounding matters and
for adversarial pairs |v − v′| ≤ S, against dp-accounting's discrete Gaussian PLD of the
event the mechanism is charged as. A negative control (sensitivity K − 1, i.e. ignoring the
rounding's extra step) is violated by some pair.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pldm
from scipy import special, stats

from accountants.lattice import (
    analytic_gaussian_delta,
    analytic_gaussian_noise_multiplier,
    calibrate_lattice_gaussian,
)
from accountants.noise import lattice_for, lattice_release, make_noise_source

ALPHA = 1e-6


def _pmf(scale: float, support: np.ndarray) -> np.ndarray:
    window = np.arange(-int(40 * scale) - 40, int(40 * scale) + 41)
    log_norm = special.logsumexp(-(window.astype(float) ** 2) / (2 * scale * scale))
    return np.exp(-(support.astype(float) ** 2) / (2 * scale * scale) - log_norm)


def _hockey_stick(v: float, w: float, sigma_steps: float, e: int, eps: float) -> float:
    """Exact sup_S P[M(v) ∈ S] − e^ε P[M(w) ∈ S] for the lattice release."""
    gamma = math.ldexp(1.0, e)
    cv, cw = int(np.rint(v / gamma)), int(np.rint(w / gamma))
    half = int(40 * sigma_steps) + 40
    support = np.arange(min(cv, cw) - half, max(cv, cw) + half + 1)
    p, q = _pmf(sigma_steps, support - cv), _pmf(sigma_steps, support - cw)
    return float(np.sum(np.maximum(p - math.exp(eps) * q, 0.0)))


def test_lattice_for_bounds_the_rounded_difference_and_depends_on_s_only():
    for s in (1.0, 0.3, 7.75, 2.0**-20, 3.0e9):
        e, k = lattice_for(s)
        gamma = math.ldexp(1.0, e)
        assert 256 <= s / gamma < 512 and k == math.floor(s * (1 + 2.0**-20) / gamma) + 1
        gen = np.random.default_rng(int(s * 1e3) % 2**32)
        # Adversarial pairs: v just above a half step, v' = v + S (and random pairs).
        v = (gen.integers(-10**6, 10**6, 2000) + 0.5 + gen.uniform(-1e-3, 1e-3, 2000)) * gamma
        for w in (v + s, v - s, v + gen.uniform(-s, s, 2000)):
            diff = np.abs(np.rint(v / gamma) - np.rint(w / gamma))
            assert diff.max() <= k
        # The bound is attained (the +1 is needed): v at a half step below, v' = v + S.
        v0 = (0.5 + 1e-9) * gamma
        assert abs(np.rint((v0 + s) / gamma) - np.rint(v0 / gamma)) in (k - 1, k)
    assert lattice_for(1.0, resolution_bits=2) == (-2, 5)
    for bad in (0.0, -1.0, math.nan, math.inf, True):
        with pytest.raises(ValueError, match="'sensitivity' parameter of lattice_for"):
            lattice_for(bad)
    with pytest.raises(ValueError, match="'resolution_bits'"):
        lattice_for(1.0, resolution_bits=0)


def test_release_is_on_the_grid_with_discrete_gaussian_noise():
    e, _ = lattice_for(1.0)
    gamma = math.ldexp(1.0, e)
    value = np.full(20000, 0.123456789)
    out = lattice_release(value, 40.0, e, make_noise_source(3))
    steps = out / gamma
    assert np.all(steps == np.rint(steps))
    noise = steps - np.rint(value / gamma)
    # Mean 0 and variance ≈ 40² (discrete Gaussian at this scale): z-tests at alpha 1e-6.
    z_mean = noise.mean() / (40.0 / math.sqrt(noise.size))
    assert abs(z_mean) < stats.norm.isf(ALPHA / 2)
    chi = noise.var(ddof=1) * (noise.size - 1) / 40.0**2
    assert stats.chi2.sf(chi, noise.size - 1) > ALPHA / 2 and stats.chi2.cdf(chi, noise.size - 1) > ALPHA / 2
    # Large values stay exact integers on the grid (Python-int path), never value-dependent grid.
    big = lattice_release([2.0**60 + 4096.0], 3.0, e, make_noise_source(1))
    assert big[0] / gamma == np.rint(big[0] / gamma)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="'value' parameter of lattice_release"):
            lattice_release([bad], 3.0, e)
    with pytest.raises(ValueError, match="'sigma_steps'"):
        lattice_release([0.0], 0.0, e)
    with pytest.raises(ValueError, match="'exponent'"):
        lattice_release([0.0], 1.0, 1.5)


@pytest.mark.parametrize("sigma_steps", [3.0, 6.5])
def test_release_is_the_discrete_gaussian_event_it_is_charged_as(sigma_steps):
    s = 1.1
    e, k = lattice_for(s, resolution_bits=2)  # γ = 1/4, S/γ = 4.4, K = 5: the +1 matters
    assert (e, k) == (-2, 5)
    gamma = math.ldexp(1.0, e)
    claimed = pldm.from_discrete_gaussian_mechanism(sigma_steps, sensitivity=k,
                                                    value_discretization_interval=1e-4)
    wrong = pldm.from_discrete_gaussian_mechanism(sigma_steps, sensitivity=k - 1,
                                                  value_discretization_interval=1e-4)
    gen = np.random.default_rng(7)
    # Worst pair: v just below a half step rounds down, v + S just above one rounds up.
    pairs = [((0.5 - 1e-9) * gamma, (0.5 - 1e-9) * gamma + s), (0.0, s), (0.0, -s)]
    pairs += [(float(a), float(a + b)) for a, b in zip(gen.uniform(-3, 3, 40),
                                                        gen.uniform(-s, s, 40))]
    violated = False
    for eps in (0.1, 0.5, 1.0, 2.0):
        bound = claimed.get_delta_for_epsilon(eps)
        weak = wrong.get_delta_for_epsilon(eps)
        for v, w in pairs:
            for a, b in ((v, w), (w, v)):
                exact = _hockey_stick(a, b, sigma_steps, e, eps)
                assert exact <= bound + 1e-12
                violated |= exact > weak + 1e-9
    assert violated  # negative control: sensitivity K − 1 under-accounts the rounding


def test_calibration_meets_the_target_close_to_the_continuous_gaussian():
    for eps, dlt, s in ((1.0, 1e-5, 2.0), (0.3, 1e-6, 0.05), (4.0, 1e-8, 123.0)):
        lat = calibrate_lattice_gaussian(eps, dlt, s)
        z = analytic_gaussian_noise_multiplier(eps, dlt)
        assert lat.epsilon_checked <= eps and lat.accountant == "pld"
        assert z * s <= lat.noise_scale <= z * s * (1 + 2.0**-8) * (1 + 2.0**-10)
        # Oracle: dp-accounting's discrete Gaussian PLD of the event, directly.
        own = pldm.from_discrete_gaussian_mechanism(lat.sigma_steps, sensitivity=lat.steps,
                                                    value_discretization_interval=1e-4)
        assert own.get_epsilon_for_delta(dlt) <= eps * (1 + 1e-3)
        assert (lat.event.sigma, lat.event.sensitivity) == (lat.sigma_steps, lat.steps)
    # Very small ε: fewer grid bits keep the PLD check's support bounded (σ_Z ≤ ~2^17),
    # at a rounding cost of at most z/2^16 (here z ≈ 3.7e3: ≤ 6%, K = 33).
    tiny = calibrate_lattice_gaussian(1e-3, 1e-5, 1.0)
    z = analytic_gaussian_noise_multiplier(1e-3, 1e-5)
    assert tiny.steps == 33 and tiny.sigma_steps < 2**17 and tiny.epsilon_checked <= 1e-3
    assert z <= tiny.noise_scale <= z * (1 + 1 / 32) * (1 + 2.0**-10)
    # Past 2^19 grid steps (a ledger's PLD of the event would take minutes to hours), for any
    # accountant; the RDP cases sit below the RDP conversion's ε floor (review finding: RDP
    # calibration returned σ_Z = 2^40.4 there, past the sampler's cap, after the charge).
    for eps, dlt, sens, acc in ((1e-6, 1e-12, 1.0, "pld"), (1e-12, 1e-12, 1.0, "rdp"),
                                (0.01, 1e-10, 1.9, "rdp"), (0.01, 1e-8, 1.5, "rdp")):
        with pytest.raises(ValueError, match="'epsilon' parameter of calibrate_lattice_gaussian "
                                             "is too small"):
            calibrate_lattice_gaussian(eps, dlt, sens, accountant=acc)
    # Any positive float sensitivity has a grid (subnormal to huge) and releases on it.
    for sens in (5e-324, 1e-300, 1e300):
        lat = calibrate_lattice_gaussian(1.0, 1e-5, sens)
        out = lat.release([sens, -2 * sens], make_noise_source(0))
        assert np.all(np.isfinite(out)) and 257 <= lat.steps <= 513
    # Every grid lattice_for returns is accepted (subnormal S at 30 bits: e = -1104).
    e, _ = lattice_for(5e-324, resolution_bits=30)
    assert lattice_release([0.0], 3.0, e, make_noise_source(0)).shape == (1,)
    # Beyond the float range the output is ±inf with the sign of γ·k (post-processing of k),
    # never an exception or NaN: at γ = 2^1020 the value 1.7e308 is about 15 steps, and
    # k ≥ 16 overflows.
    big = lattice_release([1.7e308] * 20 + [-1.7e308] * 20, 3.0, 1020, make_noise_source(0))
    assert np.all(big[:20] > 0) and np.all(big[20:] < 0)
    assert np.any(np.isinf(big[:20])) and np.any(np.isinf(big[20:]))
    with pytest.raises(ValueError, match="'sigma_steps'"):
        lattice_release([0.0], 2.0**41, e)
    with pytest.raises(ValueError, match="'value' parameter of lattice_release"):
        lattice_release(10**400, 3.0, 0)
    with pytest.raises(TypeError, match="'accountant' parameter of calibrate_lattice_gaussian"):
        calibrate_lattice_gaussian(1.0, 1e-5, 1.0, accountant=3)
    rdp = calibrate_lattice_gaussian(1.0, 1e-5, 2.0, accountant="rdp")
    # RDP is looser than the exact curve: more noise for the same target, still checked.
    assert rdp.noise_scale > calibrate_lattice_gaussian(1.0, 1e-5, 2.0).noise_scale
    assert rdp.epsilon_checked <= 1.0
    for kwargs, name in (({"epsilon": 0.0}, "epsilon"), ({"delta": 1.0}, "delta"),
                         ({"delta": 0.0}, "delta"), ({"sensitivity": math.nan}, "sensitivity")):
        args = {"epsilon": 1.0, "delta": 1e-5, "sensitivity": 1.0, **kwargs}
        with pytest.raises(ValueError, match=f"'{name}' parameter of calibrate_lattice_gaussian"):
            calibrate_lattice_gaussian(**args)


def test_analytic_gaussian_curve_matches_dp_accounting():
    for z in (0.7, 1.5, 3.7306, 10.0):
        pld = pldm.from_gaussian_mechanism(z, value_discretization_interval=1e-5,
                                           use_connect_dots=True)
        for eps in (0.1, 1.0, 3.0):
            exact = analytic_gaussian_delta(eps, z)
            # The PLD is pessimistic: it may exceed the exact curve, by little.
            assert exact * (1 - 1e-8) <= pld.get_delta_for_epsilon(eps) <= exact * 1.01 + 1e-12
    z = analytic_gaussian_noise_multiplier(1.0, 1e-5)
    assert analytic_gaussian_delta(1.0, z) <= 1e-5 < analytic_gaussian_delta(1.0, 0.999 * z)
