"""The ``privval`` command line.

Subcommands
-----------
``privval value``          value every training record (TKNN-Shapley; DP-TKNN-Shapley with ``--epsilon``)
``privval budget set|show``  set or show a dataset's privacy budget in the ledger
``privval ledger verify``  check the ledger's hash chain
``privval report``         write a compliance report (HTML, JSON or Markdown)
``privval demo``           the README's main job on a bundled real dataset

Exit codes
----------
0 success; 1 internal error (a bug: please report it); 2 bad input (the message says what to
fix); 3 privacy budget refused (nothing was spent, nothing released); 4 the ledger failed
verification, or any command found it altered or corrupted.

Every command takes ``--json`` (one JSON object on stdout, errors included, for scripts) and
``--quiet`` (no progress bars, no chatter). Progress bars go to stderr and are off when stderr is
not a terminal. Set ``PRIVVAL_DEBUG=1`` (or pass ``--debug``) to see the traceback of an error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger(__name__)

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_BUDGET_REFUSED = 3
EXIT_LEDGER_BROKEN = 4

DEFAULT_LEDGER = "privval-ledger.db"
_JSON_KEY = "privval.json"


class CliError(click.ClickException):
    """An error the command line reports with an exit code and a message that says what to fix."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT, kind: str = "bad_input") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.kind = kind
        self.as_json = False

    def show(self, file: Any = None) -> None:
        """Print ``Error: ...`` on stderr, and a JSON error object on stdout under ``--json``."""
        click.echo(f"Error: {self.format_message()}", err=True)
        if self.as_json:
            payload = {"ok": False, "error": {"kind": self.kind, "exit_code": self.exit_code,
                                              "message": self.format_message()}}
            click.echo(json.dumps(payload))


def _translate(exc: BaseException) -> CliError:
    """Map a library exception to the exit code that tells a script what went wrong."""
    if type(exc).__name__ == "BudgetExceededError":
        return CliError(
            f"{exc} Nothing was released. Ask for a smaller --epsilon, or "
            f"raise the cap with 'privval budget set' only if your data policy allows it.",
            EXIT_BUDGET_REFUSED, "budget_refused")
    if type(exc).__name__ == "LedgerCorruptError":
        return CliError(f"{exc} Restore the ledger from a backup ('privval ledger verify' "
                        f"names the first altered row).", EXIT_LEDGER_BROKEN, "ledger_broken")
    if any(c.__name__ == "LedgerError" for c in type(exc).__mro__):
        return CliError(f"{exc} Check the --ledger path (or $PRIVVAL_LEDGER).", EXIT_BAD_INPUT)
    if isinstance(exc, sqlite3.DatabaseError):
        return CliError(f"The ledger database cannot be used: {exc}. Check that --ledger points to "
                        f"a privval ledger file that is not corrupted.", EXIT_BAD_INPUT)
    if isinstance(exc, (ValueError, TypeError)):
        return CliError(str(exc), EXIT_BAD_INPUT)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return CliError(f"{exc.strerror or exc}{where}. Check the path and its permissions.",
                        EXIT_BAD_INPUT)
    return CliError(
        f"Internal error ({type(exc).__name__}: {exc}). This is a bug in privval, not in your "
        f"input: rerun with PRIVVAL_DEBUG=1 for the traceback and report it.",
        EXIT_INTERNAL, "internal_error")


class _Group(click.Group):
    """A click group that turns library exceptions into exit codes 1, 2, 3 and 4."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--json" in args:  # so that even option-parsing errors come back as JSON
            ctx.meta[_JSON_KEY] = True
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            error.as_json = error.as_json or bool(ctx.meta.get(_JSON_KEY))
            raise
        except click.UsageError as error:
            if ctx.meta.get(_JSON_KEY) and not getattr(error, "json_shown", False):
                error.json_shown = True  # type: ignore[attr-defined]  # nested groups re-raise
                click.echo(json.dumps({"ok": False, "error": {
                    "kind": "bad_input", "exit_code": error.exit_code,
                    "message": error.format_message()}}))
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.meta.get("privval.debug") or os.environ.get("PRIVVAL_DEBUG"):
                traceback.print_exc()
            error = _translate(exc)
            error.as_json = bool(ctx.meta.get(_JSON_KEY))
            raise error from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="privval")
@click.option("--debug", is_flag=True, help="Print the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Differentially private data valuation with rigorous privacy accounting.

    \b
    Exit codes: 0 ok, 1 internal error, 2 bad input, 3 budget refused,
    4 ledger verification failed.
    """
    ctx.meta["privval.debug"] = debug
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    else:
        # dp-accounting's RDP code logs convergence notes for orders it then excludes: noise here.
        logging.getLogger("absl").setLevel(logging.ERROR)


