"""Rényi-DP accountant: dp-accounting's RDP for standard events, plus our events.

RDP (Mironov 2017) composes by adding the curves ε(α) over a grid of orders α; the curve
is converted to (ε, δ) with the improved conversion of Balle, Barthe, Gaboardi, Hsu, Sato
2020 (Prop. 12; also Canonne, Kamath, Steinke 2020, eq. 20):
``ε = min_α ε(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1)``, as implemented in dp-accounting.

Per leaf event:

* standard dp-accounting events (Gaussian, Laplace, Poisson-sampled or sampled-without-
  replacement Gaussian, ...): dp-accounting's ``RdpAccountant`` computes the curve; under the
  replace-one relation a Gaussian's noise multiplier is read relative to the add/remove
  sensitivity, so it is halved first (as dp-accounting's PLD does; see
  ``_replace_one_gaussians``);
* :class:`~accountants.events.DiscreteGaussianDpEvent`: ρ-zCDP with ρ = Δ²/(2σ²)
  (Canonne, Kamath, Steinke 2020, Thm. 4), i.e. ε(α) = α·ρ;
* ``PoissonSampledDpEvent(q, DiscreteGaussianDpEvent)``: the exact Rényi divergences of the
  subsampled discrete Gaussian, computed by summation over the integers
  (:func:`subsampled_discrete_gaussian_rdp`; add/remove relation only);
* :class:`~accountants.events.DiscreteLaplaceDpEvent`: pure ε-DP with ε = Δ/t, hence
  ε(α) ≤ min(ε, α·ε²/2) (Bun & Steinke 2016, Prop. 3.3; Mironov 2017, Prop. 3);
* :class:`~accountants.events.PTRDpEvent`, alone or Poisson-sampled:
  :func:`accountants.ptr.ptr_rdp` (Wang et al. 2022), imported lazily.

Anything else raises :class:`~accountants.accountant.UnsupportedEventError`.
"""

from __future__ import annotations

import importlib
import logging
import math
import numbers
from typing import Any

import attr
import numpy as np
from dp_accounting import dp_event as _dpe
from dp_accounting.rdp import rdp_privacy_accountant as _dpa_rdp
from scipy import special

from accountants.accountant import (
    Accountant,
    NeighboringRelation,
    register_accountant,
)
from accountants.events import (
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    DpEvent,
    PTRDpEvent,
)

__all__ = ["DEFAULT_ORDERS", "RdpAccountant", "subsampled_discrete_gaussian_rdp"]

logger = logging.getLogger(__name__)

DEFAULT_ORDERS: tuple[float, ...] = tuple(_dpa_rdp.DEFAULT_RDP_ORDERS)
"""dp-accounting's default orders: 1.1, 1.2, ..., 10.9, 11, 12, ..., 63, 128, 256, 512, 1024."""

_MAX_SUBSAMPLED_DG_SENSITIVITY = 64
# exp(-_TAIL_NATS) bounds the relative mass left out of the integer sums (far below float64 ulp).
_TAIL_NATS = 750.0


class _Unsupported(Exception):
    """Internal: carries the reason an event cannot be accounted."""


