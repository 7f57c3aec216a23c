"""Privacy-loss-distribution accountant: dp-accounting's PLD, extended to our events.

The PLD accountant (Koskela et al. 2020; Doroshenko, Ghazi, Kamath, Kumar, Manurangsi 2022,
"Connect the Dots") tracks the distribution of the privacy loss L = ln(dP/dQ)(Y) of a
dominating pair, discretised on a grid of width ``value_discretization_interval`` with
*pessimistic* rounding (each loss rounded up), composes by convolution, and reads
δ(ε) = E[(1 − e^{ε−L})_+] off the result (DESIGN.md §6). For add/remove it takes the worse
of the add and remove directions. Results are upper bounds, close to tight.

Per leaf event:

* standard dp-accounting events: dp-accounting's ``PLDAccountant`` handles them unchanged;
* :class:`~accountants.events.DiscreteGaussianDpEvent`, alone or inside
  ``PoissonSampledDpEvent`` (add/remove relation for q < 1): dp-accounting's
  ``from_discrete_gaussian_mechanism(sigma, sensitivity, sampling_prob=q)``. That PLD
  describes the noise truncated to ``|z| ≤ B = ⌈11.6σ⌉``; the untruncated noise we sample
  differs in total variation by at most ``m = 2·σ·√(π/2)·erfc(B/(σ√2))`` per use, so we
  report ``δ(ε) + Σm + Σ−ln(1−m)`` -- far below 1e-20 in practice. Proof: with M = Σm and
  L = Σ−ln(1−m), the true composition puts at most M more mass on any set than the
  truncated one, and the truncated one's density is at most e^L times the true one's
  (truncation is conditioning), so the true mechanism is (ε, δ_trunc(ε − L) + M)-DP; and
  δ(ε − L) ≤ δ(ε) + L because |dδ/dε| = e^ε·P_Q[loss > ε] ≤ 1;
* :class:`~accountants.events.DiscreteLaplaceDpEvent`, alone or Poisson-sampled
  (add/remove or replace-special): dp-accounting's ``from_discrete_laplace_mechanism`` with
  parameter ``nextafter(1/t, inf)``: a larger parameter means less noise, so the float
  rounding of 1/t can only overstate the loss.

The discrete Gaussian uses dp-accounting's "connect the dots" construction (Doroshenko et al.
2022), as its continuous Gaussian does; it is pessimistic too. The "privacy buckets" rounding
(dp-accounting's default for discrete mechanisms) moves every atom of a discrete privacy loss
up by as much as one grid step, which adds up to about T·interval to ε after T compositions
(+1.0 at T = 10⁴, interval 1e-4). The discrete Laplace keeps privacy buckets, because
connect-the-dots loses its pure-DP cap (δ = 0 beyond ε = Δ/t); choose a fine interval when
composing it many times.

PTR events have no PLD here and raise :class:`~accountants.accountant.UnsupportedEventError`
(use the RDP accountant).
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any

from dp_accounting import dp_event as _dpe
from dp_accounting import privacy_accountant as _dpa
from dp_accounting.pld import pld_privacy_accountant as _dpa_pld
from dp_accounting.pld import privacy_loss_distribution as _pld
from scipy import special

from accountants.accountant import Accountant, NeighboringRelation, register_accountant
from accountants.events import DiscreteGaussianDpEvent, DiscreteLaplaceDpEvent, DpEvent, PTRDpEvent

__all__ = ["PldAccountant"]

logger = logging.getLogger(__name__)

_TRUNCATION_SIGMAS = 11.6  # dp-accounting's default truncation of the discrete Gaussian
_Details = _dpa.PrivacyAccountant.CompositionErrorDetails


def _truncation_bound(sigma: float) -> int:
    return int(math.ceil(_TRUNCATION_SIGMAS * sigma))


def _truncated_mass(sigma: float, bound: int) -> float:
    """Upper bound on P(|Z| > bound) for Z ~ N_Z(0, σ²): 2·∫_bound^∞ e^{−x²/2σ²}dx / Z, Z ≥ 1."""
    return 2.0 * sigma * math.sqrt(math.pi / 2.0) * float(special.erfc(bound / (sigma * math.sqrt(2.0))))


class _CorePld(_dpa_pld.PLDAccountant):
    """dp-accounting's PLDAccountant with our discrete events added (tree walk unchanged)."""

    def __init__(self, relation: NeighboringRelation, interval: float) -> None:
        super().__init__(relation, interval)
        self.truncation_slack = 0.0  # Σ m + Σ −ln(1 − m) over discrete Gaussian uses (see module doc)

    def _maybe_compose(self, event: DpEvent, count: int, do_compose: bool) -> _Details | None:
        q = 1.0
        inner = event
        if isinstance(event, _dpe.PoissonSampledDpEvent) and isinstance(
            event.event, (DiscreteGaussianDpEvent, DiscreteLaplaceDpEvent)
        ):
            q, inner = float(event.sampling_probability), event.event
        if isinstance(inner, DiscreteGaussianDpEvent):
            if q < 1.0 and self.neighboring_relation is not NeighboringRelation.ADD_OR_REMOVE_ONE:
                return _Details(
                    invalid_event=event,
                    error_message="Poisson-subsampled discrete Gaussian needs the add_or_remove_one relation.",
                )
            if do_compose and q > 0.0 and count > 0:
                bound = _truncation_bound(inner.sigma)
                pld = _pld.from_discrete_gaussian_mechanism(
                    inner.sigma,
                    sensitivity=int(inner.sensitivity),
                    truncation_bound=bound,
                    pessimistic_estimate=True,
                    value_discretization_interval=self._value_discretization_interval,
                    sampling_prob=q,
                    use_connect_dots=True,
                )
                self._pld = self._pld.compose(pld.self_compose(count) if count > 1 else pld)
                mass = _truncated_mass(inner.sigma, bound)
                self.truncation_slack += count * (mass - math.log1p(-mass))
            return None
        if isinstance(inner, DiscreteLaplaceDpEvent):
            if self.neighboring_relation not in (
                NeighboringRelation.ADD_OR_REMOVE_ONE,
                NeighboringRelation.REPLACE_SPECIAL,
            ):
                return _Details(
                    invalid_event=event,
                    error_message="DiscreteLaplaceDpEvent needs the add_or_remove_one or replace_special relation.",
                )
            if do_compose and q > 0.0 and count > 0:
                parameter = math.nextafter(1.0 / inner.scale, math.inf)
                pld = _pld.from_discrete_laplace_mechanism(
                    parameter,
                    sensitivity=int(inner.sensitivity),
                    pessimistic_estimate=True,
                    value_discretization_interval=self._value_discretization_interval,
                    sampling_prob=q,
                    use_connect_dots=False,  # connect-the-dots loses the pure-DP cap (δ(ε0) = 0)
                )
                self._pld = self._pld.compose(pld.self_compose(count) if count > 1 else pld)
            return None
        if isinstance(event, PTRDpEvent):
            return _Details(
                invalid_event=event,
                error_message="PTRDpEvent has no privacy loss distribution here; use the RDP accountant.",
            )
        return super()._maybe_compose(event, count, do_compose)

    def snapshot(self) -> tuple[Any, bool, float]:
        return (self._pld, self._contains_non_dp_event, self.truncation_slack)

    def restore(self, state: tuple[Any, bool, float]) -> None:
        self._pld, self._contains_non_dp_event, self.truncation_slack = state

    def delta(self, epsilon: float) -> float:
        # dp-accounting flags zero-noise mechanisms (σ = 0, Laplace parameter 0, ...) as
        # non-DP instead of composing a PLD; reading the PLD alone would report no loss.
        if self._contains_non_dp_event:
            return 1.0
        return float(self._pld.get_delta_for_epsilon(epsilon))

    def epsilon(self, delta: float) -> float:
        if self._contains_non_dp_event:
            return math.inf
        return float(self._pld.get_epsilon_for_delta(delta))


