"""Compliance reports: every release appears, numbers match the ledger, JSON validates.

No snapshots: each check compares the report with what the ledger itself returns.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import sqlite3

import jsonschema
import pytest

from accountants.events import (
    DiscreteGaussianDpEvent,
    GaussianDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
)
from accountants.ledger import Ledger
from accountants.report import (
    MC_SAMPLE_BUDGET,
    MC_SAMPLES,
    render_report,
    report_data,
    report_schema,
)

CERT = {"n_samples": 4000, "tau": 2.0, "p": 1e-7, "accepted": True, "epsilon": 0.9,
        "guarantee_epsilon": 0.9, "guarantee_delta": 3e-6}


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.db", record=("rdp",))
    ledger.set_budget("census", epsilon=4.0, delta=1e-6, accountant="rdp", fingerprint="sha256:" + "ab" * 32)
    ledger.set_budget("clinic", epsilon=2.0, delta=1e-5, accountant="rdp")
    plan = [
        ("census", GaussianDpEvent(6.0), dict(purpose="mean <age>", seeded=False)),
        ("census", PoissonSampledDpEvent(0.1, GaussianDpEvent(2.0)), dict(purpose="valuation", seeded=True,
                                                                          sampling={"type": "poisson", "rate": 0.1})),
        ("census", GaussianDpEvent(9.0), dict(purpose="verified", certificate=CERT, seeded=False)),
        ("clinic", GaussianDpEvent(5.0), dict(purpose="site A", scope="A", seeded=False)),
        ("clinic", GaussianDpEvent(5.0), dict(purpose="site B", scope="B", seeded=False)),
    ]
    for dataset, event, kw in plan:
        kw.setdefault("sampling", "none")
        with ledger.charge(dataset, event, sensitivity=1.0, **kw):
            pass
    with pytest.raises(KeyError):
        with ledger.charge("census", GaussianDpEvent(7.0), sensitivity=1.0, sampling="none", seeded=False,
                           purpose="crashed before release"):
            raise KeyError("release failed")
    yield ledger
    ledger.close()


def test_json_validates_and_matches_the_ledger(ledger):
    data = json.loads(render_report(ledger, format="json", accountants=("rdp", "pld")))
    jsonschema.validate(data, report_schema())
    assert data["verification"]["ok"] and data["verification"]["head_hash"] == ledger.verify().head_hash
    assert [d["name"] for d in data["datasets"]] == ["census", "clinic"]
    for ds in data["datasets"]:
        history = ledger.history(ds["name"])
        budget = ledger.budget(ds["name"])
        assert ds["cap"] == {"epsilon": budget.epsilon, "delta": budget.delta}
        assert [r["id"] for r in ds["releases"]] == [h.id for h in history]
        assert [r["purpose"] for r in ds["releases"]] == [h.purpose for h in history]
        assert [r["cumulative_epsilon"]["rdp"] for r in ds["releases"]] == [h.epsilons["rdp"] for h in history]
        assert [r["released"] for r in ds["releases"]] == [h.released for h in history]
        assert [r["noise"] for r in ds["releases"]] == ["seeded" if h.seeded else "secure" for h in history]
        (own,) = [a for a in ds["accounting"] if a["enforces_cap"]]
        assert own["accountant"] == "rdp" and own["epsilon"] == ledger.spent(ds["name"]).epsilon
        assert own["remaining"] == pytest.approx(budget.epsilon - own["epsilon"])
        (pld,) = [a for a in ds["accounting"] if a["accountant"] == "pld"]
        assert pld["kind"] == "bound" and pld["epsilon"] == pytest.approx(ledger.replay(ds["name"], "pld").epsilon)
    clinic = data["datasets"][1]
    replay = ledger.replay("clinic", "rdp")
    assert {p["scope"]: p["epsilon"] for p in clinic["parts"]} == replay.per_scope
    assert set(replay.per_scope) == {None, "A", "B"} and data["datasets"][0]["parts"] == []
    census = data["datasets"][0]
    assert census["fingerprint"] == "sha256:" + "ab" * 32
    assert census["unreleased_charges"] == 1 and census["releases"][-1]["purpose"] == "crashed before release"
    assert census["releases"][2]["certificate_summary"] == {
        "m": 4000, "tau": 2.0, "p": 1e-7, "outcome": "accepted", "epsilon": 0.9, "delta": 3e-6}
    assert census["releases"][1]["sampling"] == {"type": "poisson", "rate": 0.1}
    assert census["releases"][1]["mechanism"].startswith("PoissonSampledDpEvent(")


def test_schema_rejects_reports_that_break_it(ledger):
    data = report_data(ledger, accountants=("rdp",))
    schema = report_schema()
    jsonschema.validate(data, schema)
    broken = json.loads(json.dumps(data))
    del broken["datasets"][0]["releases"][0]["neighboring_relation"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = json.loads(json.dumps(data))
    broken["datasets"][0]["releases"][0]["noise"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_monte_carlo_is_labelled_an_estimate(ledger):
    data = report_data(ledger, "census", accountants=("rdp", "pld", "mc"))
    by_name = {a["accountant"]: a for a in data["datasets"][0]["accounting"]}
    assert by_name["mc"]["kind"] == "estimate" and by_name["mc"]["remaining"] is None
    assert "not a bound" in by_name["mc"]["meaning"]
    assert by_name["mc"]["available"], by_name["mc"]["error"]
    assert by_name["mc"]["standard_error"] >= 0
    ess = by_name["mc"]["effective_sample_size"]
    assert by_name["mc"]["reliable"] == (None if ess is None else ess >= 30)
    assert by_name["pld"]["standard_error"] is None and by_name["pld"]["reliable"] is None
    jsonschema.validate(data, report_schema())
    # The estimate is random (OS CSPRNG): check its form here; its accuracy is tested with the
    # Monte Carlo accountant itself.
    assert 0 < by_name["mc"]["epsilon"] < 10 * by_name["rdp"]["epsilon"]


def test_unavailable_accountant_is_reported_not_hidden(ledger):
    data = report_data(ledger, "clinic", accountants=("rdp", "no-such-accountant"))
    (missing,) = [a for a in data["datasets"][0]["accounting"] if a["accountant"] == "no-such-accountant"]
    assert missing["available"] is False and missing["epsilon"] is None and "no-such-accountant" in missing["error"]
    jsonschema.validate(data, report_schema())


def test_html_is_self_contained_and_lists_every_release(ledger, tmp_path):
    out = tmp_path / "report.html"
    text = render_report(ledger, format="html", path=out, accountants=("rdp", "pld"))
    assert out.read_text(encoding="utf-8") == text
    assert not re.search(r"https?://|<script|<link|src=\"//|@import", text)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2  # one cumulative-ε plot per dataset
    assert all(base64.b64decode(png).startswith(b"\x89PNG\r\n\x1a\n") for png in images)
    assert "mean &lt;age&gt;" in text and "<age>" not in text
    for name in ("census", "clinic"):
        for record in ledger.history(name):
            assert (record.purpose or "").replace("<", "&lt;").replace(">", "&gt;") in text
    assert "m=4000, τ=2, p=1e-07, accepted" in text
    assert ledger.verify().head_hash in text and "Hash chain verified" in text


def test_markdown_has_one_row_per_release_and_the_spent_budget(ledger):
    text = render_report(ledger, "census", format="markdown", accountants=("rdp",))
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(ledger.history("census"))
    assert f"{ledger.spent('census').epsilon:.6g}" in text
    assert "clinic" not in text
    clinic = render_report(ledger, "clinic", format="markdown", accountants=("rdp",))
    assert "Parallel composition over 2 disjoint parts" in clinic


def test_report_shows_a_broken_chain(ledger):
    conn = sqlite3.connect(ledger.path)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET content = replace(content, 'site A', 'site Z') WHERE content LIKE '%site A%'")
    bad_id = conn.execute("SELECT id FROM entries WHERE content LIKE '%site Z%'").fetchone()[0]
    conn.commit()
    conn.close()
    data = report_data(ledger, "census", accountants=("rdp",))
    assert data["verification"]["ok"] is False and data["verification"]["first_bad_id"] == bad_id
    assert f"BROKEN at row {bad_id}" in render_report(ledger, "census", format="markdown", accountants=("rdp",))


def test_bad_arguments(ledger):
    with pytest.raises(ValueError, match="format"):
        render_report(ledger, format="pdf")
    with pytest.raises(ValueError, match="Unknown dataset"):
        render_report(ledger, "nope", format="json")
    with pytest.raises(TypeError, match="Ledger"):
        render_report("ledger.db")
    with pytest.raises(TypeError, match="accountants"):
        render_report(ledger, accountants="rdp")


def test_dataset_without_charges_and_empty_ledger(tmp_path):
    ledger = Ledger(tmp_path / "empty.db", record=("rdp",))
    empty = report_data(ledger, accountants=("rdp",))
    assert empty["datasets"] == [] and empty["verification"]["rows"] == 0
    jsonschema.validate(empty, report_schema())
    ledger.set_budget("fresh", epsilon=1.0, delta=1e-6, accountant="rdp")
    data = report_data(ledger, accountants=("rdp", "pld"))
    jsonschema.validate(data, report_schema())
    (ds,) = data["datasets"]
    assert ds["releases"] == [] and ds["neighboring_relation"] is None
    assert [a["epsilon"] for a in ds["accounting"]] == [0.0, 0.0]
    text = render_report(ledger, format="html", accountants=("rdp",))
    assert "No charges yet." in text and "data:image/png" not in text


# --------------------------------------------------------------------------- Monte Carlo column
def _long_ledger(tmp_path):
    """Four DP-TKNN-like releases of 539 Poisson-sampled discrete-Gaussian steps each (2156 steps)."""
    ledger = Ledger(tmp_path / "long.db", record=("rdp",))
    ledger.set_budget("long", epsilon=50.0, delta=1e-5, accountant="rdp")
    for sigma in (75.0, 16.0, 9.0, 40.0):
        event = SelfComposedDpEvent(PoissonSampledDpEvent(0.1, DiscreteGaussianDpEvent(sigma, 1)), 539)
        with ledger.charge("long", event, sensitivity=1.0, sampling={"type": "poisson", "rate": 0.1},
                           seeded=False):
            pass
    return ledger


def _no_warnings(caplog, recwarn):
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(recwarn) == 0, [str(w.message) for w in recwarn]


def test_monte_carlo_skipped_with_reason_for_a_long_history(tmp_path, caplog, recwarn):
    caplog.set_level(logging.DEBUG)
    ledger = _long_ledger(tmp_path)
    data = report_data(ledger)  # default accountants: the Monte Carlo column is budgeted
    jsonschema.validate(data, report_schema())
    by_name = {a["accountant"]: a for a in data["datasets"][0]["accounting"]}
    mc = by_name["mc"]
    assert mc["skipped"] is True and mc["available"] is False and mc["epsilon"] is None
    assert mc["error"] is None and mc["kind"] == "estimate" and "not a bound" in mc["meaning"]
    assert mc["composed_steps"] == 4 * 539 and 4 * 539 * MC_SAMPLES > MC_SAMPLE_BUDGET
    assert mc["sample_budget"] == MC_SAMPLE_BUDGET
    assert mc["note"].startswith("Not computed") and "accountants=('rdp', 'pld', 'mc')" in mc["note"]
    assert "--compare mc" in mc["note"]
    # The bounds are still there and agree with the ledger's own replay.
    assert by_name["rdp"]["epsilon"] == ledger.spent("long").epsilon
    assert by_name["pld"]["epsilon"] == pytest.approx(ledger.replay("long", "pld").epsilon)
    for fmt in ("markdown", "html"):
        text = render_report(ledger, format=fmt)
        assert "not computed" in text and "Not computed: the history composes 2156 mechanism steps" in text
    _no_warnings(caplog, recwarn)
    ledger.close()


def test_monte_carlo_named_explicitly_is_computed_and_low_ess_goes_into_the_row(tmp_path, caplog, recwarn):
    caplog.set_level(logging.DEBUG)
    ledger = _long_ledger(tmp_path)
    # 2000 samples at δ = 1e-5: m·δ = 0.02, so the estimate rests on the few largest samples.
    data = report_data(ledger, accountants=("rdp", "mc"), mc_samples=2000)
    jsonschema.validate(data, report_schema())
    (mc,) = [a for a in data["datasets"][0]["accounting"] if a["accountant"] == "mc"]
    assert mc["skipped"] is False and mc["available"] is True and mc["sample_budget"] is None
    assert mc["n_samples"] == 2000 and mc["composed_steps"] == 2156
    assert mc["epsilon"] > 0 and mc["standard_error"] >= 0
    assert mc["effective_sample_size"] < 30 and mc["reliable"] is False
    assert mc["note"].startswith("Unreliable") and "30/δ = 3000000 samples" in mc["note"]
    text = render_report(ledger, format="markdown", accountants=("rdp", "mc"), mc_samples=2000)
    assert "estimated from 2000 samples (unreliable:" in text and "- mc: Unreliable" in text
    # An explicit budget applies to an explicit request too.
    limited = report_data(ledger, accountants=("rdp", "mc"), mc_samples=2000, mc_budget=1e6)
    (mc,) = [a for a in limited["datasets"][0]["accounting"] if a["accountant"] == "mc"]
    assert mc["skipped"] is True and mc["epsilon"] is None and mc["sample_budget"] == 1_000_000
    _no_warnings(caplog, recwarn)
    ledger.close()


def test_monte_carlo_computed_by_default_for_a_short_history(ledger, caplog, recwarn):
    caplog.set_level(logging.DEBUG)
    data = report_data(ledger, "census")  # four charges of one step each
    jsonschema.validate(data, report_schema())
    by_name = {a["accountant"]: a for a in data["datasets"][0]["accounting"]}
    mc = by_name["mc"]
    assert mc["skipped"] is False and mc["available"], mc["error"]
    assert mc["composed_steps"] == len(ledger.history("census")) == 4
    assert mc["n_samples"] == MC_SAMPLES and mc["sample_budget"] == MC_SAMPLE_BUDGET
    assert mc["standard_error"] >= 0 and 0 < mc["epsilon"] < 10 * by_name["rdp"]["epsilon"]
    assert (mc["note"] is None) == mc["reliable"]
    assert all(a["skipped"] is False and a["note"] is None for a in data["datasets"][0]["accounting"]
               if a["kind"] == "bound")
    _no_warnings(caplog, recwarn)


def test_monte_carlo_parameters_are_validated(ledger):
    for bad in (1, 2.5, True, "many"):
        with pytest.raises(ValueError, match="mc_samples"):
            report_data(ledger, mc_samples=bad)
    for bad in (0, -1.0, math.nan, True, "big"):
        with pytest.raises(ValueError, match="mc_budget"):
            report_data(ledger, mc_budget=bad)