def subsampled_discrete_gaussian_rdp(
    sampling_probability: float, sigma: float, sensitivity: int, orders: Any
) -> np.ndarray:
    """RDP of the Poisson-subsampled discrete Gaussian mechanism (add/remove relation).

    Derivation. Let D′ = D ∪ {z} and S a Poisson sample of D. The outputs are the mixtures
    ``E_S[(1−q)·N_Z(f(S)) + q·N_Z(f(S∪{z}))]`` and ``E_S[N_Z(f(S))]`` over the *same* law of
    S, so by joint quasi-convexity of the Rényi divergence (van Erven & Harremoës 2014,
    Thm. 13) both directions are at most the maximum over S of the per-sample divergences.
    The discrete Gaussian is shift-invariant on the integers and ``f(S∪{z}) − f(S)`` is an
    integer d with 0 < |d| ≤ Δ in one coordinate (the event's convention), so with
    P = N_Z(0, σ²) and g_d(x) = (1−q) + q·exp((2xd − d²)/(2σ²)) = [(1−q)P + qP(·−d)]/P:

        ε(α) = max_{1≤d≤Δ} max{ ln E_P[g_d^α], ln E_P[g_d^(1−α)] } / (α−1),

    (d and −d give the same values by symmetry). The expectations are sums over integers,
    computed in log space on a window whose left-out mass is below exp(−750) relative to the
    sum; the normaliser of P is summed on a window, i.e. slightly *under*-estimated, which
    can only increase the result. α = 1 uses the KL limit, α = inf gives inf for q < 1.

    Parameters
    ----------
    sampling_probability : float
        Poisson sampling rate q in [0, 1].
    sigma : float
        Discrete Gaussian scale σ in (0, inf).
    sensitivity : int
        Δ in [1, 64].
    orders : array_like
        Rényi orders α ≥ 1.

    Returns
    -------
    numpy.ndarray
        ε(α) for each order (not rounded; the accountant rounds its outputs up).

    Raises
    ------
    ValueError
        On invalid parameters.

    Example
    -------
    >>> round(float(subsampled_discrete_gaussian_rdp(1.0, 2.0, 1, [3.0])[0]), 12)  # α/(2σ²)
    0.375
    """
    q = float(sampling_probability)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"The 'sampling_probability' parameter must be a float in [0, 1]. Got {sampling_probability!r} instead.")
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"The 'sigma' parameter must be a float in (0, inf). Got {sigma!r} instead.")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, numbers.Integral) or not 1 <= sensitivity <= _MAX_SUBSAMPLED_DG_SENSITIVITY:
        raise ValueError(f"The 'sensitivity' parameter must be an int in [1, {_MAX_SUBSAMPLED_DG_SENSITIVITY}]. Got {sensitivity!r} instead.")
    alphas = np.asarray(orders, dtype=np.float64).reshape(-1)
    if np.any(~(alphas >= 1.0)):
        raise ValueError(f"The 'orders' parameter must hold floats in [1, inf]. Got {orders!r} instead.")
    out = np.zeros(alphas.shape, dtype=np.float64)
    if q == 0.0:
        return out
    s2 = float(sigma) ** 2
    if not (math.isfinite(s2) and s2 > 0.0):
        raise ValueError(
            f"The 'sigma' parameter must have a finite, non-zero square in float64. Got {sigma!r} instead."
        )
    log_q, log_1mq = math.log(q), (math.log1p(-q) if q < 1.0 else -math.inf)
    # log normaliser, summed over a window holding all but exp(-_TAIL_NATS) of the mass
    r0 = int(math.ceil(math.sqrt(2.0 * _TAIL_NATS * s2))) + 1
    xs0 = np.arange(-r0, r0 + 1, dtype=np.float64)
    log_z = special.logsumexp(-xs0 * xs0 / (2.0 * s2))
    for i, alpha in enumerate(alphas):
        if math.isinf(alpha):
            out[i] = math.inf if q < 1.0 else math.inf
            continue
        best = 0.0
        for d in range(1, int(sensitivity) + 1):
            # window: see docstring; the right edge follows the peak of P·g^α near x = αd
            extra = (alpha * -log_q if q < 1.0 else 0.0) + ((alpha - 1.0) * -log_1mq if q < 1.0 else 0.0)
            r = int(math.ceil(math.sqrt(2.0 * (_TAIL_NATS + extra) * s2))) + d + 1
            xs = np.arange(-r, int(math.ceil(alpha * d)) + r + 1, dtype=np.float64)
            log_p = -xs * xs / (2.0 * s2) - log_z
            shift = (2.0 * xs * d - d * d) / (2.0 * s2)
            log_g = np.logaddexp(log_1mq, log_q + shift) if q < 1.0 else shift
            if alpha == 1.0:
                g = np.exp(log_g)
                p = np.exp(log_p)
                kl_a = float(np.sum(p * g * log_g))  # KL(M || P) = E_P[g ln g]
                kl_b = float(np.sum(p * -log_g))  # KL(P || M) = E_P[-ln g]
                value = max(kl_a, kl_b)
            else:
                a = special.logsumexp(log_p + alpha * log_g) / (alpha - 1.0)
                b = special.logsumexp(log_p + (1.0 - alpha) * log_g) / (alpha - 1.0)
                value = max(a, b)
            # NaN (an arithmetic failure) must count as unbounded, never be dropped by max().
            best = max(best, math.inf if math.isnan(value) else value)
        out[i] = best
    return out


def _discrete_laplace_rdp(event: DiscreteLaplaceDpEvent, alphas: np.ndarray) -> np.ndarray:
    eps = event.sensitivity / event.scale
    with np.errstate(invalid="ignore"):
        return np.minimum(eps, alphas * eps * eps / 2.0)


