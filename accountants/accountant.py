"""One interface for every privacy accountant, and a registry of accountants by name.

An accountant replays event trees (:mod:`accountants.events`) and answers ε(δ) and δ(ε) for
their composition. It never runs a mechanism. Concrete accountants: ``"rdp"``
(:class:`accountants.rdp.RdpAccountant`), ``"pld"`` (:class:`accountants.pld.PldAccountant`)
and ``"mc"`` (registered by :mod:`accountants.monte_carlo`).

Guarantees shared by all accountants (the abstract test suite checks them for each one):

* an accountant with nothing composed reports ε = 0 and δ = 0;
* a composed :class:`~accountants.events.NonPrivateDpEvent` gives ε = inf, δ = 1;
* an event the accountant cannot bound raises :class:`UnsupportedEventError`, never a 0,
  and a failed :meth:`Accountant.compose` leaves the accountant's state unchanged;
* outputs are rounded toward *more* privacy loss (:func:`round_up`).
"""

from __future__ import annotations

import abc
import importlib
import logging
import math
import numbers
from collections.abc import Callable
from typing import Any

from dp_accounting import dp_event as _dpe
from dp_accounting import privacy_accountant as _dpa

from accountants.events import DpEvent

__all__ = [
    "Accountant",
    "NeighboringRelation",
    "UnsupportedEventError",
    "available_accountants",
    "make_accountant",
    "parse_neighboring_relation",
    "register_accountant",
    "round_up",
]

logger = logging.getLogger(__name__)

NeighboringRelation = _dpa.NeighboringRelation

ROUNDING_RELATIVE_PAD: float = 1e-12
"""Relative pad added to every reported ε and δ (then rounded up one ulp).

The accountants' own arithmetic is in float64 with relative error far below 1e-12 (sums of
at most a few thousand terms); the pad makes sure that rounding error can only overstate,
never understate, the privacy loss."""


class UnsupportedEventError(ValueError, _dpa.UnsupportedEventError):
    """An accountant cannot give a sound bound for (part of) an event tree.

    Subclasses both ``ValueError`` and dp-accounting's ``UnsupportedEventError``, so callers
    catching either one see it.
    """


def round_up(value: float, upper: float = math.inf) -> float:
    """Round a privacy parameter toward more privacy loss.

    Parameters
    ----------
    value : float
        ε or δ as computed, ≥ 0 (inf allowed).
    upper : float, default inf
        Clip to this value after rounding (1.0 for δ).

    Returns
    -------
    float
        ``0`` if ``value == 0``, else ``nextafter(value · (1 + ROUNDING_RELATIVE_PAD), inf)``,
        clipped to ``upper``.

    Example
    -------
    >>> round_up(1.0) > 1.0
    True
    >>> round_up(0.0)
    0.0
    """
    value = float(value)
    if math.isnan(value):
        raise ValueError("An accountant produced NaN; refusing to report it.")
    if value <= 0.0:
        return 0.0
    if math.isinf(value):
        return min(value, upper)
    return min(math.nextafter(value * (1.0 + ROUNDING_RELATIVE_PAD), math.inf), upper)


def parse_neighboring_relation(value: Any) -> _dpa.NeighboringRelation:
    """Accept a ``NeighboringRelation`` or its lower-case name (``"add_or_remove_one"``, ...).

    Parameters
    ----------
    value : NeighboringRelation or str
        The relation.

    Returns
    -------
    NeighboringRelation

    Raises
    ------
    ValueError
        On an unknown name or type.

    Example
    -------
    >>> parse_neighboring_relation("replace_one")
    <NeighboringRelation.REPLACE_ONE: 2>
    """
    if isinstance(value, _dpa.NeighboringRelation):
        return value
    if isinstance(value, str) and value.upper() in _dpa.NeighboringRelation.__members__:
        return _dpa.NeighboringRelation[value.upper()]
    names = [m.lower() for m in _dpa.NeighboringRelation.__members__]
    raise ValueError(
        f"The 'neighboring_relation' parameter must be a NeighboringRelation or one of "
        f"{names}. Got {value!r} instead."
    )


