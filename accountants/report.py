"""Compliance reports of a privacy ledger: HTML (self-contained), JSON (schema-checked), Markdown.

A report states, per dataset, the cap, the spent and remaining budget under each accountant side
by side with what each number means (a bound, an estimate, or a verified claim), every charge in
order with its mechanism, neighbouring relation, sensitivity, sampling assumption, cumulative
guarantee, EVR certificate and seeded/secure noise, a plot of cumulative ε over the releases,
and the result of the hash-chain verification (DESIGN.md §7).

The JSON form follows ``accountants/schemas/report.schema.json`` (JSON Schema draft 2020-12,
shipped with the package; :func:`report_schema` loads it). The HTML form embeds its plots as
base64 PNG and its styles inline: it needs no network connection. The Markdown form carries the
same tables; its cumulative-ε column stands in for the plot.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from accountants.accountant import make_accountant
from accountants.events import (
    ComposedDpEvent,
    DpEvent,
    NonPrivateDpEvent,
    NoOpDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
)
from accountants.ledger import ChargeRecord, Ledger, library_version
from accountants.monte_carlo import (
    MonteCarloAccountant,
    MonteCarloEstimate,
    effective_sample_size,
    epsilon_from_losses,
)

__all__ = [
    "ACCOUNTANT_MEANINGS", "DEFAULT_ACCOUNTANTS", "MC_SAMPLES", "MC_SAMPLE_BUDGET", "REPORT_FORMAT",
    "render_report", "report_data", "report_schema",
]

logger = logging.getLogger(__name__)

REPORT_FORMAT = "privval-report/1"
"""Identifier of the JSON layout; fields are only ever added, never renamed or removed."""

ACCOUNTANT_MEANINGS: dict[str, tuple[str, str]] = {
    "rdp": (
        "bound",
        ("Upper bound: the events' Rényi-DP curves are added and converted to (ε, δ) "
        "(Mironov 2017). Always sound; usually somewhat loose."),
    ),
    "pld": (
        "bound",
        ("Upper bound: the privacy-loss distributions are composed numerically with pessimistic "
        "discretisation (dp-accounting). Sound and close to tight."),
    ),
    "mc": (
        "estimate",
        ("Estimate, not a bound: an average over sampled privacy losses (Wang et al. 2023, "
        "arXiv 2304.07927). It is below the true ε about half of the time; only a verified "
        "EVR certificate turns it into a guarantee."),
    ),
}
"""Kind ("bound" or "estimate") and a sentence on what each accountant's number means."""

_CERTIFICATE_MEANING = (
    "Verified claim: an EVR certificate states that a Monte Carlo verifier with m samples "
    "accepted (ε, δ_b); the release is then (ε, τ·δ_b + p)-DP, p being the probability that a "
    "claim whose true δ is at least τ·δ_b passes (Wang et al. 2023)."
)
_FORMATS = ("html", "json", "markdown")
_MIN_EFFECTIVE_SAMPLES = 30.0
"""Below this many effective samples a Monte Carlo estimate and its standard error are unreliable."""

DEFAULT_ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld", "mc")
"""Accountants a report shows when the caller names none (the Monte Carlo one within budget)."""

MC_SAMPLES = 100_000
"""Default number of sampled privacy-loss sums per direction behind the report's Monte Carlo column."""

MC_SAMPLE_BUDGET = 20_000_000
"""Default cap on the privacy losses (composed steps × samples) the Monte Carlo column may draw
when the caller did not ask for it by name: about a second of sampling on one CPU core."""


