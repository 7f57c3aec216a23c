"""The command line end to end, on files the tests write.

The main flows run ``python -m privval ...`` in a real subprocess in a temporary directory, so
what is checked is what a user gets: the files written, stdout/stderr and the exit code (0 ok,
1 internal error, 2 bad input, 3 budget refused, 4 ledger verification failed). The matrix of
bad inputs runs the same ``main`` in-process through click's runner (same parsing, same exit
codes, same messages) because each subprocess pays the package's import time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the command line as a user would, with a ledger path private to the test."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PRIVVAL_LEDGER"] = str(cwd / "ledger.db")
    env.pop("PRIVVAL_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "privval", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def invoke(*args: str, cwd: Path) -> Any:
    """Run ``privval ARGS`` in-process as the console script would (standalone mode)."""
    from click.testing import CliRunner

    from privval.cli import main

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner(env={"PRIVVAL_LEDGER": str(cwd / "ledger.db"), "PRIVVAL_DEBUG": None}).invoke(
            main, list(args), prog_name="privval")
    finally:
        os.chdir(old)


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two well separated Gaussian classes in 3-D."""
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 3)) + 4.0 * y[:, None]
    return x, y


@pytest.fixture
def data(tmp_path, rng) -> dict[str, object]:
    """Train/val CSV files with 10% of the training labels flipped, plus a .npy copy."""
    x_train, y_clean = _blobs(rng, 80)
    flipped = np.zeros(80, dtype=bool)
    flipped[rng.choice(80, size=8, replace=False)] = True
    y_train = np.where(flipped, 1 - y_clean, y_clean)
    x_val, y_val = _blobs(rng, 30)
    header = "f0,f1,f2,y"
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        rows = [header] + [",".join([*(f"{v:.17g}" for v in xi), str(yi)]) for xi, yi in zip(x, y)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        np.save(tmp_path / f"{name}.npy", np.column_stack([x, y]))
    return {"dir": tmp_path, "x_train": x_train, "y_train": y_train, "x_val": x_val,
            "y_val": y_val, "flipped": flipped}


def test_help_lists_every_subcommand_and_exit_codes(tmp_path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("value", "budget", "ledger", "report", "demo"):
        assert command in result.stdout
    assert "3 budget refused" in result.stdout
    assert invoke("--version", cwd=tmp_path).output.strip().endswith("0.1.0")
    assert "set" in invoke("budget", "--help", cwd=tmp_path).output
    assert "verify" in invoke("ledger", "--help", cwd=tmp_path).output


BAD_INPUTS = [
    # (arguments after 'value', files to write {name: text}, fragments of stderr)
    (["--train", "missing.csv", "--val", "val.csv"], {}, ["missing.csv", "does not exist"]),
    (["--train", "train.csv", "--val", "val.csv", "--label-column", "target"], {},
     ["no label column 'target'", "'y'", "--label-column"]),
    (["--train", "text.csv", "--val", "val.csv"], {"text.csv": "f0,f1,f2,y\n1,2,red,0\n"},
     ["column 'f2', row 1", "'red' is not a number"]),
    (["--train", "nan.csv", "--val", "val.csv"], {"nan.csv": "f0,f1,f2,y\n1,NaN,3,0\n"},
     ["column 'f1', row 1", "finite"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "0", "--delta", "1e-5"], {},
     ["--epsilon", "> 0", "Got 0.0"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "-1", "--delta", "1e-5"], {},
     ["--epsilon", "> 0", "Got -1.0"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "nan", "--delta", "1e-5"], {},
     ["--epsilon", "finite"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "1"], {}, ["--epsilon needs --delta"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "1", "--delta", "1"], {},
     ["--delta", "(0, 1)"]),
    (["--train", "train.csv", "--val", "val.csv", "--delta", "1e-5"], {}, ["--delta only applies"]),
    (["--train", "train.csv", "--val", "val.csv", "--seed", "3"], {}, ["--seed only applies"]),
    (["--train", "train.csv", "--val", "val.csv", "--epsilon", "1", "--delta", "1e-5",
      "--sampling-rate", "0"], {}, ["--sampling-rate", "0<x<=1"]),
    (["--train", "train.csv", "--val", "val.csv", "--out", "nodir/v.csv"], {},
     ["Cannot write --out 'nodir/v.csv'", "does not exist"]),
    (["--train", "train.csv", "--val", "val.csv", "--tau", "private"], {}, ["--tau private", "--epsilon"]),
    (["--train", "train.csv", "--val", "val.csv", "--tau", "0"], {}, ["--tau", "> 0"]),
    (["--train", "train.csv", "--val", "val.csv", "--tau", "wide"], {}, ["--tau", "'auto'", "'wide'"]),
    (["--train", "train.csv", "--val", "val.csv", "--metric", "manhattan"], {}, ["--metric", "manhattan"]),
    (["--train", "train.csv", "--val", "two.csv"], {"two.csv": "f0,f1,y\n1,2,0\n"},
     ["3 feature columns", "--val has 2"]),
    (["--train", "train.npy", "--val", "val.npy", "--label-column", "y"], {},
     ["integer index", "--label-column -1"]),
    (["--train", "train.csv"], {}, ["Missing option '--val'"]),
]


@pytest.mark.parametrize(("args", "files", "fragments"), BAD_INPUTS,
                         ids=[" ".join(case[0][-2:]) for case in BAD_INPUTS])
def test_bad_input_exits_2_and_says_what_to_fix(data, args, files, fragments) -> None:
    cwd = data["dir"]
    for name, text in files.items():
        (cwd / name).write_text(text, encoding="utf-8")
    result = invoke("value", *args, cwd=cwd)
    assert result.exit_code == 2, (result.exit_code, result.output)
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    assert "Traceback" not in result.output
    assert not (cwd / "values.csv").exists()


def test_bad_input_in_a_real_process_exits_2_with_json_error(data) -> None:
    result = run_cli("value", "--train", "missing.csv", "--val", "val.csv", "--json", cwd=data["dir"])
    assert result.returncode == 2
    assert "Error: Data file 'missing.csv' does not exist" in result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["error"]["exit_code"] == 2
    assert "missing.csv" in payload["error"]["message"]


def test_option_errors_are_json_too_under_json(tmp_path) -> None:
    result = invoke("budget", "set", "--dataset", "d", "--epsilon", "-2", "--delta", "1e-5",
                    "--json", cwd=tmp_path)
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and "--epsilon" in payload["error"]["message"]


def test_commands_on_a_missing_ledger_say_how_to_create_it(tmp_path) -> None:
    for args in (["budget", "show"], ["ledger", "verify"], ["report", "--out", "r.html"],
                 ["value", "--train", "t.csv", "--val", "t.csv", "--tau", "1", "--epsilon", "1",
                  "--delta", "1e-5"]):
        (tmp_path / "t.csv").write_text("a,y\n1,0\n2,1\n", encoding="utf-8")
        result = invoke(*args, "--ledger", "nowhere.db", cwd=tmp_path)
        assert result.exit_code == 2, (args, result.output)
        assert "No ledger at 'nowhere.db'" in result.output
        assert "privval budget set" in result.output
        assert not (tmp_path / "nowhere.db").exists()


def test_internal_errors_exit_1_and_ask_for_a_report(monkeypatch, tmp_path) -> None:
    import privval.io

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(privval.io, "read_labeled", broken)
    result = invoke("value", "--train", "a.csv", "--val", "b.csv", cwd=tmp_path)
    assert result.exit_code == 1
    assert "Internal error (RuntimeError: boom)" in result.output
    assert "bug in privval" in result.output


def _read_values(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = np.loadtxt(path, delimiter=",", skiprows=1)
    assert path.read_text().splitlines()[0] == "index,value,rank"
    np.testing.assert_array_equal(rows[:, 0], np.arange(rows.shape[0]))
    return rows[:, 1], rows[:, 2].astype(int)


def test_value_without_epsilon_is_exact_tknn_and_finds_flipped_labels(data) -> None:
    from privval.threshold import tau_from_validation
    from privval.tknn import tknn_shapley

    cwd = data["dir"]
    result = invoke("value", "--train", "train.csv", "--val", "val.csv", "--json", cwd=cwd)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    tau = tau_from_validation(data["x_val"])
    assert payload["ok"] and payload["private"] is False and payload["guarantee"] is None
    assert payload["tau"] == pytest.approx(tau) and payload["tau_source"] == "auto"
    values, ranks = _read_values(cwd / "values.csv")
    expected = tknn_shapley(data["x_train"], data["y_train"], data["x_val"], data["y_val"], tau=tau)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.sort(ranks), np.arange(1, 81))
    assert values[ranks == 1][0] == values.max()
    assert [r["index"] for r in payload["bottom"][:1]] == [int(np.argmin(values))]
    assert values[data["flipped"]].mean() < values[~data["flipped"]].mean()

    # Same data as .npy (label = last column), cosine, a fixed tau, JSON output file.
    result = invoke("value", "--train", "train.npy", "--val", "val.npy", "--metric", "cosine",
                    "--tau", "0.2", "--out", "v.json", "--quiet", cwd=cwd)
    assert result.exit_code == 0, result.output
    rows = json.loads((cwd / "v.json").read_text())
    expected = tknn_shapley(data["x_train"], data["y_train"], data["x_val"], data["y_val"],
                            tau=0.2, metric="cosine")
    np.testing.assert_allclose([r["value"] for r in rows], expected, rtol=0, atol=1e-12)
    assert "NOT differentially private" in result.output
    assert "Most valuable" not in result.output


def _ledger_state(cwd: Path) -> dict[str, Any]:
    result = run_cli("budget", "show", "--dataset", "patients", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["datasets"][0]


def test_budgeted_private_release_refusal_verify_report_and_tamper(data) -> None:
    cwd = data["dir"]
    result = run_cli("budget", "set", "--dataset", "patients", "--epsilon", "1.2", "--delta", "1e-5",
                     "--data", "train.csv", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "Budget for 'patients'" in result.stdout and (cwd / "ledger.db").exists()

    result = run_cli("value", "--train", "train.csv", "--val", "val.csv", "--dataset", "patients",
                     "--epsilon", "1", "--delta", "1e-5", "--tau", "auto", "--seed", "7", "--json",
                     "--purpose", "audit 2026", cwd=cwd)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    g = payload["guarantee"]
    assert 0 < g["epsilon"] <= 1 and g["delta"] == 1e-5 and g["accountant"] == "pld"
    from privval.threshold import tau_from_validation

    assert payload["seeded"] is True and payload["tau_source"] == "auto"
    assert payload["tau"] == pytest.approx(tau_from_validation(data["x_val"]))
    values, _ = _read_values(cwd / "values.csv")
    assert values.shape == (80,) and np.isfinite(values).all()
    state = _ledger_state(cwd)
    assert state["charges"] == 1
    assert state["spent"]["epsilon"] == pytest.approx(g["epsilon"], rel=1e-3)  # same event, replayed
    assert state["cap"]["fingerprint"]

    # A second release at ε = 1 would pass the cap (1 ⊕ 1 > 1.2 under any accountant): refused with exit 3, nothing spent or written.
    (cwd / "values.csv").unlink()
    result = run_cli("value", "--train", "train.csv", "--val", "val.csv", "--dataset", "patients",
                     "--epsilon", "1", "--delta", "1e-5", "--tau", "2.5", cwd=cwd)
    assert result.returncode == 3, result.stderr
    assert "Privacy budget of dataset 'patients' exceeded" in result.stderr
    assert "Nothing was released" in result.stderr and "smaller --epsilon" in result.stderr
    assert not (cwd / "values.csv").exists()
    after = _ledger_state(cwd)
    assert after["charges"] == 1 and after["spent"] == state["spent"]

    result = run_cli("ledger", "verify", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "hash chain verified" in result.stdout

    result = run_cli("report", "--format", "html", "--out", "report.html", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "audit 2026" in (cwd / "report.html").read_text(encoding="utf-8")
    for fmt, name in (("json", "report.json"), ("markdown", "report.md")):
        result = invoke("report", "--format", fmt, "--out", name, "--dataset", "patients", cwd=cwd)
        assert result.exit_code == 0, result.output
    report = json.loads((cwd / "report.json").read_text(encoding="utf-8"))
    assert "audit 2026" in json.dumps(report)
    assert "audit 2026" in (cwd / "report.md").read_text(encoding="utf-8")
    result = invoke("report", "--out", "report.md", "--dataset", "nobody", cwd=cwd)
    assert result.exit_code == 2 and "No privacy budget is set for dataset 'nobody'" in result.output

    # Edit the released charge's purpose behind the ledger's back: verification must fail (4).
    import sqlite3

    with sqlite3.connect(cwd / "ledger.db") as conn:
        conn.execute("DROP TRIGGER IF EXISTS entries_no_update")
        row_id = conn.execute("SELECT id FROM entries WHERE content LIKE '%audit 2026%' "
                              "ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE entries SET content = replace(content, 'audit 2026', 'audit 2025') "
                     "WHERE id = ?", (row_id,))
    conn.close()
    result = run_cli("ledger", "verify", cwd=cwd)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "FAILED verification" in result.stderr and str(row_id) in result.stderr
    result = invoke("budget", "show", cwd=cwd)
    assert result.exit_code == 4 and "Restore the ledger from a backup" in result.output


def test_budget_commands_reject_bad_values(tmp_path) -> None:
    cases = [
        (["budget", "set", "--dataset", "d", "--epsilon", "0", "--delta", "1e-5"], "--epsilon"),
        (["budget", "set", "--dataset", "d", "--epsilon", "1", "--delta", "-1"], "--delta"),
        (["budget", "set", "--dataset", "d", "--epsilon", "1"], "Missing option '--delta'"),
        (["budget", "set", "--dataset", "d", "--epsilon", "1", "--delta", "1e-5", "--ledger",
          str(tmp_path / "no" / "l.db")], "does not exist"),
    ]
    for args, fragment in cases:
        result = invoke(*args, cwd=tmp_path)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output, (fragment, result.output)
    assert invoke("budget", "set", "--dataset", "d", "--epsilon", "1", "--delta", "1e-5",
                  cwd=tmp_path).exit_code == 0
    shown = invoke("budget", "show", cwd=tmp_path)
    assert shown.exit_code == 0 and "d: cap ε=1 at δ=1e-05 (pld), spent ε=0" in shown.output
    (tmp_path / "junk.db").write_text("not a database", encoding="utf-8")
    result = invoke("ledger", "verify", "--ledger", "junk.db", cwd=tmp_path)
    assert result.exit_code == 4 and "not a readable SQLite database" in result.output
    assert (tmp_path / "junk.db").read_text(encoding="utf-8") == "not a database"


@pytest.mark.slow
def test_demo_is_the_main_job(tmp_path) -> None:
    result = run_cli("demo", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    rows = payload["demo"]["rows"]
    assert [r["method"] for r in rows[:3]] == ["TKNN-Shapley", "KNN-Shapley", "KNN-Shapley (soft label)"]
    private = [r for r in rows if r["method"] == "DP-TKNN-Shapley"]
    assert [p["privacy"] for p in private] == [f"(ε={e:g}, δ=1e-05)-DP" for e in (0.1, 0.5, 1, 4)]
    assert all(r["auroc"] > 0.9 for r in rows), rows
    info = payload["private"]
    assert "exceeded" in info["refused"]
    ledger, report = Path(tmp_path / info["ledger_path"]), Path(tmp_path / info["report_path"])
    assert ledger.parent == report.parent == tmp_path / "privval-demo"
    assert ledger.exists() and "<html" in report.read_text(encoding="utf-8").lower()


def _quickstart_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, flags=re.DOTALL).group(1).strip()


@pytest.mark.slow
def test_readme_quickstart_commands_run_verbatim(tmp_path) -> None:
    """The README's install-and-run command, as written, in a fresh venv on a copy of the repo.

    A real (non-editable) install also checks the packaging: package data, the console script.
    """
    command = _quickstart_command()
    assert "privval demo" in command
    source = tmp_path / "privval-src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "privval-demo",
        "*.db", "*.db-wal", "*.db-shm", "values.csv", ".venv", "venv"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PRIVVAL_LEDGER")}
    env.update(PATH=os.pathsep.join([str(bindir), env.get("PATH", "")]), VIRTUAL_ENV=str(venv),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(["bash", "-c", command], cwd=source, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "TKNN-Shapley" in result.stdout and "DP-TKNN-Shapley" in result.stdout
    assert "AUROC" in result.stdout
    installed = subprocess.run([str(bindir / "python"), "-c", "import privval; print(privval.__file__)"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert str(venv) in installed.stdout, "the demo did not run from the fresh install"
    assert (source / "privval-demo" / "report.html").exists()


def test_evr_release_prints_its_certificate(data) -> None:
    cwd = data["dir"]
    assert invoke("budget", "set", "--dataset", "train", "--epsilon", "3", "--delta", "1e-3",
                  cwd=cwd).exit_code == 0
    result = invoke("value", "--train", "train.csv", "--val", "val.csv", "--epsilon", "1",
                    "--delta", "1e-3", "--accountant", "evr", "--seed", "1", "--top", "0", cwd=cwd)
    assert result.exit_code == 0, result.output
    assert "evr accountant" in result.output
    assert "EVR certificate: a Monte Carlo check on" in result.output and "accepted" in result.output
    assert "SEEDED" in result.output
