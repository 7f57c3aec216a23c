"""Rényi-DP accounting of Propose-Test-Release (PTR), direct (ε, δ) analysis and calibration.

The mechanism (Wang, Mahloujifar, Wang, Jia, Mittal 2022, "Rényi differential privacy of
propose-test-release and applications to private and robust machine learning",
arXiv 2209.07716, Algorithm 1; DESIGN.md §5) is described by
:class:`accountants.events.PTRDpEvent`:

* Δ(D), the distance to instability of a robust target f2 for a proposed local-sensitivity
  bound β, has sensitivity 1 under the neighbouring relation of the analysis;
* test: ``Δ(D) + Lap(b) > B`` with ``B = b·ln(1/(2·δ0))``, so a dataset at distance 0 passes
  with probability exactly δ0 (or, with ``test_noise="gaussian"``, ``Δ(D) + N(0, b²) > B``
  with ``B = b·Φ̄⁻¹(δ0)``: same δ0, a threshold about three times lower at small δ0);
* pass: ``f2(D) + N(0, σ_pass²)``; fail: ``f1(D) + N(0, σ_fail²)`` or ⊥.

The output analysed is the pair (branch, value), so the bounds hold for anything computed from
it. Throughout, with GS1 the ℓ2 global sensitivity of f1 and GS2 that of f2,

* ε_fail(α) = α·GS1²/(2σ_fail²) (0 for ⊥),
* ε_safe(α) = α·min(β, GS2)²/(2σ_pass²),
* ε_unsafe(α) = α·GS2²/(2σ_pass²),
* ε_Lap(α; b) = (1/(α−1))·ln[(α/(2α−1))e^{(α−1)/b} + ((α−1)/(2α−1))e^{−α/b}]
  (Mironov 2017, "Rényi differential privacy", Proposition 6),

and the RDP curve (Wang et al. 2022, Theorem 4.3 in its general form, DESIGN.md §5) is

    ε(α) = max{ mixture(α), composition(α) },
    mixture(α)     = (1/(α−1))·ln[(1−δ0)e^{(α−1)ε_fail} + δ0·e^{(α−1)ε_unsafe}],
    composition(α) = max(ε_fail, ε_safe) + ε_Lap(α; b).

Proof (two cases for a neighbouring pair x, x′; p, p′ the pass probabilities):
the Rényi moment of (branch, value) is p^α p′^{1−α} e^{(α−1)D_pass} +
(1−p)^α (1−p′)^{1−α} e^{(α−1)D_fail}. *Case A*, max(Δ(x), Δ(x′)) ≥ 1: the neighbour with
Δ ≥ 1 has local sensitivity ≤ β, so ‖f2(x) − f2(x′)‖ ≤ min(β, GS2) and D_pass ≤ ε_safe;
factoring out e^{(α−1)max(D_pass, D_fail)} leaves the Rényi moment of two Bernoulli
distributions that are a post-processing of the Laplace mechanism on the sensitivity-1 Δ,
at most e^{(α−1)ε_Lap}. *Case B*, Δ(x) = Δ(x′) = 0: p = p′ = δ0 exactly, so the moment is
(1−δ0)e^{(α−1)D_fail} + δ0·e^{(α−1)D_pass} with D_pass ≤ ε_unsafe. Soundness and tightness
are checked by exact enumeration in ``tests/accountants/test_ptr_rdp.py``.

**Exact test moments (used by default).** Case A keeps the branch weights instead of factoring
out the larger Gaussian term: with Δ integer-valued (Δ = 0 exactly on unstable datasets, as for
the exact distance of :mod:`privval.ptr`), the case-A pairs are (d, d+1), (d+1, d), (d, d)
with d ≥ 0 and not both 0, and their moment with worst-case shifts,
p(d)^α p(d′)^{1−α} e^{(α−1)ε_safe} + (1−p(d))^α (1−p(d′))^{1−α} e^{(α−1)ε_fail}, with
p(d) = P[d + Lap(b) > B] in closed form, is enumerated for d up to ⌈B⌉ + ⌈60b⌉ and bounded
beyond (:func:`_exact_test_case_a`). Its maximum is ≤ composition(α) (it is the quantity the
paper's factoring bounds), so :func:`ptr_rdp` uses max{mixture, min(composition, exact)}; the
enumeration oracle finds this bound attained exactly on several tiny domains.

**Gaussian test.** The proof above uses the test only through (i) the pass probability δ0
at Δ = 0 and (ii) the RDP of the test noise on the sensitivity-1 Δ (post-processing to a
Bernoulli). With ``test_noise="gaussian"`` the threshold is B = b·Φ̄⁻¹(δ0) (so (i) holds) and
ε_Lap(α; b) is replaced by the Gaussian's α/(2b²) (so (ii) holds); the exact-test refinement
of case A and the white-box subsampling moments of case A are Laplace-specific and are not
used for it.

Without a finite GS2 there is no finite RDP bound (case B): :func:`ptr_rdp` returns inf.

Neighbouring relation: the curve holds under whichever relation Δ, β, GS1 and GS2 are stated
for. :mod:`privval.ptr` states them for *replace one record* with the dataset size public.
The Poisson-subsampled bound (``sampling_rate < 1``) needs the add/remove relation (Δ and the
sensitivities stated for adding or removing one record of the batch).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special

from accountants.events import PTRDpEvent

__all__ = [
    "PTRCalibration",
    "PTRRdpTerms",
    "calibrate_ptr",
    "laplace_rdp",
    "ptr_direct_epsilon",
    "ptr_epsilon",
    "ptr_epsilon_delta",
    "ptr_rdp",
    "ptr_rdp_terms",
    "rdp_to_epsilon",
    "ptr_threshold",
]

logger = logging.getLogger(__name__)

DEFAULT_ORDERS: np.ndarray = np.concatenate(
    [np.linspace(1.1, 10.9, 99), np.arange(11, 64, dtype=float), [128.0, 256.0, 512.0, 1024.0]]
)
"""The RDP orders used when none are given (dp-accounting's default grid)."""

# Relative slack added to every bound so that floating-point rounding never lowers ε.
_ROUND_UP = 1e-12


def _round_up(value: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(value), value + np.abs(value) * _ROUND_UP + 1e-15, value)


# --------------------------------------------------------------------------- validation
def _check_orders(orders: Any, name: str = "orders") -> np.ndarray:
    array = np.asarray(orders, dtype=float)
    if array.ndim > 1 or array.size == 0 or np.any(np.isnan(array)) or np.any(array < 1):
        raise ValueError(
            f"The '{name}' parameter must be a non-empty 1-D array of floats in [1, inf]. "
            f"Got {orders!r} instead."
        )
    return np.atleast_1d(array)


def _check_event(event: Any, where: str) -> PTRDpEvent:
    if not isinstance(event, PTRDpEvent):
        raise TypeError(
            f"The 'event' parameter of {where} must be a PTRDpEvent. Got {event!r} instead."
        )
    if event.delta0 > 0.5:
        raise ValueError(
            f"The 'delta0' of the PTRDpEvent given to {where} must be in (0, 0.5] (the "
            f"threshold B = b·ln(1/(2·delta0)) must be ≥ 0). Got {event.delta0!r} instead."
        )
    return event


def _check_probability(value: Any, name: str, where: str, *, closed_right: bool) -> float:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and 0 < value
        and (value <= 1 if closed_right else value < 1)
    )
    if not ok:
        interval = "(0, 1]" if closed_right else "(0, 1)"
        raise ValueError(
            f"The '{name}' parameter of {where} must be a float in {interval}. "
            f"Got {value!r} instead."
        )
    return float(value)