def _check_real(value: Any, name: str, owner: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in [{low}, {high}]. "
            f"Got {value!r} instead."
        )


def _validate_standard_fields(event: DpEvent) -> None:
    """Fail closed on dp-accounting events, which do not validate their own fields.

    A negative count or noise multiplier would otherwise *subtract* privacy loss.
    """
    name = type(event).__name__
    if isinstance(event, _dpe.SelfComposedDpEvent):
        if isinstance(event.count, bool) or not isinstance(event.count, numbers.Integral) or event.count < 0:
            raise ValueError(
                f"The 'count' parameter of {name} must be an int in [0, inf). "
                f"Got {event.count!r} instead."
            )
    elif isinstance(event, (_dpe.PoissonSampledDpEvent,)):
        _check_real(event.sampling_probability, "sampling_probability", name, 0.0, 1.0)
    elif isinstance(event, (_dpe.GaussianDpEvent, _dpe.LaplaceDpEvent)):
        _check_real(event.noise_multiplier, "noise_multiplier", name, 0.0, math.inf)
    elif isinstance(event, (_dpe.SampledWithoutReplacementDpEvent, _dpe.SampledWithReplacementDpEvent)):
        for field in ("source_dataset_size", "sample_size"):
            value = getattr(event, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(
                    f"The '{field}' parameter of {name} must be an int in [0, inf). "
                    f"Got {value!r} instead."
                )
        if event.sample_size > event.source_dataset_size:
            raise ValueError(
                f"The 'sample_size' parameter of {name} must be at most source_dataset_size "
                f"({event.source_dataset_size}). Got {event.sample_size!r} instead."
            )
    elif isinstance(event, _dpe.ComposedDpEvent):
        if not isinstance(event.events, (list, tuple)):
            raise ValueError(
                f"The 'events' parameter of {name} must be a list of DpEvent. "
                f"Got {type(event.events)} instead."
            )
    for child in _children(event):
        if not isinstance(child, DpEvent):
            raise TypeError(f"{name} holds a non-DpEvent child {child!r}.")
        _validate_standard_fields(child)


def _children(event: DpEvent) -> list[Any]:
    if isinstance(event, _dpe.ComposedDpEvent):
        return list(event.events)
    inner = getattr(event, "event", None)
    return [inner] if inner is not None else []


class Accountant(abc.ABC):
    """Abstract privacy accountant: compose event trees, then ask for ε(δ) or δ(ε).

    Subclasses implement :meth:`_unsupported_reason`, :meth:`_compose`, :meth:`_epsilon`,
    :meth:`_delta`, :meth:`_get_state` and :meth:`_set_state`; this class handles
    validation, the empty and non-private cases, transactional composition and rounding.

    Parameters
    ----------
    neighboring_relation : NeighboringRelation or str, default "add_or_remove_one"
        The relation the events' sensitivities refer to.

    Attributes
    ----------
    name : str
        Registry name of the accountant ("rdp", "pld", ...).
    """

    name: str = "abstract"

    def __init__(
        self,
        neighboring_relation: _dpa.NeighboringRelation | str = _dpa.NeighboringRelation.ADD_OR_REMOVE_ONE,
    ) -> None:
        self._neighboring_relation = parse_neighboring_relation(neighboring_relation)
        self._history: list[tuple[DpEvent, int]] = []
        self._non_private = False

    # ----------------------------------------------------------------- public API
    @property
    def neighboring_relation(self) -> _dpa.NeighboringRelation:
        """The neighbouring relation the composed events are accounted under."""
        return self._neighboring_relation

    @property
    def history(self) -> tuple[tuple[DpEvent, int], ...]:
        """The ``(event, count)`` pairs composed so far, in order."""
        return tuple(self._history)

    @property
    def is_empty(self) -> bool:
        """True when no event (with a non-zero count) has been composed."""
        return not any(count > 0 for _, count in self._history)

    def supports(self, event: DpEvent) -> bool:
        """Whether this accountant can soundly account for ``event``.

        Parameters
        ----------
        event : DpEvent
            Event tree.

        Returns
        -------
        bool
            False for unsupported events and for invalid field values.
        """
        try:
            return self.unsupported_reason(event) is None
        except (TypeError, ValueError):
            return False

    def unsupported_reason(self, event: DpEvent) -> str | None:
        """Why ``event`` cannot be accounted (None when it can).

        Raises
        ------
        TypeError, ValueError
            If ``event`` is not a DpEvent tree or holds invalid field values.
        """
        if not isinstance(event, DpEvent):
            raise TypeError(
                f"The 'event' parameter of {type(self).__name__}.compose must be a DpEvent. "
                f"Got {type(event)} instead."
            )
        _validate_standard_fields(event)
        return self._unsupported_reason(event)

    def compose(self, event: DpEvent, count: int = 1) -> Accountant:
        """Account for ``count`` adaptive applications of ``event``.

        Parameters
        ----------
        event : DpEvent
            Event tree.
        count : int, default 1
            Number of repetitions, in [0, inf).

        Returns
        -------
        Accountant
            ``self``, for chaining.

        Raises
        ------
        UnsupportedEventError
            If the accountant cannot bound ``event``; the state is unchanged.
        TypeError, ValueError
            On invalid arguments; the state is unchanged.
        """
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(
                f"The 'count' parameter of {type(self).__name__}.compose must be an int in "
                f"[0, inf). Got {count!r} instead."
            )
        count = int(count)
        reason = self.unsupported_reason(event)
        if reason is not None:
            raise UnsupportedEventError(
                f"{type(self).__name__} cannot account for {event!r}: {reason}"
            )
        state = (self._get_state(), list(self._history), self._non_private)
        try:
            if count > 0:
                self._non_private = self._non_private or _contains_non_private(event)
                self._compose(event, count)
            self._history.append((event, count))
        except BaseException:
            snapshot, history, non_private = state
            self._set_state(snapshot)
            self._history, self._non_private = history, non_private
            raise
        return self

    def get_epsilon(self, delta: float) -> float:
        """Smallest ε the accountant can certify at ``delta``, rounded up.

        Parameters
        ----------
        delta : float
            Target δ in [0, 1].

        Returns
        -------
        float
            ε ≥ 0; ``0.0`` if nothing was composed, ``inf`` after a non-private event.

        Raises
        ------
        ValueError
            If ``delta`` is outside [0, 1].
        """
        _check_real(delta, "delta", f"{type(self).__name__}.get_epsilon", 0.0, 1.0)
        if self._non_private:
            return math.inf
        if self.is_empty:
            return 0.0
        return round_up(self._epsilon(float(delta)))

    def get_delta(self, epsilon: float) -> float:
        """Smallest δ the accountant can certify at ``epsilon``, rounded up.

        Parameters
        ----------
        epsilon : float
            Target ε in [0, inf].

        Returns
        -------
        float
            δ in [0, 1]; ``0.0`` if nothing was composed, ``1.0`` after a non-private event.

        Raises
        ------
        ValueError
            If ``epsilon`` is negative or NaN.
        """
        _check_real(epsilon, "epsilon", f"{type(self).__name__}.get_delta", 0.0, math.inf)
        if self._non_private:
            return 1.0
        if self.is_empty:
            return 0.0
        return round_up(self._delta(float(epsilon)), upper=1.0)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(neighboring_relation={self._neighboring_relation.name.lower()!r}, "
            f"events={len(self._history)})"
        )

    # ----------------------------------------------------------------- subclass hooks
    @abc.abstractmethod
    def _unsupported_reason(self, event: DpEvent) -> str | None:
        """Return None if ``event`` (already field-validated) is supported, else why not."""

    @abc.abstractmethod
    def _compose(self, event: DpEvent, count: int) -> None:
        """Add ``count`` compositions of a supported ``event`` to the state."""

    @abc.abstractmethod
    def _epsilon(self, delta: float) -> float:
        """ε at ``delta`` for the (non-empty, private) composed state, unrounded."""

    @abc.abstractmethod
    def _delta(self, epsilon: float) -> float:
        """δ at ``epsilon`` for the (non-empty, private) composed state, unrounded."""

    @abc.abstractmethod
    def _get_state(self) -> Any:
        """A snapshot of the mutable state, restored by :meth:`_set_state` on failure."""

    @abc.abstractmethod
    def _set_state(self, state: Any) -> None:
        """Restore a snapshot taken by :meth:`_get_state`."""


def _contains_non_private(event: DpEvent) -> bool:
    if isinstance(event, _dpe.NonPrivateDpEvent):
        return True
    if isinstance(event, _dpe.SelfComposedDpEvent) and event.count == 0:
        return False
    if isinstance(event, _dpe.PoissonSampledDpEvent) and event.sampling_probability == 0:
        return False
    return any(_contains_non_private(child) for child in _children(event))


# --------------------------------------------------------------------------- registry
AccountantFactory = Callable[..., Accountant]

_REGISTRY: dict[str, AccountantFactory] = {}

# Accountants that live in other modules register themselves on import; naming the module
# here lets make_accountant("mc") work without the caller importing it first.
_PROVIDERS: dict[str, str] = {
    "rdp": "accountants.rdp",
    "pld": "accountants.pld",
    "mc": "accountants.monte_carlo",
}


def register_accountant(name: str, factory: AccountantFactory, *, overwrite: bool = False) -> None:
    """Make ``make_accountant(name, **kwargs)`` call ``factory(**kwargs)``.

    Parameters
    ----------
    name : str
        Registry key (lower case, e.g. "mc").
    factory : callable
        Returns an :class:`Accountant`; usually the class itself.
    overwrite : bool, default False
        Replace an existing, different factory under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is taken by a different factory and ``overwrite`` is False.

    Example
    -------
    >>> from accountants.rdp import RdpAccountant
    >>> register_accountant("rdp", RdpAccountant)  # idempotent
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"The 'name' parameter of register_accountant must be a non-empty str. Got {name!r} instead.")
    if not callable(factory):
        raise TypeError(f"The 'factory' parameter of register_accountant must be callable. Got {factory!r} instead.")
    existing = _REGISTRY.get(name)
    same = existing is not None and (
        existing is factory
        or (
            getattr(existing, "__module__", None) == getattr(factory, "__module__", object())
            and getattr(existing, "__qualname__", None) == getattr(factory, "__qualname__", object())
        )
    )
    if existing is not None and not same and not overwrite:
        raise ValueError(
            f"An accountant is already registered as {name!r} ({existing!r}); pass "
            "overwrite=True to replace it."
        )
    _REGISTRY[name] = factory


def available_accountants() -> list[str]:
    """Names accepted by :func:`make_accountant` (importing the built-in providers first).

    Returns
    -------
    list of str
        Sorted registry names.
    """
    for name in _PROVIDERS:
        _load_provider(name)
    return sorted(_REGISTRY)


def _load_provider(name: str) -> None:
    module = _PROVIDERS.get(name)
    if module is None or name in _REGISTRY:
        return
    try:
        importlib.import_module(module)
    except ImportError as err:
        # Only a missing provider module itself is tolerated; errors inside it propagate.
        if getattr(err, "name", None) != module:
            raise
        logger.debug("Accountant provider %s for %r is not available.", module, name)


def make_accountant(name: str, **kwargs: Any) -> Accountant:
    """Create a registered accountant by name.

    Parameters
    ----------
    name : str
        "rdp", "pld", "mc" or any name given to :func:`register_accountant`.
    **kwargs
        Passed to the accountant's constructor.

    Returns
    -------
    Accountant
        A fresh, empty accountant.

    Raises
    ------
    ValueError
        If no accountant is registered under ``name``.

    Example
    -------
    >>> acc = make_accountant("pld")
    >>> acc.get_epsilon(1e-5)
    0.0
    """
    if isinstance(name, Accountant):
        raise TypeError("make_accountant takes an accountant name, not an Accountant instance.")
    if not isinstance(name, str):
        raise ValueError(f"The 'name' parameter of make_accountant must be a str. Got {name!r} instead.")
    _load_provider(name)
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(
            f"The 'name' parameter of make_accountant must be one of {available_accountants()}. "
            f"Got {name!r} instead."
        )
    accountant = factory(**kwargs)
    if not isinstance(accountant, Accountant):
        raise TypeError(f"The factory registered as {name!r} returned {type(accountant)}, not an Accountant.")
    return accountant
