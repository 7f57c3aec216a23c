"""The lattice Gaussian mechanism: a real value released on a grid with exact integer noise.

A real-valued query with sensitivity S (in one coordinate: a scalar, or one owner's entry of a
vector) is rounded to the grid γ = 2^e chosen from S alone and released as
``γ·(round(v/γ) + Z)`` with Z ~ N_Z(0, σ_Z²) exact discrete Gaussian noise
(:func:`accountants.noise.lattice_release`). The rounded values of neighbours differ by an
integer K = ⌊S(1 + 2⁻²⁰)/γ⌋ + 1 at most (:func:`accountants.noise.lattice_for`), so the
release *is* ``DiscreteGaussianDpEvent(σ_Z, K)``, post-processed by the exact scaling by γ.
Every accountant composes that event exactly as it stands (the PLD accountant through dp-accounting's discrete
Gaussian privacy loss distribution), so the stated (ε, δ) holds for the noise actually drawn,
not for a continuous Gaussian the computer cannot sample (Mironov 2012).

Neighbouring relation: whatever makes |v(D) − v(D′)| ≤ S (add/remove one record for the
callers in privval). The rounding costs at most a factor 1 + 2^-8 in sensitivity at the
default resolution (more only for very small ε, see :func:`calibrate_lattice_gaussian`).

This module also holds the analytic Gaussian curve (Balle & Wang 2018, Thm. 8) used to start
the calibration; the returned noise is always checked with the accountant itself.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from accountants.events import DiscreteGaussianDpEvent
from accountants.noise import NoiseSource, lattice_for, lattice_release

# Largest scale in grid steps, for every accountant: a ledger composes the event with its own
# accountant, and dp-accounting's discrete Gaussian PLD takes ~10 s at 2^19 (linear in σ).
_MAX_SIGMA_STEPS_ANY = 2.0**19

__all__ = [
    "LatticeGaussian",
    "analytic_gaussian_delta",
    "analytic_gaussian_noise_multiplier",
    "calibrate_lattice_gaussian",
]


def analytic_gaussian_delta(epsilon: float, noise_multiplier: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism with noise multiplier z = σ/Δ.

    δ(ε) = Φ(μ/2 − ε/μ) − e^ε Φ(−μ/2 − ε/μ) with μ = 1/z (Balle & Wang 2018, Thm. 8),
    evaluated in log space so that tiny δ do not underflow.

    Example
    -------
    >>> round(analytic_gaussian_delta(1.0, 3.7306), 8)
    1e-05
    """
    mu = 1.0 / float(noise_multiplier)
    a = special.log_ndtr(mu / 2 - epsilon / mu)
    b = epsilon + special.log_ndtr(-mu / 2 - epsilon / mu)
    return float(np.exp(a) * -np.expm1(b - a)) if a > b else 0.0


@functools.lru_cache(maxsize=128)
def analytic_gaussian_noise_multiplier(epsilon: float, delta: float) -> float:
    """Smallest noise multiplier z of the Gaussian mechanism that is (ε, δ)-DP (exact curve).

    Bisection on z; the returned z is the upper end of the final bracket, so it meets the
    target.

    Example
    -------
    >>> round(analytic_gaussian_noise_multiplier(1.0, 1e-5), 3)
    3.731
    """
    lo, hi = 1e-3, 1.0
    while analytic_gaussian_delta(epsilon, hi) > delta:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if analytic_gaussian_delta(epsilon, mid) > delta:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


@dataclass(frozen=True)
class LatticeGaussian:
    """A calibrated lattice Gaussian mechanism (see the module docstring).

    Attributes
    ----------
    epsilon, delta : float
        The target the noise was calibrated to; ``epsilon_checked`` ≤ ``epsilon``.
    sensitivity : float
        S, the largest change of the released value between neighbours.
    exponent : int
        e of the grid γ = 2^e.
    steps : int
        K, the integer sensitivity on the grid.
    sigma_steps : float
        σ_Z, the discrete Gaussian's scale in grid steps.
    accountant : str
        The accountant that checked the guarantee.
    epsilon_checked : float
        ε of ``event`` at ``delta`` under ``accountant``.
    """

    epsilon: float
    delta: float
    sensitivity: float
    exponent: int
    steps: int
    sigma_steps: float
    accountant: str
    epsilon_checked: float

    @property
    def event(self) -> DiscreteGaussianDpEvent:
        """The event to charge: ``DiscreteGaussianDpEvent(sigma_steps, steps)``."""
        return DiscreteGaussianDpEvent(self.sigma_steps, self.steps)

    @property
    def grid(self) -> float:
        """γ = 2^exponent."""
        return math.ldexp(1.0, self.exponent)

    @property
    def noise_scale(self) -> float:
        """γ·σ_Z: the noise scale in the value's units (the standard deviation is at most this)."""
        return self.grid * self.sigma_steps

    def release(self, value: Any, source: NoiseSource | None = None) -> np.ndarray:
        """``γ·(round(v/γ) + Z)`` per coordinate (:func:`accountants.noise.lattice_release`)."""
        return lattice_release(value, self.sigma_steps, self.exponent, source)


