"""Event classes: validation at construction, and the versioned JSON round trip."""

from __future__ import annotations

import json
import math

import attr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accountants.events import (
    SCHEMA_VERSION,
    ComposedDpEvent,
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    DpEvent,
    GaussianDpEvent,
    LaplaceDpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SampledWithoutReplacementDpEvent,
    SelfComposedDpEvent,
    UnsupportedDpEvent,
    from_dict,
    from_json,
    to_dict,
    to_json,
)

pos = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
prob = st.floats(min_value=0.0, max_value=1.0)
sens = st.integers(min_value=1, max_value=1000)

leaves = st.one_of(
    st.builds(GaussianDpEvent, pos),
    st.builds(LaplaceDpEvent, pos),
    st.builds(DiscreteGaussianDpEvent, pos, sens),
    st.builds(DiscreteLaplaceDpEvent, pos, sens),
    st.builds(
        PTRDpEvent,
        pos,
        st.floats(min_value=1e-12, max_value=0.5),
        st.floats(min_value=0.0, max_value=1e3),
        pos,
        st.one_of(st.just(math.inf), st.floats(min_value=0.0, max_value=1e3)),
        st.one_of(st.none(), pos),
        st.floats(min_value=0.0, max_value=1e3),
        test_noise=st.sampled_from(["laplace", "gaussian"]),
    ),
    st.just(NoOpDpEvent()),
    st.just(NonPrivateDpEvent()),
    st.just(UnsupportedDpEvent()),
)


def _extend(children):
    return st.one_of(
        st.builds(SelfComposedDpEvent, children, st.integers(min_value=0, max_value=10**6)),
        st.builds(ComposedDpEvent, st.lists(children, max_size=4)),
        st.builds(PoissonSampledDpEvent, prob, children),
        st.builds(
            lambda n, k, e: SampledWithoutReplacementDpEvent(n, min(k, n), e),
            st.integers(1, 10**6),
            st.integers(0, 10**6),
            children,
        ),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(trees)
def test_json_round_trip(event):
    text = to_json(event)
    back = from_json(text)
    assert back == event
    assert type(back) is type(event)
    assert to_json(back) == text  # canonical: a stable hash key for the ledger
    assert from_dict(json.loads(text)) == event
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard literal {c}"))


def test_dict_form_is_versioned_and_named():
    d = to_dict(PoissonSampledDpEvent(0.5, DiscreteGaussianDpEvent(2.0, 3)))
    assert d == {
        "schema_version": SCHEMA_VERSION,
        "event": {
            "type": "dp_accounting.PoissonSampledDpEvent",
            "sampling_probability": 0.5,
            "event": {"type": "accountants.DiscreteGaussianDpEvent", "sigma": 2.0, "sensitivity": 3},
        },
    }


def test_ptr_event_without_test_noise_field_reads_as_laplace():
    # documents written before the field existed (e.g. older ledger rows) keep their meaning
    text = ('{"schema_version": 1, "event": {"type": "accountants.PTRDpEvent", "test_scale": 1.0,'
            ' "delta0": 1e-6, "proposed_bound": 0.5, "sigma_pass": 2.0,'
            ' "global_sensitivity_pass": 1.0, "sigma_fail": null, "global_sensitivity_fail": 0.0}}')
    assert from_json(text).test_noise == "laplace"
    with pytest.raises(ValueError, match="test_noise"):
        PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 1.0, None, 0.0, test_noise="cauchy")


def test_ptr_event_infinite_sensitivity_round_trips():
    e = PTRDpEvent(1.0, 1e-6, 0.5, 2.0, math.inf, None, 0.0)
    assert '"$float":"inf"' in to_json(e)
    assert from_json(to_json(e)) == e


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"schema_version": 2, "event": {"type": "dp_accounting.NoOpDpEvent"}}', "schema_version"),
        ('{"event": {"type": "dp_accounting.NoOpDpEvent"}}', "schema_version"),
        ('{"schema_version": 1, "event": {"type": "os.system"}}', "Unknown event type"),
        ('{"schema_version": 1, "event": {"type": "dp_accounting.GaussianDpEvent", "noise_multiplier": 1.0, "x": 1}}', "Unknown field"),
        ('{"schema_version": 1, "event": {"type": "accountants.DiscreteGaussianDpEvent", "sigma": -1.0}}', "sigma"),
        ('{"schema_version": 1, "event": {"type": "dp_accounting.GaussianDpEvent", "noise_multiplier": NaN}}', "NaN"),
        ('{"schema_version": 1, "event": 3}', "does not describe an event"),
        ('{"schema_version": 1, "event": {"type": "dp_accounting.NoOpDpEvent"}, "x": 0}', "keys"),
        ("not json", "not valid JSON"),
    ],
)
def test_from_json_fails_closed(text, match):
    with pytest.raises(ValueError, match=match):
        from_json(text)


def test_to_json_rejects_foreign_events():
    @attr.s(frozen=True, slots=True, auto_attribs=True)
    class Foreign(DpEvent):
        x: float

    with pytest.raises(TypeError, match="Foreign"):
        to_json(SelfComposedDpEvent(Foreign(1.0), 2))
    with pytest.raises(TypeError):
        to_json("not an event")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: DiscreteGaussianDpEvent(0.0), "sigma"),
        (lambda: DiscreteGaussianDpEvent(math.nan), "sigma"),
        (lambda: DiscreteGaussianDpEvent(1.0, 0), "sensitivity"),
        (lambda: DiscreteGaussianDpEvent(1.0, 1.5), "sensitivity"),
        (lambda: DiscreteGaussianDpEvent(1.0, True), "sensitivity"),
        (lambda: DiscreteLaplaceDpEvent(-2.0), "scale"),
        (lambda: PTRDpEvent(0.0, 1e-6, 0.5, 2.0, 1.0, None, 0.0), "test_scale"),
        (lambda: PTRDpEvent(1.0, 1.0, 0.5, 2.0, 1.0, None, 0.0), "delta0"),
        (lambda: PTRDpEvent(1.0, 1e-6, -0.5, 2.0, 1.0, None, 0.0), "proposed_bound"),
        (lambda: PTRDpEvent(1.0, 1e-6, 0.5, 2.0, -1.0, None, 0.0), "global_sensitivity_pass"),
        (lambda: PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 1.0, 0.0, 0.0), "sigma_fail"),
        (lambda: PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 1.0, 1.0, math.inf), "global_sensitivity_fail"),
    ],
)
def test_event_validation_names_the_parameter(build, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        build()


def test_events_are_frozen_and_numpy_ints_accepted():
    import numpy as np

    e = DiscreteGaussianDpEvent(1.5, np.int64(2))
    assert type(e.sensitivity) is int
    with pytest.raises(attr.exceptions.FrozenInstanceError):
        e.sigma = 2.0  # type: ignore[misc]
    assert e == DiscreteGaussianDpEvent(1.5, 2) and hash(e) == hash(DiscreteGaussianDpEvent(1.5, 2))


@settings(max_examples=60, deadline=None)
@given(trees)
def test_dict_form_matches_published_json_schema(event):
    import jsonschema
    from importlib import resources

    schema = json.loads(resources.files("accountants").joinpath("schemas/events.schema.json").read_text())
    jsonschema.validate(to_dict(event), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "event": {"type": "os.system"}}, schema)


def test_json_schema_lists_every_serialisable_type():
    from importlib import resources

    from accountants.events import _TYPES

    schema = json.loads(resources.files("accountants").joinpath("schemas/events.schema.json").read_text())
    assert schema["$defs"]["event"]["properties"]["type"]["enum"] == sorted(_TYPES)
