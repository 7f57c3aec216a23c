"""Mechanism descriptions (DP events) and their versioned JSON form.

Every private release in privval is first described as a tree of small frozen values, the
``DpEvent`` classes of Google's dp-accounting, extended here with the mechanisms that
dp-accounting 0.6.0 lacks:

* :class:`DiscreteGaussianDpEvent` -- integer noise with ``P(x) ∝ exp(-x²/(2σ²))``
  (Canonne, Kamath, Steinke 2020), the default noise of DP-TKNN-Shapley counts;
* :class:`DiscreteLaplaceDpEvent` -- integer noise with ``P(x) ∝ exp(-|x|/t)``;
* :class:`PTRDpEvent` -- Propose-Test-Release with a Gaussian release in each branch
  (Wang, Mahloujifar, Wang, Jia, Mittal 2022, arXiv 2209.07716; DESIGN.md §5).

Accountants (:mod:`accountants.rdp`, :mod:`accountants.pld`, ...) replay such trees; the
ledger stores them as JSON (:func:`to_json` / :func:`from_json`), described by the JSON Schema
``accountants/schemas/events.schema.json``. The JSON form carries :data:`SCHEMA_VERSION`; once released, fields are only ever added, never renamed or removed.
Decoding only instantiates the event classes registered in this module: a JSON document can
never make the decoder import or call anything else.

The sensitivity fields always refer to the neighbouring relation of the accountant that
replays the event (add/remove one record by default).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Any

import attr
from dp_accounting import dp_event as _dpe
from dp_accounting.dp_event import (
    ComposedDpEvent,
    DpEvent,
    GaussianDpEvent,
    LaplaceDpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    SampledWithoutReplacementDpEvent,
    SelfComposedDpEvent,
    UnsupportedDpEvent,
)

__all__ = [
    "SCHEMA_VERSION",
    "ComposedDpEvent",
    "DiscreteGaussianDpEvent",
    "DiscreteLaplaceDpEvent",
    "DpEvent",
    "GaussianDpEvent",
    "LaplaceDpEvent",
    "NoOpDpEvent",
    "NonPrivateDpEvent",
    "PTRDpEvent",
    "PoissonSampledDpEvent",
    "SampledWithoutReplacementDpEvent",
    "SelfComposedDpEvent",
    "UnsupportedDpEvent",
    "from_dict",
    "from_json",
    "to_dict",
    "to_json",
]

SCHEMA_VERSION: int = 1
"""Version of the JSON form written by :func:`to_dict`. Readers accept any version ≤ this."""


# --------------------------------------------------------------------------- validators
def _positive_finite(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"The '{attribute.name}' parameter of {type(instance).__name__} must be a float "
            f"in (0, inf). Got {value!r} instead."
        )


def _non_negative(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(
            f"The '{attribute.name}' parameter of {type(instance).__name__} must be a float "
            f"in [0, inf]. Got {value!r} instead."
        )


def _open_unit(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(
            f"The '{attribute.name}' parameter of {type(instance).__name__} must be a float "
            f"in (0, 1). Got {value!r} instead."
        )


def _positive_int(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"The '{attribute.name}' parameter of {type(instance).__name__} must be an int "
            f"in [1, inf). Got {value!r} instead."
        )


def _test_noise(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if value not in ("laplace", "gaussian"):
        raise ValueError(
            f"The '{attribute.name}' parameter of {type(instance).__name__} must be 'laplace' or "
            f"'gaussian'. Got {value!r} instead."
        )


def _optional_positive_finite(instance: Any, attribute: attr.Attribute, value: Any) -> None:
    if value is not None:
        _positive_finite(instance, attribute, value)


def _to_int(value: Any) -> Any:
    # numpy integers are accepted and stored as Python ints, so the JSON form is stable.
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


# --------------------------------------------------------------------------- new events
@attr.s(frozen=True, slots=True, auto_attribs=True)
class DiscreteGaussianDpEvent(DpEvent):
    """Discrete Gaussian noise added to an integer-valued query.

    The mechanism outputs ``f(D) + Z`` where ``Z`` has independent coordinates with
    ``P(Z_i = z) ∝ exp(-z² / (2 σ²))`` for integer ``z`` (Canonne, Kamath, Steinke 2020).
    ``sigma`` is the scale parameter, *not* the standard deviation (which is slightly less).

    Neighbouring relation and sensitivity: for neighbouring datasets (under the replaying
    accountant's relation, add/remove one by default) ``f(D) - f(D')`` is an integer vector
    with at most one non-zero coordinate, of absolute value ≤ ``sensitivity``. This covers
    scalar counts and the (Ca, Cm) count pairs of DP-TKNN-Shapley (DESIGN.md §3). The RDP
    accountant's bound, ρ-zCDP with ρ = Δ²/(2σ²), also holds for any integer difference
    with ℓ2 norm ≤ Δ; the PLD accountant's treatment needs the one-coordinate form.

    Parameters
    ----------
    sigma : float
        Scale σ of the discrete Gaussian, in (0, inf).
    sensitivity : int, default 1
        Largest absolute change of the changed coordinate, in [1, inf).

    Example
    -------
    >>> DiscreteGaussianDpEvent(sigma=2.0)
    DiscreteGaussianDpEvent(sigma=2.0, sensitivity=1)
    """

    sigma: float = attr.ib(validator=_positive_finite)
    sensitivity: int = attr.ib(default=1, converter=_to_int, validator=_positive_int)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class DiscreteLaplaceDpEvent(DpEvent):
    """Discrete Laplace noise added to an integer-valued query.

    The mechanism outputs ``f(D) + Z`` with ``P(Z_i = z) ∝ exp(-|z| / t)`` for integer ``z``,
    ``t = scale``. This is dp-accounting's discrete Laplace with ``noise_parameter = 1/t``.
    Neighbouring datasets change ``f`` by an integer vector of ℓ1 norm ≤ ``sensitivity``
    (under the replaying accountant's relation), which gives ε = sensitivity / t pure DP.

    Parameters
    ----------
    scale : float
        Laplace scale t, in (0, inf).
    sensitivity : int, default 1
        ℓ1 sensitivity of the integer query, in [1, inf).

    Example
    -------
    >>> DiscreteLaplaceDpEvent(scale=4.0, sensitivity=2)
    DiscreteLaplaceDpEvent(scale=4.0, sensitivity=2)
    """

    scale: float = attr.ib(validator=_positive_finite)
    sensitivity: int = attr.ib(default=1, converter=_to_int, validator=_positive_int)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class PTRDpEvent(DpEvent):
    """One Propose-Test-Release release with Gaussian noise in both branches.

    Mechanism (Wang, Mahloujifar, Wang, Jia, Mittal 2022, arXiv 2209.07716; DESIGN.md §5):
    with Δ(D) the distance to instability of the robust target f2 for the proposed
    local-sensitivity bound β, test ``Δ(D) + Lap(b) > B`` where ``B = b·ln(1/(2·δ0))``
    (or ``Δ(D) + N(0, b²) > B`` with ``B = b·Φ̄⁻¹(δ0)``, ``test_noise="gaussian"``);
    on pass release ``f2(D) + N(0, σ_pass²)``, on fail release ``f1(D) + N(0, σ_fail²)``
    (or ⊥ when ``sigma_fail`` is None). Δ has sensitivity 1 under the replaying accountant's
    relation; ``global_sensitivity_pass`` bounds the change of f2 outside the safe region
    (it must be finite for a finite RDP bound) and ``global_sensitivity_fail`` the change of
    f1. The RDP of this event is computed by :func:`accountants.ptr.ptr_rdp`.

    Parameters
    ----------
    test_scale : float
        Laplace scale b of the test, in (0, inf).
    delta0 : float
        Failure probability δ0 of the test threshold, in (0, 1).
    proposed_bound : float
        Proposed local-sensitivity bound β, in [0, inf).
    sigma_pass : float
        Standard deviation σ2 of the Gaussian noise on the pass branch, in (0, inf).
    global_sensitivity_pass : float
        Global sensitivity GS2 of f2, in [0, inf] (inf gives no finite RDP).
    sigma_fail : float or None
        Standard deviation σ1 of the fallback's noise; None for the ⊥ fallback.
    global_sensitivity_fail : float
        Global sensitivity GS1 of the fallback f1, in [0, inf) (ignored for ⊥).
    test_noise : {"laplace", "gaussian"}, default "laplace"
        Noise of the test (keyword only). "laplace": ``Δ + Lap(b) > B``,
        ``B = b·ln(1/(2·δ0))`` (Wang et al.'s test). "gaussian": ``Δ + N(0, b²) > B``,
        ``B = b·Φ̄⁻¹(δ0)``, the same pass probability δ0 at Δ = 0 with a threshold about
        three times lower at δ0 = 1e-8 (5.6·b instead of 17.7·b), for a test RDP α/(2b²)
        instead of the Laplace's (which is capped at 1/b, so the Gaussian test costs more at
        small b and about the same at large b).

    Example
    -------
    >>> e = PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 10.0, None, 0.0)
    >>> e.sigma_fail is None
    True
    """

    test_scale: float = attr.ib(validator=_positive_finite)
    delta0: float = attr.ib(validator=_open_unit)
    proposed_bound: float = attr.ib(validator=_non_negative)
    sigma_pass: float = attr.ib(validator=_positive_finite)
    global_sensitivity_pass: float = attr.ib(validator=_non_negative)
    sigma_fail: float | None = attr.ib(validator=_optional_positive_finite)
    global_sensitivity_fail: float = attr.ib(validator=_non_negative)
    test_noise: str = attr.ib(default="laplace", kw_only=True, validator=_test_noise)

    def __attrs_post_init__(self) -> None:
        if not math.isfinite(self.proposed_bound):
            raise ValueError(
                "The 'proposed_bound' parameter of PTRDpEvent must be a float in [0, inf). "
                f"Got {self.proposed_bound!r} instead."
            )
        if self.sigma_fail is not None and not math.isfinite(self.global_sensitivity_fail):
            raise ValueError(
                "The 'global_sensitivity_fail' parameter of PTRDpEvent must be a float in "
                f"[0, inf) when sigma_fail is set. Got {self.global_sensitivity_fail!r} instead."
            )


# --------------------------------------------------------------------------- JSON form
def _registry() -> dict[str, type[DpEvent]]:
    names: dict[str, type[DpEvent]] = {}
    for value in vars(_dpe).values():
        if isinstance(value, type) and issubclass(value, DpEvent) and value is not DpEvent:
            names[f"dp_accounting.{value.__name__}"] = value
    for cls in (DiscreteGaussianDpEvent, DiscreteLaplaceDpEvent, PTRDpEvent):
        names[f"accountants.{cls.__name__}"] = cls
    return names


_TYPES: dict[str, type[DpEvent]] = _registry()
_NAMES: dict[type[DpEvent], str] = {cls: name for name, cls in _TYPES.items()}


def _encode(value: Any) -> Any:
    if isinstance(value, DpEvent):
        name = _NAMES.get(type(value))
        if name is None:
            raise TypeError(
                f"Cannot serialise event type {type(value).__qualname__}: only the events of "
                "dp_accounting.dp_event and accountants.events have a JSON form."
            )
        node: dict[str, Any] = {"type": name}
        for field in attr.fields(type(value)):
            node[field.name] = _encode(getattr(value, field.name))
        return node
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        # JSON has no inf/nan; a tagged object keeps the document standard and exact.
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    raise TypeError(f"Cannot serialise event field value {value!r} of type {type(value)}.")


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"$float"}:
            text = value["$float"]
            if text not in ("inf", "-inf", "nan"):
                raise ValueError(f"Invalid non-finite float tag {text!r} in event JSON.")
            return float(text)
        name = value.get("type")
        cls = _TYPES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"Unknown event type {name!r} in event JSON.")
        known = {f.name for f in attr.fields(cls)}
        fields = {k: v for k, v in value.items() if k != "type"}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(f"Unknown field(s) {sorted(unknown)} for event type {name!r}.")
        try:
            return cls(**{k: _decode(v) for k, v in fields.items()})
        except TypeError as err:
            raise ValueError(f"Invalid fields for event type {name!r}: {err}") from err
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"Invalid value {value!r} in event JSON.")


def to_dict(event: DpEvent) -> dict[str, Any]:
    """Convert an event tree to plain JSON-compatible data.

    Parameters
    ----------
    event : DpEvent
        Any tree of dp-accounting events and the events of this module.

    Returns
    -------
    dict
        ``{"schema_version": SCHEMA_VERSION, "event": node}`` where each node is
        ``{"type": "<package>.<ClassName>", <field>: <value>, ...}``; non-finite floats
        are written ``{"$float": "inf"}``.

    Raises
    ------
    TypeError
        If ``event`` is not a DpEvent, or the tree holds an event type with no JSON form.

    Example
    -------
    >>> to_dict(GaussianDpEvent(1.5))["event"]
    {'type': 'dp_accounting.GaussianDpEvent', 'noise_multiplier': 1.5}
    """
    if not isinstance(event, DpEvent):
        raise TypeError(
            f"The 'event' parameter of to_dict must be a DpEvent. Got {type(event)} instead."
        )
    return {"schema_version": SCHEMA_VERSION, "event": _encode(event)}


def from_dict(data: Mapping[str, Any]) -> DpEvent:
    """Rebuild an event tree from the output of :func:`to_dict`.

    Parameters
    ----------
    data : Mapping
        ``{"schema_version": int, "event": node}`` with version ≤ :data:`SCHEMA_VERSION`.

    Returns
    -------
    DpEvent
        The event tree; equal (``==``) to the one that was serialised.

    Raises
    ------
    ValueError
        On a missing or newer schema version, an unknown event type or field, or field
        values the event class rejects.

    Example
    -------
    >>> from_dict(to_dict(DiscreteGaussianDpEvent(3.0)))
    DiscreteGaussianDpEvent(sigma=3.0, sensitivity=1)
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"The 'data' parameter of from_dict must be a mapping. Got {type(data)} instead."
        )
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(
            f"Unsupported event schema_version {version!r}: this reader understands versions "
            f"1..{SCHEMA_VERSION}."
        )
    if set(data) != {"schema_version", "event"}:
        raise ValueError(f"Event JSON must have exactly the keys schema_version and event; got {sorted(data)}.")
    event = _decode(data["event"])
    if not isinstance(event, DpEvent):
        raise ValueError("The 'event' entry of the event JSON does not describe an event.")
    return event


