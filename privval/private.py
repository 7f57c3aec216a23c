"""DP-TKNN-Shapley: privacy-budgeted, collusion-resistant data valuation from noisy counts.

Mechanism (Wang, Zhu, Wang, Jia, Mittal 2023, "Threshold KNN-Shapley", arXiv 2308.15709, §5;
DESIGN.md §3-4), with the count pair changed from the paper's (Ct, Ca) to (Ca, Cm):

1. Validation points are public (the curator's own data, not protected). ``n_val_used`` of them
   are used (all by default).
2. For each used validation point ``v``: draw a fresh, secret Poisson subsample ``S_v`` of the
   training set (each record independently with probability ``q``); count the in-ball records
   of ``S_v`` that match ``y_v`` (``Ca``) and that do not (``Cm``); add independent noise to
   each count (discrete Gaussian with scale σ by default, continuous Gaussian rounded to an
   integer with ``noise="gaussian"``); clamp at 0.
3. Post-processing. Owner ``i``'s value for ``v`` is the TKNN formula
   (:func:`privval.tknn.tknn_point_values`) on the shared noisy pair plus its own record: if
   ``i`` was in ``S_v`` its record is already counted (its own count is raised to at least 1),
   otherwise its own +1 is added to ``Ca`` or ``Cm``. Its value is the mean (or sum) over the
   used validation points.

Neighbouring relation and sensitivity: add or remove one training record. The record changes
exactly one of ``(Ca, Cm)`` of each validation point whose ball holds it, by 1 (ℓ1 = ℓ2
sensitivity 1; the paper's (Ct, Ca) pair has ℓ2 sensitivity √2 and needs √2 more noise). The
released object -- the T noisy count pairs -- is therefore
``SelfComposed(PoissonSampled(q, DiscreteGaussian(σ, 1)), T)`` (``Gaussian(σ)`` for
``noise="gaussian"``; no ``PoissonSampled`` wrapper when ``q = 1``) and σ is calibrated to the
requested (ε, δ) with the chosen accountant.

What the guarantee covers (collusion resistance): each owner ``j`` receives only ``values[j]``,
a function of the shared noisy counts, of its own record and of its own (independent) subsample
memberships. For any record ``i`` and any coalition of owners that excludes ``i``, the
coalition's joint view is a post-processing of the noisy counts and of data independent of
``i``, so it is (ε, δ)-DP with respect to ``i``: a coalition learns nothing about ``i`` beyond
one release, however many owners it has. :attr:`ValuationRelease.noisy_counts` holds the counts
so anyone can check this. The whole ``values`` vector is **not** DP: ``values[j]`` is a function
of record ``j`` itself; hand each owner only its own entry.

The naive baseline :func:`dp_knn_shapley` perturbs every owner's KNN-Shapley value with its own
noise (sensitivity ``1/(k(k+1))`` per validation point); its guarantee holds for one owner's
view only and degrades with every colluding owner.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from accountants.events import (
    ComposedDpEvent,
    DiscreteGaussianDpEvent,
    DpEvent,
    GaussianDpEvent,
    PoissonSampledDpEvent,
    SelfComposedDpEvent,
    to_json,
)
from accountants.noise import (
    NoiseSource,
    make_noise_source,
    sample_discrete_gaussian,
    sample_gaussian,
)
from privval._validation import (
    check_choice,
    check_fraction,
    check_int,
    check_metric,
    check_positive_float,
    check_tau,
    check_train_val,
    fail,
)
from privval.neighbors import _ball_tile, _check_chunk_size, _prepare, _progress_bar
from privval.tknn import tknn_point_values

__all__ = ["PrivacyGuarantee", "ValuationRelease", "dp_knn_shapley", "dp_tknn_shapley"]

logger = logging.getLogger(__name__)

#: Accountants that can calibrate a release ("evr" = estimate-verify-release).
ACCOUNTANTS: tuple[str, ...] = ("pld", "rdp", "evr")
#: Noise distributions on the counts.
NOISES: tuple[str, ...] = ("discrete_gaussian", "gaussian")
#: Poisson subsampling rate used when ``sampling_rate`` is not given (see dp_tknn_shapley).
DEFAULT_SAMPLING_RATE: float = 0.1
#: Share of (ε, δ) spent on the private choice of tau with ``tau="private"``.
TAU_SELECTION_SHARE: float = 0.1
#: Quantiles of validation-to-validation distances that form the candidate grid of
#: ``tau="private"`` (computed from the public validation set only).
TAU_GRID_QUANTILES: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
#: Most validation points used to build the tau grid (the first ones, in order).
_TAU_GRID_MAX_POINTS = 2000
_RELATION = "add_or_remove_one"
_PLD_SIGMA_FLOOR = 0.25
_PLD_GRID = 1e-3  # coarsest PLD discretisation used to calibrate and state ε (pessimistic)
_CAL_RTOL = 2e-3  # calibrated ε lies in [ε(1 - _CAL_RTOL), ε]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PrivacyGuarantee:
    """The differential-privacy guarantee of a release, with what it was computed from.

    Attributes
    ----------
    epsilon, delta : float
        The release is (ε, δ)-DP under ``neighboring_relation``. ε is the accountant's value
        for the recorded event at ``delta`` (rounded up; at most the requested ε).
    accountant : str
        ``"pld"``, ``"rdp"`` or ``"evr"``.
    event_json : str
        The event tree (:func:`accountants.events.to_json`); any accountant can replay it.
    certificate : object or None
        The estimate-verify-release certificate when ``accountant="evr"``.
    neighboring_relation : str
        ``"add_or_remove_one"``: one training record added or removed.
    collusion_resistant : bool
        True when the guarantee holds for the joint view of any coalition of owners that
        excludes the protected record (DP-TKNN-Shapley); False when it holds for one owner's
        view only (the naive baseline).
    """

    epsilon: float
    delta: float
    accountant: str
    event_json: str
    certificate: Any = None
    neighboring_relation: str = _RELATION
    collusion_resistant: bool = True


@dataclass(frozen=True)
class ValuationRelease:
    """A private valuation: the values, the guarantee, and what is needed to audit it.

    Attributes
    ----------
    values : np.ndarray of shape (N,)
        Each training record's value (read-only). Give owner ``j`` only ``values[j]``.
    guarantee : PrivacyGuarantee
        The (ε, δ) guarantee and the event tree it was computed from.
    noise_scale : float
        σ of the noise on each count (DP-TKNN) or the noise multiplier (naive DP-KNN:
        standard deviation per value and validation point = ``noise_scale / (k (k + 1))``).
    sampling_rate : float
        Poisson subsampling rate q of the training set, per validation point.
    noisy_counts : np.ndarray of shape (T, 2), int64, or None
        The released noisy, clamped ``(Ca, Cm)`` per used validation point (rows follow
        ``validation_indices``). Every owner's value is computed from these; None for the
        naive baseline, which releases no counts.
    validation_indices : np.ndarray of shape (T,)
        Indices (into ``x_val``) of the validation points used, in increasing order.
    tau : float or None
        The radius used (None for the naive KNN baseline).
    tau_source : str
        ``"given"``, ``"auto"`` (validation-only heuristic, no privacy cost) or ``"private"``
        (chosen by a DP selection charged with the release); ``"none"`` for KNN.
    n_classes : int
        Number of classes C of the value formula.
    reduce : str
        ``"mean"`` or ``"sum"`` over the used validation points.
    max_contributions : int or None
        The contribution bound k, if any.
    ledger_entry : int or None
        Id of the ledger charge committed before the values were returned.
    seeded : bool
        True when the randomness came from a seed: reproducible, **not secure**.
    """

    values: np.ndarray
    guarantee: PrivacyGuarantee
    noise_scale: float
    sampling_rate: float
    noisy_counts: np.ndarray | None
    validation_indices: np.ndarray
    tau: float | None
    tau_source: str
    n_classes: int
    reduce: str
    max_contributions: int | None
    ledger_entry: int | None
    seeded: bool


# --------------------------------------------------------------------------- validation
def _check_epsilon(value: Any, func: str) -> float:
    return check_positive_float(value, "epsilon", func)


def _check_delta(value: Any, func: str) -> float:
    return check_fraction(value, "delta", func, low_open=True, high_open=True)


def _check_ledger(ledger: Any, dataset: Any, purpose: Any, func: str) -> None:
    if ledger is None:
        if dataset is not None:
            fail("dataset", func, "None when no ledger is given (nothing would be charged)", dataset)
        return
    if not callable(getattr(ledger, "charge", None)):
        fail("ledger", func, "an accountants.ledger.Ledger or None", ledger, error=TypeError)
    if not isinstance(dataset, str) or not dataset:
        fail("dataset", func, "the name (a non-empty str) of a dataset registered in the ledger",
             dataset, error=TypeError if not isinstance(dataset, str) else ValueError)
    if purpose is not None and not isinstance(purpose, str):
        fail("purpose", func, "a str or None", purpose, error=TypeError)


def _encode(y_train: np.ndarray, y_val: np.ndarray, n_classes: Any, func: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes over the union of labels and the public number of classes.

    The default C is the number of distinct *validation* labels: the number of classes present
    in the training set is itself private (a new class changes every value).
    """
    if (y_train.dtype.kind in "US") != (y_val.dtype.kind in "US"):
        fail("y_val", func, "labels of the same kind as y_train (both integers or both strings)",
             y_val, error=TypeError)
    _, codes = np.unique(np.concatenate([y_train, y_val]), return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    seen_val = int(np.unique(y_val).shape[0])
    n = seen_val if n_classes is None else check_int(n_classes, "n_classes", func, minimum=seen_val)
    return codes[: y_train.shape[0]], codes[y_train.shape[0]:], n


def _select_validation(m: int, n_used: int, source: NoiseSource) -> np.ndarray:
    """``n_used`` validation indices uniformly without replacement (all when n_used = m).

    The validation set is public, so this choice needs no privacy; the randomness still comes
    from ``source`` so a seeded release is reproducible.
    """
    if n_used == m:
        return np.arange(m)
    keys = source.words(m)
    return np.sort(np.argsort(keys, kind="stable")[:n_used])


# --------------------------------------------------------------------------- events
def _count_event(sigma: float, q: float, noise: str, count: int) -> DpEvent:
    """Event of ``count`` noisy count pairs (sensitivity 1 under add/remove one record)."""
    base: DpEvent = (DiscreteGaussianDpEvent(sigma, 1) if noise == "discrete_gaussian"
                     else GaussianDpEvent(sigma))
    if q < 1.0:
        base = PoissonSampledDpEvent(q, base)
    return SelfComposedDpEvent(base, count)


def _selection_event(sigma: float, noise: str) -> DpEvent:
    """Event of the noisy vote histogram of ``tau="private"`` (one bin changes by 1)."""
    return DiscreteGaussianDpEvent(sigma, 1) if noise == "discrete_gaussian" else GaussianDpEvent(sigma)


@functools.lru_cache(maxsize=256)
def _calibrate_cached(kind: str, params: tuple, epsilon: float, delta: float,
                      accountant: str) -> tuple[float, float]:
    """σ and the accountant's ε at δ for it; deterministic, so cached.

    PLD runs on a grid of width min(``1e-3`` (:data:`_PLD_GRID`), ε/1000). PLD discretises
    pessimistically, so a coarser grid overstates ε and the stated ε remains an upper bound;
    but a fixed 1e-3 grid overstated small ε by 0.01-0.05 in absolute terms, which the
    calibration paid for in noise (σ 268 where 183 meets ε = 0.05 at q = 0.1, T = 1000; 13366
    where 4103 does at q = 1, T = 5000). With ε/1000 the σ found is within 0.5% of the one a
    grid ten times finer gives, at about the same cost. A secant search on log ε(log σ) from
    the closed-form Gaussian composition usually needs 3-5 accountant evaluations;
    :func:`accountants.calibrate.calibrate` (bisection) is the fallback.
    """
    from accountants.calibrate import calibrate

    make = _event_factory(kind, params)
    kwargs = ({"value_discretization_interval": min(_PLD_GRID, epsilon / 1000)}
              if accountant == "pld" else {})
    # A PLD at a tiny σ has a huge support (losses up to ~1/(2σ²)): never search below this
    # floor with PLD. Returning the floor when a smaller σ would do is sound (more noise).
    floor = _PLD_SIGMA_FLOOR if accountant == "pld" else 1e-6
    bracket = _sigma_bracket(kind, params, epsilon, delta, floor)
    found = None
    if bracket is not None:
        found = _secant_sigma(make, epsilon, delta, accountant, kwargs, bracket, floor,
                              _clt_sigma(kind, params, epsilon, delta))
    if found is None:
        sigma = float(calibrate(make, epsilon, delta, accountant=accountant, lower=floor,
                                rtol=1e-3, accountant_kwargs=kwargs or None))
        found = (sigma, _epsilon_of(make(sigma), delta, accountant, kwargs))
    sigma, claimed = found
    if not claimed <= epsilon:  # never state more than was asked for
        raise RuntimeError(f"calibration returned σ={sigma} with ε={claimed} > {epsilon}")
    return sigma, claimed


def _clt_sigma(kind: str, params: tuple, epsilon: float, delta: float) -> float | None:
    """Starting σ for the search: the central-limit approximation of the count release.

    ``count`` Poisson-subsampled (rate q) Gaussian steps of sensitivity 1 are close to μ-GDP
    with μ = q·√(count·(e^{1/σ²} − 1)) when q·√count is not small (Bu, Dong, Long & Su 2020;
    None below 0.1, where the default start of :func:`_secant_sigma` does as well),
    and μ-GDP meets (ε, δ) for μ = 1/z, z the analytic Gaussian's noise multiplier. Solving
    gives σ = 1/√(ln(1 + (μ/(q√count))²)); at q = 1 it is the exact √count·z. Only a start:
    the accountant decides (e.g. 11.82 against the calibrated 11.89 at q = 0.1, count = 1000,
    ε = 1, δ = 1e-5).
    """
    from accountants.lattice import analytic_gaussian_noise_multiplier

    if kind not in ("counts", "selection+counts"):
        return None
    q, count = (params[0], params[-1]) if kind == "counts" else (params[1], params[-1])
    if q * math.sqrt(count) < 0.1:  # far from the central-limit regime: no better start
        return None
    z = analytic_gaussian_noise_multiplier(float(epsilon), float(delta))
    if q >= 1.0:
        return math.sqrt(count) * z
    ratio = 1.0 / (z * q * math.sqrt(count))
    return 1.0 / math.sqrt(math.log1p(ratio * ratio))


def _secant_sigma(make: Callable[[float], DpEvent], epsilon: float, delta: float,
                  accountant: str, kwargs: dict, bracket: tuple[float, float],
                  floor: float, start: float | None = None) -> tuple[float, float] | None:
    """Secant search for σ with ε(σ) in [ε(1 − 2e-3), ε]; None if it does not converge.

    It starts from ``start`` (clamped to the bracket) when given, else from 0.8 times the
    bracket's upper end. Soundness does not depend on the search: the returned ε is the
    accountant's value at the returned σ, and the caller checks it against the target.
    """
    aim = epsilon * (1.0 - 0.5 * _CAL_RTOL)  # the middle of the accepted window

    def log_gap(x: float) -> tuple[float, float]:
        eps = _epsilon_of(make(math.exp(x)), delta, accountant, kwargs)
        if not (eps > 0 and math.isfinite(eps)):
            raise ArithmeticError
        return math.log(eps / aim), eps

    lo_x, hi_x = math.log(bracket[0]), math.log(bracket[1])
    x0 = min(max(math.log(0.8 * bracket[1] if start is None else start), lo_x), hi_x)
    try:
        f0, e0 = log_gap(x0)
        best = (math.exp(x0), e0) if e0 <= epsilon else None
        x1 = x0 + (0.05 if f0 > 0 else -0.05)
        for _ in range(10):
            x1 = min(max(x1, math.log(floor)), hi_x + 1.0)
            f1, e1 = log_gap(x1)
            if e1 <= epsilon and (best is None or math.exp(x1) < best[0]):
                best = (math.exp(x1), e1)
            if epsilon * (1 - _CAL_RTOL) <= e1 <= epsilon:
                return math.exp(x1), e1
            if f1 == f0:
                break
            step = -f1 * (x1 - x0) / (f1 - f0)
            x0, f0 = x1, f1
            x1 = x1 + max(-1.0, min(1.0, step))
    except ArithmeticError:
        return None
    if best is not None and best[1] >= epsilon * (1 - 10 * _CAL_RTOL):
        return best
    return None


def _gaussian_sigma(epsilon: float, delta: float, steps: int) -> float | None:
    """σ of ``steps`` composed Gaussian mechanisms (sensitivity 1) that is exactly (ε, δ)-DP.

    The composition is μ-GDP with μ = √steps/σ, i.e. one Gaussian with noise multiplier
    σ/√steps (:func:`accountants.lattice.analytic_gaussian_noise_multiplier`). Used only to
    bracket the search.
    """
    from accountants.lattice import analytic_gaussian_noise_multiplier

    return math.sqrt(steps) * analytic_gaussian_noise_multiplier(float(epsilon), float(delta))


def _event_factory(kind: str, params: tuple) -> Callable[[float], DpEvent]:
    if kind == "counts":
        q, noise, count = params
        return lambda s: _count_event(s, q, noise, count)
    if kind == "selection":
        (noise,) = params
        return lambda s: _selection_event(s, noise)
    if kind == "selection+counts":
        sel_sigma, q, noise, count = params
        return lambda s: ComposedDpEvent([_selection_event(sel_sigma, noise),
                                          _count_event(s, q, noise, count)])
    if kind == "knn":
        (count,) = params
        return lambda s: SelfComposedDpEvent(GaussianDpEvent(s), count)
    raise AssertionError(kind)


def _epsilon_of(event: DpEvent, delta: float, accountant: str,
                kwargs: dict | None = None) -> float:
    from accountants.accountant import make_accountant

    return float(make_accountant(accountant, **(kwargs or {})).compose(event).get_epsilon(delta))


@dataclass(frozen=True)
class _Calibration:
    sigma: float
    selection_sigma: float | None
    event: DpEvent
    epsilon: float
    delta: float
    accountant: str
    certificate: Any


def _calibrate(kind: str, params: tuple, epsilon: float, delta: float, accountant: str,
               source: NoiseSource, sel_sigma: float | None = None) -> _Calibration:
    """Smallest noise meeting (ε, δ) under ``accountant``, the event, and the claimed ε."""
    if accountant == "evr":
        return _calibrate_evr(kind, params, epsilon, delta, source, sel_sigma)
    sigma, claimed = _calibrate_cached(kind, params, epsilon, delta, accountant)
    event = _event_factory(kind, params)(sigma)
    return _Calibration(sigma, sel_sigma, event, claimed, delta, accountant, None)


def _evr_module() -> Any:
    try:
        from accountants import evr
    except ImportError as exc:  # pragma: no cover - evr ships with the package
        raise ValueError(
            "The 'accountant' parameter must be 'pld' or 'rdp' in this build: 'evr' needs "
            "accountants.evr (estimate-verify-release), which is not available. Got 'evr' "
            "instead.") from exc
    return evr


def _sigma_bracket(kind: str, params: tuple, epsilon: float, delta: float,
                   floor: float) -> tuple[float, float] | None:
    """A bracket for σ around the closed-form Gaussian composition (None if it has none)."""
    q = params[0] if kind == "counts" else params[1] if kind == "selection+counts" else 1.0
    guess = _gaussian_sigma(epsilon, delta, params[-1] if kind != "selection" else 1)
    if guess is None:
        return None
    return max(floor, 0.5 * q * guess), 1.25 * guess + 0.5


def _calibrate_evr(kind: str, params: tuple, epsilon: float, delta: float,
                   source: NoiseSource, sel_sigma: float | None) -> _Calibration:
    """σ by estimate-verify-release (Wang et al. 2023, arXiv 2304.07927).

    The claim (ε, δ_b) is estimated by Monte Carlo from the public event and verified on fresh
    samples; on acceptance the guarantee is (ε, τ·δ_b + p) ≤ (ε, δ) and the certificate is
    attached. On rejection the release falls back to the σ the PLD accountant certifies and
    states the PLD guarantee (verification reads only the public event, so a rejected attempt
    costs no privacy).
    """
    evr = _evr_module()
    make = _event_factory(kind, params)
    lower, upper = _sigma_bracket(kind, params, epsilon, delta, _PLD_SIGMA_FLOOR) or (
        _PLD_SIGMA_FLOOR, 1e6)
    seed = int(source.words(1)[0] >> np.uint64(1)) if source.seeded else None
    cal = evr.calibrate_noise(make, epsilon, delta, lower=lower, upper=upper,
                              rigorous_accountant="pld", rng=seed)
    if cal.evr_scale is not None:
        return _Calibration(float(cal.evr_scale), sel_sigma, make(cal.evr_scale),
                            float(cal.epsilon), float(cal.delta), "evr", cal.certificates[-1])
    logger.warning("EVR verification rejected the claim; falling back to the PLD accountant")
    sigma = float(cal.rigorous_scale)
    event = make(sigma)
    return _Calibration(sigma, sel_sigma, event, _epsilon_of(event, delta, "pld"), delta,
                        "pld", cal.certificates[-1])


# --------------------------------------------------------------------------- ledger
@contextmanager
def _charged(ledger: Any, dataset: str | None, event: DpEvent, *, sensitivity: float,
             sampling: Any, seeded: bool, purpose: str | None, certificate: Any,
             details: dict[str, Any]) -> Iterator[Any]:
    """Commit the charge (or raise BudgetExceededError, spending nothing) before releasing."""
    if ledger is None:
        yield None
        return
    with ledger.charge(dataset, event, sensitivity=sensitivity, sampling=sampling, seeded=seeded,
                       neighboring_relation=_RELATION, purpose=purpose, certificate=certificate,
                       details=details) as entry:
        yield entry


def _entry_id(entry: Any) -> int | None:
    return None if entry is None else int(entry.id)


# --------------------------------------------------------------------------- in-ball pairs
def _ball_pairs(geom: Any, n_val: int, n_train: int, budget: int,
                progress: bool | None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per block of validation rows ``v0:v1``, all in-ball pairs as (row - v0, train column).

    Training columns are positions in ``geom``'s (class-sorted) order. The in-ball decision
    is :func:`privval.neighbors._ball_tile`'s: exact (float64 reference near the boundary), so
    it depends on the pair only, never on the tiling.
    """
    val_block = max(1, min(n_val, budget // n_train))
    train_chunk = max(1, min(n_train, budget // val_block))
    with _progress_bar(n_val, "DP-TKNN-Shapley", progress) as bar:
        for v0 in range(0, n_val, val_block):
            v1 = min(n_val, v0 + val_block)
            rows, cols = [], []
            for t0 in range(0, n_train, train_chunk):
                t1 = min(n_train, t0 + train_chunk)
                width = t1 - t0
                tile = np.empty((v1 - v0, width), dtype=bool)
                _ball_tile(geom, v0, v1, t0, t1, budget, tile)
                # Row by row (row-major order, as np.flatnonzero of the tile): about 1.7x
                # faster than one flatnonzero plus the integer division that splits it.
                for i in range(v1 - v0):
                    c = np.flatnonzero(tile[i])
                    if c.size:
                        rows.append(np.full(c.size, i, dtype=np.int64))
                        cols.append(c + t0 if t0 else c)
            if not rows:
                rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
            yield v0, v1, np.concatenate(rows), np.concatenate(cols)
            bar.update(v1 - v0)


def _bounded_pairs(geom: Any, n_val: int, n_train: int, k: int, budget: int,
                   progress: bool | None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Like :func:`_ball_pairs`, keeping for each training record only its ``k`` nearest
    in-ball validation points (ties broken by validation index).

    The kept set of a record is a function of that record and the public validation set only
    (distances of candidates are the float64 reference distances), which is what bounds each
    record's contributions to ``k`` count pairs.
    """
    train_chunk = max(1, min(n_train, budget // n_val))
    keep_rows, keep_cols = [], []
    for t0 in range(0, n_train, train_chunk):
        t1 = min(n_train, t0 + train_chunk)
        tile = np.empty((n_val, t1 - t0), dtype=bool)
        _ball_tile(geom, 0, n_val, t0, t1, budget, tile)
        rows, cols = np.nonzero(tile)
        if rows.size and k < n_val:
            per_col = np.bincount(cols, minlength=t1 - t0)
            heavy = per_col[cols] > k
            if np.any(heavy):
                h_rows, h_cols = rows[heavy], cols[heavy]
                dist = geom.reference(h_rows, h_cols + t0, budget)
                order = np.lexsort((h_rows, dist, h_cols))
                h_rows, h_cols = h_rows[order], h_cols[order]
                starts = np.flatnonzero(np.r_[True, h_cols[1:] != h_cols[:-1]])
                sizes = np.diff(np.r_[starts, h_cols.size])
                rank = np.arange(h_cols.size) - np.repeat(starts, sizes)
                rows = np.concatenate([rows[~heavy], h_rows[rank < k]])
                cols = np.concatenate([cols[~heavy], h_cols[rank < k]])
        keep_rows.append(rows)
        keep_cols.append(cols + t0)
    rows = np.concatenate(keep_rows)
    cols = np.concatenate(keep_cols)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    val_block = max(1, min(n_val, budget // n_train))
    bounds = np.searchsorted(rows, np.arange(0, n_val + val_block, val_block))
    with _progress_bar(n_val, "DP-TKNN-Shapley", progress) as bar:
        for b, v0 in enumerate(range(0, n_val, val_block)):
            v1 = min(n_val, v0 + val_block)
            s, e = bounds[b], bounds[b + 1]
            yield v0, v1, rows[s:e] - v0, cols[s:e]
            bar.update(v1 - v0)


# --------------------------------------------------------------------------- noisy counts
def _poisson_threshold(q: float) -> int | None:
    """``floor(q · 2**32)``: a pair is sampled when a uniform 32-bit integer is below it.

    The realised rate ``floor(q·2**32)/2**32`` lies in ``(q - 2**-32, q]``; a lower rate is
    at least as private (Poisson(q') = Poisson(q) followed by Poisson(q'/q)), so accounting
    with ``q`` is sound. None for q = 1 (no sampling).
    """
    if q >= 1.0:
        return None
    from fractions import Fraction

    return math.floor(Fraction(q) * (1 << 32))


def _uniform_u32(source: NoiseSource, size: int) -> np.ndarray:
    """``size`` independent uniform 32-bit integers (each 64-bit word gives two)."""
    return source.words((size + 1) // 2).view(np.uint32)[:size]


def _check_tau_choice(tau: Any, func: str) -> tuple[Any, str]:
    """(tau, source): "auto" or "private" for a string, else a validated float and "given"."""
    if isinstance(tau, str):
        return tau, check_choice(tau, "tau", func, ("auto", "private"))
    return check_tau(tau, func), "given"


def _noise(sigma: float, shape: tuple[int, int], noise: str, source: NoiseSource) -> np.ndarray:
    if noise == "discrete_gaussian":
        return sample_discrete_gaussian(sigma, shape, source)
    # Floating-point Gaussian, rounded to the nearest integer (post-processing).
    return np.rint(sample_gaussian(sigma, shape, source)).astype(np.int64)


def _noisy_pairs(ca: np.ndarray, cm: np.ndarray, z: np.ndarray, pair: str) -> tuple[np.ndarray, np.ndarray]:
    """Clamped noisy (Ca, Cm); ``pair="ct_ca"`` is the paper's (Ct, Ca) rendering (benchmarks)."""
    if pair == "ca_cm":
        return np.maximum(ca + z[:, 0], 0), np.maximum(cm + z[:, 1], 0)
    ct_hat = np.maximum(ca + cm + z[:, 0], 0)
    ca_hat = np.maximum(ca + z[:, 1], 0)
    return ca_hat, np.maximum(ct_hat - ca_hat, 0)


def _value_table(ca_hat: np.ndarray, cm_hat: np.ndarray, n_classes: int) -> np.ndarray:
    """Per validation point, the value of an in-ball owner by (matches, was sampled).

    Column ``2·match + sampled``: 0 mismatch not sampled (own +1 added to Cm), 1 mismatch
    sampled (Cm raised to ≥ 1), 2 match not sampled (own +1 added to Ca), 3 match sampled.
    """
    one = np.ones_like(ca_hat)
    table = np.empty((ca_hat.shape[0], 4), dtype=np.float64)
    table[:, 0] = tknn_point_values(ca_hat, cm_hat + one, n_classes)[1]
    table[:, 1] = tknn_point_values(ca_hat, np.maximum(cm_hat, one), n_classes)[1]
    table[:, 2] = tknn_point_values(ca_hat + one, cm_hat, n_classes)[0]
    table[:, 3] = tknn_point_values(np.maximum(ca_hat, one), cm_hat, n_classes)[0]
    return table


def _release_values(
    xt: np.ndarray, codes_t: np.ndarray, xv: np.ndarray, codes_v: np.ndarray, n_classes: int, *,
    tau: float, metric: str, q: float, sigma: float, noise: str, source: NoiseSource,
    max_contributions: int | None, budget: int, progress: bool | None, pair: str = "ca_cm",
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy count pairs of the validation points ``xv`` and the (summed) owner values.

    One pass over the distances: per block of validation points the in-ball pairs are kept
    (bounded by ``budget``), a Poisson bit is drawn only for in-ball pairs, the noisy counts of
    the block are formed, and each pair's value is added to its owner with one ``bincount``.

    Returns
    -------
    (values, noisy_counts) : values summed over validation points, in ``xt`` order, and the
    (T, 2) int64 noisy clamped counts.
    """
    n_train, n_val = xt.shape[0], xv.shape[0]
    order = np.argsort(codes_t, kind="stable")
    # Narrow label codes make the per-pair gathers cache-resident.
    small = np.int16 if max(int(codes_t.max(initial=0)), int(codes_v.max(initial=0))) < 2**15 else np.int64
    codes_sorted = codes_t[order].astype(small)
    codes_val = codes_v.astype(small)
    geom = _prepare(xt, xv, metric=metric, tau=tau, train_order=order, device=None,
                    func="dp_tknn_shapley")
    threshold = _poisson_threshold(q)
    z = _noise(sigma, (n_val, 2), noise, source)
    noisy = np.empty((n_val, 2), dtype=np.int64)
    acc = np.zeros(n_train, dtype=np.float64)
    blocks = (_ball_pairs(geom, n_val, n_train, budget, progress) if max_contributions is None
              else _bounded_pairs(geom, n_val, n_train, max_contributions, budget, progress))
    for v0, v1, rows, cols in blocks:
        nb = v1 - v0
        match = codes_sorted[cols] == codes_val[v0:v1][rows]
        if threshold is None:
            sampled = None
            s_rows, s_match = rows, match
        else:
            sampled = _uniform_u32(source, rows.shape[0]) < np.uint32(threshold)
            s_rows, s_match = rows[sampled], match[sampled]
        ct = np.bincount(s_rows, minlength=nb)
        ca = np.bincount(s_rows, weights=s_match, minlength=nb).astype(np.int64)
        ca_hat, cm_hat = _noisy_pairs(ca, ct - ca, z[v0:v1], pair)
        noisy[v0:v1, 0], noisy[v0:v1, 1] = ca_hat, cm_hat
        table = _value_table(ca_hat, cm_hat, n_classes).ravel()
        # Column of the value table: 2·match + sampled (see _value_table).
        key = rows * 4
        np.add(key, match, out=key)
        np.add(key, match, out=key)
        if sampled is None:
            key += 1
        else:
            np.add(key, sampled, out=key)
        acc += np.bincount(cols, weights=table[key], minlength=n_train)
    values = np.empty(n_train, dtype=np.float64)
    values[order] = acc
    return values, noisy


# --------------------------------------------------------------------------- tau
def _tau_grid(xv: np.ndarray, metric: str) -> np.ndarray:
    """Candidate radii: quantiles of validation-to-validation distances (public data only)."""
    x = xv[:_TAU_GRID_MAX_POINTS].astype(np.float64)
    if x.shape[0] < 2:
        fail("tau", "dp_tknn_shapley", "a float when fewer than 2 validation points are given "
             "(tau='private' builds its grid from validation distances)", "'private'")
    if metric == "euclidean":
        sq = np.einsum("ij,ij->i", x, x)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
    else:
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = np.clip(1.0 - u @ u.T, 0.0, 2.0)
    off = d[np.triu_indices(x.shape[0], k=1)]
    grid = np.unique(np.quantile(off, TAU_GRID_QUANTILES))
    grid = grid[grid > 0]
    if grid.size == 0:
        fail("x_val", "dp_tknn_shapley", "distinct points when tau='private' (all validation "
             "distances are 0)", "identical rows")
    return grid


def _vote_histogram(xt: np.ndarray, codes_t: np.ndarray, xv: np.ndarray, codes_v: np.ndarray,
                    n_classes: int, grid: np.ndarray, metric: str, budget: int) -> np.ndarray:
    """Each training record votes for one radius of ``grid``; returns the vote counts.

    Record ``j``'s score for radius g is the smoothed accuracy with which the validation
    points within g of ``x_j`` predict ``y_j``: ``(m_g + 1/C) / (n_g + 1)`` (n_g in the ball,
    m_g of them with label ``y_j``). It votes for the best radius (ties: the largest). The
    vote depends only on record ``j`` and the public validation set, so adding or removing one
    record changes one bin of the histogram by 1 (ℓ1 = ℓ2 sensitivity 1). Ball membership is
    decided exactly (float64 reference distance for pairs near a grid radius).
    """
    n_train, n_val = xt.shape[0], xv.shape[0]
    g = grid.shape[0]
    geom = _prepare(xt, xv, metric=metric, tau=None, train_order=None, device=None,
                    func="dp_tknn_shapley")
    thr = grid * grid if metric == "euclidean" else grid
    hist = np.zeros(g, dtype=np.int64)
    # Each pair holds a float64 distance, an int64 key and more: a quarter tile keeps memory
    # near that of the other passes.
    train_chunk = max(1, min(n_train, budget // (4 * n_val)))
    for t0 in range(0, n_train, train_chunk):
        t1 = min(n_train, t0 + train_chunk)
        width = t1 - t0
        r = geom.tile(0, n_val, t0, t1)
        tol = geom.tolerance(0, n_val, t0, t1)
        first = np.searchsorted(thr, r, side="left")  # in the balls first, first+1, ...
        unsure = np.searchsorted(thr, r - tol, side="left") != np.searchsorted(thr, r + tol, side="left")
        if np.any(unsure):
            rows, cols = np.nonzero(unsure)
            dist = geom.reference(rows, cols + t0, budget)
            first[rows, cols] = np.searchsorted(grid, dist, side="left")
        match = codes_v[:, None] == codes_t[None, t0:t1]
        key = (np.arange(width)[None, :] * (g + 1) + first).ravel()
        total = np.bincount(key, minlength=width * (g + 1)).reshape(width, g + 1)
        hits = np.bincount(key, weights=match.ravel(), minlength=width * (g + 1)).reshape(width, g + 1)
        n_in = np.cumsum(total[:, :g], axis=1)
        m_in = np.cumsum(hits[:, :g], axis=1)
        score = (m_in + 1.0 / n_classes) / (n_in + 1.0)
        votes = g - 1 - np.argmax(score[:, ::-1], axis=1)
        hist += np.bincount(votes, minlength=g)
    return hist


def _auto_tau(xv: np.ndarray, metric: str) -> float:
    """:func:`privval.threshold.tau_from_validation` with its defaults (validation data only)."""
    from privval.threshold import tau_from_validation

    return float(tau_from_validation(xv, metric=metric))


# --------------------------------------------------------------------------- public API
def dp_tknn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    tau: float | str,
    epsilon: float,
    delta: float,
    sampling_rate: float | None = None,
    n_val_used: int | None = None,
    max_contributions: int | None = None,
    noise: str = "discrete_gaussian",
    accountant: str = "pld",
    ledger: Any = None,
    dataset: str | None = None,
    purpose: str | None = None,
    rng: Any = None,
    metric: str = "euclidean",
    reduce: str = "mean",
    n_classes: int | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> ValuationRelease:
    """Differentially private TKNN-Shapley values (DP-TKNN-Shapley, Wang et al. 2023).

    Each used validation point releases one noisy count pair ``(Ca, Cm)`` of a fresh, secret
    Poisson subsample of its ball; every owner's value is computed from these shared counts plus
    its own record (module docstring). The noisy counts are (ε, δ)-DP for every training record
    under add/remove-one, and so is the joint view of any coalition of owners that excludes the
    record (collusion resistance). The ``values`` vector as a whole is not DP: give each owner
    only its own entry.

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        Training set (protected) and validation set (public, the curator's own), as for
        :func:`privval.tknn_shapley`.
    tau : float or {"auto", "private"}
        Ball radius (``d <= tau``). ``"auto"``: the validation-only heuristic of
        :mod:`privval.threshold` (no privacy cost). ``"private"``: chosen from a grid of
        validation-distance quantiles (:data:`TAU_GRID_QUANTILES`) by report-noisy-max over a
        vote histogram: each training record votes for the radius whose ball of validation
        points best predicts its label (:func:`_vote_histogram`), so adding or removing one
        record changes one bin by 1 (add/remove-one relation, ℓ1 = ℓ2 sensitivity 1); the
        histogram gets the same noise as the counts (``DiscreteGaussianDpEvent(σ_sel, 1)``,
        as private as publishing the whole noisy histogram) and the argmax is kept. It spends
        :data:`TAU_SELECTION_SHARE` of ε and δ; the selection and the release are charged
        together as one composed event, and the stated (ε, δ) covers both.
    epsilon : float
        Target ε in (0, inf) for the whole call.
    delta : float
        Target δ in (0, 1).
    sampling_rate : float, optional
        Poisson subsampling rate q in (0, 1] of the training set per validation point.
        Default :data:`DEFAULT_SAMPLING_RATE` = 0.1. Reasoning: at a fixed (ε, δ) the
        calibrated σ grows almost linearly with q (T = 200, δ = 1e-5, ε = 1: σ/q = 97, 54, 53
        for q = 0.01, 0.1, 1), so subsampling does not make the counts more accurate
        relative to their size -- but the values do improve: each validation point weighs
        its owners by about 1/Ĉt, and a noisy count near 0 hands one ball a weight up to
        Ct times the typical one; shrinking the counts by q shrinks that dynamic range.
        Too small a q lets the binomial subsampling noise dominate. On the bundled datasets
        (``benchmarks/bench_dp_valuation.py``, 5 seeds, ε from 0.1 to 4) q = 1 gave the lowest
        Spearman correlation with the exact values at almost every ε; q = 0.01 was best at
        ε ≤ 0.5 but flat (0.74-0.77 on digits) where q = 0.1 reached 0.90 at ε = 4; q = 0.1
        is the robust middle. The choice uses no private data.
    n_val_used : int, optional
        Number T of validation points used, chosen uniformly without replacement (public
        randomness). Default: all of them. Reasoning: each record's privacy cost grows with
        the number of balls it can fall in (σ ∝ √T), but each owner's value averages over
        ~T·p balls, so the noise of the averaged value stays roughly constant in T while its
        non-private sampling error falls; fewer points only save time.
    max_contributions : int, optional
        Contribution bound k ≥ 1: each training record counts only in its k nearest in-ball
        validation points (ties by validation index), so the event composes min(T, k) times
        instead of T. **This changes the value definition**: a record's value is the mean,
        over the T used validation points, of its TKNN value in the balls it is kept in (0
        elsewhere), and the counts of a ball only include the records kept in it.
    noise : {"discrete_gaussian", "gaussian"}
        Exact integer discrete Gaussian noise (default; no floating-point attack surface), or
        floating-point Gaussian noise rounded to integers.
    accountant : {"pld", "rdp", "evr"}
        Calibrates σ and states ε: privacy-loss distributions (tight, default), Rényi DP, or
        estimate-verify-release (a Monte Carlo estimate verified on fresh samples; the
        certificate is attached to the guarantee).
    ledger : accountants.ledger.Ledger, optional
        When given, the release is charged to ``dataset`` before any value is computed or
        returned; a refused charge raises :class:`~accountants.ledger.BudgetExceededError` and
        returns nothing.
    dataset : str, optional
        The ledger's dataset name (required with ``ledger``, refused without it).
    purpose : str, optional
        Stored with the ledger charge.
    rng : None, int or numpy.random.Generator
        None (default): the OS CSPRNG. A seed or Generator makes the release reproducible and
        **not secure**; it is marked ``seeded`` in the release and the ledger.
    metric : {"euclidean", "cosine"}
        Distance.
    reduce : {"mean", "sum"}
        Mean or sum over the used validation points.
    n_classes : int, optional
        Number of classes C (public). Default: the number of distinct validation labels --
        not the training labels, whose set is private.
    chunk_size : int, optional
        Most distances held at once (default ``2**23``).
    progress : bool, optional
        tqdm progress bar on a terminal; ``False`` turns it off.

    Returns
    -------
    ValuationRelease
        Values, guarantee (ε, δ, accountant, event JSON), σ, q, the released noisy counts and
        the ledger entry.

    Raises
    ------
    ValueError, TypeError
        Invalid parameters (checked before anything is calibrated or charged).
    accountants.ledger.BudgetExceededError
        The ledger refused the charge; nothing was spent or returned.

    Example
    -------
    >>> import numpy as np
    >>> from privval import dp_tknn_shapley
    >>> gen = np.random.default_rng(0)
    >>> x = gen.normal(size=(200, 2)); y = (x[:, 0] > 0).astype(int)
    >>> rel = dp_tknn_shapley(x[:150], y[:150], x[150:], y[150:], tau=1.0, epsilon=1.0,
    ...                       delta=1e-5, rng=0)
    >>> rel.values.shape, rel.noisy_counts.shape, rel.seeded
    ((150,), (50, 2), True)
    """
    func = "dp_tknn_shapley"
    xt, yt, xv, yv = check_train_val(x_train, y_train, x_val, y_val, func)
    metric = check_metric(metric, func)
    tau, tau_source = _check_tau_choice(tau, func)
    epsilon = _check_epsilon(epsilon, func)
    delta = _check_delta(delta, func)
    q = DEFAULT_SAMPLING_RATE if sampling_rate is None else check_fraction(
        sampling_rate, "sampling_rate", func, low_open=True)
    m = xv.shape[0]
    t_used = m if n_val_used is None else check_int(n_val_used, "n_val_used", func, minimum=1,
                                                    maximum=m)
    k = None if max_contributions is None else check_int(max_contributions, "max_contributions",
                                                         func, minimum=1)
    noise = check_choice(noise, "noise", func, NOISES)
    accountant = check_choice(accountant, "accountant", func, ACCOUNTANTS)
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    _check_ledger(ledger, dataset, purpose, func)
    budget = _check_chunk_size(chunk_size, func)
    codes_t, codes_v, c = _encode(yt, yv, n_classes, func)
    source = make_noise_source(rng)
    if accountant == "evr":
        _evr_module()  # fail early, before anything is computed, if EVR is unavailable

    grid = _tau_grid(xv, metric) if tau_source == "private" else None
    if tau_source == "auto":
        tau = _auto_tau(xv, metric)
    used = _select_validation(m, t_used, source)
    steps = t_used if k is None else min(t_used, k)

    if tau_source == "private":
        sel_eps, sel_delta = TAU_SELECTION_SHARE * epsilon, TAU_SELECTION_SHARE * delta
        sel_sigma, _ = _calibrate_cached("selection", (noise,), sel_eps, sel_delta,
                                         "pld" if accountant == "evr" else accountant)
        cal = _calibrate("selection+counts", (sel_sigma, q, noise, steps), epsilon, delta,
                         accountant, source, sel_sigma)
    else:
        cal = _calibrate("counts", (q, noise, steps), epsilon, delta, accountant, source)

    guarantee = PrivacyGuarantee(epsilon=cal.epsilon, delta=cal.delta, accountant=cal.accountant,
                                 event_json=to_json(cal.event), certificate=cal.certificate)
    details = {"mechanism": "dp_tknn_shapley", "noise": noise, "sigma": cal.sigma,
               "sampling_rate": q, "n_val_used": t_used, "max_contributions": k,
               "tau_source": tau_source, "count_pair": "(Ca, Cm)",
               "selection_sigma": cal.selection_sigma}
    with _charged(ledger, dataset, cal.event, sensitivity=1.0,
                  sampling=({"type": "poisson", "rate": q, "per": "validation point"} if q < 1
                            else "none"),
                  seeded=source.seeded, purpose=purpose, certificate=cal.certificate,
                  details=details) as entry:
        if tau_source == "private":
            assert grid is not None and cal.selection_sigma is not None
            hist = _vote_histogram(xt, codes_t, xv[used], codes_v[used], c, grid, metric, budget)
            z = _noise(cal.selection_sigma, (1, grid.shape[0]), noise, source)[0]
            noisy_hist = hist + z
            tau = float(grid[grid.shape[0] - 1 - int(np.argmax(noisy_hist[::-1]))])
            logger.info("tau chosen privately: %g from %d candidates", tau, grid.shape[0])
        values, noisy = _release_values(
            xt, codes_t, xv[used], codes_v[used], c, tau=float(tau), metric=metric, q=q,
            sigma=cal.sigma, noise=noise, source=source, max_contributions=k, budget=budget,
            progress=progress)
        if reduce == "mean":
            values /= t_used
        values.flags.writeable = False
        noisy.flags.writeable = False
        used.flags.writeable = False
        release = ValuationRelease(
            values=values, guarantee=guarantee, noise_scale=cal.sigma, sampling_rate=q,
            noisy_counts=noisy, validation_indices=used, tau=float(tau), tau_source=tau_source,
            n_classes=c, reduce=reduce, max_contributions=k, ledger_entry=_entry_id(entry),
            seeded=source.seeded)
    return release


@functools.lru_cache(maxsize=32)
def _knn_mechanism(epsilon: float, delta: float, sensitivity: float, accountant: str) -> Any:
    """The calibrated lattice Gaussian of :func:`dp_knn_shapley` (cached: PLD checks cost)."""
    from accountants.lattice import calibrate_lattice_gaussian

    return calibrate_lattice_gaussian(epsilon, delta, sensitivity, accountant=accountant,
                                      owner="dp_knn_shapley")


def dp_knn_shapley(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    *,
    k: int = 5,
    epsilon: float,
    delta: float,
    n_val_used: int | None = None,
    accountant: str = "pld",
    ledger: Any = None,
    dataset: str | None = None,
    purpose: str | None = None,
    rng: Any = None,
    metric: str = "euclidean",
    reduce: str = "mean",
    n_classes: int | None = None,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> ValuationRelease:
    """Naive DP-KNN-Shapley: every owner's KNN-Shapley value plus its own Gaussian noise.

    The baseline DP-TKNN-Shapley is compared with (Wang et al. 2023, arXiv 2308.15709,
    App. B.4). Hard-label KNN-Shapley (Jia et al. 2019) of one record for one validation point
    changes by at most ``1/(k(k+1))`` when another record is added or removed (DESIGN.md §4;
    checked by exhaustive search in the tests), so an owner's sum over T validation points
    changes by at most S = T/(k(k+1)). Each owner's sum is released by the lattice Gaussian
    mechanism (:mod:`accountants.lattice`): rounded to a power-of-two grid γ chosen from S,
    plus exact discrete Gaussian noise, i.e.
    ``DiscreteGaussianDpEvent(σ_Z, ⌊S(1 + 2⁻²⁰)/γ⌋ + 1)`` **for one owner's view** (the continuous ``SelfComposed(Gaussian(σ), T)`` up to the
    rounding's ≤ 0.4%; no floating-point noise is released). Owners' noises are independent,
    so a coalition of m owners sees m such releases: there is no collusion resistance
    (``guarantee.collusion_resistant`` is False).

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        As for :func:`privval.knn_shapley`.
    k : int, default 5
        Number of neighbours.
    epsilon, delta : float
        Target guarantee, per owner's view.
    n_val_used : int, optional
        Number T of validation points (uniformly without replacement); default all.
    accountant : {"pld", "rdp"}
        Calibrates σ.
    ledger, dataset, purpose, rng, metric, reduce, n_classes, chunk_size, progress
        As for :func:`dp_tknn_shapley`.

    Returns
    -------
    ValuationRelease
        ``noisy_counts`` is None; ``noise_scale`` is the equivalent per-validation-point
        noise multiplier σ = γσ_Z/(Δ√T) (the sum's noise scale is σΔ√T).

    Raises
    ------
    ValueError, TypeError
        Invalid parameters (before anything is charged).
    accountants.ledger.BudgetExceededError
        The ledger refused the charge.

    Example
    -------
    >>> import numpy as np
    >>> from privval import dp_knn_shapley
    >>> gen = np.random.default_rng(0)
    >>> x = gen.normal(size=(120, 2)); y = (x[:, 0] > 0).astype(int)
    >>> rel = dp_knn_shapley(x[:100], y[:100], x[100:], y[100:], epsilon=1.0, delta=1e-5, rng=0)
    >>> rel.values.shape, rel.guarantee.collusion_resistant
    ((100,), False)
    """
    from privval.knn import knn_shapley

    func = "dp_knn_shapley"
    xt, yt, xv, yv = check_train_val(x_train, y_train, x_val, y_val, func)
    metric = check_metric(metric, func)
    k = check_int(k, "k", func, minimum=1)
    epsilon = _check_epsilon(epsilon, func)
    delta = _check_delta(delta, func)
    m = xv.shape[0]
    t_used = m if n_val_used is None else check_int(n_val_used, "n_val_used", func, minimum=1,
                                                    maximum=m)
    accountant = check_choice(accountant, "accountant", func, ("pld", "rdp"))
    reduce = check_choice(reduce, "reduce", func, ("mean", "sum"))
    _check_ledger(ledger, dataset, purpose, func)
    _check_chunk_size(chunk_size, func)
    _, _, c = _encode(yt, yv, n_classes, func)
    source = make_noise_source(rng)
    used = _select_validation(m, t_used, source)
    sensitivity = 1.0 / (k * (k + 1))
    # One owner's sum over the T validation points moves by at most T·Δ: released by the
    # lattice Gaussian (exact discrete noise on a grid chosen from T·Δ, no float noise).
    mech = _knn_mechanism(epsilon, delta, t_used * sensitivity, accountant)
    noise_multiplier = mech.noise_scale / (sensitivity * math.sqrt(t_used))
    guarantee = PrivacyGuarantee(epsilon=mech.epsilon_checked, delta=delta,
                                 accountant=accountant, event_json=to_json(mech.event),
                                 collusion_resistant=False)
    details = {"mechanism": "dp_knn_shapley (lattice Gaussian)", "k": k,
               "noise_multiplier": noise_multiplier, "grid": mech.grid,
               "n_val_used": t_used, "view": "one owner (no collusion resistance)"}
    with _charged(ledger, dataset, mech.event, sensitivity=t_used * sensitivity,
                  sampling="none", seeded=source.seeded, purpose=purpose, certificate=None,
                  details=details) as entry:
        sums = knn_shapley(xt, yt, xv[used], yv[used], k=k, metric=metric, n_classes=c,
                           reduce="sum", chunk_size=chunk_size, progress=progress)
        values = mech.release(np.asarray(sums, dtype=np.float64), source)
        if reduce == "mean":
            values /= t_used
        values.flags.writeable = False
        used.flags.writeable = False
        release = ValuationRelease(
            values=values, guarantee=guarantee, noise_scale=noise_multiplier, sampling_rate=1.0,
            noisy_counts=None, validation_indices=used, tau=None, tau_source="none",
            n_classes=c, reduce=reduce, max_contributions=None, ledger_entry=_entry_id(entry),
            seeded=source.seeded)
    return release