def _check(value: Any, name: str, low: float, high: float, low_open: bool, high_open: bool,
           owner: str) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real)
          and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
    if not ok:
        lb, rb = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"The '{name}' parameter of {owner} must be a float "
                         f"in {lb}{low:g}, {high:g}{rb}. Got {value!r} instead.")
    return float(value)


def calibrate_lattice_gaussian(epsilon: float, delta: float, sensitivity: float, *,
                               accountant: str = "pld",
                               resolution_bits: int | None = None,
                               owner: str = "calibrate_lattice_gaussian") -> LatticeGaussian:
    """The smallest (to 2^-12 relative) lattice Gaussian mechanism meeting (ε, δ).

    Starts from the continuous Gaussian's exact noise multiplier z (K·z grid steps), checks
    ``DiscreteGaussianDpEvent(σ_Z, K)`` with ``accountant``, and otherwise searches upward with
    :func:`accountants.calibrate.calibrate`, which returns only checked scales.

    Parameters
    ----------
    epsilon : float
        Target ε in (0, inf).
    delta : float
        Target δ in (0, 1).
    sensitivity : float
        S in (0, inf).
    accountant : str, default "pld"
        A registered accountant that supports ``DiscreteGaussianDpEvent`` (``"pld"``,
        ``"rdp"``).
    resolution_bits : int, optional
        Grid resolution b (:func:`accountants.noise.lattice_for`): the rounding costs at most
        a factor 1 + 2^-b of noise. Default: 8, lowered for very small ε (noise multiplier
        z > 256) so that the discrete Gaussian has at most about 2^17 steps of scale
        (the PLD check's time grows with it): 2^-b ≤ z/2^16.
    owner : str, default "calibrate_lattice_gaussian"
        The function named in error messages (a caller passes its own public name).

    Returns
    -------
    LatticeGaussian

    Raises
    ------
    ValueError
        On a bad parameter, or an ε so small that σ_Z would exceed 2^19 grid steps.
    TypeError
        If ``accountant`` is not a str.

    Example
    -------
    >>> lat = calibrate_lattice_gaussian(1.0, 1e-5, 2.0)
    >>> lat.steps, lat.epsilon_checked <= 1.0, round(lat.noise_scale / 2.0, 2)
    (257, True, 3.75)
    """
    from accountants.accountant import make_accountant
    from accountants.calibrate import calibrate

    eps = _check(epsilon, "epsilon", 0.0, math.inf, True, True, owner)
    dlt = _check(delta, "delta", 0.0, 1.0, True, True, owner)
    sens = _check(sensitivity, "sensitivity", 0.0, math.inf, True, True, owner)
    if not isinstance(accountant, str):
        raise TypeError(f"The 'accountant' parameter of {owner} must be a "
                        f"registered accountant name. Got {accountant!r} instead.")
    z = analytic_gaussian_noise_multiplier(eps, dlt)
    if resolution_bits is None:
        resolution_bits = max(1, min(8, math.floor(math.log2(2.0**16 / z))))
    exponent, steps = lattice_for(sens, resolution_bits)

    def too_small() -> ValueError:
        return ValueError(
            f"The 'epsilon' parameter of {owner} is too small for "
            f"delta={dlt!r} under the {accountant!r} accountant: the noise would exceed "
            f"{_MAX_SIGMA_STEPS_ANY:.0f} grid steps (any ledger composes the event with a PLD, "
            f"whose cost grows with the scale). Got {epsilon!r} instead.")

    if steps * z * 2.0 > _MAX_SIGMA_STEPS_ANY:
        raise too_small()

    def eps_of(s: float) -> float:
        return float(make_accountant(accountant).compose(DiscreteGaussianDpEvent(s, steps))
                     .get_epsilon(dlt))

    guess = steps * z * (1.0 + 2.0**-12)
    sigma = guess
    checked = eps_of(guess)
    if checked > eps:
        try:  # calibrate first checks that `upper` meets the target, else raises ValueError
            sigma = calibrate(lambda s: DiscreteGaussianDpEvent(s, steps), eps, dlt,
                              accountant=accountant, lower=guess, upper=_MAX_SIGMA_STEPS_ANY,
                              rtol=2.0**-12)
        except ValueError:  # e.g. below the RDP conversion's ε floor
            raise too_small() from None
        checked = eps_of(sigma)
    if sigma > _MAX_SIGMA_STEPS_ANY:
        raise too_small()
    if not checked <= eps:  # calibrate checks its answer; this guards the contract
        raise AssertionError("calibrate_lattice_gaussian: the calibrated scale does not meet ε")
    return LatticeGaussian(eps, dlt, sens, exponent, steps, sigma, accountant, checked)
