"""Calibrate a noise scale to a target (ε, δ) with any accountant.

``calibrate(make_event, epsilon, delta)`` finds (approximately) the smallest scale s with
``ε_acc(make_event(s), δ) ≤ epsilon``: it brackets the answer by doubling/halving and then
bisects, always keeping the upper end on the safe side, and returns that upper end. The
search is deterministic (same inputs, same output) and every returned scale has been
checked with the accountant, so the result is safe even where ε(s) is not monotone; it is
the *smallest* such scale when ε(s) is non-increasing, which holds for every noise event
here (more noise, less privacy loss).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from accountants.accountant import Accountant, make_accountant
from accountants.events import DpEvent

__all__ = ["calibrate"]

logger = logging.getLogger(__name__)

_MIN_SCALE = 2.0**-30
_MAX_SCALE = 2.0**40
# Accountants whose numbers are estimates, not bounds (see accountants.monte_carlo).
_ESTIMATORS = frozenset({"mc"})


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"The '{name}' parameter of calibrate must be a float in (0, inf). Got {value!r} instead.")
    return float(value)


def calibrate(
    make_event: Callable[[float], DpEvent],
    epsilon: float,
    delta: float,
    *,
    accountant: str | Callable[[], Accountant] = "pld",
    lower: float | None = None,
    upper: float | None = None,
    rtol: float = 1e-4,
    max_iter: int = 100,
    accountant_kwargs: Mapping[str, Any] | None = None,
) -> float:
    """Smallest noise scale whose event meets (epsilon, delta), on the safe side.

    Parameters
    ----------
    make_event : callable
        Maps a scale s > 0 (e.g. σ) to the complete event tree of the release, e.g.
        ``lambda s: SelfComposedDpEvent(PoissonSampledDpEvent(q, DiscreteGaussianDpEvent(s)), T)``.
        Its privacy loss must not increase with s.
    epsilon : float
        Target ε in (0, inf).
    delta : float
        Target δ in [0, 1).
    accountant : str or callable, default "pld"
        A registry name (see :func:`accountants.make_accountant`) or a zero-argument factory
        returning a fresh :class:`~accountants.accountant.Accountant`.
    lower, upper : float, optional
        A bracket for the scale. ``upper`` must meet the target (else ValueError); if
        ``lower`` already meets it, ``lower`` is returned. Without them the bracket is
        found by doubling/halving from 1 within [2**-30, 2**40].
    rtol : float, default 1e-4
        Stop when the bracket is narrower than ``rtol`` times its upper end.
    max_iter : int, default 100
        Cap on bisection steps.
    accountant_kwargs : mapping, optional
        Keyword arguments for ``make_accountant`` (e.g. ``{"value_discretization_interval": 1e-3}``).

    Returns
    -------
    float
        A scale s with ε(s) ≤ epsilon (checked); within ``rtol`` of the smallest such scale
        when ε(s) is non-increasing.

    Raises
    ------
    ValueError
        On invalid arguments, or if no scale up to ``upper`` (default 2**40) meets the target.
    UnsupportedEventError
        If the accountant cannot handle the events built by ``make_event``.

    Example
    -------
    >>> from accountants.events import GaussianDpEvent
    >>> s = calibrate(lambda s: GaussianDpEvent(s), 1.0, 1e-5)
    >>> round(s, 2)  # analytic Gaussian (Balle & Wang 2018) gives 3.7306
    3.73
    """
    if not callable(make_event):
        raise TypeError(f"The 'make_event' parameter of calibrate must be callable. Got {type(make_event)} instead.")
    target = _positive(epsilon, "epsilon")
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0.0 <= delta < 1.0:
        raise ValueError(f"The 'delta' parameter of calibrate must be a float in [0, 1). Got {delta!r} instead.")
    rtol = _positive(rtol, "rtol")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"The 'max_iter' parameter of calibrate must be an int in [1, inf). Got {max_iter!r} instead.")
    kwargs = dict(accountant_kwargs or {})
    if isinstance(accountant, Accountant):
        raise TypeError(
            "The 'accountant' parameter of calibrate must be a name or a factory, not an "
            "Accountant instance (calibration needs a fresh accountant per trial)."
        )
    if isinstance(accountant, str):
        name = accountant
        make_accountant(name, **kwargs)  # fail fast on a bad name or kwargs

        def factory() -> Accountant:
            return make_accountant(name, **kwargs)

    elif callable(accountant):
        if kwargs:
            raise ValueError("The 'accountant_kwargs' parameter of calibrate applies only to an accountant name.")
        factory = accountant
    else:
        raise TypeError(f"The 'accountant' parameter of calibrate must be a str or a callable. Got {type(accountant)} instead.")

    probe = factory()
    if not isinstance(probe, Accountant):
        raise TypeError(f"The accountant factory returned {type(probe)}, not an Accountant.")
    if probe.name in _ESTIMATORS:
        raise ValueError(
            f"The 'accountant' parameter of calibrate must bound the privacy loss; {probe.name!r} "
            "only estimates it (use accountants.evr.calibrate_noise to calibrate with a "
            "verified Monte Carlo estimate)."
        )
    cache: dict[float, float] = {}

    def eps_at(scale: float) -> float:
        if scale not in cache:
            acc = factory()
            if not isinstance(acc, Accountant):
                raise TypeError(f"The accountant factory returned {type(acc)}, not an Accountant.")
            event = make_event(scale)
            cache[scale] = acc.compose(event).get_epsilon(float(delta))
        return cache[scale]

    def ok(scale: float) -> bool:
        return eps_at(scale) <= target

    lo_given = None if lower is None else _positive(lower, "lower")
    hi_given = None if upper is None else _positive(upper, "upper")
    if lo_given is not None and hi_given is not None and lo_given >= hi_given:
        raise ValueError(f"The 'lower' parameter of calibrate must be below upper ({hi_given}). Got {lo_given!r} instead.")

    # --- bracket: hi meets the target, lo does not
    if hi_given is not None:
        hi = hi_given
        if not ok(hi):
            raise ValueError(
                f"The 'upper' parameter of calibrate ({hi}) does not meet the target: "
                f"epsilon({hi}) = {eps_at(hi)} > {target}. Pass a larger upper bound."
            )
    else:
        hi = 1.0 if lo_given is None else max(1.0, 2.0 * lo_given)
        while not ok(hi):
            if hi >= _MAX_SCALE:
                raise ValueError(
                    f"No scale up to {_MAX_SCALE} meets epsilon={target}, delta={delta} "
                    f"(epsilon({hi}) = {eps_at(hi)}). Is the event's privacy loss decreasing in the scale?"
                )
            hi *= 2.0
    if lo_given is not None:
        lo = lo_given
        if ok(lo):
            return lo
    else:
        lo = hi / 2.0
        while ok(lo):
            hi = lo
            if lo <= _MIN_SCALE:
                logger.info("calibrate: every scale down to %g meets the target.", lo)
                return lo
            lo /= 2.0

    # --- bisection, invariant: ok(hi) and not ok(lo)
    for _ in range(max_iter):
        if hi - lo <= rtol * hi:
            break
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if ok(mid):
            hi = mid
        else:
            lo = mid
    logger.debug("calibrate: scale %r gives epsilon %r (target %r).", hi, eps_at(hi), target)
    return hi
