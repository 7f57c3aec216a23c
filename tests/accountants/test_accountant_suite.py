"""Invariants every registered accountant must satisfy (one suite, run against each).

Checked for each name in the registry: an empty accountant reports ε = δ = 0; a non-private
event gives ε = inf, δ = 1; composing more steps never lowers ε; get_delta(get_epsilon(δ))
is at most δ (up to the tolerance of float rounding); unsupported events raise
UnsupportedEventError and a failed compose leaves the accountant unchanged; invalid
arguments are refused with errors naming the parameter.
"""

from __future__ import annotations

import math

import pytest

from accountants import (
    ComposedDpEvent,
    GaussianDpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
    UnsupportedDpEvent,
    UnsupportedEventError,
    available_accountants,
    make_accountant,
    register_accountant,
)
from accountants.accountant import Accountant, round_up
from accountants.pld import PldAccountant
from accountants.rdp import RdpAccountant

# Small, fixed-seed settings for accountants whose defaults are slow or random.
_KWARGS = {"mc": {"n_samples": 20_000, "rng": 0}}
NAMES = available_accountants()


def _make(name: str) -> Accountant:
    return make_accountant(name, **_KWARGS.get(name, {}))


def _step() -> PoissonSampledDpEvent:
    return PoissonSampledDpEvent(0.1, GaussianDpEvent(1.0))


def test_core_accountants_registered():
    assert {"rdp", "pld"} <= set(NAMES)
    assert isinstance(make_accountant("rdp"), RdpAccountant)
    assert isinstance(make_accountant("pld"), PldAccountant)


@pytest.mark.parametrize("name", NAMES)
class TestAccountantContract:
    def test_empty_is_zero(self, name):
        acc = _make(name)
        assert acc.get_epsilon(1e-5) == 0.0
        assert acc.get_delta(1.0) == 0.0
        assert acc.name == name

    def test_noop_costs_nothing(self, name):
        acc = _make(name).compose(NoOpDpEvent(), 5)
        assert acc.get_epsilon(1e-5) == 0.0

    def test_non_private_is_infinite(self, name):
        acc = _make(name).compose(_step(), 3).compose(NonPrivateDpEvent())
        assert acc.get_epsilon(1e-5) == math.inf
        assert acc.get_delta(10.0) == 1.0

    def test_composition_is_monotone(self, name):
        acc = _make(name)
        previous = 0.0
        for _ in range(4):
            acc.compose(_step(), 10)
            eps = acc.get_epsilon(1e-3)
            assert math.isfinite(eps) and eps > previous
            previous = eps

    def test_delta_of_epsilon_round_trip(self, name):
        acc = _make(name).compose(_step(), 30)
        for delta in (1e-2, 1e-3):
            eps = acc.get_epsilon(delta)
            assert acc.get_delta(eps) <= delta * (1 + 1e-9)

    def test_self_composed_equals_count(self, name):
        a = _make(name).compose(SelfComposedDpEvent(GaussianDpEvent(3.0), 4))
        b = _make(name).compose(GaussianDpEvent(3.0), count=4)
        assert a.get_epsilon(1e-3) == pytest.approx(b.get_epsilon(1e-3), rel=0.05)

    def test_unsupported_raises(self, name):
        acc = _make(name)
        assert not acc.supports(UnsupportedDpEvent())
        with pytest.raises(UnsupportedEventError):
            acc.compose(UnsupportedDpEvent())
        # also a ValueError, and dp-accounting's own exception type
        import dp_accounting

        with pytest.raises(ValueError):
            acc.compose(UnsupportedDpEvent())
        with pytest.raises(dp_accounting.UnsupportedEventError):
            acc.compose(UnsupportedDpEvent())

    def test_failed_compose_leaves_state_unchanged(self, name):
        acc = _make(name).compose(_step(), 20)
        eps, delta, history = acc.get_epsilon(1e-3), acc.get_delta(1.0), acc.history
        bad = ComposedDpEvent([_step(), UnsupportedDpEvent()])
        with pytest.raises(UnsupportedEventError):
            acc.compose(bad, 5)
        assert acc.get_epsilon(1e-3) == eps
        assert acc.get_delta(1.0) == delta
        assert acc.history == history

    def test_invalid_arguments(self, name):
        acc = _make(name)
        with pytest.raises(ValueError, match="delta"):
            acc.get_epsilon(-0.1)
        with pytest.raises(ValueError, match="delta"):
            acc.get_epsilon(1.5)
        with pytest.raises(ValueError, match="epsilon"):
            acc.get_delta(-1.0)
        with pytest.raises(ValueError, match="count"):
            acc.compose(_step(), -1)
        with pytest.raises(TypeError, match="event"):
            acc.compose("gaussian")  # type: ignore[arg-type]
        # dp-accounting events do not validate their fields; a negative count or noise
        # multiplier must not reduce privacy loss
        with pytest.raises(ValueError, match="count"):
            acc.compose(SelfComposedDpEvent(_step(), -3))
        with pytest.raises(ValueError, match="sampling_probability"):
            acc.compose(PoissonSampledDpEvent(1.5, GaussianDpEvent(1.0)))
        with pytest.raises(ValueError, match="noise_multiplier"):
            acc.compose(GaussianDpEvent(-1.0))
        assert acc.get_epsilon(1e-5) == 0.0


def test_make_accountant_unknown_name():
    with pytest.raises(ValueError, match="'name'"):
        make_accountant("no-such-accountant")


def test_register_accountant_conflict_and_overwrite(monkeypatch):
    import accountants.accountant as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # no leak to other tests

    class Custom(RdpAccountant):
        name = "custom-test"

    register_accountant("custom-test", Custom)
    register_accountant("custom-test", Custom)  # idempotent
    assert isinstance(make_accountant("custom-test"), Custom)
    with pytest.raises(ValueError, match="already registered"):
        register_accountant("custom-test", PldAccountant)
    register_accountant("custom-test", PldAccountant, overwrite=True)
    assert isinstance(make_accountant("custom-test"), PldAccountant)


def test_round_up_is_toward_more_loss():
    for x in (1e-300, 1e-5, 0.3, 1.0, 7.329, 1e10):
        assert round_up(x) > x
    assert round_up(0.0) == 0.0
    assert round_up(math.inf) == math.inf
    assert round_up(0.9999999999999999, upper=1.0) == 1.0
    with pytest.raises(ValueError):
        round_up(math.nan)


def test_neighboring_relation_by_name():
    acc = RdpAccountant(neighboring_relation="replace_one")
    assert acc.neighboring_relation.name == "REPLACE_ONE"
    with pytest.raises(ValueError, match="neighboring_relation"):
        RdpAccountant(neighboring_relation="swap")
