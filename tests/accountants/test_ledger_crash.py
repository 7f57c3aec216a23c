"""Crash safety: SIGKILL a process at random points of its charge/release loop, 200 times.

A single helper process imports the library once and forks one child per round; the child
opens the ledger and charges in a loop (every fifth release "fails" inside the block), and the
helper kills it with SIGKILL after a random delay, so kills land while opening, composing,
inside BEGIN IMMEDIATE, during COMMIT and between the charge and its release. Afterwards, read
with plain sqlite3 and an independent accountant: the chain verifies, every committed charge
recorded the composition of exactly the charges before it, the spent budget is the composition
of all committed charges, and no release exists without its charge.
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

ROUNDS = 200
SIGMA = 50.0
DELTA = 1e-6

_CHILD = textwrap.dedent(
    """
    import json, os, random, signal, sys, time
    from accountants.events import GaussianDpEvent
    from accountants.ledger import Ledger

    path, rounds, seed, max_delay, sigma = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    rnd = random.Random(seed)

    class ReleaseFailed(Exception):
        pass

    def loop(round_no, ready):
        ledger = Ledger(path, record=("rdp",))
        os.write(ready, b"r")
        event = GaussianDpEvent(sigma)
        k = 0
        while True:
            k += 1
            try:
                with ledger.charge("d", event, sensitivity=1.0, sampling="none", seeded=False,
                                   purpose=f"round {round_no} charge {k}"):
                    if k % 5 == 0:
                        raise ReleaseFailed
            except ReleaseFailed:
                pass

    killed = 0
    for i in range(rounds):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                loop(i, w)
            finally:
                os._exit(3)
        os.close(w)
        # Odd rounds count the delay from the moment the ledger is open (kills land in the
        # charge loop even on a loaded machine); even rounds from the fork (kills also land
        # while opening and replaying).
        if i % 2:
            os.read(r, 1)
        time.sleep(rnd.uniform(0.0, max_delay))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(r)
        killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    print(json.dumps({"killed": killed}))
    """
)


@pytest.mark.slow
def test_sigkill_during_charge_release_loops_never_leaks(tmp_path):
    path = tmp_path / "crash.db"
    with Ledger(path, record=("rdp",)) as ledger:
        ledger.set_budget("d", epsilon=1e6, delta=DELTA, accountant="rdp")
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(script), str(path), str(ROUNDS), "20261126", "0.05", str(SIGMA)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["killed"] == ROUNDS, out.stderr

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = [(i, json.loads(c)) for i, c in conn.execute("SELECT id, content FROM entries ORDER BY id")]
    conn.close()
    charges = [(i, c) for i, c in rows if c["kind"] == "charge"]
    releases = [c for _, c in rows if c["kind"] == "release"]
    assert len(charges) >= ROUNDS // 10  # the children got to charge, not only to start

    # Every release follows its own charge on the same dataset; no charge is released twice.
    charge_ids = {i for i, _ in charges}
    released = [c["charge_id"] for c in releases]
    assert all(cid in charge_ids and cid < c["id"] for cid, c in zip(released, releases, strict=True))
    assert len(released) == len(set(released))
    assert len(releases) < len(charges)  # failed releases and kills left charges unreleased

    # Each committed charge composed exactly the committed charges before it.
    oracle = make_accountant("rdp")
    event = GaussianDpEvent(SIGMA)
    for _, content in charges:
        oracle.compose(event)
        assert content["cumulative"]["epsilon"]["rdp"] == pytest.approx(oracle.get_epsilon(DELTA), rel=1e-9)

    with Ledger(path, record=("rdp",)) as ledger:
        assert ledger.verify().ok
        spent = ledger.spent("d")
        assert spent.charges == len(charges)
        assert spent.epsilon == pytest.approx(oracle.get_epsilon(DELTA), rel=1e-9)
        history = ledger.history("d")
        assert sum(r.released for r in history) == len(releases)