class RdpAccountant(Accountant):
    """Rényi-DP accountant (upper bounds), delegating standard events to dp-accounting.

    Parameters
    ----------
    orders : sequence of float, optional
        Rényi orders α > 1 at which curves are tracked; default :data:`DEFAULT_ORDERS`.
    neighboring_relation : NeighboringRelation or str, default "add_or_remove_one"
        The relation the events' sensitivities refer to. Poisson-sampled discrete Gaussian
        and PTR events need add/remove.

    Example
    -------
    >>> from accountants.events import PoissonSampledDpEvent, GaussianDpEvent
    >>> acc = RdpAccountant().compose(PoissonSampledDpEvent(0.04, GaussianDpEvent(1.5)), 2250)
    >>> round(acc.get_epsilon(1e-5), 3)
    7.329
    """

    name = "rdp"

    def __init__(
        self,
        orders: Any = None,
        neighboring_relation: NeighboringRelation | str = NeighboringRelation.ADD_OR_REMOVE_ONE,
    ) -> None:
        super().__init__(neighboring_relation)
        alphas = np.asarray(DEFAULT_ORDERS if orders is None else orders, dtype=np.float64).reshape(-1)
        if alphas.size == 0 or np.any(~(alphas > 1.0)) or np.any(np.isnan(alphas)):
            raise ValueError(
                "The 'orders' parameter of RdpAccountant must be a non-empty sequence of floats "
                f"in (1, inf]. Got {orders!r} instead."
            )
        self._orders = alphas
        self._rdp = np.zeros_like(alphas)

    @property
    def orders(self) -> np.ndarray:
        """The Rényi orders (a copy)."""
        return self._orders.copy()

    @property
    def rdp(self) -> np.ndarray:
        """The composed RDP curve ε(α) at :attr:`orders` (a copy, unrounded)."""
        return self._rdp.copy()

    # ----------------------------------------------------------------- hooks
    def _unsupported_reason(self, event: DpEvent) -> str | None:
        try:
            self._curve(event, compute=False)
        except _Unsupported as err:
            return str(err)
        return None

    def _compose(self, event: DpEvent, count: int) -> None:
        curve = self._curve(event, compute=True)
        self._rdp = self._rdp + _times(count, curve)

    def _finite(self) -> tuple[np.ndarray, np.ndarray]:
        # Orders with an infinite bound say nothing; dropping them keeps inf − inf out of the
        # conversion (dp-accounting also marks orders it could not compute as inf).
        keep = np.isfinite(self._rdp)
        return self._orders[keep], self._rdp[keep]

    def _epsilon(self, delta: float) -> float:
        orders, rdp = self._finite()
        if orders.size == 0:
            return math.inf
        eps, _ = _dpa_rdp.compute_epsilon(orders, rdp, delta)
        return float(eps)

    def _delta(self, epsilon: float) -> float:
        orders, rdp = self._finite()
        if orders.size == 0:
            return 1.0
        if math.isinf(epsilon):
            return 0.0  # a finite Rényi divergence rules out an infinite privacy loss
        delta, _ = _dpa_rdp.compute_delta(orders, rdp, epsilon)
        return float(delta)

    def _get_state(self) -> Any:
        return self._rdp.copy()

    def _set_state(self, state: Any) -> None:
        self._rdp = state

    # ----------------------------------------------------------------- tree walk
    def _curve(self, event: DpEvent, compute: bool) -> np.ndarray | None:
        """RDP curve of one application of ``event`` (None when only checking)."""
        zeros = np.zeros_like(self._orders)
        if isinstance(event, _dpe.NoOpDpEvent):
            return zeros
        if isinstance(event, _dpe.NonPrivateDpEvent):
            return np.full_like(self._orders, np.inf)
        if isinstance(event, _dpe.SelfComposedDpEvent):
            inner = self._curve(event.event, compute)
            return _times(event.count, inner) if compute else None
        if isinstance(event, _dpe.ComposedDpEvent):
            total = zeros
            for child in event.events:
                curve = self._curve(child, compute)
                if compute:
                    total = total + curve
            return total if compute else None
        if isinstance(event, DiscreteGaussianDpEvent):
            rho = event.sensitivity**2 / (2.0 * event.sigma**2)
            return rho * self._orders
        if isinstance(event, DiscreteLaplaceDpEvent):
            return _discrete_laplace_rdp(event, self._orders)
        if isinstance(event, PTRDpEvent):
            return self._ptr_curve(event, 1.0, compute)
        if isinstance(event, _dpe.PoissonSampledDpEvent) and isinstance(
            event.event, (DiscreteGaussianDpEvent, PTRDpEvent)
        ):
            return self._poisson_custom(event, compute)
        if _holds_custom(event):
            raise _Unsupported(
                f"{type(event).__name__} wrapping a discrete-noise or PTR event has no RDP "
                "bound here (supported: such events alone, or directly inside "
                "PoissonSampledDpEvent)."
            )
        return self._delegate(event, compute)

    def _poisson_custom(self, event: _dpe.PoissonSampledDpEvent, compute: bool) -> np.ndarray | None:
        q, inner = float(event.sampling_probability), event.event
        if q == 0.0:
            return np.zeros_like(self._orders)
        if q == 1.0:
            return self._curve(inner, compute)
        if self.neighboring_relation is not NeighboringRelation.ADD_OR_REMOVE_ONE:
            raise _Unsupported(
                "Poisson-subsampled discrete Gaussian/PTR events need the add_or_remove_one "
                f"relation; this accountant uses {self.neighboring_relation.name.lower()}."
            )
        if isinstance(inner, PTRDpEvent):
            return self._ptr_curve(inner, q, compute)
        if inner.sensitivity > _MAX_SUBSAMPLED_DG_SENSITIVITY:
            raise _Unsupported(
                f"Poisson-subsampled discrete Gaussian with sensitivity > {_MAX_SUBSAMPLED_DG_SENSITIVITY} "
                "is not supported by the RDP accountant."
            )
        if not compute:
            return None
        return subsampled_discrete_gaussian_rdp(q, inner.sigma, inner.sensitivity, self._orders)

    def _ptr_curve(self, event: PTRDpEvent, q: float, compute: bool) -> np.ndarray | None:
        try:
            module = importlib.import_module("accountants.ptr")
            ptr_rdp = module.ptr_rdp
        except (ImportError, AttributeError) as err:
            raise _Unsupported(f"PTR events need accountants.ptr.ptr_rdp, which is unavailable ({err}).") from err
        if not compute:
            return None
        curve = np.asarray(ptr_rdp(event, self._orders, sampling_rate=q), dtype=np.float64)
        if curve.shape != self._orders.shape or np.any(np.isnan(curve)):
            raise _Unsupported("accountants.ptr.ptr_rdp returned an invalid curve.")
        return curve

    def _delegate(self, event: DpEvent, compute: bool) -> np.ndarray | None:
        if self.neighboring_relation is NeighboringRelation.REPLACE_ONE:
            event = _replace_one_gaussians(event)
        inner = _dpa_rdp.RdpAccountant(list(self._orders), self.neighboring_relation)
        if not inner.supports(event):
            raise _Unsupported(
                f"dp-accounting's RdpAccountant does not support {event!r} under the "
                f"{self.neighboring_relation.name.lower()} relation."
            )
        if not compute:
            return None
        inner.compose(event, 1)
        return np.asarray(inner.rdp, dtype=np.float64)