def report_schema() -> dict[str, Any]:
    """Load the JSON Schema that :func:`render_report` output (format "json") follows.

    Returns
    -------
    dict
        The schema (JSON Schema draft 2020-12).

    Example
    -------
    >>> report_schema()["title"]
    'privval ledger report'
    """
    text = resources.files("accountants").joinpath("schemas/report.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _number(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "inf"


def _certificate_summary(cert: dict[str, Any] | None) -> dict[str, Any] | None:
    if cert is None:
        return None
    outcome = cert.get("outcome")
    if outcome is None and isinstance(cert.get("accepted"), bool):
        outcome = "accepted" if cert["accepted"] else "rejected"
    summary = {
        "m": cert.get("m", cert.get("n_samples")),
        "tau": cert.get("tau"),
        "p": cert.get("p"),
        "outcome": None if outcome is None else str(outcome),
        "epsilon": cert.get("guarantee_epsilon", cert.get("epsilon")),
        "delta": cert.get("guarantee_delta"),
    }
    for key in ("m", "tau", "p", "epsilon", "delta"):
        value = summary[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            summary[key] = None
        else:
            summary[key] = _number(float(value)) if key != "m" else int(value)
    return summary


def _accounting(
    ledger: Ledger, dataset: str, names: Sequence[str], history: Sequence[ChargeRecord], mc: _MonteCarloPlan
) -> list[dict[str, Any]]:
    budget = ledger.budget(dataset)
    spent = ledger.spent(dataset)
    relation = history[0].neighboring_relation if history else None
    rows = []
    ordered = [budget.accountant] + [n for n in names if n != budget.accountant]
    for name in ordered:
        kind, meaning = ACCOUNTANT_MEANINGS.get(name, ("bound", "Upper bound from a registered accountant."))
        row: dict[str, Any] = {
            "accountant": name, "kind": kind, "meaning": meaning, "delta": budget.delta,
            "enforces_cap": name == budget.accountant, "available": True, "epsilon": None,
            "remaining": None, "error": None, "standard_error": None, "effective_sample_size": None,
            "reliable": None, "n_samples": None, "composed_steps": None, "sample_budget": None,
            "skipped": False, "note": None,
        }
        if name == "mc" and name != budget.accountant:
            _monte_carlo_row(row, ledger, dataset, history, relation, budget.delta, mc)
            rows.append(row)
            continue

        def factory(name: str = name) -> Any:
            return make_accountant(name, neighboring_relation=relation or "add_or_remove_one")

        try:
            epsilon = spent.epsilon if name == budget.accountant else ledger.replay(dataset, factory).epsilon
        except (ValueError, TypeError, ImportError) as err:
            row.update(available=False, error=f"{type(err).__name__}: {err}")
        else:
            row["epsilon"] = _number(epsilon)
            if kind == "bound":
                row["remaining"] = _number(max(budget.epsilon - epsilon, 0.0))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- Monte Carlo column
@dataclass(frozen=True)
class _MonteCarloPlan:
    """How the report's Monte Carlo column samples: ``n_samples`` sums, at most ``budget`` losses
    (``inf``: no limit); ``names`` are the report's accountants (quoted in the skip note)."""

    n_samples: int
    budget: float
    names: tuple[str, ...]


def _event_steps(event: DpEvent) -> int:
    """Mechanism steps the Monte Carlo accountant samples for ``event`` (one per Poisson-sampled
    batch, as accountants.monte_carlo plans it); an event it cannot plan counts as one step
    (it fails before sampling anything)."""
    if isinstance(event, (NoOpDpEvent, NonPrivateDpEvent)):
        return 0
    if isinstance(event, SelfComposedDpEvent):
        count = event.count
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            return 1
        return int(count) * _event_steps(event.event)
    if isinstance(event, ComposedDpEvent):
        return sum(_event_steps(e) for e in event.events)
    if isinstance(event, PoissonSampledDpEvent):
        return min(_event_steps(event.event), 1)
    return 1


def _history_steps(history: Sequence[ChargeRecord]) -> int:
    """Steps a replay samples, counted from the stored events before any sampling: a charge in no
    part is composed into every disjoint part as well (an upper bound when parts appear later)."""
    parts = len({json.dumps(r.scope) for r in history if r.scope is not None})
    return sum(_event_steps(r.event) * (1 + parts if r.scope is None else 1) for r in history)


def _quiet_monte_carlo(n_samples: int, relation: str, sink: Callable[[MonteCarloEstimate], None]) -> Any:
    """A Monte Carlo accountant whose ε queries log nothing and hand their estimate to ``sink``.

    The report puts the effective sample size and the reliability into its row instead of
    logging a warning per query. ``sink`` is a plain function, so the ledger's copies of the
    accountant (one per disjoint part) report to the same place.
    """

    class _ReportMonteCarlo(MonteCarloAccountant):
        def _epsilon(self, delta: float) -> float:
            if delta == 0.0:
                return math.inf
            if delta >= 1.0:
                return 0.0
            estimates = []
            for direction in ("remove", "add"):  # the worse direction, as MonteCarloAccountant does
                losses, logw = self.loss_samples(direction)
                value, se = epsilon_from_losses(losses, delta, logw)
                ess = effective_sample_size(losses, value, logw)
                estimates.append(MonteCarloEstimate(value, se, self.n_samples, direction, ess))
            best = max(estimates, key=lambda e: e.value)
            sink(best)
            return best.value

    return _ReportMonteCarlo(n_samples, neighboring_relation=relation)


def _monte_carlo_row(
    row: dict[str, Any], ledger: Ledger, dataset: str, history: Sequence[ChargeRecord], relation: str | None,
    delta: float, mc: _MonteCarloPlan,
) -> None:
    """Fill the Monte Carlo row: skipped with the reason when over budget, else the estimate, its
    standard error, effective sample size and, when unreliable, why (no warnings logged)."""
    steps = _history_steps(history)
    cost = steps * mc.n_samples
    row.update(composed_steps=steps, n_samples=mc.n_samples,
               sample_budget=None if math.isinf(mc.budget) else (
                   int(mc.budget) if mc.budget.is_integer() else mc.budget))
    if cost > mc.budget:
        forced = tuple(mc.names) if "mc" in mc.names else (*mc.names, "mc")
        flags = " ".join(f"--compare {n}" for n in forced)
        row.update(available=False, skipped=True, n_samples=None, note=(
            f"Not computed: the history composes {steps} mechanism steps, so {mc.n_samples} samples "
            f"would draw {cost:.3g} privacy losses, over the report's Monte Carlo budget of "
            f"{mc.budget:.3g} (about a second of sampling). The bounds above do not depend on it. "
            f"Name 'mc' to compute it anyway: render_report(..., accountants={forced!r}) or "
            f"`privval report {flags}` (or lower mc_samples / raise mc_budget)."))
        logger.debug("Monte Carlo column of %r skipped: %d steps x %d samples > budget %g.",
                     dataset, steps, mc.n_samples, mc.budget)
        return
    estimates: list[MonteCarloEstimate] = []
    try:
        epsilon = ledger.replay(
            dataset, lambda: _quiet_monte_carlo(mc.n_samples, relation or "add_or_remove_one", estimates.append)
        ).epsilon
    except (ValueError, TypeError, ImportError) as err:
        row.update(available=False, error=f"{type(err).__name__}: {err}", n_samples=None)
        return
    row["epsilon"] = _number(epsilon)
    if not estimates:  # nothing composed (ε = 0) or a non-private history (ε = inf): exact
        return
    worst = max(estimates, key=lambda e: e.value)
    row["standard_error"] = _number(float(worst.standard_error))
    ess = worst.effective_sample_size
    if ess is not None and math.isfinite(ess):
        row["effective_sample_size"] = float(ess)
        row["reliable"] = bool(ess >= _MIN_EFFECTIVE_SAMPLES)
        if not row["reliable"]:
            row["note"] = (
                f"Unreliable: only {ess:.1f} effective samples (fewer than {_MIN_EFFECTIVE_SAMPLES:.0f}) carry "
                f"this estimate at δ={delta:.3g}, so the estimate and its standard error are unreliable. "
                f"Plain Monte Carlo with about 30/δ = {math.ceil(30 / delta)} samples or more avoids this "
                f"(mc_samples; {mc.n_samples} here). The bounds above do not depend on it.")


def _parts(ledger: Ledger, dataset: str, accountant: str) -> list[dict[str, Any]]:
    """ε of each disjoint part under parallel composition (scope None: records in no part)."""
    replay = ledger.replay(dataset, accountant)
    return [{"scope": scope, "epsilon": _number(eps)} for scope, eps in replay.per_scope.items()]


def _parts_text(ds: dict[str, Any]) -> str | None:
    if not ds["parts"]:
        return None
    worst = max(ds["parts"], key=lambda p: math.inf if p["epsilon"] == "inf" else p["epsilon"])
    scoped = [p for p in ds["parts"] if p["scope"] is not None]
    return (
        f"Parallel composition over {len(scoped)} disjoint parts (sound only if no record belongs to "
        f"two parts): spent ε is the worst part's, {_fmt(worst['epsilon'])} for "
        f"{'records in no part' if worst['scope'] is None else 'part ' + repr(worst['scope'])}."
    )


def _release(index: int, record: ChargeRecord, previous: float | None) -> dict[str, Any]:
    eps = record.epsilon
    increment = None if eps is None or previous is None or not math.isfinite(eps) else eps - previous
    return {
        "index": index,
        "id": record.id,
        "time": record.time,
        "purpose": record.purpose,
        "mechanism": repr(record.event),
        "event": record.event_json,
        "neighboring_relation": record.neighboring_relation,
        "sensitivity": record.sensitivity,
        "sampling": record.sampling,
        "scope": record.scope,
        "noise": "seeded" if record.seeded else "secure",
        "released": record.released,
        "release_time": record.release_time,
        "accountant": record.accountant,
        "delta": record.delta,
        "cumulative_epsilon": {k: _number(v) for k, v in record.epsilons.items()},
        "epsilon_increment": increment,
        "certificate": record.certificate,
        "certificate_summary": _certificate_summary(record.certificate),
        "library_version": record.library_version,
    }


def report_data(
    ledger: Ledger,
    dataset: str | None = None,
    *,
    accountants: Sequence[str] | None = None,
    mc_samples: int = MC_SAMPLES,
    mc_budget: float | None = None,
) -> dict[str, Any]:
    """The report as plain JSON-compatible data (what format "json" serialises).

    Parameters
    ----------
    ledger : Ledger
        Open ledger.
    dataset : str, optional
        Only this dataset; default all.
    accountants : sequence of str, optional
        Accountants whose spent ε is shown next to the dataset's own (each replays the whole
        history; one that cannot is listed as unavailable with the reason). Default
        :data:`DEFAULT_ACCOUNTANTS` ("rdp", "pld", "mc"), with the Monte Carlo estimate computed
        only within ``mc_budget``.
    mc_samples : int, default MC_SAMPLES (100 000)
        Sampled privacy-loss sums per direction behind the Monte Carlo estimate, in [2, inf).
    mc_budget : float, optional
        Most privacy losses (composed mechanism steps × ``mc_samples``, counted from the stored
        events before sampling) the Monte Carlo column may draw; over it the column says "not
        computed" and why. Default :data:`MC_SAMPLE_BUDGET` (about a second) when ``accountants``
        is left out, no limit when the caller names "mc" in ``accountants``; ``math.inf`` is no
        limit.

    Returns
    -------
    dict
        Follows :func:`report_schema`.

    Raises
    ------
    TypeError, ValueError
        On a wrong ledger type, an unknown dataset, or invalid ``mc_samples``/``mc_budget``.
    """
    if not isinstance(ledger, Ledger):
        raise TypeError(f"The 'ledger' parameter of render_report must be a Ledger. Got {type(ledger)} instead.")
    forced = accountants is not None
    if accountants is None:
        accountants = DEFAULT_ACCOUNTANTS
    if isinstance(accountants, str) or not all(isinstance(a, str) for a in accountants):
        raise TypeError(
            f"The 'accountants' parameter of render_report must be a sequence of names. Got {accountants!r} instead."
        )
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, numbers.Integral) or mc_samples < 2:
        raise ValueError(
            f"The 'mc_samples' parameter of render_report must be an int in [2, inf). Got {mc_samples!r} instead."
        )
    if mc_budget is None:
        mc_budget = math.inf if forced else float(MC_SAMPLE_BUDGET)
    elif isinstance(mc_budget, bool) or not isinstance(mc_budget, numbers.Real) or not mc_budget > 0:
        raise ValueError(
            f"The 'mc_budget' parameter of render_report must be a float in (0, inf]. Got {mc_budget!r} instead."
        )
    mc = _MonteCarloPlan(int(mc_samples), float(mc_budget), tuple(accountants))
    names = ledger.datasets() if dataset is None else [dataset]
    verification = ledger.verify()
    datasets = []
    for name in names:
        budget = ledger.budget(name)
        history = ledger.history(name)
        releases, previous = [], 0.0
        for index, record in enumerate(history, start=1):
            releases.append(_release(index, record, previous))
            previous = record.epsilon
        datasets.append({
            "name": name,
            "fingerprint": budget.fingerprint,
            "cap": {"epsilon": budget.epsilon, "delta": budget.delta},
            "accountant": budget.accountant,
            "neighboring_relation": history[0].neighboring_relation if history else None,
            "charges": len(history),
            "unreleased_charges": sum(not r.released for r in history),
            "accounting": _accounting(ledger, name, accountants, history, mc),
            "parts": _parts(ledger, name, budget.accountant) if any(r.scope is not None for r in history) else [],
            "releases": releases,
        })
    return {
        "format": REPORT_FORMAT,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "library_version": library_version(),
        "ledger_path": str(ledger.path),
        "schema_version": ledger.schema_version,
        "verification": {
            "ok": verification.ok, "rows": verification.rows, "head_hash": verification.head_hash,
            "first_bad_id": verification.first_bad_id, "reason": verification.reason,
        },
        "certificate_meaning": _CERTIFICATE_MEANING,
        "datasets": datasets,
    }


def render_report(
    ledger: Ledger,
    dataset: str | None = None,
    format: str = "html",
    path: str | os.PathLike[str] | None = None,
    *,
    accountants: Sequence[str] | None = None,
    mc_samples: int = MC_SAMPLES,
    mc_budget: float | None = None,
) -> str:
    """Render a compliance report of a ledger.

    Parameters
    ----------
    ledger : Ledger
        Open ledger.
    dataset : str, optional
        Only this dataset; default every dataset.
    format : {"html", "json", "markdown"}, default "html"
        HTML is self-contained (plots embedded as PNG, no network assets); JSON follows
        ``accountants/schemas/report.schema.json``.
    path : str or os.PathLike, optional
        Also write the report there (UTF-8).
    accountants : sequence of str, optional
        Accountants shown side by side with the dataset's own; default ("rdp", "pld", "mc"),
        the Monte Carlo estimate only within ``mc_budget`` (see :func:`report_data`).
    mc_samples : int, default MC_SAMPLES (100 000)
        Samples per direction behind the Monte Carlo estimate (shown with its standard error).
    mc_budget : float, optional
        Most privacy losses the Monte Carlo column may draw (see :func:`report_data`).

    Returns
    -------
    str
        The report text.

    Raises
    ------
    ValueError, TypeError
        On an unknown format or dataset, or wrong parameter types.

    Example
    -------
    >>> import tempfile, os, json
    >>> from accountants.events import GaussianDpEvent
    >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "l.db"), record=("rdp",))
    >>> _ = ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant="rdp")
    >>> with ledger.charge("d", GaussianDpEvent(20.0), sensitivity=1, sampling="none", seeded=False):
    ...     pass
    >>> json.loads(render_report(ledger, format="json", accountants=("rdp",)))["verification"]["ok"]
    True
    """
    if format not in _FORMATS:
        raise ValueError(f"The 'format' parameter of render_report must be one of {_FORMATS}. Got {format!r} instead.")
    data = report_data(ledger, dataset, accountants=accountants, mc_samples=mc_samples, mc_budget=mc_budget)
    if format == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    elif format == "markdown":
        text = _markdown(data)
    else:
        text = _html(data)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
        logger.info("Wrote %s report to %s.", format, path)
    return text


# --------------------------------------------------------------------------- formatting
def _fmt(value: Any, digits: int = 6) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _certificate_text(summary: dict[str, Any] | None) -> str:
    if summary is None:
        return "–"
    return (
        f"m={_fmt(summary['m'])}, τ={_fmt(summary['tau'])}, p={_fmt(summary['p'])}, "
        f"{_fmt(summary['outcome'])}"
    )


_RELEASE_COLUMNS = (
    "#", "time (UTC)", "purpose", "mechanism", "relation", "sensitivity", "sampling", "scope",
    "noise", "released", "cumulative ε", "EVR certificate (m, τ, p, outcome)",
)


def _release_cells(r: dict[str, Any]) -> list[str]:
    cumulative = ", ".join(f"{k}: {_fmt(v)}" for k, v in r["cumulative_epsilon"].items())
    return [
        str(r["index"]), r["time"][:19].replace("T", " "), _fmt(r["purpose"]), r["mechanism"],
        r["neighboring_relation"], _fmt(r["sensitivity"]), _fmt(r["sampling"]), _fmt(r["scope"]),
        r["noise"], _fmt(r["released"]), cumulative, _certificate_text(r["certificate_summary"]),
    ]


def _spent_text(a: dict[str, Any]) -> str:
    if a.get("skipped"):
        return "not computed (see the note below the table)"
    if not a["available"]:
        return f"unavailable ({a['error']})"
    text = _fmt(a["epsilon"])
    if a["standard_error"] is not None:
        text += f" ± {_fmt(a['standard_error'], 2)} (standard error)"
    if a["kind"] == "estimate" and a.get("n_samples") is not None:
        text += f", estimated from {a['n_samples']} samples"
    if a["reliable"] is False:
        text += f" (unreliable: {a['effective_sample_size']:.1f} effective samples)"
    return text


def _notes(ds: dict[str, Any]) -> list[str]:
    """Why a row is missing or unreliable, one line per accountant that has something to say."""
    return [f"{a['accountant']}: {a['note']}" for a in ds["accounting"] if a.get("note")]


def _verification_text(v: dict[str, Any]) -> str:
    if v["ok"]:
        return f"Hash chain verified: {v['rows']} rows, head hash {v['head_hash']}."
    return f"HASH CHAIN BROKEN at row {v['first_bad_id']}: {v['reason']}. Do not trust the rows from there on."


def _markdown(data: dict[str, Any]) -> str:
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    out = [
        "# Privacy ledger report", "",
        f"- Ledger: `{data['ledger_path']}` (schema v{data['schema_version']})",
        f"- Generated: {data['generated_at']} by privval {data['library_version']}",
        f"- {_verification_text(data['verification'])}", "",
    ]
    for ds in data["datasets"]:
        cap = ds["cap"]
        out += [
            f"## Dataset `{ds['name']}`", "",
            (f"Cap (ε={_fmt(cap['epsilon'])}, δ={_fmt(cap['delta'])}) enforced with the **{ds['accountant']}** "
            f"accountant; neighbouring relation {_fmt(ds['neighboring_relation'])}; fingerprint "
            f"{_fmt(ds['fingerprint'])}; {ds['charges']} charges, {ds['unreleased_charges']} not released."), "",
            "| accountant | kind | spent ε | remaining ε | at δ | meaning |", "|---|---|---|---|---|---|",
        ]
        for a in ds["accounting"]:
            spent = esc(_spent_text(a))
            name = a["accountant"] + (" (enforces the cap)" if a["enforces_cap"] else "")
            out.append(f"| {name} | {a['kind']} | {spent} | {_fmt(a['remaining'])} | {_fmt(a['delta'])} | {esc(a['meaning'])} |")
        notes = _notes(ds)
        if notes:
            out += [""] + [f"- {esc(n)}" for n in notes]
        parts = _parts_text(ds)
        if parts is not None:
            out += ["", parts]
        out += ["", f"_{data['certificate_meaning']}_", "", "### Releases", ""]
        if not ds["releases"]:
            out += ["No charges yet.", ""]
            continue
        out.append("| " + " | ".join(_RELEASE_COLUMNS) + " |")
        out.append("|" + "---|" * len(_RELEASE_COLUMNS))
        for r in ds["releases"]:
            out.append("| " + " | ".join(esc(c) for c in _release_cells(r)) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def _plot_png(ds: dict[str, Any]) -> str | None:
    """Cumulative ε over the releases, one line per recorded accountant, as base64 PNG."""
    if not ds["releases"]:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.4), dpi=100)
    ax = fig.add_subplot()
    index = [r["index"] for r in ds["releases"]]
    names = list(dict.fromkeys(k for r in ds["releases"] for k in r["cumulative_epsilon"]))
    for name in names:
        values = [r["cumulative_epsilon"].get(name) for r in ds["releases"]]
        ys = [math.nan if v is None else (math.inf if v == "inf" else v) for v in values]
        label = name + (" (enforces the cap)" if name == ds["accountant"] else "")
        ax.step(index, ys, where="post", marker="o", markersize=3, label=label)
    ax.axhline(ds["cap"]["epsilon"], color="black", linestyle="--", linewidth=1, label="cap")
    ax.set_xlabel("release")
    ax.set_ylabel(f"cumulative ε at δ={ds['cap']['delta']:.3g}")
    ax.set_title(f"Dataset {ds['name']}")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
