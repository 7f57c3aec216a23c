"""Concurrency: 8 processes × 50 charges against one cap never overspend it.

The cap lies half-way between the ε of k and k + 1 compositions (computed with a fresh
accountant, independently of the ledger), so exactly k charges are admissible whichever
process makes them. One helper process imports the library once and forks the workers, which
start together and queue on SQLite's lock (BEGIN IMMEDIATE with a busy timeout).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from accountants.accountant import make_accountant
from accountants.events import GaussianDpEvent
from accountants.ledger import Ledger

WORKERS = 8
ATTEMPTS = 50
ADMISSIBLE = 173  # not a multiple of ATTEMPTS: at least four workers must share it
SIGMA = 20.0
DELTA = 1e-6

_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from accountants.events import GaussianDpEvent
    from accountants.ledger import BudgetExceededError, Ledger

    path, workers, attempts, sigma, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    start = time.time() + 0.5

    def work(index):
        ledger = Ledger(path, record=("rdp",))
        time.sleep(max(0.0, start - time.time()))
        if mode == "open":
            ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant="rdp")
            return {"worker": index}
        ok = refused = 0
        for _ in range(attempts):
            try:
                with ledger.charge("d", GaussianDpEvent(sigma), sensitivity=1.0, sampling="none",
                                   seeded=False, purpose=f"worker {index}"):
                    pass
                ok += 1
            except BudgetExceededError:
                refused += 1
        return {"worker": index, "ok": ok, "refused": refused}

    pids = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.write(1, (json.dumps(work(i)) + "\\n").encode())
            except BaseException as err:
                os.write(2, f"worker {i}: {err!r}\\n".encode())
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitpid(pid, 0)[1] for pid in pids]
    sys.exit(1 if any(codes) else 0)
    """
)


def _run(tmp_path, path, mode: str) -> list[dict]:
    script = tmp_path / "workers.py"
    script.write_text(_CHILD)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), str(path), str(WORKERS), str(ATTEMPTS), str(SIGMA), mode],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert sorted(r["worker"] for r in lines) == list(range(WORKERS))
    return lines


def _epsilon(count: int) -> float:
    return make_accountant("rdp").compose(GaussianDpEvent(SIGMA), count).get_epsilon(DELTA)


@pytest.mark.slow
def test_concurrent_processes_never_exceed_the_cap(tmp_path):
    low, high = _epsilon(ADMISSIBLE), _epsilon(ADMISSIBLE + 1)
    assert high > low
    cap = (low + high) / 2
    path = tmp_path / "shared.db"
    with Ledger(path, record=("rdp",)) as ledger:
        ledger.set_budget("d", epsilon=cap, delta=DELTA, accountant="rdp")

    results = _run(tmp_path, path, "charge")
    assert all(r["ok"] + r["refused"] == ATTEMPTS for r in results)
    assert sum(r["ok"] for r in results) == ADMISSIBLE

    with sqlite3.connect(path) as conn:
        rows = [json.loads(c) for (c,) in conn.execute("SELECT content FROM entries ORDER BY id")]
    charges = [c for c in rows if c["kind"] == "charge"]
    assert len(charges) == ADMISSIBLE
    recorded = [c["cumulative"]["epsilon"]["rdp"] for c in charges]
    assert recorded == sorted(recorded) and recorded[-1] <= cap
    for n in (1, ADMISSIBLE // 2, ADMISSIBLE):  # each charge composed all charges before it
        assert recorded[n - 1] == pytest.approx(_epsilon(n), rel=1e-9)
    with Ledger(path, record=("rdp",)) as ledger:
        assert ledger.verify().ok
        assert ledger.spent("d").epsilon <= cap
        assert ledger.spent("d").charges == ADMISSIBLE


def test_concurrent_first_opens_create_one_schema_and_one_budget(tmp_path):
    path = tmp_path / "fresh.db"
    _run(tmp_path, path, "open")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM entries WHERE kind = 'budget'").fetchone()[0] == 1