def _replace_one_gaussians(event: DpEvent) -> DpEvent:
    """Halve every Gaussian and Laplace noise multiplier: their replace-one reading.

    A ``GaussianDpEvent(σ)`` states σ relative to the add/remove sensitivity (the clipping
    norm in DP-SGD). Replacing one record moves the sum by up to twice that, which
    dp-accounting's PLD accountant honours (sensitivity 2 under ``REPLACE_ONE``) but its RDP
    accountant does not (it uses the add/remove curve for every relation). Reading σ as σ/2
    here makes both accountants agree and can only increase the reported loss. The same holds
    for ``LaplaceDpEvent(b)`` (ε = 2/b under replace-one; dp-accounting's PLD refuses it, its
    RDP reported 1/b), and the rewrite reaches every wrapper with an ``event`` field
    (e.g. ``RepeatAndSelectDpEvent``), not only the ones listed below.
    """
    if isinstance(event, _dpe.GaussianDpEvent):
        return _dpe.GaussianDpEvent(event.noise_multiplier / 2.0)
    if isinstance(event, _dpe.LaplaceDpEvent):
        return _dpe.LaplaceDpEvent(event.noise_multiplier / 2.0)
    if isinstance(event, _dpe.SelfComposedDpEvent):
        return _dpe.SelfComposedDpEvent(_replace_one_gaussians(event.event), event.count)
    if isinstance(event, _dpe.ComposedDpEvent):
        return _dpe.ComposedDpEvent([_replace_one_gaussians(e) for e in event.events])
    if isinstance(event, _dpe.PoissonSampledDpEvent):
        return _dpe.PoissonSampledDpEvent(event.sampling_probability, _replace_one_gaussians(event.event))
    if isinstance(event, _dpe.SampledWithoutReplacementDpEvent):
        return _dpe.SampledWithoutReplacementDpEvent(
            event.source_dataset_size, event.sample_size, _replace_one_gaussians(event.event)
        )
    inner = getattr(event, "event", None)
    if isinstance(inner, DpEvent) and attr.has(type(event)):
        return attr.evolve(event, event=_replace_one_gaussians(inner))
    return event


def _times(count: int, curve: np.ndarray) -> np.ndarray:
    # 0 · inf must be 0 (an event composed zero times costs nothing), not NaN.
    if count == 0:
        return np.zeros_like(curve)
    return count * curve


def _holds_custom(event: DpEvent) -> bool:
    if isinstance(event, (DiscreteGaussianDpEvent, DiscreteLaplaceDpEvent, PTRDpEvent)):
        return True
    if isinstance(event, _dpe.ComposedDpEvent):
        return any(_holds_custom(e) for e in event.events)
    inner = getattr(event, "event", None)
    return isinstance(inner, DpEvent) and _holds_custom(inner)


register_accountant("rdp", RdpAccountant)