.ok { color: #0a6a0a; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
code { font-size: 0.85em; }
.note { font-style: italic; color: #444; max-width: 60em; }
"""


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    v = data["verification"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>Privacy ledger report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>Privacy ledger report</h1>",
        (f"<p>Ledger <code>{e(data['ledger_path'])}</code> (schema v{data['schema_version']}), generated "
        f"{e(data['generated_at'])} by privval {e(data['library_version'])}.</p>"),
        f'<p class="{"ok" if v["ok"] else "bad"}">{e(_verification_text(v))}</p>',
    ]
    for ds in data["datasets"]:
        cap = ds["cap"]
        parts += [
            f"<h2>Dataset <code>{e(ds['name'])}</code></h2>",
            (f"<p>Cap (ε={e(_fmt(cap['epsilon']))}, δ={e(_fmt(cap['delta']))}) enforced with the "
            f"<b>{e(ds['accountant'])}</b> accountant; neighbouring relation {e(_fmt(ds['neighboring_relation']))}; "
            f"fingerprint <code>{e(_fmt(ds['fingerprint']))}</code>; {ds['charges']} charges, "
            f"{ds['unreleased_charges']} not released.</p>"),
            ("<table><tr><th>accountant</th><th>kind</th><th>spent ε</th><th>remaining ε</th><th>at δ</th>"
            "<th>meaning</th></tr>"),
        ]
        for a in ds["accounting"]:
            spent = _spent_text(a)
            name = a["accountant"] + (" (enforces the cap)" if a["enforces_cap"] else "")
            parts.append(
                f"<tr><td>{e(name)}</td><td>{e(a['kind'])}</td><td>{e(spent)}</td>"
                f"<td>{e(_fmt(a['remaining']))}</td><td>{e(_fmt(a['delta']))}</td><td>{e(a['meaning'])}</td></tr>"
            )
        parts.append("</table>")
        parts.extend(f'<p class="note">{e(n)}</p>' for n in _notes(ds))
        if _parts_text(ds) is not None:
            parts.append(f"<p>{e(_parts_text(ds))}</p>")
        parts.append(f'<p class="note">{e(data["certificate_meaning"])}</p>')
        png = _plot_png(ds)
        if png is not None:
            parts.append(
                f'<p><img alt="cumulative epsilon of dataset {e(ds["name"])} over its releases" '
                f'src="data:image/png;base64,{png}"></p>'
            )
        parts.append("<h3>Releases</h3>")
        if not ds["releases"]:
            parts.append("<p>No charges yet.</p>")
            continue
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in _RELEASE_COLUMNS) + "</tr>")
        for r in ds["releases"]:
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in _release_cells(r)) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