# ----------------------------------------------------------------------------- shared options


def _output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--quiet", "-q", is_flag=True,
                        help="No progress bars and only the essential output.")(func)
    func = click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object on stdout (errors too), for scripts.")(func)
    return func


def _ledger_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ledger", "ledger_path", type=click.Path(dir_okay=False), envvar="PRIVVAL_LEDGER",
        default=DEFAULT_LEDGER, show_default=True, show_envvar=True,
        help="The privacy ledger (a SQLite file).")(func)


def _setup(as_json: bool) -> None:
    click.get_current_context().meta[_JSON_KEY] = as_json


def _progress(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and sys.stderr.isatty()


def _positive(what: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and value > 0):
            raise click.BadParameter(f"must be a finite number > 0 ({what}). Got {value}.",
                                     ctx=ctx, param=param)
        return value
    return check


def _delta_check(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not (0 < value < 1):
        raise click.BadParameter(
            f"must be in (0, 1), and should be well below 1/N for N records (e.g. 1e-5). "
            f"Got {value}.", ctx=ctx, param=param)
    return value


def _emit(as_json: bool, payload: Mapping[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps({"ok": True, **payload}, default=_jsonable))
    else:
        for line in lines:
            click.echo(line)


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return str(obj)


def _fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == math.inf:
        return "inf"
    return f"{x:.4g}"


# ----------------------------------------------------------------------------- ledger helpers


def _open_ledger(path: str, *, must_exist: bool) -> Any:
    if must_exist and not Path(path).exists():
        raise CliError(
            f"No ledger at {path!r}. Create one by setting a budget: privval budget set "
            f"--dataset NAME --epsilon E --delta D --ledger {path}", EXIT_BAD_INPUT)
    from accountants.ledger import Ledger

    return Ledger(path)


def _budget_status(ledger: Any, dataset: str) -> dict[str, Any]:
    """Cap, spent and remaining ε of a dataset; every ε is at the cap's δ."""
    budget = ledger.budget(dataset)
    spent = ledger.spent(dataset)
    remaining = ledger.remaining(dataset)
    return {"dataset": dataset,
            "cap": {"epsilon": budget.epsilon, "delta": budget.delta, "accountant": budget.accountant,
                    "fingerprint": budget.fingerprint},
            "spent": {"epsilon": spent.epsilon, "delta": spent.delta},
            "remaining": {"epsilon": remaining.epsilon, "delta": remaining.delta},
            "charges": spent.charges}


def _require_budget(ledger: Any, dataset: str, ledger_path: str) -> None:
    if dataset not in ledger.datasets():
        raise CliError(
            f"No privacy budget is set for dataset {dataset!r} in the ledger {ledger_path!r}. "
            f"Set one first: privval budget set --dataset {dataset} --epsilon E --delta D "
            f"--ledger {ledger_path}", EXIT_BAD_INPUT)


# ----------------------------------------------------------------------------- value


@main.command()
@click.option("--train", "train_path", required=True, type=click.Path(dir_okay=False),
              help="Training records to value (CSV, Parquet, .npy or .npz).")
@click.option("--val", "val_path", required=True, type=click.Path(dir_okay=False),
              help="Validation records (same format and feature columns as --train).")
@click.option("--label-column", default=None,
              help="Label column: a name for CSV/Parquet/.npz (default 'y'), an index for .npy "
                   "(default -1, the last column).")
@click.option("--tau", default="auto", show_default=True,
              help="Neighbourhood radius: 'auto' (from the validation set alone, no privacy "
                   "cost), 'private' (a DP choice charged to the ledger; needs --epsilon) or a "
                   "number > 0.")
@click.option("--metric", type=click.Choice(["euclidean", "cosine"]), default="euclidean",
              show_default=True, help="Distance between feature vectors.")
@click.option("--epsilon", type=float, default=None, callback=_positive("the ε to spend"),
              help="Spend this ε for a differentially private release (DP-TKNN-Shapley). "
                   "Without it, values are exact and NOT private.")
@click.option("--delta", type=float, default=None, callback=_delta_check,
              help="δ of the private release (needed with --epsilon), e.g. 1e-5.")
@_ledger_option
@click.option("--dataset", default=None,
              help="Name of the protected dataset in the ledger (default: the --train file's stem).")
@click.option("--purpose", default=None, help="Why this release is made (recorded in the ledger).")
@click.option("--accountant", type=click.Choice(["pld", "rdp", "evr"]), default="pld",
              show_default=True,
              help="Calibrates the noise of a private release: privacy-loss distributions, Rényi "
                   "DP, or estimate-verify-release (a verified Monte Carlo claim).")
@click.option("--sampling-rate", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Poisson subsampling rate q in (0, 1] per validation point (default 1).")
@click.option("--seed", type=int, default=None,
              help="Seed the noise for a reproducible (NOT secure) release; the ledger marks it seeded.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="values.csv",
              show_default=True, help="Where to write index,value,rank per training record (.csv or .json).")
@click.option("--top", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="How many most and least valuable records to print.")
@_output_options
def value(train_path: str, val_path: str, label_column: str | None, tau: str, metric: str,
          epsilon: float | None, delta: float | None, ledger_path: str, dataset: str | None,
          purpose: str | None, accountant: str, sampling_rate: float | None, seed: int | None,
          out_path: str, top: int, as_json: bool, quiet: bool) -> None:
    """Value every training record by how much it helps classify the validation set.

    Without --epsilon this runs exact TKNN-Shapley (not private). With --epsilon and --delta it
    runs DP-TKNN-Shapley: the charge is committed to the ledger before any value is written, and
    a request over the remaining budget is refused with exit code 3.
    """
    _setup(as_json)
    tau_value = _parse_tau(tau)
    private = epsilon is not None
    if tau_value == "private" and not private:
        raise CliError("--tau private chooses τ with a differentially private selection and needs "
                       "a budget: add --epsilon and --delta, or use --tau auto.")
    if private and delta is None:
        raise CliError("--epsilon needs --delta too (e.g. --delta 1e-5, well below 1/N).")
    if delta is not None and not private:
        raise CliError("--delta only applies to a private release: add --epsilon, or drop --delta.")
    for flag, given in (("--seed", seed is not None), ("--sampling-rate", sampling_rate is not None),
                        ("--accountant", accountant != "pld")):
        if given and not private:
            raise CliError(f"{flag} only applies to a private release: add --epsilon and --delta, "
                           f"or drop {flag}.")

    from privval.io import read_labeled, value_ranks, write_values

    _check_writable(out_path)
    train = read_labeled(train_path, label_column)
    val = read_labeled(val_path, label_column)
    if train.x.shape[1] != val.x.shape[1]:
        raise CliError(
            f"--train has {train.x.shape[1]} feature columns but --val has {val.x.shape[1]}. "
            f"Both files need the same feature columns.")
    if train.feature_names != val.feature_names and not train_path.endswith((".npy", ".npz")):
        logger.warning("feature column names differ between --train and --val")
    if train.y.dtype.kind != val.y.dtype.kind:
        raise CliError(
            f"--train has {'integer' if train.y.dtype.kind == 'i' else 'text'} labels but --val "
            f"has {'integer' if val.y.dtype.kind == 'i' else 'text'} labels. Use the same label "
            f"encoding in both files.")
    progress = _progress(quiet, as_json)
    payload: dict[str, Any] = {"train": train_path, "val": val_path, "n_train": train.n_samples,
                               "n_val": val.n_samples, "metric": metric, "private": private}
    lines: list[str] = []

    if not private:
        from privval.tknn import tknn_shapley

        tau_used = _auto_tau(val.x, metric) if tau_value == "auto" else tau_value
        values = tknn_shapley(train.x, train.y, val.x, val.y, tau=tau_used, metric=metric,
                              progress=progress)
        payload.update(tau=tau_used, tau_source=tau_value if isinstance(tau_value, str) else "given",
                       guarantee=None)
        lines.append(
            f"Valued {train.n_samples} training records on {val.n_samples} validation records "
            f"(TKNN-Shapley, {metric}, tau={_fmt(tau_used)}"
            f"{' from the validation set' if tau_value == 'auto' else ''}).")
        lines.append("Privacy: none. These values are exact and NOT differentially private; pass "
                     "--epsilon/--delta for a private release.")
    else:
        from privval.private import dp_tknn_shapley

        name = dataset or Path(train_path).stem
        with closing(_open_ledger(ledger_path, must_exist=True)) as ledger:
            _require_budget(ledger, name, ledger_path)
            release = dp_tknn_shapley(
                train.x, train.y, val.x, val.y, tau=tau_value, epsilon=epsilon, delta=delta,
                ledger=ledger, dataset=name, purpose=purpose or f"privval value --train {train_path}",
                rng=seed, metric=metric, accountant=accountant, sampling_rate=sampling_rate,
                progress=progress)
            values = release.values
            guarantee = _guarantee_dict(release)
            budget = _budget_status(ledger, name)
        payload.update(dataset=name, ledger=ledger_path, guarantee=guarantee, budget=budget,
                       tau=release.tau,
                       tau_source=release.tau_source,
                       noise_scale=release.noise_scale, sampling_rate=release.sampling_rate,
                       n_val_used=len(release.validation_indices),
                       ledger_entry=release.ledger_entry, seeded=release.seeded)
        how = {"auto": " from the validation set", "private": " chosen privately, inside the guarantee"}
        lines.append(
            f"Valued {train.n_samples} training records on {val.n_samples} validation records "
            f"(DP-TKNN-Shapley, {metric}, tau={_fmt(payload['tau'])}"
            f"{how.get(payload['tau_source'], '')}; noise σ={_fmt(release.noise_scale)}, "
            f"sampling rate {_fmt(release.sampling_rate)}).")
        lines.append(f"Guarantee: {_guarantee_text(guarantee)}"
                     f"{'; SEEDED noise: reproducible, not secure' if seed is not None else ''}.")
        cert = guarantee.get("certificate")
        if cert:
            lines.append(
                f"EVR certificate: a Monte Carlo check on {cert.get('samples_used', '?'):,} fresh "
                f"samples {'accepted' if cert.get('accepted') else 'REJECTED'} δ_b="
                f"{_fmt(cert.get('delta_b'))} at ε={_fmt(cert.get('epsilon'))} (slack τ="
                f"{_fmt(cert.get('tau'))}, false-positive bound p={_fmt(cert.get('p'))}), so the "
                f"release is (ε, τ·δ_b + p)-DP.")
        lines.append("Hand owner j only row j: each value is DP towards everyone else, but the "
                     "file as a whole is not (row j depends on record j).")
        lines.append(f"Ledger {ledger_path!r}, dataset {name!r}: spent ε={_fmt(budget['spent']['epsilon'])} "
                     f"of ε={_fmt(budget['cap']['epsilon'])}, remaining ε={_fmt(budget['remaining']['epsilon'])} "
                     f"(at δ={_fmt(budget['cap']['delta'])}; charge {payload['ledger_entry']}).")

    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    out = write_values(out_path, values)
    ranks = value_ranks(values)
    order = np.argsort(ranks)
    best = [{"index": int(i), "value": float(values[i])} for i in order[:top]]
    worst = [{"index": int(i), "value": float(values[i])} for i in order[::-1][:top]]
    payload.update(out=str(out), top=best, bottom=worst)
    lines.append(f"Wrote {out} (index, value, rank; rank 1 = most valuable).")
    if top and not quiet:
        lines.append("Most valuable:  " + ", ".join(f"#{r['index']} ({r['value']:.3g})" for r in best))
        lines.append("Least valuable: " + ", ".join(f"#{r['index']} ({r['value']:.3g})" for r in worst)
                     + "  <- check these for label errors")
    _emit(as_json, payload, lines)


def _check_writable(path: str) -> None:
    """Refuse an unusable --out before any budget is spent, not after."""
    target = Path(path)
    parent = target.resolve().parent
    if target.is_dir():
        raise CliError(f"--out {path!r} is a directory; give a file name such as values.csv.")
    if not parent.is_dir():
        raise CliError(f"Cannot write --out {path!r}: the directory {str(parent)!r} does not exist. "
                       f"Create it or choose another --out path.")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CliError(f"Cannot write --out {path!r}: permission denied. Choose a writable path.")


def _parse_tau(text: str) -> float | str:
    key = text.strip().lower()
    if key in ("auto", "private"):
        return key
    try:
        tau = float(key)
    except ValueError:
        raise CliError(f"--tau must be 'auto', 'private' or a number > 0. Got {text!r}.") from None
    if not (math.isfinite(tau) and tau > 0):
        raise CliError(f"--tau must be a finite number > 0 (a distance). Got {text!r}.")
    return tau


def _auto_tau(x_val: Any, metric: str) -> float:
    """The validation-only radius (no privacy cost): a quantile of validation distances."""
    from privval.threshold import tau_from_validation

    return float(tau_from_validation(x_val, metric=metric))


def _guarantee_dict(release: Any) -> dict[str, Any]:
    g = release.guarantee
    out: dict[str, Any] = {"epsilon": g.epsilon, "delta": g.delta, "accountant": g.accountant,
                           "neighboring_relation": g.neighboring_relation,
                           "collusion_resistant": g.collusion_resistant}
    if g.certificate is not None:
        to_dict = getattr(g.certificate, "to_dict", None)
        out["certificate"] = to_dict() if callable(to_dict) else _jsonable(g.certificate)
    return out


def _guarantee_text(g: Mapping[str, Any]) -> str:
    relation = g.get("neighboring_relation", "add/remove one record")
    return (f"(ε={_fmt(g.get('epsilon'))}, δ={_fmt(g.get('delta'))})-DP for every training record "
            f"({relation}), {g.get('accountant', '?')} accountant")


# ----------------------------------------------------------------------------- budget


@main.group(cls=_Group)
def budget() -> None:
    """Set or show a dataset's privacy budget."""


@budget.command("set")
@click.option("--dataset", required=True, help="Name of the protected dataset.")
@click.option("--epsilon", type=float, required=True, callback=_positive("the total ε cap"),
              help="Total ε the dataset may ever spend.")
@click.option("--delta", type=float, required=True, callback=_delta_check,
              help="Total δ the dataset may ever spend, e.g. 1e-5.")
@click.option("--accountant", type=click.Choice(["pld", "rdp"]), default="pld", show_default=True,
              help="Accountant that composes the charges against the cap.")
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None,
              help="Optional data file whose fingerprint the ledger records with the budget.")
@click.option("--label-column", default=None, help="Label column of --data (see 'privval value').")
@_ledger_option
@_output_options
def budget_set(dataset: str, epsilon: float, delta: float, accountant: str, data_path: str | None,
               label_column: str | None, ledger_path: str, as_json: bool, quiet: bool) -> None:
    """Set the total (ε, δ) budget of a dataset (creates the ledger if needed)."""
    _setup(as_json)
    fingerprint = None
    if data_path is not None:
        from accountants.ledger import fingerprint_arrays
        from privval.io import read_labeled

        data = read_labeled(data_path, label_column)
        fingerprint = fingerprint_arrays(data.x, data.y)
    with closing(_open_ledger(ledger_path, must_exist=False)) as ledger:
        ledger.set_budget(dataset, epsilon=epsilon, delta=delta, accountant=accountant,
                          fingerprint=fingerprint)
        status = _budget_status(ledger, dataset)
    _emit(as_json, {"ledger": ledger_path, "fingerprint": fingerprint, **status},
          [(f"Budget for {dataset!r} in {ledger_path!r}: ε={_fmt(epsilon)} at δ={_fmt(delta)} "
            f"({accountant} accountant); spent ε={_fmt(status['spent']['epsilon'])}, remaining "
            f"ε={_fmt(status['remaining']['epsilon'])}.")])


@budget.command("show")
@click.option("--dataset", default=None, help="Only this dataset (default: every dataset).")
@_ledger_option
@_output_options
def budget_show(dataset: str | None, ledger_path: str, as_json: bool, quiet: bool) -> None:
    """Show cap, spent and remaining (ε, δ) per dataset."""
    _setup(as_json)
    with closing(_open_ledger(ledger_path, must_exist=True)) as ledger:
        if dataset is not None:
            _require_budget(ledger, dataset, ledger_path)
            names = [dataset]
        else:
            names = ledger.datasets()
        rows = [_budget_status(ledger, name) for name in names]
    lines = [f"Ledger {ledger_path!r}:"] if rows else [
        (f"Ledger {ledger_path!r} has no budgets yet. Set one with: privval budget set --dataset "
         f"NAME --epsilon E --delta D")]
    for r in rows:
        cap = r.get("cap") or {}
        lines.append(
            f"  {r['dataset']}: cap ε={_fmt(cap.get('epsilon'))} at δ={_fmt(cap.get('delta'))} "
            f"({cap.get('accountant', '?')}), spent ε={_fmt(r['spent']['epsilon'])}, "
            f"remaining ε={_fmt(r['remaining']['epsilon'])}, {r.get('charges', 0)} charges")
    _emit(as_json, {"ledger": ledger_path, "datasets": rows}, lines)


# ----------------------------------------------------------------------------- ledger


@main.group("ledger", cls=_Group)
def ledger_group() -> None:
    """Inspect the privacy ledger."""


@ledger_group.command("verify")
@_ledger_option
@_output_options
def ledger_verify(ledger_path: str, as_json: bool, quiet: bool) -> None:
    """Check the ledger's hash chain; exit code 4 names the first altered row."""
    _setup(as_json)
    from accountants.ledger import LedgerCorruptError

    try:
        with closing(_open_ledger(ledger_path, must_exist=True)) as ledger:
            result = ledger.verify()
    except LedgerCorruptError as exc:
        raise CliError(f"Ledger {ledger_path!r} FAILED verification: {exc}", EXIT_LEDGER_BROKEN,
                       "ledger_broken") from exc
    if not result.ok:
        raise CliError(
            f"Ledger {ledger_path!r} FAILED verification at row {result.first_bad_id} of "
            f"{result.rows}: {result.reason}. The ledger was altered or corrupted after it was "
            f"written; restore it from a backup and investigate.",
            EXIT_LEDGER_BROKEN, "ledger_broken")
    _emit(as_json, {"ledger": ledger_path, "verified": True, "rows": result.rows,
                    "head_hash": result.head_hash},
          [(f"Ledger {ledger_path!r}: hash chain verified, {result.rows} rows intact "
            f"(head {result.head_hash[:16]}...; keep it elsewhere to detect truncation).")])


# ----------------------------------------------------------------------------- report

_REPORT_SUFFIXES = {".html": "html", ".htm": "html", ".json": "json", ".md": "markdown",
                    ".markdown": "markdown"}


@main.command()
@click.option("--format", "fmt", type=click.Choice(["html", "json", "markdown"]), default=None,
              help="Report format (default: from the --out suffix, else html).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Where to write the report (default: privval-report.<ext> next to the ledger).")
@click.option("--dataset", default=None, help="Only this dataset (default: every dataset).")
@click.option("--compare", multiple=True, type=click.Choice(["rdp", "pld", "mc"]),
              help="Accountants shown side by side (repeatable; default rdp, pld and the Monte "
                   "Carlo estimate mc, which the report marks 'not computed' with the reason when "
                   "the history would take more than about a second to sample; naming mc here "
                   "computes it whatever the cost).")
@_ledger_option
@_output_options
def report(fmt: str | None, out_path: str | None, dataset: str | None, compare: tuple[str, ...],
           ledger_path: str, as_json: bool, quiet: bool) -> None:
    """Write a compliance report: budgets, every release and its guarantee, the chain check."""
    _setup(as_json)
    if fmt is None:
        fmt = _REPORT_SUFFIXES.get(Path(out_path).suffix.lower(), "html") if out_path else "html"
    if out_path is None:
        ext = {"html": "html", "json": "json", "markdown": "md"}[fmt]
        out_path = str(Path(ledger_path).resolve().parent / f"privval-report.{ext}")
    if not Path(out_path).resolve().parent.exists():
        raise CliError(f"Cannot write {out_path!r}: its directory does not exist. Create it or "
                       f"choose another --out path.")
    with closing(_open_ledger(ledger_path, must_exist=True)) as ledger:
        if dataset is not None:
            _require_budget(ledger, dataset, ledger_path)
        from accountants.report import render_report

        render_report(ledger, dataset=dataset, format=fmt, path=out_path,
                      **({"accountants": compare} if compare else {}))
    _emit(as_json, {"ledger": ledger_path, "format": fmt, "out": out_path},
          [f"Wrote the {fmt} report for {dataset or 'every dataset'} to {out_path}."])


# ----------------------------------------------------------------------------- demo


@main.command()
@click.option("--epsilon", "epsilons", type=float, multiple=True,
              help="ε of a private row (repeatable; default 0.1, 0.5, 1 and 4).")
@click.option("--delta", type=float, default=1e-5, show_default=True, callback=_delta_check,
              help="δ of each private row.")
@click.option("--private/--no-private", default=True, show_default=True,
              help="Add DP-TKNN-Shapley rows, charged to a demo ledger with its report.")
@click.option("--out-dir", type=click.Path(file_okay=False), default="privval-demo", show_default=True,
              help="Where the demo writes its ledger (ledger.db) and report (report.html).")
@click.option("--dataset", type=click.Choice(["digits", "breast_cancer"]), default="digits",
              show_default=True, help="Bundled real dataset.")
@click.option("--seed", type=int, default=None,
              help="Seed the private rows' noise (reproducible, NOT secure; marked in the ledger).")
@_output_options
def demo(epsilons: tuple[float, ...], delta: float, private: bool, out_dir: str, dataset: str,
         seed: int | None, as_json: bool, quiet: bool) -> None:
    """Value a bundled real dataset with 10% flipped labels and report detection AUROC.

    Exact TKNN-Shapley and KNN-Shapley, then DP-TKNN-Shapley at a few ε charged to a fresh
    budget in a demo ledger (a last request past the cap is refused), and a compliance report
    written next to that ledger. Low values should flag the flipped labels: AUROC 1 is
    perfect, 0.5 is chance.
    """
    _setup(as_json)
    for eps in epsilons:
        if not (math.isfinite(eps) and eps > 0):
            raise CliError(f"--epsilon must be a finite number > 0 (the ε of a private row). Got {eps}.")
    from privval.demo import demo_data, run_demo

    show = not quiet and not as_json
    result = run_demo(progress=show, dataset=dataset, echo=False)
    private_result = None
    if private:
        from privval.demo_private import DEFAULT_EPSILONS, run_private_demo

        if show:
            click.echo("Releasing DP-TKNN-Shapley values at each ε (noise from the OS CSPRNG"
                       f"{'' if seed is None else '; SEEDED: reproducible, not secure'})...")
        data = demo_data(result.dataset, flip_fraction=result.flip_fraction, seed=result.seed,
                         metric=result.metric)
        private_result = run_private_demo(
            data, epsilons=epsilons or DEFAULT_EPSILONS, delta=delta, out_dir=out_dir, rng=seed,
            progress=show and sys.stderr.isatty())
        result = result.with_rows(*(row.as_demo_row() for row in private_result.rows))
    if as_json:
        payload: dict[str, Any] = {"demo": _asdict(result)}
        if private_result is not None:
            payload["private"] = _asdict(private_result)
        _emit(True, payload, [])
        return
    click.echo(result.table())
    if private_result is not None:
        click.echo(private_result.summary())


def _asdict(obj: Any) -> Any:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(obj), default=_jsonable))
