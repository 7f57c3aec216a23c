"""A persistent privacy ledger: budgets, charge-before-release, hash-chained audit trail.

The ledger is one SQLite file (stdlib :mod:`sqlite3`, WAL journal, ``synchronous=FULL``). Every
row is appended to a single table ``entries`` and never updated or deleted (triggers refuse it);
each row stores the canonical JSON of its content, the SHA-256 of the previous row and its own
SHA-256 over ``previous hash + content``, so editing, inserting or deleting a row in the middle
of the file is detected by :meth:`Ledger.verify` (DESIGN.md §7). Three kinds of rows exist:

* ``budget``: a protected dataset (a name the user chooses plus an optional data fingerprint),
  its cap ``(ε, δ)`` and the accountant that composes its charges;
* ``charge``: one mechanism run, as its event tree (:func:`accountants.events.to_dict`), the
  neighbouring relation, sensitivity, sampling assumption, seeded or secure noise, optional EVR
  certificate, purpose, scope, and the cumulative ε at the cap's δ under every accountant that
  can replay the history;
* ``release``: written when the ``with ledger.charge(...)`` block exits normally, linked to its
  charge.

**Charge before release.** ``Ledger.charge`` opens ``BEGIN IMMEDIATE`` (one writer at a time,
other processes queue on the busy timeout), replays what other processes appended since this
process last looked, composes the new event with the dataset's accountant and either refuses
with :class:`BudgetExceededError` (nothing is written) or commits the charge row, and only then
lets the caller compute and release. A crash after the commit wastes budget; a crash before it
releases nothing. Several processes can therefore never overspend a cap together.

**Parallel composition.** A charge may name a ``scope``: the part of the dataset it touches
(e.g. one participant of a federation). Charges without a scope touch every record. The loss of
a record in part *s* is the composition of all unscoped charges and the charges scoped to *s*;
the dataset's spent ε is the maximum over parts. This is sound **only if the parts are disjoint**
(no record belongs to two scopes, and neighbouring datasets differ inside one part); the caller
asserts that by using scopes (McSherry 2009, "Privacy integrated queries", parallel composition).

**Caching.** Each :class:`Ledger` keeps, per dataset, the composed accountants and the id of the
last row it has seen; a charge only composes the rows appended since (by any process) plus the
new event, so its cost does not grow with the length of the history beyond what the accountant
itself needs (a PLD grows with the composed support; RDP is constant). Rebuilding from the file
groups identical events and composes each once with its count (composition is commutative).
Values computed by a replay and by incremental composition may differ in the last digits; both
are upper bounds.

Limitations: deleting the *last* rows of the file cannot be seen from the file alone; keep the
head hash printed by :meth:`Ledger.verify` (the compliance report shows it) somewhere else to
detect that. A :class:`Ledger` must not be used across ``fork``; open one per process.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import numbers
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from accountants import events as _events
from accountants.accountant import (
    Accountant,
    make_accountant,
    parse_neighboring_relation,
)

__all__ = [
    "DEFAULT_LEDGER_PATH",
    "DEFAULT_RECORDED_ACCOUNTANTS",
    "SCHEMA_VERSION",
    "Budget",
    "BudgetExceededError",
    "ChargeEntry",
    "ChargeRecord",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "PrivacyAmount",
    "Replay",
    "VerifyResult",
    "fingerprint_arrays",
    "library_version",
]

logger = logging.getLogger(__name__)

DEFAULT_LEDGER_PATH = "privval-ledger.db"
"""File name used (in the working directory) when neither a path nor ``$PRIVVAL_LEDGER`` is given."""

DEFAULT_RECORDED_ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld")
"""Accountants whose cumulative ε is recorded with every charge, next to the dataset's own."""

_ESTIMATORS = frozenset({"mc"})
"""Accountants that estimate rather than bound: usable for replay and reports, never for a cap."""

_GENESIS_HASH = "0" * 64
_APPLICATION_ID = 0x70767631  # "pvv1" in the SQLite header marks the file as a privval ledger
_ROW_FORMAT = 1
_MAX_NAME_LENGTH = 256
_BUSY_TIMEOUT_S = 120.0

# Forward-only migrations: (version, description, statements). A ledger written by version v
# is upgraded by running every migration above v, in one IMMEDIATE transaction.
_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "append-only hash-chained entries",
        (
            """CREATE TABLE entries (
                id INTEGER PRIMARY KEY,
                content TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                kind TEXT GENERATED ALWAYS AS (json_extract(content, '$.kind')) VIRTUAL,
                dataset TEXT GENERATED ALWAYS AS (json_extract(content, '$.dataset')) VIRTUAL,
                charge_id INTEGER GENERATED ALWAYS AS (json_extract(content, '$.charge_id')) VIRTUAL
            )""",
            "CREATE INDEX entries_by_dataset ON entries(dataset, id)",
            "CREATE INDEX entries_by_charge ON entries(charge_id) WHERE charge_id IS NOT NULL",
            """CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
               BEGIN SELECT RAISE(ABORT, 'privval ledger rows are append-only'); END""",
            """CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
               BEGIN SELECT RAISE(ABORT, 'privval ledger rows are append-only'); END""",
        ),
    ),
)
SCHEMA_VERSION: int = _MIGRATIONS[-1][0]
"""Database schema version written by this library."""


# --------------------------------------------------------------------------- errors
class LedgerError(RuntimeError):
    """The ledger file cannot be used (missing directory, read-only, locked, newer schema...)."""


class LedgerCorruptError(LedgerError):
    """The file is not a readable privval ledger, or a row fails its integrity check."""