def _check_positive(value: Any, name: str, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"The '{name}' parameter of {where} must be a float in (0, inf). "
            f"Got {value!r} instead."
        )
    return float(value)


def _check_count(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of {where} must be an int in [1, inf). "
            f"Got {value!r} instead."
        )
    return int(value)


# --------------------------------------------------------------------------- components
def laplace_rdp(orders: Any, scale: float) -> np.ndarray:
    """RDP of the Laplace mechanism with scale ``b`` on a sensitivity-1 query.

    ε(α) = (1/(α−1))·ln[(α/(2α−1))e^{(α−1)/b} + ((α−1)/(2α−1))e^{−α/b}] for α > 1 and the
    KL limit 1/b + e^{−1/b} − 1 at α = 1 (Mironov 2017, Proposition 6).

    Parameters
    ----------
    orders : array_like
        Rényi orders α in [1, inf).
    scale : float
        Laplace scale b in (0, inf).

    Returns
    -------
    numpy.ndarray
        ε(α) for each order.

    Raises
    ------
    ValueError
        If an order is below 1 or the scale is not positive and finite.

    Example
    -------
    >>> round(float(laplace_rdp([2.0], 2.0)[0]), 6)
    0.200304
    """
    alphas = _check_orders(orders)
    b = _check_positive(scale, "scale", "laplace_rdp")
    return _round_up(_laplace_rdp(alphas, b))


def _laplace_rdp(alphas: np.ndarray, b: float) -> np.ndarray:
    out = np.empty_like(alphas)
    one = alphas == 1.0
    out[one] = 1.0 / b + math.expm1(-1.0 / b)
    out[np.isinf(alphas)] = 1.0 / b
    rest = ~one & np.isfinite(alphas)
    a = alphas[rest]
    log_moment = np.logaddexp(
        np.log(a / (2 * a - 1)) + (a - 1) / b, np.log((a - 1) / (2 * a - 1)) - a / b
    )
    out[rest] = log_moment / (a - 1)
    return out


def _threshold(test_scale: float, delta0: float, test_noise: str) -> float:
    """B with P[noise > B] = δ0: b·ln(1/(2δ0)) (Laplace) or b·Φ̄⁻¹(δ0) (Gaussian).

    The Gaussian quantile is rounded up by a relative 1e-12 so that floating-point error
    never gives an unstable dataset a pass probability above δ0.
    """
    if test_noise == "gaussian":
        return test_scale * float(-special.ndtri(delta0)) * (1.0 + 1e-12)
    return test_scale * math.log(1.0 / (2.0 * delta0))


def ptr_threshold(event: PTRDpEvent) -> float:
    """The test threshold B of a PTR event: a dataset at distance 0 passes w.p. δ0.

    ``B = b·ln(1/(2·δ0))`` for the Laplace test, ``B = b·Φ̄⁻¹(δ0)`` for the Gaussian test.

    Parameters
    ----------
    event : PTRDpEvent
        The PTR release.

    Returns
    -------
    float
        B ≥ 0.

    Example
    -------
    >>> round(ptr_threshold(PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)), 3)
    35.455
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0, test_noise="gaussian")
    >>> round(ptr_threshold(e), 3)
    11.224
    """
    event = _check_event(event, "ptr_threshold")
    return _threshold(event.test_scale, event.delta0, event.test_noise)


def _test_rdp(alphas: np.ndarray, event: PTRDpEvent) -> np.ndarray:
    """RDP of the test's noise on the sensitivity-1 Δ (Laplace, or Gaussian α/(2b²))."""
    if event.test_noise == "gaussian":
        return alphas / (2.0 * event.test_scale**2)
    return _laplace_rdp(alphas, event.test_scale)


@dataclass(frozen=True)
class PTRRdpTerms:
    """The two terms of the PTR RDP bound at each order (Wang et al. 2022, Theorem 4.3).

    Attributes
    ----------
    orders : numpy.ndarray
        Rényi orders α.
    mixture : numpy.ndarray
        Case B (both datasets at distance 0): the expensive pass branch discounted by δ0.
    composition : numpy.ndarray
        Case A (one dataset at distance ≥ 1): Laplace test composed with the release, in the
        paper's form max(ε_fail, ε_safe) + ε_Lap(α; b).
    exact_test : numpy.ndarray
        Case A with the Laplace test's exact Bernoulli moments (module docstring); never
        larger than ``composition`` by construction, and used by :func:`ptr_rdp`.
    """

    orders: np.ndarray
    mixture: np.ndarray
    composition: np.ndarray
    exact_test: np.ndarray

    @property
    def epsilon(self) -> np.ndarray:
        """The RDP bound max(mixture, min(composition, exact_test)) at each order."""
        return np.maximum(self.mixture, np.minimum(self.composition, self.exact_test))