def to_json(event: DpEvent) -> str:
    """Serialise an event tree as canonical JSON (sorted keys, no whitespace).

    The text is deterministic, so it can be hashed (the ledger chains these hashes).

    Parameters
    ----------
    event : DpEvent
        Event tree to serialise.

    Returns
    -------
    str
        Standard JSON (no NaN/Infinity literals).

    Raises
    ------
    TypeError
        See :func:`to_dict`.

    Example
    -------
    >>> e = SelfComposedDpEvent(PoissonSampledDpEvent(0.01, DiscreteGaussianDpEvent(2.0)), 100)
    >>> from_json(to_json(e)) == e
    True
    """
    return json.dumps(to_dict(event), sort_keys=True, separators=(",", ":"), allow_nan=False)


def from_json(text: str | bytes) -> DpEvent:
    """Parse the output of :func:`to_json` back into an event tree.

    Parameters
    ----------
    text : str or bytes
        JSON document.

    Returns
    -------
    DpEvent
        The event tree.

    Raises
    ------
    ValueError
        On invalid JSON or any error of :func:`from_dict`.

    Example
    -------
    >>> from_json('{"schema_version":1,"event":{"type":"dp_accounting.NoOpDpEvent"}}')
    NoOpDpEvent()
    """
    if not isinstance(text, (str, bytes, bytearray)):
        raise TypeError(
            f"The 'text' parameter of from_json must be a str. Got {type(text)} instead."
        )

    def _reject_constant(name: str) -> Any:
        raise ValueError(f"Event JSON must not contain the non-standard literal {name}.")

    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"Event JSON is not valid JSON: {err}") from err
    return from_dict(data)