class PldAccountant(Accountant):
    """Privacy-loss-distribution accountant (pessimistic, near-tight upper bounds).

    Parameters
    ----------
    value_discretization_interval : float, default 1e-4
        Grid width of the privacy loss, in (0, 1]; smaller is tighter and slower.
    neighboring_relation : NeighboringRelation or str, default "add_or_remove_one"
        The relation the events' sensitivities refer to.

    Example
    -------
    >>> from accountants.events import PoissonSampledDpEvent, DiscreteGaussianDpEvent
    >>> acc = PldAccountant().compose(PoissonSampledDpEvent(0.01, DiscreteGaussianDpEvent(1.0)), 1000)
    >>> 0 < acc.get_epsilon(1e-5) < 2
    True
    """

    name = "pld"

    def __init__(
        self,
        value_discretization_interval: float = 1e-4,
        neighboring_relation: NeighboringRelation | str = NeighboringRelation.ADD_OR_REMOVE_ONE,
    ) -> None:
        super().__init__(neighboring_relation)
        v = value_discretization_interval
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0 < v <= 1):
            raise ValueError(
                "The 'value_discretization_interval' parameter of PldAccountant must be a float "
                f"in (0, 1]. Got {v!r} instead."
            )
        self.value_discretization_interval = float(v)
        self._core = _CorePld(self.neighboring_relation, float(v))

    def _unsupported_reason(self, event: DpEvent) -> str | None:
        details = self._core._maybe_compose(event, 0, False)
        if details is None:
            return None
        return f"{details.error_message} (offending subevent: {details.invalid_event!r})"

    def _compose(self, event: DpEvent, count: int) -> None:
        self._core.compose(event, count)

    def _get_state(self) -> Any:
        return self._core.snapshot()

    def _set_state(self, state: Any) -> None:
        self._core.restore(state)

    def _delta(self, epsilon: float) -> float:
        return min(1.0, self._core.delta(epsilon) + self._core.truncation_slack)

    def _epsilon(self, delta: float) -> float:
        slack = self._core.truncation_slack
        if slack == 0.0 or self._core._contains_non_dp_event:
            return self._core.epsilon(delta)
        target = delta - slack
        return self._core.epsilon(target) if target > 0.0 else math.inf


register_accountant("pld", PldAccountant)