def _gaussian_coefficients(event: PTRDpEvent) -> tuple[float, float, float]:
    """Per-order Gaussian RDP slopes c (ε(α) = c·α) of the fail, safe and unsafe cases."""
    if event.sigma_fail is None:
        fail = 0.0
    else:
        fail = event.global_sensitivity_fail**2 / (2.0 * event.sigma_fail**2)
    gs2 = event.global_sensitivity_pass
    safe = min(event.proposed_bound, gs2) ** 2 / (2.0 * event.sigma_pass**2)
    unsafe = math.inf if math.isinf(gs2) else gs2**2 / (2.0 * event.sigma_pass**2)
    return fail, safe, unsafe


def _terms(event: PTRDpEvent, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fail, safe, unsafe = _gaussian_coefficients(event)
    delta0 = event.delta0
    composition = np.empty_like(alphas)
    mixture = np.empty_like(alphas)
    inf = np.isinf(alphas)
    # α = ∞: the Gaussian's max-divergence is infinite unless its shift is 0.
    test_inf = 1.0 / event.test_scale if event.test_noise == "laplace" else math.inf
    composition[inf] = test_inf if max(fail, safe) == 0 else math.inf
    mixture[inf] = 0.0 if max(fail, unsafe) == 0 else math.inf
    a = alphas[~inf]
    composition[~inf] = max(fail, safe) * a + _test_rdp(a, event)
    if math.isinf(unsafe):
        mixture[:] = math.inf
        return mixture, composition
    one = alphas == 1.0
    # KL limit of the mixture term at α = 1: the δ0-weighted average of the two KLs.
    mixture[one] = (1.0 - delta0) * fail + delta0 * unsafe
    rest = ~one & ~inf
    a = alphas[rest]
    log_moment = np.logaddexp(
        math.log1p(-delta0) + (a - 1) * fail * a, math.log(delta0) + (a - 1) * unsafe * a
    )
    mixture[rest] = log_moment / (a - 1)
    return mixture, composition


# Case A with exact test moments: window of distances enumerated exactly, then a tail bound.
_TAIL_NATS = 60.0
_MAX_WINDOW = 200_000


def _exact_test_case_a(event: PTRDpEvent, alphas: np.ndarray) -> np.ndarray:
    """max over case-A pairs of the exact Rényi moment with worst-case Gaussian shifts.

    Pairs (Δ, Δ′) ∈ {(d, d+1), (d+1, d), (d+1, d+1) : d ≥ 0} (Δ integer, sensitivity 1, not
    both 0); the moment p^α p′^{1−α} e^{(α−1)ε_safe} + (1−p)^α (1−p′)^{1−α} e^{(α−1)ε_fail}
    is computed exactly for d < D = ⌈B⌉ + ⌈60·b⌉; for larger d, with u = ½e^{−(D−B)/b} ≥ 1 − p,
    it is at most e^{(α−1)ε_safe}(1−u)^{−(α−1)} + e^{(α−1)ε_fail}·u·e^{(α−1)/b}. Orders 1 and
    ∞ (and windows beyond 2·10^5 distances) return inf, leaving the paper's form in charge.
    """
    out = np.full(alphas.shape, math.inf)
    if event.test_noise != "laplace":
        return out  # Gaussian test: the composition form (Bernoulli ∘ Gaussian on Δ) applies
    fail, safe, _ = _gaussian_coefficients(event)
    b = event.test_scale
    threshold = _threshold(b, event.delta0, "laplace")
    use = (alphas > 1) & np.isfinite(alphas)
    top = math.ceil(threshold) + math.ceil(_TAIL_NATS * b)
    if not np.any(use) or top > _MAX_WINDOW:
        return out
    d = np.arange(top + 1, dtype=float)
    below = d <= threshold
    gap = np.abs(d - threshold) / b
    log_half_tail = math.log(0.5) - gap  # log of ½e^{−|d−B|/b}
    log_other = np.log1p(-np.exp(log_half_tail))
    log_p = np.where(below, log_half_tail, log_other)
    log_q = np.where(below, log_other, log_half_tail)
    # ordered pairs (x, x′) with |x − x′| ≤ 1, max(x, x′) ≥ 1, both ≤ top
    x = np.concatenate([d[:-1], d[1:], d[1:]]).astype(int)
    y = np.concatenate([d[1:], d[:-1], d[1:]]).astype(int)
    a = alphas[use][:, None]
    pass_part = a * log_p[x] + (1 - a) * log_p[y] + (a - 1) * a * safe
    fail_part = a * log_q[x] + (1 - a) * log_q[y] + (a - 1) * a * fail
    window = np.max(np.logaddexp(pass_part, fail_part), axis=1)
    a = a[:, 0]
    log_u = math.log(0.5) - (top - threshold) / b
    tail = np.logaddexp(
        (a - 1) * a * safe - (a - 1) * math.log1p(-math.exp(log_u)),
        (a - 1) * a * fail + log_u + (a - 1) / b,
    )
    out[use] = np.maximum(window, tail) / (a - 1)
    return out


def ptr_rdp_terms(event: PTRDpEvent, orders: Any) -> PTRRdpTerms:
    """The mixture and composition terms of the PTR RDP bound (no subsampling).

    See the module docstring for the formulas and their proof.

    Parameters
    ----------
    event : PTRDpEvent
        The PTR release.
    orders : array_like
        Rényi orders α in [1, inf).

    Returns
    -------
    PTRRdpTerms
        Both terms, rounded up.

    Raises
    ------
    TypeError
        If ``event`` is not a PTRDpEvent.
    ValueError
        If an order is below 1 or ``event.delta0 > 0.5``.

    Example
    -------
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    >>> t = ptr_rdp_terms(e, [2.0])
    >>> round(float(t.mixture[0]), 6), round(float(t.composition[0]), 6)
    (0.25, 0.450304)
    """
    event = _check_event(event, "ptr_rdp_terms")
    alphas = _check_orders(orders)
    mixture, composition = _terms(event, alphas)
    exact = _exact_test_case_a(event, alphas)
    return PTRRdpTerms(alphas, _round_up(mixture), _round_up(composition),
                       _round_up(np.minimum(exact, composition)))


# --------------------------------------------------------------------------- subsampling
def _log_binomial(n: np.ndarray | int, k: np.ndarray) -> np.ndarray:
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


def _log_gaussian_ratio_abs_moment(j: np.ndarray, mu: float) -> np.ndarray:
    """Upper bound on ln E|1 − exp(μZ − μ²/2)|^j, Z ~ N(0, 1): the j-th absolute central
    moment of the likelihood ratio of N(μ, 1) to N(0, 1) under N(0, 1), for j ≥ 1.

    With x = μZ − μ²/2: |1 − e^x| ≤ |x|·e^{max(x, 0)}; Cauchy–Schwarz gives
    E ≤ √(E|x|^{2j} · E e^{2j·max(x, 0)}), with E e^{2j·max(x,0)} ≤ 1 + E e^{2jx}
    = 1 + e^{jμ²(2j−1)} and, by Minkowski, (E|x|^{2j})^{1/(2j)} ≤ μ·(E Z^{2j})^{1/(2j)} + μ²/2,
    E Z^{2j} = (2j)!/(2^j·j!). It scales as μ^j for small μ (the generic bound 1 + e^{c_j}
    does not fall below 1).
    """
    j = np.asarray(j, dtype=float)
    if mu <= 0:
        return np.full(j.shape, -math.inf)
    log_z = (special.gammaln(2 * j + 1) - j * math.log(2.0) - special.gammaln(j + 1)) / (2 * j)
    log_norm = np.logaddexp(math.log(mu) + log_z, 2 * math.log(mu) - math.log(2.0))
    return 0.5 * (2 * j * log_norm + np.logaddexp(0.0, j * mu * mu * (2 * j - 1)))


def _subsampled_log_moment(log_moments: np.ndarray, q: float, alpha: int,
                           log_abs_moments: np.ndarray | None = None) -> float:
    """Bound on ln E[(P/Q)^α] over both directions of a Poisson-subsampled pair.

    ``log_moments[j] ≥ (j−1)·D_j`` for both directions of the base pair, j = 0..alpha
    (entries 0 and 1 are 0). ``log_abs_moments[j]``, if given, is a white-box upper bound on
    ln E_{μ0}|1 − L|^j (j ≥ 2) for the add direction. See :func:`ptr_rdp` for the derivation.
    """
    j = np.arange(alpha + 1, dtype=float)
    log_c = _log_binomial(alpha, j)
    c = log_moments[: alpha + 1]
    # Remove direction: E_{μ0}[(1 − q + qL)^α] expanded binomially, E_{μ0}[L^j] ≤ e^{c_j}.
    with np.errstate(divide="ignore"):
        log_terms = log_c + (alpha - j) * math.log1p(-q) + j * math.log(q) + c
    remove = float(special.logsumexp(log_terms))
    # Add direction: 1 + Σ_{j≥2} C(α,j) q^j (1−q)^{1−j} E_{μ0}|1 − L|^j with
    # E|1−L|² = e^{c_2} − 1 and, for j ≥ 3, E|1−L|^j ≤ min(1 + e^{c_j},
    # (e^{c_2} − 1) + (e^{c_j} − 1) + (j/2)·√(e^{c_2} − 1)); and the universal
    # (α−1)·ln(1/(1−q)) since μ0/Q ≤ 1/(1−q).
    jj = j[2:]
    log_abs = np.empty_like(jj)
    with np.errstate(divide="ignore"):
        log_chi2 = c[2] + math.log(-math.expm1(-c[2])) if c[2] > 0 else -math.inf  # ln(e^{c2}−1)
        log_abs[0] = log_chi2
        cj = c[3:]
        log_excess = np.where(cj > 0, cj + np.log(-np.expm1(-np.maximum(cj, 1e-300))), -np.inf)
        tight = special.logsumexp(
            np.stack([np.full_like(cj, log_chi2), log_excess,
                      np.log(jj[1:] / 2.0) + 0.5 * log_chi2]), axis=0)
    log_abs[1:] = np.minimum(np.logaddexp(0.0, cj), tight)
    if log_abs_moments is not None:
        log_abs = np.minimum(log_abs, log_abs_moments[2 : alpha + 1])
    log_add_terms = log_c[2:] + jj * math.log(q) + (1 - jj) * math.log1p(-q) + log_abs
    add = float(np.logaddexp(0.0, special.logsumexp(log_add_terms)))
    add = min(add, (alpha - 1) * -math.log1p(-q))
    return max(remove, add)


def _subsampled_curve(curve: Any, q: float, alphas: np.ndarray,
                      abs_moments: Any = None) -> np.ndarray:
    """Poisson-subsampled RDP at ``alphas`` from a base curve ``curve(orders) -> ε``.

    ``abs_moments(js) -> ln bounds on E_{μ0}|1 − L|^j``, optional (white-box add direction).
    """
    base = curve(alphas)
    if q == 1.0:
        return base
    finite = alphas[np.isfinite(alphas)]
    needed = np.unique(np.concatenate([np.floor(finite), np.ceil(finite), [2.0]])).astype(int)
    needed = needed[needed >= 2]
    top = int(needed.max())
    integers = np.arange(2, top + 1, dtype=float)
    log_moments = np.concatenate([[0.0, 0.0], (integers - 1) * curve(integers)])
    log_abs = None
    if abs_moments is not None:
        log_abs = np.concatenate([[math.inf, math.inf], abs_moments(integers)])
    cumulative = {1: 0.0}
    for k in needed:
        if np.isinf(log_moments[k]):
            cumulative[int(k)] = math.inf
            continue
        cumulative[int(k)] = _subsampled_log_moment(log_moments, q, int(k), log_abs)
    out = np.empty_like(alphas)
    for i, a in enumerate(alphas):
        if math.isinf(a):
            out[i] = base[i]
            continue
        lo, hi = math.floor(a), math.ceil(a)
        if a == 1.0:
            # ε(1) ≤ ε(α) for every α > 1 (monotonicity of Rényi divergence in the order).
            value = cumulative[2]
        elif lo == hi:
            value = cumulative[lo] / (a - 1)
        else:
            # (α−1)·D_α is convex in α (Hölder), so interpolate the log-moment bounds.
            theta = hi - a
            value = (theta * cumulative[lo] + (1 - theta) * cumulative[hi]) / (a - 1)
        out[i] = min(value, base[i])
    return out


# --------------------------------------------------------------------------- public curve
def ptr_rdp(event: PTRDpEvent, orders: Any, sampling_rate: float = 1.0) -> np.ndarray:
    """RDP curve of one PTR release, optionally on a Poisson subsample.

    Without subsampling this is max(mixture, min(composition, exact-test case A)) of the
    module docstring (Wang et al. 2022, Theorem 4.3, general form with unequal calibration and
    ⊥, with the case-A test moments computed exactly); :func:`ptr_rdp_terms` gives the terms.

    With ``sampling_rate = q < 1`` (Poisson subsampling, add/remove relation) the bound is a
    white-box case split fed into a generic subsampling bound that we derive here:

    1. *Reduction to per-sample pairs.* Let D′ = D ∪ {z} and T a Poisson sample of D. The
       output on D′ is Σ_T w_T[(1−q)μ0^T + qμ1^T] and on D it is Σ_T w_T μ0^T, where
       μ0^T = M(T), μ1^T = M(T ∪ {z}). The Rényi moment ∫P^αQ^{1−α} is jointly convex, so
       D_α in either direction is at most max_T of the per-sample divergence
       (van Erven & Harremoës 2014, joint quasi-convexity).
    2. *Case split.* Each pair (T, T ∪ {z}) is in case A or case B of the module docstring,
       so D_j(μ1‖μ0) and D_j(μ0‖μ1) are at most ε_A(j) = min(composition, exact test)(j)
       or ε_B(j) = mixture(j) respectively. The subsampled bound is the larger of the generic
       bounds below applied to ε_A and to ε_B (for case B and the remove direction this is
       exactly (1−δ0)·A_α(fail) + δ0·A_α(pass), the branch-weighted sampled-Gaussian moments
       of Mironov, Talwar & Zhang 2019).
    3. *Generic bound, integer α ≥ 2*, for a pair with D_j ≤ ε(j) both ways, L = μ1/μ0,
       Q = (1−q)μ0 + qμ1, c_j = (j−1)ε(j):

       - remove, E_{μ0}[(Q/μ0)^α] = E_{μ0}[(1−q+qL)^α]
         = Σ_j C(α,j)(1−q)^{α−j} q^j E_{μ0}[L^j] ≤ Σ_j C(α,j)(1−q)^{α−j} q^j e^{c_j}
         (c_0 = c_1 = 0);
       - add, with W = (μ0 − μ1)/Q, μ0/Q = 1 + qW and E_Q[W] = 0:
         E_Q[(μ0/Q)^α] ≤ 1 + Σ_{j≥2} C(α,j) q^j E_Q|W|^j, and since Q ≥ (1−q)μ0,
         E_Q|W|^j ≤ (1−q)^{1−j} E_{μ0}|1−L|^j, with E_{μ0}(1−L)² = e^{c_2} − 1 and, for
         j ≥ 3, E_{μ0}|1−L|^j ≤ E max(1, L)^j ≤ 1 + e^{c_j} and also
         E_{μ0}|1−L|^j ≤ (e^{c_2} − 1) + (e^{c_j} − 1) + (j/2)·√(e^{c_2} − 1): on {L < 1},
         |1−L|^j ≤ (1−L)²; on {L ≥ 1}, (L−1)^j ≤ L^j − 1, and
         E[(L^j − 1)1{L≥1}] = E[L^j] − 1 + E[(1 − L^j)1{L<1}] with 1 − L^j ≤ j(1 − L) there
         and E(1 − L)₊ = TV ≤ ½√(χ²) = ½√(e^{c_2} − 1) (the smaller of the two is used; the
         second keeps the amplification at moderate q, where the constant 1 of the first
         dominates);
       - add, universal: μ0/Q ≤ 1/(1−q), so E_Q[(μ0/Q)^α] ≤ (1−q)^{−(α−1)};
       - add, white box: the PTR output is a branch bit and a Gaussian, so on each branch
         L = r·G with r the ratio of the branch's probabilities and G a Gaussian likelihood
         ratio of shift μ (in noise units). Minkowski gives
         ‖1 − rG‖_j ≤ |1 − r| + r‖1 − G‖_j. In case A, r ∈ [e^{−1/b}, e^{1/b}] (a
         post-processing of the Laplace test on the sensitivity-1 Δ) and μ ≤
         max(min(β, GS2)/σ_pass, GS1/σ_fail), so
         E_{μ0}|1−L|^j ≤ (e^{1/b} − 1 + e^{1/b}·M_j(μ)^{1/j})^j; in case B, r = 1 on both
         branches, so E_{μ0}|1−L|^j = δ0·M_j(GS2/σ_pass) + (1−δ0)·M_j(GS1/σ_fail). M_j(μ)
         bounds E|1 − e^{μZ−μ²/2}|^j in closed form
         (:func:`_log_gaussian_ratio_abs_moment`). The smallest of the bounds is used; the
         white-box one scales like μ^j and keeps the amplification at moderate q.

       The remove-direction sum is the Zhu & Wang 2019 / Mironov et al. 2019 "lower bound"
       form; the add direction is our own bound (looser by the (1−q)^{1−j} factors and the
       constants of M_j; the tests check it against numerical integration).
    4. *Fractional α* by convexity of (α−1)D_α in α (Hölder): linear interpolation of the
       log-moment bounds at ⌊α⌋ and ⌈α⌉ (and ε(1) ≤ ε(2)).
    5. The subsampled mechanism is never worse than the base one (joint quasi-convexity
       again), so the result is min(subsampled, base); it equals the base curve at q = 1 and
       is nondecreasing in q.

    Soundness is checked against numerical integration of both directions in the tests.

    Parameters
    ----------
    event : PTRDpEvent
        The PTR release.
    orders : array_like
        Rényi orders α in [1, inf).
    sampling_rate : float, default 1.0
        Poisson sampling probability q in (0, 1].

    Returns
    -------
    numpy.ndarray
        ε(α) at each order, rounded up (inf where no finite bound exists).

    Raises
    ------
    TypeError
        If ``event`` is not a PTRDpEvent.
    ValueError
        If an order is below 1, ``sampling_rate`` is outside (0, 1] or ``delta0 > 0.5``.

    Example
    -------
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    >>> [round(float(v), 6) for v in ptr_rdp(e, [2.0, 16.0])]
    [0.438264, 6.771955]
    >>> bool(ptr_rdp(e, [4.0], sampling_rate=0.01)[0] < ptr_rdp(e, [4.0])[0])
    True
    """
    event = _check_event(event, "ptr_rdp")
    alphas = _check_orders(orders)
    q = _check_probability(sampling_rate, "sampling_rate", "ptr_rdp", closed_right=True)
    if q == 1.0:
        mixture, composition = _terms(event, alphas)
        case_a_curve = np.minimum(composition, _exact_test_case_a(event, alphas))
        return _round_up(np.maximum(mixture, case_a_curve))

    def case_a(a: np.ndarray) -> np.ndarray:
        return np.minimum(_terms(event, a)[1], _exact_test_case_a(event, a))

    def case_b(a: np.ndarray) -> np.ndarray:
        return _terms(event, a)[0]

    fail, safe, unsafe = _gaussian_coefficients(event)
    mu_fail, mu_safe = math.sqrt(2 * fail), math.sqrt(2 * safe)
    ratio = math.exp(1.0 / event.test_scale)  # bound on each branch's probability ratio

    def abs_a(j: np.ndarray) -> np.ndarray:
        # Case A, per branch: ‖1 − rG‖_j ≤ |1 − r| + r‖1 − G‖_j (Minkowski), r ∈ [1/ratio, ratio].
        log_m = _log_gaussian_ratio_abs_moment(j, max(mu_fail, mu_safe)) / j
        return j * np.logaddexp(math.log(math.expm1(1.0 / event.test_scale)),
                                math.log(ratio) + log_m)

    def abs_b(j: np.ndarray) -> np.ndarray:
        # Case B: both branch probabilities equal (δ0 and 1 − δ0), so r = 1 on each branch.
        if math.isinf(unsafe):
            return np.full(np.shape(j), math.inf)
        return np.logaddexp(
            math.log(event.delta0) + _log_gaussian_ratio_abs_moment(j, math.sqrt(2 * unsafe)),
            math.log1p(-event.delta0) + _log_gaussian_ratio_abs_moment(j, mu_fail))

    # The branch-probability ratio of the Laplace test is within e^{±1/b} for every pair of
    # neighbouring distances; a Gaussian test's is not bounded, so its case A keeps the
    # generic moments.
    sub = np.maximum(
        _subsampled_curve(case_a, q, alphas, abs_a if event.test_noise == "laplace" else None),
        _subsampled_curve(case_b, q, alphas, abs_b))
    return _round_up(sub)


# --------------------------------------------------------------------------- conversion
def rdp_to_epsilon(rdp: Any, orders: Any, delta: float) -> float:
    """Convert an RDP curve to ε at a given δ with the improved conversion.

    ε(δ) = min_α [ε(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)] (Balle, Barthe, Gaboardi,
    Hsu, Sato 2020, Theorem 21; Canonne, Kamath, Steinke 2020, Proposition 12), clipped at 0.

    Parameters
    ----------
    rdp : array_like
        ε(α) at each order (may contain inf).
    orders : array_like
        The orders α, same length, in (1, inf).
    delta : float
        Target δ in (0, 1).

    Returns
    -------
    float
        ε (inf when every order is infinite).

    Raises
    ------
    ValueError
        If the arrays disagree, an order is ≤ 1 or δ is outside (0, 1).

    Example
    -------
    >>> round(rdp_to_epsilon([0.5 * 32], [32.0], 1e-5), 4)
    16.2278
    """
    alphas = _check_orders(orders)
    eps = np.asarray(rdp, dtype=float)
    if eps.shape != alphas.shape or np.any(np.isnan(eps)) or np.any(alphas <= 1):
        raise ValueError(
            "The 'rdp' and 'orders' parameters of rdp_to_epsilon must be arrays of the same "
            f"length with orders in (1, inf). Got {rdp!r} and {orders!r} instead."
        )
    d = _check_probability(delta, "delta", "rdp_to_epsilon", closed_right=False)
    candidates = eps + np.log1p(-1.0 / alphas) - (math.log(d) + np.log(alphas)) / (alphas - 1)
    best = float(np.min(candidates))
    return max(0.0, float(_round_up(np.array([best]))[0]))


def ptr_epsilon(
    event: PTRDpEvent,
    delta: float,
    *,
    n_compositions: int = 1,
    sampling_rate: float = 1.0,
    orders: Any = None,
) -> float:
    """ε at δ after ``n_compositions`` PTR releases, by RDP and the improved conversion.

    Parameters
    ----------
    event : PTRDpEvent
        One PTR release.
    delta : float
        Target δ in (0, 1).
    n_compositions : int, default 1
        Number T of adaptive compositions (RDP adds up: T·ε(α)).
    sampling_rate : float, default 1.0
        Poisson sampling probability per release (see :func:`ptr_rdp`).
    orders : array_like, optional
        Rényi orders (> 1); dp-accounting's default grid if None.

    Returns
    -------
    float
        ε, rounded up.

    Raises
    ------
    ValueError
        On invalid parameters.

    Example
    -------
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    >>> ptr_epsilon(e, 1e-5, n_compositions=10) < 10 * ptr_epsilon(e, 1e-5)
    True
    """
    t = _check_count(n_compositions, "n_compositions", "ptr_epsilon")
    alphas = DEFAULT_ORDERS if orders is None else _check_orders(orders)
    alphas = alphas[alphas > 1]
    curve = ptr_rdp(event, alphas, sampling_rate) * t
    return rdp_to_epsilon(curve, alphas, delta)


# --------------------------------------------------------------------------- direct (ε, δ)
def _gaussian_delta(eps: float, s: float) -> float:
    """Exact δ(ε) of the Gaussian mechanism with noise multiplier s (Balle & Wang 2018)."""
    from accountants.lattice import analytic_gaussian_delta

    return analytic_gaussian_delta(eps, s)


def _gaussian_epsilon(delta: float, s: float) -> float:
    """Smallest ε with δ(ε) ≤ delta for the Gaussian mechanism, rounded up (analytic)."""
    if math.isinf(s) or _gaussian_delta(0.0, s) <= delta:
        return 0.0
    hi = 1.0
    while _gaussian_delta(hi, s) > delta:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    root = optimize.brentq(lambda e: _gaussian_delta(e, s) - delta, 0.0, hi, xtol=1e-12)
    return root + 1e-10


def _noise_multiplier(event: PTRDpEvent) -> float:
    """Smallest σ/sensitivity over the two branches in case A (∞ if a branch leaks nothing)."""
    pass_sens = min(event.proposed_bound, event.global_sensitivity_pass)
    s_pass = math.inf if pass_sens == 0 else event.sigma_pass / pass_sens
    if event.sigma_fail is None or event.global_sensitivity_fail == 0:
        s_fail = math.inf
    else:
        s_fail = event.sigma_fail / event.global_sensitivity_fail
    return min(s_pass, s_fail)


def _require_laplace(event: PTRDpEvent, where: str) -> None:
    if event.test_noise != "laplace":
        raise ValueError(
            f"The 'event' parameter of {where} must use the Laplace test (test_noise="
            f"'laplace'): the direct (ε, δ) analysis covers that test only. Got "
            f"test_noise={event.test_noise!r}; use ptr_rdp / ptr_epsilon instead."
        )


def ptr_epsilon_delta(event: PTRDpEvent, delta_prime: float) -> tuple[float, float]:
    """Direct (ε, δ) guarantee of one PTR release (no RDP).

    The release is (1/b + ε_G(δ′), δ0 + δ′)-DP, where ε_G is the exact (analytic) Gaussian
    curve (Balle & Wang 2018) at the smaller noise multiplier of the two branches,
    min(σ_fail/GS1, σ_pass/min(β, GS2)). Case A: the Laplace test is (1/b, 0)-DP and each
    branch's release is (ε_G, δ′)-DP (adaptive composition). Case B: both pass with
    probability δ0, which goes into δ, and the fallback is (ε_G, δ′)-DP (Wang et al. 2022,
    Theorem 4.2 in general form; Dwork & Lei 2009).

    Parameters
    ----------
    event : PTRDpEvent
        The PTR release.
    delta_prime : float
        δ′ in (0, 1) spent on the Gaussian release.

    Returns
    -------
    tuple of float
        (ε, δ).

    Raises
    ------
    ValueError
        On invalid parameters.

    Example
    -------
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    >>> eps, delta = ptr_epsilon_delta(e, 1e-6)
    >>> round(eps, 3), round(delta, 12)
    (2.754, 1.01e-06)
    """
    event = _check_event(event, "ptr_epsilon_delta")
    _require_laplace(event, "ptr_epsilon_delta")
    dp = _check_probability(delta_prime, "delta_prime", "ptr_epsilon_delta", closed_right=False)
    eps = 1.0 / event.test_scale + _gaussian_epsilon(dp, _noise_multiplier(event))
    return eps, event.delta0 + dp


def ptr_direct_epsilon(event: PTRDpEvent, delta: float, n_compositions: int = 1) -> float:
    """ε at total δ after T PTR releases by the direct analysis and strong composition.

    Each release is (ε1(δ′), δ0 + δ′)-DP (:func:`ptr_epsilon_delta`); T of them compose to
    min{ T·ε1 (basic), ε1·√(2T ln(1/δ̃)) + T·ε1·(e^{ε1} − 1) (advanced composition, Dwork,
    Rothblum & Vadhan 2010, Theorem III.3) } at total δ = T(δ0 + δ′) + δ̃ (δ̃ = 0 for basic).
    The split between δ′ and δ̃ is optimised over a grid.

    Parameters
    ----------
    event : PTRDpEvent
        One PTR release.
    delta : float
        Total δ in (0, 1).
    n_compositions : int, default 1
        Number T of releases.

    Returns
    -------
    float
        ε (inf when T·δ0 ≥ δ).

    Raises
    ------
    ValueError
        On invalid parameters.

    Example
    -------
    >>> e = PTRDpEvent(2.0, 1e-8, 1.0, 2.0, 2.0, 2.0, 1.0)
    >>> round(ptr_direct_epsilon(e, 1e-5), 2)
    2.49
    """
    event = _check_event(event, "ptr_direct_epsilon")
    _require_laplace(event, "ptr_direct_epsilon")
    d = _check_probability(delta, "delta", "ptr_direct_epsilon", closed_right=False)
    t = _check_count(n_compositions, "n_compositions", "ptr_direct_epsilon")
    left = d - t * event.delta0
    if left <= 0:
        return math.inf
    best = t * ptr_epsilon_delta(event, left / t * (1 - 1e-12))[0]
    if t > 1:
        for frac in np.concatenate([np.logspace(-6, -0.01, 60), 1 - np.logspace(-6, -0.5, 20)]):
            eps1 = ptr_epsilon_delta(event, frac * left / t)[0]
            slack = (1 - frac) * left
            advanced = eps1 * math.sqrt(2 * t * math.log(1 / slack)) + t * eps1 * math.expm1(eps1)
            best = min(best, advanced)
    return float(best)


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class PTRCalibration:
    """Parameters of a PTR release calibrated to a target (ε, δ) over T compositions.

    Attributes
    ----------
    test_scale : float
        Laplace scale b of the test.
    threshold : float
        B = b·ln(1/(2·δ0)).
    sigma_pass : float
        Gaussian standard deviation on the pass branch (= noise_multiplier·β).
    sigma_fail : float or None
        Gaussian standard deviation of the fallback (= noise_multiplier·GS1), None for ⊥.
    delta0 : float
        Test failure probability δ0.
    noise_multiplier : float
        The common noise-to-sensitivity ratio s.
    epsilon : float
        ε achieved (RDP, improved conversion) at ``delta`` after ``n_compositions``.
    delta : float
        Target δ.
    n_compositions : int
        T.
    event : PTRDpEvent
        The event to charge for each release.
    """

    test_scale: float
    threshold: float
    sigma_pass: float
    sigma_fail: float | None
    delta0: float
    noise_multiplier: float
    epsilon: float
    delta: float
    n_compositions: int
    event: PTRDpEvent


def calibrate_ptr(
    epsilon: float,
    delta: float,
    n_compositions: int = 1,
    *,
    proposed_bound: float,
    global_sensitivity_pass: float,
    global_sensitivity_fail: float | None = None,
    delta0: float | None = None,
    test_scale: float | None = None,
    test_scale_ratio: float = 1.0,
    sampling_rate: float = 1.0,
    orders: Any = None,
    test_noise: str = "laplace",
) -> PTRCalibration:
    """Smallest noise for which T PTR releases are (ε, δ)-DP by the RDP accountant.

    The paper's calibration (Wang et al. 2022, §4): both branches get the same
    noise-to-sensitivity ratio s, σ_pass = s·β and σ_fail = s·GS1; the Laplace test scale is
    fixed (``test_scale``) or tied to s (b = ``test_scale_ratio``·s). s is found by bisection
    on the RDP bound (nonincreasing in s), composed T times and converted with
    :func:`rdp_to_epsilon`; the returned parameters meet the target.

    Parameters
    ----------
    epsilon : float
        Target ε in (0, inf).
    delta : float
        Target δ in (0, 1).
    n_compositions : int, default 1
        Number T of releases.
    proposed_bound : float
        Proposed local-sensitivity bound β in (0, inf).
    global_sensitivity_pass : float
        Global sensitivity GS2 of the robust statistic, in [β, inf).
    global_sensitivity_fail : float, optional
        Global sensitivity GS1 of the fallback; None for the ⊥ fallback.
    delta0 : float, optional
        Test failure probability in (0, 0.5]; default δ/(10·T) (a heuristic that keeps
        the mixture term small; it is not part of δ).
    test_scale : float, optional
        Fixed Laplace scale b; if None, b = ``test_scale_ratio``·s.
    test_scale_ratio : float, default 1.0
        b/s when ``test_scale`` is None.
    sampling_rate : float, default 1.0
        Poisson sampling probability per release.
    orders : array_like, optional
        Rényi orders (> 1); dp-accounting's default grid if None.
    test_noise : {"laplace", "gaussian"}, default "laplace"
        Noise of the test (see :class:`accountants.events.PTRDpEvent`).

    Returns
    -------
    PTRCalibration
        The calibrated parameters and the event to charge.

    Raises
    ------
    ValueError
        On invalid parameters, or if the target cannot be met (a fixed ``test_scale`` whose
        test alone exceeds ε).

    Example
    -------
    >>> c = calibrate_ptr(2.0, 1e-5, 10, proposed_bound=0.1, global_sensitivity_pass=1.0,
    ...                   global_sensitivity_fail=0.2)
    >>> c.epsilon <= 2.0 and c.sigma_fail == c.noise_multiplier * 0.2
    True
    """
    where = "calibrate_ptr"
    target = _check_positive(epsilon, "epsilon", where)
    d = _check_probability(delta, "delta", where, closed_right=False)
    t = _check_count(n_compositions, "n_compositions", where)
    beta = _check_positive(proposed_bound, "proposed_bound", where)
    gs2 = _check_positive(global_sensitivity_pass, "global_sensitivity_pass", where)
    if gs2 < beta:
        raise ValueError(
            "The 'global_sensitivity_pass' parameter of calibrate_ptr must be ≥ proposed_bound "
            f"({beta!r}). Got {global_sensitivity_pass!r} instead."
        )
    gs1 = None
    if global_sensitivity_fail is not None:
        gs1 = _check_positive(global_sensitivity_fail, "global_sensitivity_fail", where)
    d0 = d / (10 * t) if delta0 is None else float(delta0)
    if not (isinstance(d0, float) and 0 < d0 <= 0.5):
        raise ValueError(
            f"The 'delta0' parameter of calibrate_ptr must be a float in (0, 0.5]. "
            f"Got {delta0!r} instead."
        )
    if test_noise not in ("laplace", "gaussian"):
        raise ValueError(
            f"The 'test_noise' parameter of calibrate_ptr must be 'laplace' or 'gaussian'. "
            f"Got {test_noise!r} instead."
        )
    fixed_b = None if test_scale is None else _check_positive(test_scale, "test_scale", where)
    ratio = _check_positive(test_scale_ratio, "test_scale_ratio", where)
    q = _check_probability(sampling_rate, "sampling_rate", where, closed_right=True)
    alphas = DEFAULT_ORDERS if orders is None else _check_orders(orders)
    alphas = alphas[alphas > 1]

    def make(s: float) -> PTRDpEvent:
        b = fixed_b if fixed_b is not None else ratio * s
        return PTRDpEvent(
            test_scale=b,
            delta0=d0,
            proposed_bound=beta,
            sigma_pass=s * beta,
            global_sensitivity_pass=gs2,
            sigma_fail=None if gs1 is None else s * gs1,
            global_sensitivity_fail=0.0 if gs1 is None else gs1,
            test_noise=test_noise,
        )

    def eps_of(s: float) -> float:
        return rdp_to_epsilon(t * ptr_rdp(make(s), alphas, q), alphas, d)

    lo, hi = 1e-3, 1.0
    while eps_of(hi) > target:
        lo, hi = hi, hi * 2.0
        if hi > 1e7:
            raise ValueError(
                f"calibrate_ptr cannot reach epsilon={epsilon!r}: even huge release noise "
                "leaves the test's privacy loss above the target (increase 'test_scale')."
            )
    if eps_of(lo) <= target:
        hi = lo
    else:
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            if eps_of(mid) > target:
                lo = mid
            else:
                hi = mid
            if hi / lo < 1 + 1e-6:
                break
    event = make(hi)
    achieved = eps_of(hi)
    logger.debug("calibrate_ptr: s=%g gives epsilon=%g (target %g)", hi, achieved, target)
    return PTRCalibration(
        test_scale=event.test_scale,
        threshold=_threshold(event.test_scale, d0, test_noise),
        sigma_pass=event.sigma_pass,
        sigma_fail=event.sigma_fail,
        delta0=d0,
        noise_multiplier=hi,
        epsilon=achieved,
        delta=d,
        n_compositions=t,
        event=event,
    )
