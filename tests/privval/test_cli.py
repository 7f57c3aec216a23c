"""The command line end to end: real subprocesses on files the tests write.

Each test runs ``python -m privval ...`` in a temporary directory, so what is checked is what a
user gets: the files written, stdout/stderr and the exit code (0 ok, 1 internal error, 2 bad
input, 3 budget refused, 4 ledger verification failed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
                          capture_output=True, text=True, timeout=timeout)


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
    assert run_cli("--version", cwd=tmp_path).stdout.strip().endswith("0.1.0")
    assert "set" in run_cli("budget", "--help", cwd=tmp_path).stdout
    assert "verify" in run_cli("ledger", "--help", cwd=tmp_path).stdout


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
    result = run_cli("value", *args, cwd=cwd)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (cwd / "values.csv").exists()


def test_errors_are_json_under_json(data) -> None:
    result = run_cli("value", "--train", "missing.csv", "--val", "val.csv", "--json", cwd=data["dir"])
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert payload["error"]["exit_code"] == 2
    assert "missing.csv" in payload["error"]["message"]


def test_commands_on_a_missing_ledger_say_how_to_create_it(tmp_path) -> None:
    for args in (["budget", "show"], ["ledger", "verify"], ["report", "--out", "r.html"]):
        result = run_cli(*args, "--ledger", "nowhere.db", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "No ledger at 'nowhere.db'" in result.stderr
        assert "privval budget set" in result.stderr
        assert not (tmp_path / "nowhere.db").exists()


def test_internal_errors_exit_1_and_ask_for_a_report(monkeypatch, tmp_path) -> None:
    from click.testing import CliRunner

    import privval.io
    from privval.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(privval.io, "read_labeled", broken)
    monkeypatch.delenv("PRIVVAL_DEBUG", raising=False)
    result = CliRunner().invoke(main, ["value", "--train", "a.csv", "--val", "b.csv"])
    assert result.exit_code == 1
    assert "Internal error (RuntimeError: boom)" in result.output
    assert "bug in privval" in result.output