class BudgetExceededError(LedgerError):
    """A charge was refused because it would pass the dataset's cap; nothing was written.

    Attributes
    ----------
    dataset : str
        The dataset charged.
    spent : float
        ε already spent (at ``delta``) before this charge.
    asked : float
        ε of the refused event on its own (at ``delta``).
    total : float
        ε the history would reach with this charge.
    remaining : float
        ``cap - spent``, the headroom in ε.
    cap : float
        The dataset's ε cap.
    delta : float
        The cap's δ, at which every ε above is computed.
    accountant : str
        The accountant that composed the history.
    """

    def __init__(
        self, dataset: str, *, spent: float, asked: float, total: float, remaining: float,
        cap: float, delta: float, accountant: str,
    ) -> None:
        self.dataset, self.spent, self.asked, self.total = dataset, spent, asked, total
        self.remaining, self.cap, self.delta, self.accountant = remaining, cap, delta, accountant
        super().__init__(
            f"Privacy budget of dataset {dataset!r} exceeded: spent ε={spent:.6g} of the cap "
            f"ε={cap:.6g} (δ={delta:.3g}, {accountant} accountant); this charge asks ε={asked:.6g} "
            f"on its own and would bring the total to ε={total:.6g}; remaining ε={remaining:.6g}. "
            f"Nothing was charged."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor: rebuild from the attributes (exceptions cross process pools).
        return (_rebuild_budget_error, (self.dataset, {
            "spent": self.spent, "asked": self.asked, "total": self.total, "remaining": self.remaining,
            "cap": self.cap, "delta": self.delta, "accountant": self.accountant,
        }))


def _rebuild_budget_error(dataset: str, fields: dict[str, Any]) -> BudgetExceededError:
    return BudgetExceededError(dataset, **fields)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Budget:
    """A dataset's privacy cap.

    Attributes
    ----------
    dataset : str
        Name chosen by the user.
    epsilon, delta : float
        The cap: the composed history must stay (ε, δ)-DP.
    accountant : str
        Registry name of the accountant that composes the charges.
    fingerprint : str or None
        Fingerprint of the data (:func:`fingerprint_arrays`), if given.
    """

    dataset: str
    epsilon: float
    delta: float
    accountant: str
    fingerprint: str | None


@dataclass(frozen=True)
class PrivacyAmount:
    """An (ε, δ) amount of a dataset's budget (spent or remaining) under one accountant.

    Attributes
    ----------
    epsilon : float
        ε at ``delta``.
    delta : float
        The cap's δ.
    accountant : str
        Accountant that composed the history.
    charges : int
        Number of committed charges.
    """

    epsilon: float
    delta: float
    accountant: str
    charges: int


@dataclass(frozen=True)
class ChargeEntry:
    """What ``with ledger.charge(...) as entry`` yields once the charge is committed.

    Attributes
    ----------
    id : int
        Row id of the charge (the release row links to it).
    dataset : str
        Dataset charged.
    epsilon : float
        Cumulative ε (at ``delta``) including this charge, under ``accountant``.
    delta : float
        The cap's δ.
    accountant : str
        The dataset's accountant.
    epsilons : dict
        Cumulative ε under every recorded accountant (None where one cannot replay the history).
    seeded : bool
        Whether the caller declared seeded (reproducible, not secure) noise.
    """

    id: int
    dataset: str
    epsilon: float
    delta: float
    accountant: str
    epsilons: dict[str, float | None]
    seeded: bool


@dataclass(frozen=True)
class ChargeRecord:
    """One committed charge as read back from the ledger (see :meth:`Ledger.history`).

    Attributes
    ----------
    id : int
        Row id.
    dataset : str
        Dataset charged.
    time : str
        UTC ISO-8601 commit time.
    event : DpEvent
        The mechanism's event tree.
    event_json : dict
        Its JSON form as stored.
    neighboring_relation : str
        e.g. ``"add_or_remove_one"``.
    sensitivity : float
        Declared sensitivity.
    sampling : str or dict
        Declared sampling assumption.
    seeded : bool
        Seeded (reproducible, not secure) noise.
    purpose : str or None
        Caller's description.
    certificate : dict or None
        EVR certificate, if any.
    scope : str, int or None
        Part of the dataset (parallel composition), None for all of it.
    details : dict or None
        Caller's extra data.
    library_version : str
        privval version that wrote the row.
    accountant : str
        The dataset's accountant when the charge was made.
    delta : float
        δ at which the cumulative ε values were computed.
    epsilons : dict
        Cumulative ε per accountant after this charge (None: could not replay).
    released : bool
        Whether a release row links to this charge.
    release_time : str or None
        Time of the release row.
    """

    id: int
    dataset: str
    time: str
    event: Any
    event_json: dict[str, Any]
    neighboring_relation: str
    sensitivity: float
    sampling: Any
    seeded: bool
    purpose: str | None
    certificate: dict[str, Any] | None
    scope: str | int | None
    details: dict[str, Any] | None
    library_version: str
    accountant: str
    delta: float
    epsilons: dict[str, float | None]
    released: bool
    release_time: str | None

    @property
    def epsilon(self) -> float | None:
        """Cumulative ε after this charge under the dataset's accountant."""
        return self.epsilons.get(self.accountant)


@dataclass(frozen=True)
class Replay:
    """A dataset's history replayed by one accountant (see :meth:`Ledger.replay`).

    Attributes
    ----------
    accountant : str
        Name of the accountant.
    epsilon : float
        ε at ``delta`` (maximum over scopes).
    delta : float
        Target δ.
    charges : int
        Number of charges replayed.
    per_scope : dict
        ε of each scope (key None: records in no scoped part).
    """

    accountant: str
    epsilon: float
    delta: float
    charges: int
    per_scope: dict[Any, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`Ledger.verify`.

    Attributes
    ----------
    ok : bool
        True if every row checks out.
    rows : int
        Rows examined.
    head_hash : str
        Hash of the last row (keep it elsewhere to detect truncation).
    first_bad_id : int or None
        Id of the first row that fails (None when ``ok``).
    reason : str or None
        Why it fails.
    """

    ok: bool
    rows: int
    head_hash: str
    first_bad_id: int | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ok


# --------------------------------------------------------------------------- helpers
@functools.cache
def library_version() -> str:
    """The installed privval version, or ``"unknown"`` when running from a source tree.

    Returns
    -------
    str
        Version string.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("privval")
    except PackageNotFoundError:
        return "unknown"


def fingerprint_arrays(*arrays: Any) -> str:
    """SHA-256 fingerprint of one or more arrays (dtype, shape and bytes), to tell datasets apart.

    Parameters
    ----------
    *arrays : array_like
        Numeric or string arrays (e.g. ``x_train, y_train``); object arrays are refused.

    Returns
    -------
    str
        ``"sha256:<64 hex digits>"``.

    Raises
    ------
    ValueError
        If no array is given.
    TypeError
        If an array has dtype object.

    Example
    -------
    >>> import numpy as np
    >>> fingerprint_arrays(np.arange(3)) == fingerprint_arrays(np.arange(3))
    True
    >>> fingerprint_arrays(np.arange(3)) == fingerprint_arrays(np.arange(3.0))
    False
    """
    if not arrays:
        raise ValueError("fingerprint_arrays needs at least one array.")
    digest = hashlib.sha256(b"privval-fingerprint-v1")
    for index, array in enumerate(arrays):
        a = np.ascontiguousarray(np.asarray(array))
        if a.dtype.hasobject:
            raise TypeError(
                f"Array {index} passed to fingerprint_arrays has dtype object; convert it to a "
                f"numeric or fixed-width string dtype first."
            )
        header = json.dumps({"dtype": a.dtype.str, "shape": list(a.shape)}, sort_keys=True)
        digest.update(len(header).to_bytes(8, "little") + header.encode())
        digest.update(a.nbytes.to_bytes(8, "little"))
        digest.update(a.tobytes())
    return "sha256:" + digest.hexdigest()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _row_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + content).encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _encode_eps(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "inf"


def _decode_eps(value: Any) -> float | None:
    if value is None:
        return None
    return math.inf if value == "inf" else float(value)


def _round_down(value: float) -> float:
    return max(0.0, math.nextafter(value * (1.0 - 1e-12), -math.inf)) if value > 0 else 0.0


def _real(value: Any, name: str, owner: str, low: float, high: float, *, open_low: bool = False,
          open_high: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (v > low if open_low else v >= low) and (v < high if open_high else v <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a real number in {interval}. Got {value!r} instead."
        )
    return float(value)


def _name(value: Any, name: str, owner: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_NAME_LENGTH:
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a non-empty str of at most "
            f"{_MAX_NAME_LENGTH} characters. Got {value!r} instead."
        )
    return value


def _plain(value: Any) -> Any:
    """Plain JSON data from caller metadata: numpy scalars/arrays unwrapped, ±inf as "inf"/"-inf"."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            raise ValueError("NaN has no JSON form")
        return number if math.isfinite(number) else ("inf" if number > 0 else "-inf")
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return _plain(value.to_dict())
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("mapping keys must be str")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} has no JSON form")


def _jsonable(value: Any, name: str, owner: str) -> Any:
    try:
        return _plain(value)
    except (TypeError, ValueError, RecursionError) as err:
        raise TypeError(
            f"The {name!r} parameter of {owner} must be JSON-serialisable (numbers other than NaN, "
            f"str, lists, dicts with str keys, numpy values, dataclasses). Got {value!r} instead ({err})."
        ) from err


# --------------------------------------------------------------------------- composition
def _scope_key(scope: Any) -> str | None:
    return None if scope is None else _canonical(scope)


class _Composition:
    """One accountant's state for one dataset: unscoped charges plus one accountant per scope.

    Mutated in place; a caller that sees an exception half-way drops the whole object.
    """

    def __init__(self, factory: Callable[[], Accountant], name: str) -> None:
        self.name = name
        self.base = factory()
        self.parts: dict[str, Accountant] = {}
        self._eps: dict[str | None, float] = {}
        self._delta: float | None = None

    def add(self, event: Any, scope_key: str | None, count: int = 1) -> None:
        if scope_key is None:
            self.base.compose(event, count)
            for part in self.parts.values():
                part.compose(event, count)
            self._eps.clear()
        else:
            part = self.parts.get(scope_key)
            if part is None:
                # A new part has seen every unscoped charge so far, i.e. the base state.
                part = _copy_accountant(self.base)
                part.compose(event, count)
                self.parts[scope_key] = part
            else:
                part.compose(event, count)
            self._eps.pop(scope_key, None)

    def per_scope(self, delta: float) -> dict[str | None, float]:
        if delta != self._delta:
            self._eps.clear()
            self._delta = delta
        if None not in self._eps:
            self._eps[None] = self.base.get_epsilon(delta)
        for key, part in self.parts.items():
            if key not in self._eps:
                self._eps[key] = part.get_epsilon(delta)
        return self._eps

    def epsilon(self, delta: float) -> float:
        return max(self.per_scope(delta).values())


def _copy_accountant(accountant: Accountant) -> Accountant:
    # Events are frozen values: share them instead of copying the (long) history list's items.
    memo = {id(event): event for event, _ in accountant.history}
    return copy.deepcopy(accountant, memo)


def _group(charges: Sequence[tuple[Any, str, str | None]]) -> list[tuple[Any, str | None, int]]:
    """Group (event, event_key, scope_key) triples into (event, scope_key, count), first-seen order."""
    groups: dict[tuple[str, str | None], list[Any]] = {}
    for event, key, scope_key in charges:
        slot = groups.setdefault((key, scope_key), [event, 0])
        slot[1] += 1
    return [(event, scope_key, count) for (_, scope_key), (event, count) in groups.items()]


@dataclass
class _State:
    """Cached composed state of one dataset, valid up to row ``last_id``."""

    last_id: int
    budget: Budget
    relation: str | None
    comps: dict[str, _Composition]
    unsupported: dict[str, str]
    charges: int


# --------------------------------------------------------------------------- the ledger
class Ledger:
    """A persistent, append-only, hash-chained privacy ledger in one SQLite file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The database file; default ``$PRIVVAL_LEDGER`` or ``./privval-ledger.db``. Created
        (with its schema) if it does not exist.
    record : sequence of str, default ("rdp", "pld")
        Accountants whose cumulative ε is recorded with every charge, next to the dataset's
        own accountant. Each costs time on every charge (a PLD's grows with the history).
    timeout : float, default 120
        Seconds a write waits for other processes' transactions before failing.

    Raises
    ------
    LedgerError
        If the file or its directory is read-only or missing, or the schema is newer than
        this library.
    LedgerCorruptError
        If the file is not a SQLite database or not a privval ledger (it is left untouched).

    Example
    -------
    >>> import tempfile, os
    >>> from accountants.events import GaussianDpEvent
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.db")
    >>> with Ledger(path, record=("rdp",)) as ledger:
    ...     _ = ledger.set_budget("census", epsilon=2.0, delta=1e-6, accountant="rdp")
    ...     with ledger.charge("census", GaussianDpEvent(8.0), sensitivity=1.0,
    ...                        sampling="none", seeded=False) as entry:
    ...         pass  # compute and release the value here
    ...     ledger.spent("census").charges
    1
    """

    fingerprint_arrays = staticmethod(fingerprint_arrays)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        record: Sequence[str] = DEFAULT_RECORDED_ACCOUNTANTS,
        timeout: float = _BUSY_TIMEOUT_S,
    ) -> None:
        if path is None:
            path = os.environ.get("PRIVVAL_LEDGER") or DEFAULT_LEDGER_PATH
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise TypeError(f"The 'path' parameter of Ledger must be a str or os.PathLike. Got {path!r} instead.")
        if isinstance(record, str) or not isinstance(record, Sequence):
            raise TypeError(
                f"The 'record' parameter of Ledger must be a sequence of accountant names. Got {record!r} instead."
            )
        for name in record:
            make_accountant(_name(name, "record", "Ledger"))  # fail early on unknown names
        self._record = tuple(dict.fromkeys(record))
        self._timeout = _real(timeout, "timeout", "Ledger", 0.0, math.inf, open_low=True)
        self._path = Path(os.fspath(path)).expanduser().absolute()
        self._lock = threading.RLock()
        self._cache: dict[str, _State] = {}
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    # ----------------------------------------------------------------- opening
    @property
    def path(self) -> Path:
        """Absolute path of the database file."""
        return self._path

    def _open(self) -> sqlite3.Connection:
        path = self._path
        directory = path.parent
        if path.exists() and not path.is_file():
            raise LedgerError(f"Ledger path {str(path)!r} exists and is not a file.")
        if not directory.is_dir():
            raise LedgerError(f"Cannot create ledger {str(path)!r}: directory {str(directory)!r} does not exist.")
        # Honour the permission bits even for root: a file marked read-only is never written.
        if path.exists() and (not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222):
            raise LedgerError(
                f"Ledger file {str(path)!r} is read-only; the ledger needs write access (even to read "
                f"it, SQLite's WAL journal writes next to it). Copy it to a writable place to inspect it."
            )
        if not os.access(directory, os.W_OK) or not directory.stat().st_mode & 0o222:
            raise LedgerError(
                f"Ledger directory {str(directory)!r} is read-only; the ledger needs to create "
                f"{path.name!r} and its -wal/-shm journal files there."
            )
        try:
            conn = sqlite3.connect(
                str(path), timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise LedgerError(f"Cannot open ledger {str(path)!r}: {err}.") from err
        try:
            self._check_header(conn)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"Could not switch ledger {str(path)!r} to WAL mode (got {mode!r}).")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_header(self, conn: sqlite3.Connection) -> None:
        """Refuse, without writing, a file that is not SQLite or not a privval ledger."""
        try:
            # One read transaction: a concurrent creator commits the header and tables together.
            conn.execute("BEGIN DEFERRED")
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.DatabaseError as err:
            raise LedgerCorruptError(
                f"Ledger file {str(self._path)!r} is not a readable SQLite database ({err}); "
                f"it was left untouched. Restore it from a backup or choose another path."
            ) from err
        if tables and (app_id != _APPLICATION_ID or "schema_version" not in tables):
            raise LedgerCorruptError(
                f"File {str(self._path)!r} is a SQLite database but not a privval ledger "
                f"(tables {sorted(tables)}); it was left untouched."
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._transaction(conn, "IMMEDIATE"):
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" not in tables:
                conn.execute(
                    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "description TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            latest = _MIGRATIONS[-1][0]
            if current > latest:
                raise LedgerError(
                    f"Ledger {str(self._path)!r} has schema version {current}, newer than this "
                    f"library's {latest}; upgrade privval to use it."
                )
            for version, description, statements in _MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (version, description, _now()),
                )
                logger.info("Ledger %s migrated to schema version %d.", self._path, version)

    @property
    def schema_version(self) -> int:
        """Schema version of the open file."""
        with self._reading() as conn:
            return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._cache.clear()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self._path)!r})"

    # ----------------------------------------------------------------- transactions
    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, mode: str = "DEFERRED") -> Iterator[sqlite3.Connection]:
        try:
            conn.execute(f"BEGIN {mode}")
        except sqlite3.OperationalError as err:
            raise self._translate(err) from err
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._translate(err) from err

    def _translate(self, err: sqlite3.Error) -> LedgerError:
        text = str(err)
        if "locked" in text or "busy" in text:
            return LedgerError(
                f"Ledger {str(self._path)!r} stayed locked by another process for more than "
                f"{self._timeout:g} s ({text})."
            )
        if "readonly" in text or "read-only" in text:
            return LedgerError(f"Ledger {str(self._path)!r} is read-only ({text}).")
        if isinstance(err, sqlite3.OperationalError):
            return LedgerError(f"Ledger {str(self._path)!r}: {text}.")
        return LedgerCorruptError(
            f"Ledger {str(self._path)!r} is damaged ({text}); nothing was written. Restore it from "
            f"a backup; sqlite3's '.recover' may salvage rows, then run Ledger.verify()."
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"Ledger {str(self._path)!r} is closed.")
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                with self._transaction(conn, "DEFERRED"):
                    yield conn
            except sqlite3.Error as err:
                raise self._translate(err) from err

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                with self._transaction(conn, "IMMEDIATE"):
                    yield conn
            except sqlite3.Error as err:
                raise self._translate(err) from err

    def _append(self, conn: sqlite3.Connection, content: dict[str, Any]) -> int:
        """Append one hash-chained row inside the caller's IMMEDIATE transaction."""
        head = conn.execute("SELECT id, hash FROM entries ORDER BY id DESC LIMIT 1").fetchone()
        row_id, prev_hash = (head[0] + 1, head[1]) if head else (1, _GENESIS_HASH)
        content = {**content, "id": row_id, "format": _ROW_FORMAT}
        text = _canonical(content)
        conn.execute(
            "INSERT INTO entries (id, content, prev_hash, hash) VALUES (?, ?, ?, ?)",
            (row_id, text, prev_hash, _row_hash(prev_hash, text)),
        )
        return row_id

    def _rows(self, conn: sqlite3.Connection, dataset: str, after: int = 0) -> list[tuple[int, dict[str, Any]]]:
        rows = []
        for row_id, text, prev_hash, digest in conn.execute(
            "SELECT id, content, prev_hash, hash FROM entries WHERE dataset = ? AND id > ? ORDER BY id",
            (dataset, after),
        ):
            if _row_hash(prev_hash, text) != digest:
                raise LedgerCorruptError(
                    f"Ledger row {row_id} does not match its hash: the file was edited. "
                    f"Run Ledger.verify() for details."
                )
            rows.append((row_id, json.loads(text)))
        return rows

    # ----------------------------------------------------------------- budgets
    def set_budget(
        self,
        dataset: str,
        *,
        epsilon: float,
        delta: float,
        accountant: str = "pld",
        fingerprint: str | None = None,
    ) -> Budget:
        """Register a dataset, or change its cap, by appending a budget row.

        Calling it again with the same values is a no-op, so scripts may call it on every run.

        Parameters
        ----------
        dataset : str
            Name of the protected dataset.
        epsilon : float
            ε cap, in (0, inf).
        delta : float
            δ cap, in [0, 1).
        accountant : str, default "pld"
            Accountant composing the charges ("pld", "rdp", or any registered bound; the
            Monte Carlo estimator "mc" cannot enforce a cap).
        fingerprint : str, optional
            Fingerprint of the data (:func:`fingerprint_arrays`). Once recorded it cannot change.

        Returns
        -------
        Budget
            The budget now in force.

        Raises
        ------
        ValueError
            On invalid parameters, a fingerprint different from the recorded one, or an
            accountant that cannot replay the existing charges.

        Example
        -------
        >>> import tempfile, os
        >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "l.db"), record=())
        >>> ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant="rdp").epsilon
        1.0
        """
        owner = "Ledger.set_budget"
        dataset = _name(dataset, "dataset", owner)
        epsilon = _real(epsilon, "epsilon", owner, 0.0, math.inf, open_low=True, open_high=True)
        delta = _real(delta, "delta", owner, 0.0, 1.0, open_high=True)
        accountant = _name(accountant, "accountant", owner)
        if accountant in _ESTIMATORS:
            raise ValueError(
                f"The 'accountant' parameter of {owner} must name an accountant that bounds the "
                f"privacy loss; {accountant!r} only estimates it. Got {accountant!r} instead."
            )
        make_accountant(accountant)
        if fingerprint is not None:
            fingerprint = _name(fingerprint, "fingerprint", owner)
        with self._writing() as conn:
            state = self._refresh(conn, dataset, required=False)
            old = state.budget if state is not None else None
            if old is not None:
                if old.fingerprint is not None and fingerprint is not None and fingerprint != old.fingerprint:
                    raise ValueError(
                        f"Dataset {dataset!r} is registered with fingerprint {old.fingerprint}; got "
                        f"{fingerprint}. A different dataset needs a different name."
                    )
                fingerprint = fingerprint if fingerprint is not None else old.fingerprint
            budget = Budget(dataset, epsilon, delta, accountant, fingerprint)
            if budget == old:
                return budget
            if old is not None and accountant != old.accountant:
                # The new accountant must replay every existing charge before it may be chosen.
                self._build(conn, dataset, budget=budget)
            self._append(conn, {
                "kind": "budget", "dataset": dataset, "time": _now(), "epsilon": epsilon,
                "delta": delta, "accountant": accountant, "fingerprint": fingerprint,
                "library_version": library_version(),
            })
        self._cache.pop(dataset, None)
        logger.info("Budget of %r set to (ε=%g, δ=%g) with the %s accountant.", dataset, epsilon, delta, accountant)
        return budget

    def budget(self, dataset: str) -> Budget:
        """The budget in force for ``dataset``.

        Raises
        ------
        ValueError
            If the dataset has no budget.
        """
        with self._reading() as conn:
            return self._refresh(conn, _name(dataset, "dataset", "Ledger.budget")).budget

    def datasets(self) -> list[str]:
        """Names of all datasets with a budget, in order of registration."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT dataset FROM entries WHERE kind = 'budget' GROUP BY dataset ORDER BY MIN(id)"
            ).fetchall()
        return [r[0] for r in rows]

    # ----------------------------------------------------------------- composed state
    def _names(self, budget: Budget) -> list[str]:
        return [budget.accountant] + [n for n in self._record if n != budget.accountant]

    def _build(self, conn: sqlite3.Connection, dataset: str, budget: Budget | None = None) -> _State | None:
        """Replay a dataset's whole history from the file (grouping identical events)."""
        rows = self._rows(conn, dataset)
        budgets = [c for _, c in rows if c["kind"] == "budget"]
        if not budgets and budget is None:
            return None
        if budget is None:
            last = budgets[-1]
            budget = Budget(dataset, last["epsilon"], last["delta"], last["accountant"], last["fingerprint"])
        charges = [c for _, c in rows if c["kind"] == "charge"]
        relation = charges[0]["neighboring_relation"] if charges else None
        state = _State(rows[-1][0] if rows else 0, budget, relation, {}, {}, 0)
        self._compose_rows(state, charges)
        return state

    def _compose_rows(self, state: _State, charges: list[dict[str, Any]]) -> None:
        if not charges:
            return
        if state.relation is None:
            state.relation = charges[0]["neighboring_relation"]
        triples = []
        decoded: dict[str, Any] = {}  # histories repeat a few mechanisms: decode each once
        for c in charges:
            if c["neighboring_relation"] != state.relation:
                raise LedgerCorruptError(
                    f"Ledger row {c['id']} uses neighbouring relation {c['neighboring_relation']!r} "
                    f"but dataset {state.budget.dataset!r} is accounted under {state.relation!r}."
                )
            key = _canonical(c["event"])
            event = decoded.get(key)
            if event is None:
                event = decoded[key] = _events.from_dict(c["event"])
            triples.append((event, key, _scope_key(c.get("scope"))))
        groups = _group(triples)
        for name in self._names(state.budget):
            if name in state.unsupported:
                continue
            try:
                comp = state.comps.get(name)
                if comp is None:
                    comp = state.comps[name] = _Composition(self._factory(name, state.relation), name)
                for event, scope_key, count in groups:
                    comp.add(event, scope_key, count)
            except (TypeError, ValueError) as err:  # UnsupportedEventError is a ValueError
                if name == state.budget.accountant:
                    raise LedgerCorruptError(
                        f"The {name} accountant of dataset {state.budget.dataset!r} cannot replay its "
                        f"history: {err}"
                    ) from err
                state.unsupported[name] = str(err)
                state.comps.pop(name, None)
        state.charges += len(charges)

    @staticmethod
    def _factory(name: str, relation: str) -> Callable[[], Accountant]:
        rel = parse_neighboring_relation(relation)
        return lambda: make_accountant(name, neighboring_relation=rel)

    def _refresh(self, conn: sqlite3.Connection, dataset: str, *, required: bool = True) -> _State | None:
        """Bring the cached state of ``dataset`` up to the file's last row (inside a transaction)."""
        state = self._cache.get(dataset)
        try:
            if state is None:
                state = self._build(conn, dataset)
            else:
                rows = self._rows(conn, dataset, after=state.last_id)
                if rows:
                    if any(c["kind"] == "budget" and c["accountant"] != state.budget.accountant for _, c in rows):
                        state = self._build(conn, dataset)
                    else:
                        for _, c in rows:
                            if c["kind"] == "budget":
                                state.budget = Budget(dataset, c["epsilon"], c["delta"], c["accountant"],
                                                      c["fingerprint"])
                        self._compose_rows(state, [c for _, c in rows if c["kind"] == "charge"])
                        state.last_id = rows[-1][0]
        except BaseException:
            self._cache.pop(dataset, None)
            raise
        if state is None:
            if required:
                raise ValueError(
                    f"Unknown dataset {dataset!r}: register it first with "
                    f"ledger.set_budget({dataset!r}, epsilon=..., delta=...)."
                )
            return None
        self._cache[dataset] = state
        return state

    # ----------------------------------------------------------------- charging
    def charge(
        self,
        dataset: str,
        event: Any,
        *,
        sensitivity: float,
        sampling: str | Mapping[str, Any],
        seeded: bool,
        neighboring_relation: str = "add_or_remove_one",
        purpose: str | None = None,
        certificate: Any = None,
        scope: str | int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> _Charge:
        """Charge a mechanism run against a dataset's budget, before its output is released.

        Use as a context manager: entering commits the charge (or raises, writing nothing);
        the caller computes and releases inside the block; a normal exit appends a release row
        linked to the charge. If the block raises, the charge stays (budget is wasted, never
        leaked). Arguments are validated when ``charge`` is called.

        Parameters
        ----------
        dataset : str
            A dataset registered with :meth:`set_budget`.
        event : DpEvent
            The mechanism's event tree (:mod:`accountants.events`).
        sensitivity : float
            Sensitivity the noise was calibrated to, in (0, inf) (recorded for audit; the event
            already encodes it, e.g. as the noise multiplier).
        sampling : str or dict
            Sampling assumption, e.g. ``"none"`` or ``{"type": "poisson", "rate": 0.01}``.
        seeded : bool
            True if the noise came from a seeded (reproducible, not secure) generator.
        neighboring_relation : str, default "add_or_remove_one"
            Relation of the guarantee; every charge of a dataset must use the same one.
        purpose : str, optional
            What the release is for (shown in reports).
        certificate : dict or dataclass, optional
            EVR certificate (m, τ, p, outcome, ...), stored as JSON.
        scope : str or int, optional
            Disjoint part of the dataset the mechanism touches (parallel composition); None
            for the whole dataset.
        details : dict, optional
            Extra JSON-serialisable data stored with the charge.

        Returns
        -------
        context manager
            Yields a :class:`ChargeEntry`.

        Notes
        -----
        The cap check composes the whole history plus this event with the dataset's
        accountant and compares its ε at the cap's δ with the cap; accountants round ε up, so
        a history exactly at the cap is refused rather than risked. Under parallel
        composition the check is per part (see the module docstring).

        Raises
        ------
        BudgetExceededError
            On entering, if the charge would pass the cap (nothing written).
        UnsupportedEventError
            On entering, if the dataset's accountant cannot bound the event.
        ValueError, TypeError
            On invalid parameters, an unknown dataset or a different neighbouring relation.

        Example
        -------
        >>> import tempfile, os
        >>> from accountants.events import GaussianDpEvent
        >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "l.db"), record=())
        >>> _ = ledger.set_budget("d", epsilon=1.0, delta=1e-6, accountant="rdp")
        >>> with ledger.charge("d", GaussianDpEvent(10.0), sensitivity=1, sampling="none",
        ...                    seeded=False, purpose="mean age") as entry:
        ...     released = 42.0
        >>> entry.id
        2
        """
        owner = "Ledger.charge"
        dataset = _name(dataset, "dataset", owner)
        if not isinstance(event, _events.DpEvent):
            raise TypeError(f"The 'event' parameter of {owner} must be a DpEvent. Got {type(event)} instead.")
        event_json = json.loads(_canonical(_events.to_dict(event)))
        sensitivity = _real(sensitivity, "sensitivity", owner, 0.0, math.inf, open_low=True, open_high=True)
        if isinstance(sampling, str):
            sampling = _name(sampling, "sampling", owner)
        elif isinstance(sampling, Mapping):
            sampling = _jsonable(dict(sampling), "sampling", owner)
        else:
            raise TypeError(
                f"The 'sampling' parameter of {owner} must be a str or a dict describing the sampling "
                f"assumption (e.g. 'none'). Got {sampling!r} instead."
            )
        if not isinstance(seeded, bool):
            raise TypeError(f"The 'seeded' parameter of {owner} must be a bool. Got {seeded!r} instead.")
        relation = parse_neighboring_relation(neighboring_relation).name.lower()
        if purpose is not None and not isinstance(purpose, str):
            raise TypeError(f"The 'purpose' parameter of {owner} must be a str or None. Got {purpose!r} instead.")
        if scope is not None and (isinstance(scope, bool) or not isinstance(scope, (str, int))):
            raise TypeError(f"The 'scope' parameter of {owner} must be a str, an int or None. Got {scope!r} instead.")
        if details is not None and not isinstance(details, Mapping):
            raise TypeError(f"The 'details' parameter of {owner} must be a dict or None. Got {details!r} instead.")
        content = {
            "kind": "charge", "dataset": dataset, "event": event_json, "neighboring_relation": relation,
            "sensitivity": sensitivity, "sampling": sampling, "seeded": seeded, "purpose": purpose,
            "certificate": _jsonable(certificate, "certificate", owner), "scope": scope,
            "details": _jsonable(None if details is None else dict(details), "details", owner),
        }
        return _Charge(self, dataset, event, content)

    def _commit_charge(self, dataset: str, event: Any, content: dict[str, Any]) -> ChargeEntry:
        scope_key = _scope_key(content["scope"])
        relation = content["neighboring_relation"]
        with self._writing() as conn:
            state = self._refresh(conn, dataset)
            assert state is not None
            try:
                entry_values = self._compose_new(state, event, scope_key, relation)
            except BaseException:
                # Accountants may have been composed in place: rebuild from the file next time.
                self._cache.pop(dataset, None)
                raise
            try:
                budget = state.budget
                content = {
                    **content, "time": _now(), "library_version": library_version(),
                    "cumulative": {
                        "accountant": budget.accountant, "delta": budget.delta,
                        "epsilon": {k: _encode_eps(v) for k, v in entry_values.items()},
                    },
                }
                row_id = self._append(conn, content)
            except BaseException:
                self._cache.pop(dataset, None)
                raise
        # Committed: the cache now reflects the file up to the new row.
        state.last_id = row_id
        state.charges += 1
        budget = state.budget
        logger.info("Charged %r (row %d): cumulative ε=%g at δ=%g.", dataset, row_id,
                    entry_values[budget.accountant], budget.delta)
        return ChargeEntry(row_id, dataset, entry_values[budget.accountant], budget.delta,
                           budget.accountant, entry_values, content["seeded"])

    def _compose_new(self, state: _State, event: Any, scope_key: str | None, relation: str) -> dict[str, float | None]:
        budget = state.budget
        if state.relation is not None and relation != state.relation:
            raise ValueError(
                f"The 'neighboring_relation' parameter of Ledger.charge must match the relation of "
                f"dataset {budget.dataset!r}'s earlier charges, {state.relation!r}. Got {relation!r} instead."
            )
        state.relation = relation
        chosen = budget.accountant
        comp = state.comps.get(chosen)
        if comp is None:
            comp = state.comps[chosen] = _Composition(self._factory(chosen, relation), chosen)
        spent = comp.epsilon(budget.delta)
        comp.add(event, scope_key)  # UnsupportedEventError propagates: nothing written
        total = comp.epsilon(budget.delta)
        if total > budget.epsilon:
            alone = _Composition(self._factory(chosen, relation), chosen)
            alone.add(event, None)
            raise BudgetExceededError(
                budget.dataset, spent=spent, asked=alone.epsilon(budget.delta), total=total,
                remaining=_round_down(max(budget.epsilon - spent, 0.0)), cap=budget.epsilon,
                delta=budget.delta, accountant=chosen,
            )
        values: dict[str, float | None] = {chosen: total}
        for name in self._names(budget)[1:]:
            if name in state.unsupported:
                values[name] = None
                continue
            try:
                other = state.comps.get(name)
                if other is None:
                    other = state.comps[name] = _Composition(self._factory(name, relation), name)
                other.add(event, scope_key)
            except (TypeError, ValueError) as err:  # e.g. UnsupportedEventError, or the relation
                state.unsupported[name] = str(err)
                state.comps.pop(name, None)
                values[name] = None
                continue
            values[name] = other.epsilon(budget.delta)
        return values

    def _release(self, charge_id: int, dataset: str) -> int:
        with self._writing() as conn:
            row_id = self._append(conn, {
                "kind": "release", "dataset": dataset, "charge_id": charge_id, "time": _now(),
                "library_version": library_version(),
            })
        state = self._cache.get(dataset)
        if state is not None and state.last_id == row_id - 1:
            state.last_id = row_id
        return row_id

    # ----------------------------------------------------------------- queries
    def spent(self, dataset: str) -> PrivacyAmount:
        """Privacy spent on ``dataset``: the composed history under its accountant.

        Returns
        -------
        PrivacyAmount
            ε at the cap's δ (maximum over scopes), and the number of charges.

        Raises
        ------
        ValueError
            If the dataset is unknown.
        """
        with self._reading() as conn:
            state = self._refresh(conn, _name(dataset, "dataset", "Ledger.spent"))
            assert state is not None
            budget = state.budget
            comp = state.comps.get(budget.accountant)
            eps = comp.epsilon(budget.delta) if comp is not None else 0.0
            return PrivacyAmount(eps, budget.delta, budget.accountant, state.charges)

    def remaining(self, dataset: str) -> PrivacyAmount:
        """Headroom left under the cap: ``cap ε − spent ε`` at the cap's δ (rounded down).

        A charge fits if the composed history *including* it stays within the cap; tight
        accountants compose sub-additively, so a charge may fit even if its own ε exceeds this.

        Returns
        -------
        PrivacyAmount
            Remaining ε (≥ 0), the cap's δ, and the number of charges so far.
        """
        spent = self.spent(dataset)
        cap = self.budget(dataset).epsilon
        return PrivacyAmount(_round_down(max(cap - spent.epsilon, 0.0)), spent.delta, spent.accountant, spent.charges)

    def history(self, dataset: str) -> list[ChargeRecord]:
        """Every committed charge of ``dataset`` in order, with its release status.

        Raises
        ------
        ValueError
            If the dataset is unknown.
        """
        dataset = _name(dataset, "dataset", "Ledger.history")
        with self._reading() as conn:
            rows = self._rows(conn, dataset)
        if not any(c["kind"] == "budget" for _, c in rows):
            raise ValueError(f"Unknown dataset {dataset!r}: register it first with ledger.set_budget.")
        releases = {c["charge_id"]: c for _, c in rows if c["kind"] == "release"}
        out = []
        for row_id, c in rows:
            if c["kind"] != "charge":
                continue
            release = releases.get(row_id)
            cumulative = c["cumulative"]
            out.append(ChargeRecord(
                id=row_id, dataset=dataset, time=c["time"], event=_events.from_dict(c["event"]),
                event_json=c["event"], neighboring_relation=c["neighboring_relation"],
                sensitivity=c["sensitivity"], sampling=c["sampling"], seeded=c["seeded"],
                purpose=c["purpose"], certificate=c["certificate"], scope=c["scope"], details=c["details"],
                library_version=c["library_version"], accountant=cumulative["accountant"],
                delta=cumulative["delta"],
                epsilons={k: _decode_eps(v) for k, v in cumulative["epsilon"].items()},
                released=release is not None, release_time=None if release is None else release["time"],
            ))
        return out

    def replay(
        self,
        dataset: str,
        accountant: str | Callable[[], Accountant] = "pld",
        *,
        delta: float | None = None,
    ) -> Replay:
        """Recompute a dataset's spent ε from its stored event trees with any accountant.

        Parameters
        ----------
        dataset : str
            Registered dataset.
        accountant : str or callable, default "pld"
            A registry name (created with the dataset's neighbouring relation) or a
            zero-argument factory returning a fresh :class:`~accountants.accountant.Accountant`.
        delta : float, optional
            Target δ; default the cap's δ.

        Returns
        -------
        Replay
            ε at ``delta``, maximum over scopes, with the per-scope values.

        Raises
        ------
        UnsupportedEventError
            If the accountant cannot bound one of the events.
        """
        dataset = _name(dataset, "dataset", "Ledger.replay")
        history = self.history(dataset)
        budget = self.budget(dataset)
        delta = budget.delta if delta is None else _real(delta, "delta", "Ledger.replay", 0.0, 1.0, open_high=True)
        if isinstance(accountant, str):
            relation = history[0].neighboring_relation if history else "add_or_remove_one"
            name, factory = accountant, self._factory(_name(accountant, "accountant", "Ledger.replay"), relation)
        elif callable(accountant):
            name, factory = getattr(accountant, "name", getattr(accountant, "__name__", "custom")), accountant
        else:
            raise TypeError(
                f"The 'accountant' parameter of Ledger.replay must be a name or a factory. Got {accountant!r} instead."
            )
        comp = _Composition(factory, name)
        for event, scope_key, count in _group(
            [(r.event, _canonical(r.event_json), _scope_key(r.scope)) for r in history]
        ):
            comp.add(event, scope_key, count)
        per_scope = {(None if k is None else json.loads(k)): v for k, v in comp.per_scope(delta).items()}
        return Replay(name, max(per_scope.values()), delta, len(history), per_scope)

    # ----------------------------------------------------------------- integrity
    def verify(self) -> VerifyResult:
        """Check the whole hash chain and the charge/release links.

        Every row must hash to its stored hash over ``previous hash + content``, link to the
        previous row's hash, carry its own id, and a release must follow its charge (same
        dataset, at most one release per charge); a charge must follow a budget.

        Returns
        -------
        VerifyResult
            ``ok`` or the id of the first broken row and the reason.
        """
        with self._reading() as conn:
            cursor = conn.execute("SELECT id, content, prev_hash, hash FROM entries ORDER BY id")
            prev = _GENESIS_HASH
            expected_id = 1
            charges: dict[int, str] = {}
            released: set[int] = set()
            budgets: set[str] = set()
            rows = 0
            for row_id, text, prev_hash, digest in cursor:
                rows += 1
                reason = None
                content: Any = None
                try:
                    content = json.loads(text)
                except ValueError:
                    reason = "content is not valid JSON"
                if reason is None and row_id != expected_id:
                    reason = f"row id {row_id} follows id {expected_id - 1}: rows were removed"
                elif reason is None and prev_hash != prev:
                    reason = "stored previous hash does not match the previous row's hash"
                elif reason is None and _row_hash(prev_hash, text) != digest:
                    reason = "content does not match its hash (row edited)"
                elif reason is None and (not isinstance(content, dict) or content.get("id") != row_id):
                    reason = "content carries a different row id"
                if reason is None:
                    kind, ds = content.get("kind"), content.get("dataset")
                    if kind == "budget":
                        budgets.add(ds)
                    elif kind == "charge":
                        if ds not in budgets:
                            reason = f"charge on dataset {ds!r} before any budget"
                        charges[row_id] = ds
                    elif kind == "release":
                        cid = content.get("charge_id")
                        if charges.get(cid) != ds:
                            reason = f"release without an earlier charge {cid} on dataset {ds!r}"
                        elif cid in released:
                            reason = f"second release of charge {cid}"
                        released.add(cid)
                    else:
                        reason = f"unknown row kind {kind!r}"
                if reason is not None:
                    return VerifyResult(False, rows, prev, row_id, reason)
                prev = digest
                expected_id += 1
        return VerifyResult(True, rows, prev)


class _Charge:
    """Context manager returned by :meth:`Ledger.charge`."""

    def __init__(self, ledger: Ledger, dataset: str, event: Any, content: dict[str, Any]) -> None:
        self._ledger, self._dataset, self._event, self._content = ledger, dataset, event, content
        self._entry: ChargeEntry | None = None

    def __enter__(self) -> ChargeEntry:
        if self._entry is not None:
            raise RuntimeError("A ledger charge can be entered only once; call ledger.charge again.")
        self._entry = self._ledger._commit_charge(self._dataset, self._event, self._content)
        return self._entry

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._entry is not None
        if exc_type is None:
            self._ledger._release(self._entry.id, self._dataset)
        else:
            logger.warning(
                "Release of charge %d on %r failed (%s); the charge stays spent.",
                self._entry.id, self._dataset, exc_type,
            )
