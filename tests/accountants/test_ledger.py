"""Ledger: budgets, charge-before-release, refusals, parallel composition, tampering, bad input.

Oracles are independent of the ledger: a pure-DP test accountant whose ε is the closed form
n/b for n Laplace(b) events (basic composition, Dwork & Roth 2014, Thm 3.16), and fresh
registry accountants composing the same events directly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import sqlite3
import stat

import numpy as np
import pytest

from accountants import ledger as ledger_module
from accountants import accountant as registry
from accountants.accountant import (
    Accountant,
    UnsupportedEventError,
    available_accountants,
    make_accountant,
    register_accountant,
)
from accountants.events import GaussianDpEvent, LaplaceDpEvent, UnsupportedDpEvent
from accountants.ledger import (
    BudgetExceededError,
    Ledger,
    LedgerCorruptError,
    LedgerError,
    fingerprint_arrays,
)

PURE = "test-pure-laplace"


class _PureLaplaceAccountant(Accountant):
    """Basic composition of pure-DP Laplace events: ε = Σ count/b, for every δ."""

    name = PURE

    def __init__(self, neighboring_relation="add_or_remove_one") -> None:
        super().__init__(neighboring_relation)
        self._eps = 0.0

    def _unsupported_reason(self, event):
        return None if isinstance(event, LaplaceDpEvent) else "only Laplace events"

    def _compose(self, event, count):
        self._eps += count / event.noise_multiplier

    def _epsilon(self, delta):
        return self._eps

    def _delta(self, epsilon):
        return 0.0 if epsilon >= self._eps else 1.0

    def _get_state(self):
        return self._eps

    def _set_state(self, state):
        self._eps = state


class _AddRemoveOnly(_PureLaplaceAccountant):
    """The same, but refusing to be built for any relation other than add/remove one."""

    name = "test-add-remove-only"

    def __init__(self, neighboring_relation="add_or_remove_one") -> None:
        super().__init__(neighboring_relation)
        if self.neighboring_relation.name != "ADD_OR_REMOVE_ONE":
            raise ValueError("only add_or_remove_one")


@pytest.fixture(autouse=True)
def _test_accountants(monkeypatch):
    """Register the test accountants in a copy of the registry, so no other test sees them."""
    available_accountants()  # load the built-in providers into the real registry first
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_accountant(PURE, _PureLaplaceAccountant)
    register_accountant(_AddRemoveOnly.name, _AddRemoveOnly)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _count(path, kind: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM entries WHERE kind = ?", (kind,)).fetchone()[0]


def _charge(ledger, dataset="d", event=None, **kw):
    kw.setdefault("sensitivity", 1.0)
    kw.setdefault("sampling", "none")
    kw.setdefault("seeded", False)
    with ledger.charge(dataset, event if event is not None else LaplaceDpEvent(8.0), **kw) as entry:
        pass
    return entry


@pytest.fixture
def path(tmp_path):
    return tmp_path / "ledger.db"


@pytest.fixture
def pure(path):
    ledger = Ledger(path, record=())
    ledger.set_budget("d", epsilon=1.05, delta=1e-6, accountant=PURE)
    yield ledger
    ledger.close()


# --------------------------------------------------------------------------- charging
def test_exactly_the_admissible_charges_succeed(pure, path):
    # Laplace(b=8) costs 1/8 each; 8 fit under 1.05, the 9th (1.125) does not.
    entries = [_charge(pure) for _ in range(8)]
    assert [e.epsilon for e in entries] == pytest.approx([k / 8 for k in range(1, 9)], rel=1e-9)
    with pytest.raises(BudgetExceededError) as info:
        _charge(pure)
    err = info.value
    assert err.spent == pytest.approx(1.0) and err.asked == pytest.approx(0.125)
    assert err.total == pytest.approx(1.125) and err.remaining == pytest.approx(0.05)
    assert "spent" in str(err) and "remaining" in str(err) and "asks" in str(err)
    assert _count(path, "charge") == 8 and _count(path, "release") == 8
    assert pure.spent("d").epsilon == pytest.approx(1.0) and pure.spent("d").charges == 8
    assert pure.remaining("d").epsilon == pytest.approx(0.05)
    assert pure.verify().ok
    copy = pickle.loads(pickle.dumps(err))  # refusals may cross process pools
    assert isinstance(copy, BudgetExceededError) and str(copy) == str(err) and copy.remaining == err.remaining


def test_refused_charge_writes_nothing_and_a_smaller_one_still_fits(pure, path):
    for _ in range(8):
        _charge(pure)
    before = _count(path, "charge")
    with pytest.raises(BudgetExceededError):
        _charge(pure, event=LaplaceDpEvent(1.0))
    assert _count(path, "charge") == before
    _charge(pure, event=LaplaceDpEvent(25.0))  # 0.04 still fits under the remaining 0.05
    assert pure.spent("d").epsilon == pytest.approx(1.04)


def test_block_that_raises_keeps_the_charge_without_release(pure, path):
    with pytest.raises(RuntimeError, match="boom"):
        with pure.charge("d", LaplaceDpEvent(8.0), sensitivity=1, sampling="none", seeded=True):
            raise RuntimeError("boom")
    (record,) = pure.history("d")
    assert not record.released and record.seeded
    assert _count(path, "release") == 0
    assert pure.spent("d").epsilon == pytest.approx(0.125)
    entry = _charge(pure)
    assert [r.released for r in pure.history("d")] == [False, True]
    assert pure.history("d")[1].id == entry.id


def test_metadata_accepts_numpy_values_dataclasses_and_infinity(pure):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Cert:
        m: int
        tau: float
        accepted: bool

    _charge(pure, certificate=Cert(np.int64(100), 2.0, True), scope=np.int64(3).item(),
            details={"n": np.int64(7), "sigma": np.float32(0.5), "bound": math.inf, "ids": np.arange(3)})
    (record,) = pure.history("d")
    assert record.certificate == {"m": 100, "tau": 2.0, "accepted": True}
    assert record.details == {"n": 7, "sigma": 0.5, "bound": "inf", "ids": [0, 1, 2]}


def test_release_is_linked_to_its_charge(pure, path):
    entry = _charge(pure, purpose="mean age", details={"k": 3})
    with sqlite3.connect(path) as conn:
        (content,) = conn.execute("SELECT content FROM entries WHERE kind = 'release'").fetchone()
    assert json.loads(content)["charge_id"] == entry.id
    record = pure.history("d")[0]
    assert record.purpose == "mean age" and record.details == {"k": 3} and record.released


def test_history_records_cumulative_epsilon_of_every_accountant(path):
    ledger = Ledger(path, record=("rdp",))
    ledger.set_budget("d", epsilon=10.0, delta=1e-5, accountant=PURE)
    for b in (4.0, 8.0, 2.0):
        _charge(ledger, event=LaplaceDpEvent(b), sensitivity=2.0, sampling={"type": "poisson", "rate": 1.0})
    history = ledger.history("d")
    oracle = make_accountant("rdp")
    for record, b in zip(history, (4.0, 8.0, 2.0), strict=True):
        oracle.compose(LaplaceDpEvent(b))
        assert record.epsilons["rdp"] == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-9)
        assert record.event == LaplaceDpEvent(b) and record.sensitivity == 2.0
        assert record.sampling == {"type": "poisson", "rate": 1.0}
    assert [r.epsilon for r in history] == pytest.approx([0.25, 0.375, 0.875])
    assert ledger.replay("d", "rdp").epsilon == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-9)


def test_recorded_accountant_that_cannot_replay_records_none(path):
    ledger = Ledger(path, record=(PURE,))
    ledger.set_budget("d", epsilon=10.0, delta=1e-5, accountant="rdp")
    entry = _charge(ledger, event=GaussianDpEvent(5.0))
    assert entry.epsilons == {"rdp": pytest.approx(make_accountant("rdp").compose(GaussianDpEvent(5.0)).get_epsilon(1e-5)), PURE: None}


def test_recorded_accountant_that_rejects_the_relation_records_none(path):
    ledger = Ledger(path, record=(_AddRemoveOnly.name,))
    ledger.set_budget("d", epsilon=10.0, delta=1e-5, accountant=PURE)
    entry = _charge(ledger, neighboring_relation="replace_one")
    assert entry.epsilons == {PURE: pytest.approx(0.125), _AddRemoveOnly.name: None}
    assert ledger.history("d")[0].neighboring_relation == "replace_one"
    assert Ledger(path, record=(_AddRemoveOnly.name,)).spent("d").epsilon == pytest.approx(0.125)


def test_unsupported_event_for_the_dataset_accountant_is_refused(pure, path):
    with pytest.raises(UnsupportedEventError):
        _charge(pure, event=GaussianDpEvent(1.0))
    with pytest.raises(UnsupportedEventError):
        _charge(pure, event=UnsupportedDpEvent())
    assert _count(path, "charge") == 0
    _charge(pure)
    assert pure.spent("d").charges == 1


def test_second_ledger_sees_the_first_ledgers_charges(pure, path):
    other = Ledger(path, record=())
    _charge(pure)
    _charge(other)
    _charge(pure)
    assert pure.spent("d").epsilon == pytest.approx(3 / 8)
    assert other.spent("d").epsilon == pytest.approx(3 / 8)
    other.close()


def test_parallel_composition_takes_max_over_scopes_and_sums_within(path):
    ledger = Ledger(path, record=("rdp",))
    ledger.set_budget("fed", epsilon=100.0, delta=1e-6, accountant=PURE)
    plan = [(None, 10.0), ("alice", 4.0), ("alice", 4.0), ("bob", 2.0), (None, 10.0), (7, 8.0)]
    for scope, b in plan:
        _charge(ledger, "fed", LaplaceDpEvent(b), scope=scope)
    # Records of alice: 2/10 + 2/4 = 0.7; bob: 0.2 + 0.5 = 0.7; part 7: 0.2 + 0.125; others 0.2.
    assert ledger.spent("fed").epsilon == pytest.approx(0.7)
    replay = ledger.replay("fed", "rdp")
    for scope in ("alice", "bob", 7):
        oracle = make_accountant("rdp")
        for s, b in plan:
            if s is None or s == scope:
                oracle.compose(LaplaceDpEvent(b))
        assert replay.per_scope[scope] == pytest.approx(oracle.get_epsilon(1e-6), rel=1e-9)
    assert replay.epsilon == pytest.approx(max(replay.per_scope.values()))
    assert ledger.history("fed")[-1].epsilons["rdp"] == pytest.approx(replay.epsilon, rel=1e-9)


def test_parallel_composition_enforces_the_cap_per_part(path):
    ledger = Ledger(path, record=())
    ledger.set_budget("fed", epsilon=0.3, delta=0.0, accountant=PURE)
    for scope in ("a", "b", "c"):
        _charge(ledger, "fed", LaplaceDpEvent(4.0), scope=scope)  # each part at 0.25
    with pytest.raises(BudgetExceededError):
        _charge(ledger, "fed", LaplaceDpEvent(10.0))  # would lift every part to 0.35
    with pytest.raises(BudgetExceededError):
        _charge(ledger, "fed", LaplaceDpEvent(10.0), scope="a")
    _charge(ledger, "fed", LaplaceDpEvent(10.0), scope="d")  # a fresh part: 0.1
    assert ledger.spent("fed").epsilon == pytest.approx(0.25)


def test_neighbouring_relation_must_stay_the_same(pure, path):
    _charge(pure)
    with pytest.raises(ValueError, match="neighboring_relation"):
        _charge(pure, neighboring_relation="replace_one")
    assert _count(path, "charge") == 1


def test_charge_context_cannot_be_entered_twice(pure):
    cm = pure.charge("d", LaplaceDpEvent(8.0), sensitivity=1, sampling="none", seeded=False)
    with cm:
        pass
    with pytest.raises(RuntimeError, match="only once"):
        with cm:
            pass


# --------------------------------------------------------------------------- budgets
def test_set_budget_is_idempotent_and_changes_are_recorded(pure, path):
    pure.set_budget("d", epsilon=1.05, delta=1e-6, accountant=PURE)
    assert _count(path, "budget") == 1
    _charge(pure)
    pure.set_budget("d", epsilon=0.1, delta=1e-6, accountant=PURE)  # below what is spent
    assert _count(path, "budget") == 2
    assert pure.remaining("d").epsilon == 0.0
    with pytest.raises(BudgetExceededError):
        _charge(pure)
    assert pure.budget("d").epsilon == 0.1 and pure.verify().ok


def test_accountant_change_needs_one_that_replays_the_history(path):
    ledger = Ledger(path, record=())
    ledger.set_budget("d", epsilon=50.0, delta=1e-6, accountant="rdp")
    _charge(ledger, event=GaussianDpEvent(3.0))
    with pytest.raises(LedgerCorruptError, match="cannot replay"):
        ledger.set_budget("d", epsilon=50.0, delta=1e-6, accountant=PURE)
    assert _count(path, "budget") == 1
    with pytest.raises(ValueError, match="estimate"):
        ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant="mc")


def test_fingerprint_tells_datasets_apart(path, rng):
    x = rng.normal(size=(20, 3))
    fp = fingerprint_arrays(x, np.arange(20))
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert fp == Ledger.fingerprint_arrays(x.copy(), np.arange(20))
    assert fp != fingerprint_arrays(x[:, ::-1], np.arange(20))
    assert fp != fingerprint_arrays(x.astype(np.float32), np.arange(20))
    assert fingerprint_arrays(np.zeros((2, 3))) != fingerprint_arrays(np.zeros((3, 2)))
    assert fingerprint_arrays(np.arange(4)) != fingerprint_arrays(np.arange(2), np.arange(2, 4))
    with pytest.raises(TypeError):
        fingerprint_arrays(np.array([object()]))
    with pytest.raises(ValueError):
        fingerprint_arrays()
    ledger = Ledger(path, record=())
    ledger.set_budget("train", epsilon=1.0, delta=1e-6, accountant=PURE, fingerprint=fp)
    with pytest.raises(ValueError, match="different dataset"):
        ledger.set_budget("train", epsilon=1.0, delta=1e-6, accountant=PURE, fingerprint=fingerprint_arrays(x + 1))
    assert ledger.budget("train").fingerprint == fp


def test_default_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRIVVAL_LEDGER", raising=False)
    with Ledger(record=()) as ledger:
        assert ledger.path == tmp_path / "privval-ledger.db"
    monkeypatch.setenv("PRIVVAL_LEDGER", str(tmp_path / "env.db"))
    with Ledger(record=()) as ledger:
        assert ledger.path == tmp_path / "env.db"
    assert (tmp_path / "env.db").exists()


# --------------------------------------------------------------------------- integrity
def _tamper(path, row_id: int, edit) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER entries_no_update")
    (content,) = conn.execute("SELECT content FROM entries WHERE id = ?", (row_id,)).fetchone()
    conn.execute("UPDATE entries SET content = ? WHERE id = ?", (edit(content), row_id))
    conn.commit()
    conn.close()


def test_rows_are_append_only(pure, path):
    _charge(pure)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE entries SET content = '{}' WHERE id = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM entries WHERE id = 2")
    conn.close()


def test_editing_a_rows_json_breaks_verify_at_that_row(pure, path):
    for _ in range(4):
        _charge(pure)
    assert pure.verify().ok and pure.verify().rows == 9
    _tamper(path, 4, lambda c: c.replace('"sensitivity":1.0', '"sensitivity":0.5'))
    result = pure.verify()
    assert not result.ok and result.first_bad_id == 4 and "hash" in result.reason


def test_rehashing_an_edited_row_breaks_the_next_link(pure, path):
    for _ in range(3):
        _charge(pure)
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER entries_no_update")
    prev, content = conn.execute("SELECT prev_hash, content FROM entries WHERE id = 2").fetchone()
    forged = content.replace('"seeded":false', '"seeded":true')
    digest = hashlib.sha256((prev + "\n" + forged).encode()).hexdigest()
    conn.execute("UPDATE entries SET content = ?, hash = ? WHERE id = 2", (forged, digest))
    conn.commit()
    conn.close()
    result = pure.verify()
    assert not result.ok and result.first_bad_id == 3 and "previous" in result.reason


def test_deleting_a_middle_row_is_detected(pure, path):
    for _ in range(3):
        _charge(pure)
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DELETE FROM entries WHERE id = 4")
    conn.commit()
    conn.close()
    result = Ledger(path, record=()).verify()
    assert not result.ok and result.first_bad_id == 5


def test_charging_a_tampered_dataset_fails_closed(path):
    ledger = Ledger(path, record=())
    ledger.set_budget("d", epsilon=1.05, delta=1e-6, accountant=PURE)
    _charge(ledger)
    _tamper(path, 2, lambda c: c.replace('"noise_multiplier":8.0', '"noise_multiplier":80.0'))
    fresh = Ledger(path, record=())
    with pytest.raises(LedgerCorruptError, match="row 2"):
        _charge(fresh)
    assert _count(path, "charge") == 1


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("epsilon", "delta", "name"),
    [(-1.0, 1e-6, "epsilon"), (math.nan, 1e-6, "epsilon"), (0.0, 1e-6, "epsilon"), (math.inf, 1e-6, "epsilon"),
     (1.0, 1.0, "delta"), (1.0, 2.0, "delta"), (1.0, -1e-9, "delta"), (1.0, math.nan, "delta"),
     (True, 1e-6, "epsilon"), ("1", 1e-6, "epsilon")],
)
def test_invalid_budget_is_refused_and_writes_nothing(pure, path, epsilon, delta, name):
    before = _sha(path)
    with pytest.raises(ValueError, match=f"'{name}' parameter of Ledger.set_budget"):
        pure.set_budget("d", epsilon=epsilon, delta=delta, accountant=PURE)
    assert _count(path, "budget") == 1 and _sha(path) == before


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [({"sensitivity": math.nan}, ValueError, "sensitivity"), ({"sensitivity": -1.0}, ValueError, "sensitivity"),
     ({"seeded": 1}, TypeError, "seeded"), ({"sampling": 3}, TypeError, "sampling"),
     ({"sampling": ""}, ValueError, "sampling"), ({"neighboring_relation": "nope"}, ValueError, "neighboring"),
     ({"scope": 1.5}, TypeError, "scope"), ({"details": {"x": math.nan}}, TypeError, "details"), ({"details": {1: 2}}, TypeError, "details"),
     ({"certificate": {"p": object()}}, TypeError, "certificate"), ({"purpose": 3}, TypeError, "purpose")],
)
def test_invalid_charge_is_refused_and_writes_nothing(pure, path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        _charge(pure, **kwargs)
    assert _count(path, "charge") == 0


def test_invalid_event_and_unknown_dataset(pure, path):
    with pytest.raises(TypeError, match="DpEvent"):
        _charge(pure, event="gaussian")
    with pytest.raises(ValueError, match="Unknown dataset 'nope'"):
        _charge(pure, dataset="nope")
    for method in (pure.spent, pure.remaining, pure.history, pure.budget):
        with pytest.raises(ValueError, match="Unknown dataset"):
            method("nope")
    assert _count(path, "charge") == 0


def test_corrupted_file_gets_a_clear_error_and_stays_intact(tmp_path, rng):
    path = tmp_path / "garbage.db"
    path.write_bytes(rng.integers(0, 256, size=8192, dtype=np.uint8).tobytes())
    before = _sha(path)
    with pytest.raises(LedgerCorruptError, match="not a readable SQLite database"):
        Ledger(path, record=())
    assert _sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.db"]


def test_damaged_pages_get_a_clear_error_and_stay_intact(path):
    ledger = Ledger(path, record=())
    ledger.set_budget("d", epsilon=100.0, delta=1e-6, accountant=PURE)
    for _ in range(150):
        _charge(ledger, event=LaplaceDpEvent(100.0), purpose="x" * 200)
    ledger.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 6 * 4096
    data[3 * 4096:6 * 4096] = bytes((7 * i) % 256 for i in range(3 * 4096))
    path.write_bytes(bytes(data))
    before = _sha(path)
    damaged = Ledger(path, record=())
    for use in (lambda: damaged.spent("d"), damaged.verify, lambda: _charge(damaged)):
        with pytest.raises(LedgerCorruptError, match="damaged"):
            use()
    damaged.close()
    assert _sha(path) == before


def test_foreign_sqlite_file_is_not_taken_over(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    before = _sha(path)
    with pytest.raises(LedgerCorruptError, match="not a privval ledger"):
        Ledger(path, record=())
    assert _sha(path) == before


def test_read_only_file_gets_a_clear_error_and_stays_intact(pure, path):
    _charge(pure)
    pure.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = _sha(path)
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(LedgerError, match="read-only"):
            Ledger(path, record=())
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    assert _sha(path) == before
    assert Ledger(path, record=()).spent("d").charges == 1


def test_read_only_or_missing_directory_gets_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(LedgerError, match="read-only"):
            Ledger(locked / "l.db", record=())
    finally:
        os.chmod(locked, stat.S_IRWXU)
    assert list(locked.iterdir()) == []
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger(tmp_path / "missing" / "l.db", record=())
    with pytest.raises(LedgerError, match="not a file"):
        Ledger(tmp_path, record=())


def test_closed_ledger_refuses_use(pure):
    pure.close()
    with pytest.raises(LedgerError, match="closed"):
        pure.spent("d")


# --------------------------------------------------------------------------- schema
def test_forward_migration_is_applied_once(path, monkeypatch):
    ledger = Ledger(path, record=())
    ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant=PURE)
    ledger.close()
    migration = (2, "test: index on kind", ("CREATE INDEX entries_by_kind ON entries(kind)",))
    monkeypatch.setattr(ledger_module, "_MIGRATIONS", ledger_module._MIGRATIONS + (migration,))
    upgraded = Ledger(path, record=())
    assert upgraded.schema_version == 2
    assert upgraded.budget("d").epsilon == 1.0 and upgraded.verify().ok
    upgraded.close()
    assert Ledger(path, record=()).schema_version == 2  # reopening does not re-run it
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 2


def test_newer_schema_is_refused(path):
    Ledger(path, record=()).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 'x')")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(path, record=())
