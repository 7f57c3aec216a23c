"""Propose-Test-Release (PTR) of robust statistics, and private summaries of data values.

PTR (Dwork & Lei 2009) with the Gaussian release and Rényi-DP analysis of Wang, Mahloujifar,
Wang, Jia, Mittal 2022 (arXiv 2209.07716; DESIGN.md §5): propose a bound β on the local
sensitivity of a robust statistic f2 (median, trimmed mean); privately test that the data are
far from any dataset where that bound fails; if so release f2 with noise calibrated to β,
otherwise release a fallback with bounded global sensitivity (the clipped mean) or ⊥.

**Neighbouring relation: replace one record**, with the dataset size n public (and, for
:func:`private_value_summary`, the group of every record and the group sizes). Data are
clipped to a declared range [lower, upper] (per coordinate in ℝ^d). Under this relation

* the distance to instability Δ has sensitivity 1,
* the trimmed mean (t trimmed each side) has global sensitivity ‖upper − lower‖₂/(n − 2t),
* the clipped mean (fallback) has global sensitivity ‖upper − lower‖₂/n,

and the PTR event (:class:`accountants.events.PTRDpEvent`) is accounted by
:func:`accountants.ptr.ptr_rdp`. A replace-one guarantee is *not* an add/remove guarantee (the
size n is assumed public): the ledger charge is recorded with ``neighboring_relation=
"replace_one"``, and a ledger dataset keeps one relation for all its charges, so keep PTR
releases on a dataset whose budget is accounted under replace-one (an add/remove (ε, δ)
guarantee would imply a replace-one one only through group privacy of size 2, not conversely).
Use an RDP budget (``accountant="rdp"``) for PTR charges.

**Exact distance to instability** (DESIGN.md §5, notes/ptr.md §7). For sorted x in [a, b]
with x₍ᵢ₎ = a for i ≤ 0 and x₍ᵢ₎ = b for i > n, the local sensitivity at distance k of the
trimmed mean is A^(k) = max_{0≤s≤k+1} (x₍ₙ₋ₜ₊ₛ₎ − x₍ₜ₋ₖ₊ₛ₎)/(n − 2t); the median is
t = ⌊(n−1)/2⌋ (n even gives the average of the two middle values). A^(k) is nondecreasing and
equals the global sensitivity for k ≥ 2t + 1, so Δ = min{k : A^(k) > β} is found by binary
search over k ∈ [0, 2t+1] in O(n log n) after sorting. In ℝ^d (coordinate-wise statistic) Δ
uses the ℓ2 envelope U^(k) = ‖(A_j^(k))_j‖₂, which is ≥ the ℓ2 local sensitivity, monotone in
k, and satisfies U^(k)(x′) ≤ U^(k+1)(x) for neighbours (one record changes one entry per
column), hence keeps both properties PTR needs: Δ ≥ 1 ⇒ LS ≤ β, and |Δ(x) − Δ(x′)| ≤ 1.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from accountants.events import PTRDpEvent
from accountants.noise import (
    NoiseSource,
    gaussian_release,
    make_noise_source,
    sample_gaussian,
    sample_laplace,
)
from accountants.ptr import ptr_threshold
from privval._validation import check_choice, check_int, check_positive_float, fail

__all__ = [
    "PTRRelease",
    "ValueSummary",
    "distance_to_instability",
    "local_sensitivity_at_distance",
    "private_value_summary",
    "ptr_release",
]

logger = logging.getLogger(__name__)

STATISTICS: tuple[str, ...] = ("median", "trimmed_mean")
FALLBACKS: tuple[str, ...] = ("mean",)
TEST_NOISES: tuple[str, ...] = ("laplace", "gaussian")
MIN_DELTA0 = 1e-12
"""Smallest δ0 a release accepts: the test's floating-point noise (53-bit uniforms) has tails
that are exact only down to about 1e-16, so smaller pass probabilities are refused."""
NEIGHBORING_RELATION = "replace_one"


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class _Prepared:
    """Clipped, sorted data (n, d) with its range, trim and the shape of the statistic."""

    sorted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    trim: int
    vector: bool

    @property
    def n(self) -> int:
        return self.sorted.shape[0]


def _check_data(data: Any, func: str) -> tuple[np.ndarray, bool]:
    try:
        array = np.asarray(data, dtype=float)
    except (TypeError, ValueError):
        fail("data", func, "a non-empty 1-D or 2-D array of finite reals", data, error=TypeError)
    if array.ndim not in (1, 2) or array.size == 0 or not np.all(np.isfinite(array)):
        fail("data", func, "a non-empty 1-D or 2-D array of finite reals", array)
    vector = array.ndim == 2
    return (array if vector else array[:, None]), vector


def _check_bounds(bounds: Any, d: int, func: str) -> tuple[np.ndarray, np.ndarray]:
    requirement = "a pair (lower, upper) of finite floats or length-d arrays with lower < upper"
    try:
        lower, upper = bounds
        lo = np.broadcast_to(np.asarray(lower, dtype=float), (d,)).copy()
        hi = np.broadcast_to(np.asarray(upper, dtype=float), (d,)).copy()
    except (TypeError, ValueError):
        fail("bounds", func, requirement, bounds)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        fail("bounds", func, requirement, bounds)
    return lo, hi


def _resolve_trim(statistic: str, trim: Any, n: int, func: str) -> int:
    if statistic == "median":
        return (n - 1) // 2
    if isinstance(trim, bool) or not isinstance(trim, numbers.Real):
        fail("trim", func, "an int count or a float fraction in [0, 0.5)", trim, error=TypeError)
    if isinstance(trim, numbers.Integral):
        t = check_int(trim, "trim", func, minimum=0, maximum=(n - 1) // 2)
    else:
        if not 0 <= trim < 0.5:
            fail("trim", func, "an int count or a float fraction in [0, 0.5)", trim)
        t = math.floor(float(trim) * n)
        t = min(t, (n - 1) // 2)
    return t


def _prepare(data: Any, statistic: Any, bounds: Any, trim: Any, func: str) -> _Prepared:
    statistic = check_choice(statistic, "statistic", func, STATISTICS)
    array, vector = _check_data(data, func)
    lower, upper = _check_bounds(bounds, array.shape[1], func)
    t = _resolve_trim(statistic, trim, array.shape[0], func)
    clipped = np.clip(array, lower, upper)
    return _Prepared(np.sort(clipped, axis=0), lower, upper, t, vector)


# --------------------------------------------------------------------------- sensitivity maths
def _padded(p: _Prepared) -> np.ndarray:
    """Order statistics padded with n+2 rows of lower/upper each side: x₍ᵢ₎ is row i + n + 1."""
    n, d = p.sorted.shape
    low = np.broadcast_to(p.lower, (n + 2, d))
    high = np.broadcast_to(p.upper, (n + 2, d))
    return np.concatenate([low, p.sorted, high])


def _a_k(padded: np.ndarray, n: int, t: int, k: int) -> np.ndarray:
    """A_j^(k) for every column j (1-based order statistics, offset n+2 rows of padding)."""
    s = np.arange(k + 2)
    hi = padded[n - t + s + n + 1]
    lo = padded[np.maximum(t - k + s + n + 1, 0)]
    return np.max(hi - lo, axis=0) / (n - 2 * t)


def _envelope(padded: np.ndarray, n: int, t: int, k: int) -> float:
    return float(np.linalg.norm(_a_k(padded, n, t, k)))


def _global_sensitivity(p: _Prepared, denominator: int) -> float:
    return float(np.linalg.norm(p.upper - p.lower)) / denominator


def _distance(p: _Prepared, beta: float) -> float:
    n, t = p.n, p.trim
    padded = _padded(p)
    top = 2 * t + 1  # A^(k) = global sensitivity for every k ≥ 2t + 1
    if _envelope(padded, n, t, top) <= beta:
        return math.inf
    lo, hi = 0, top  # invariant: U^(hi) > β; answer in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if _envelope(padded, n, t, mid) > beta:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)


def local_sensitivity_at_distance(
    data: Any, k: int, *, statistic: str = "trimmed_mean", bounds: Any, trim: Any = 0.1
) -> float:
    """Local sensitivity at distance k, A^(k), of the median or trimmed mean (replace-one).

    Exact in 1-D (Nissim, Raskhodnikova & Smith 2007 for the median; notes/ptr.md §7 for the
    trimmed mean); in ℝ^d the ℓ2 envelope ‖(A_j^(k))_j‖₂ of the coordinate-wise statistic.

    Parameters
    ----------
    data : array_like
        Shape (n,) or (n, d); clipped to ``bounds``.
    k : int
        Distance (number of replaced records), ≥ 0.
    statistic : {"median", "trimmed_mean"}
        The robust statistic.
    bounds : tuple
        (lower, upper), floats or length-d arrays.
    trim : int or float, default 0.1
        Records trimmed from each side (int) or fraction of n (float in [0, 0.5));
        ignored for the median.

    Returns
    -------
    float
        A^(k) (U^(k) in ℝ^d).

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> x = [10, 20, 30, 40, 45, 50, 55, 60, 70, 80, 90]
    >>> [local_sensitivity_at_distance(x, k, statistic="median", bounds=(0, 100))
    ...  for k in range(4)]
    [5.0, 10.0, 20.0, 30.0]
    """
    func = "local_sensitivity_at_distance"
    p = _prepare(data, statistic, bounds, trim, func)
    k = check_int(k, "k", func, minimum=0)
    k = min(k, 2 * p.trim + 1)
    return _envelope(_padded(p), p.n, p.trim, k)


def distance_to_instability(
    data: Any,
    *,
    statistic: str = "trimmed_mean",
    proposed_bound: float,
    bounds: Any,
    trim: Any = 0.1,
) -> float:
    """Distance to instability Δ = min{k : A^(k) > β} under replace-one (inf if β ≥ GS).

    Sensitivity 1, and Δ ≥ 1 implies local sensitivity ≤ β (module docstring). O(d·n log n).
    **Not private**: use it inside :func:`ptr_release`, never release it.

    Parameters
    ----------
    data : array_like
        Shape (n,) or (n, d); clipped to ``bounds``.
    statistic : {"median", "trimmed_mean"}
        The robust statistic.
    proposed_bound : float
        β in [0, inf).
    bounds : tuple
        (lower, upper), floats or length-d arrays.
    trim : int or float, default 0.1
        As in :func:`local_sensitivity_at_distance`.

    Returns
    -------
    float
        Δ as a float (an integer, or inf).

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> x = [10, 20, 30, 40, 45, 50, 55, 60, 70, 80, 90]
    >>> distance_to_instability(x, statistic="median", proposed_bound=12, bounds=(0, 100))
    2.0
    """
    func = "distance_to_instability"
    p = _prepare(data, statistic, bounds, trim, func)
    beta = _check_bound(proposed_bound, func)
    return _distance(p, beta)


def _check_bound(value: Any, func: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail("proposed_bound", func, "a float in [0, inf)", value, error=TypeError)
    if not (math.isfinite(value) and value >= 0):
        fail("proposed_bound", func, "a float in [0, inf)", value)
    return float(value)


# --------------------------------------------------------------------------- release
@dataclass(frozen=True)
class PTRRelease:
    """The output of one PTR release and the guarantee it was charged under.

    Attributes
    ----------
    value : float, numpy.ndarray or None
        The noisy robust statistic (pass), the noisy fallback (fail), or None (⊥ on fail).
    passed : bool
        Which branch ran; part of the private output (the analysis covers it).
    statistic : str
        "median" or "trimmed_mean".
    fallback : str or None
        "mean" or None (⊥).
    n : int
        Number of records (public under replace-one).
    trim : int
        Records trimmed from each side.
    threshold : float
        Test threshold B = b·ln(1/(2·δ0)).
    event : PTRDpEvent
        The mechanism, as charged.
    neighboring_relation : str
        "replace_one".
    seeded : bool
        True if the noise came from a seeded (reproducible, not secure) generator.
    ledger_entry : int or None
        Id of the ledger charge, if a ledger was given.
    """

    value: float | np.ndarray | None
    passed: bool
    statistic: str
    fallback: str | None
    n: int
    trim: int
    threshold: float
    event: PTRDpEvent
    neighboring_relation: str
    seeded: bool
    ledger_entry: int | None


@dataclass(frozen=True)
class _Plan:
    prepared: _Prepared
    statistic: str
    fallback: str | None
    event: PTRDpEvent
    threshold: float


def _plan(data: Any, statistic: Any, *, bounds: Any, trim: Any, proposed_bound: Any,
          test_scale: Any, delta0: Any, sigma_pass: Any, fallback: Any, sigma_fail: Any,
          func: str, test_noise: Any = "laplace") -> _Plan:
    p = _prepare(data, statistic, bounds, trim, func)
    beta = _check_bound(proposed_bound, func)
    b = check_positive_float(test_scale, "test_scale", func)
    if isinstance(delta0, bool) or not isinstance(delta0, numbers.Real):
        fail("delta0", func, "a float in (0, 0.5]", delta0, error=TypeError)
    if not MIN_DELTA0 <= delta0 <= 0.5:
        fail("delta0", func, f"a float in [{MIN_DELTA0:g}, 0.5] (the test's noise is drawn "
             "from 53-bit uniforms and cannot resolve smaller tail probabilities)", delta0)
    s2 = check_positive_float(sigma_pass, "sigma_pass", func)
    if fallback is not None:
        fallback = check_choice(fallback, "fallback", func, FALLBACKS)
        if sigma_fail is None:
            fail("sigma_fail", func, "a float in (0, inf) when fallback is 'mean'", sigma_fail)
        s1: float | None = check_positive_float(sigma_fail, "sigma_fail", func)
    else:
        if sigma_fail is not None:
            fail("sigma_fail", func, "None when fallback is None (⊥)", sigma_fail)
        s1 = None
    event = PTRDpEvent(
        test_scale=b,
        delta0=float(delta0),
        proposed_bound=beta,
        sigma_pass=s2,
        global_sensitivity_pass=_global_sensitivity(p, p.n - 2 * p.trim),
        sigma_fail=s1,
        global_sensitivity_fail=0.0 if s1 is None else _global_sensitivity(p, p.n),
        test_noise=check_choice(test_noise, "test_noise", func, TEST_NOISES),
    )
    threshold = ptr_threshold(event)
    return _Plan(p, check_choice(statistic, "statistic", func, STATISTICS), fallback, event,
                 threshold)


def _pass_sensitivity(event: PTRDpEvent) -> float:
    """S for the pass branch's gaussian_release: min(β, GS2), or GS2 when β = 0.

    With β = 0 a safe neighbour has exactly the same f2 (so the same rounded centre and no
    divergence at all), and S = GS2 covers the unsafe case; gaussian_release needs S > 0.
    """
    sens = min(event.proposed_bound, event.global_sensitivity_pass)
    if sens > 0:
        return sens
    return event.global_sensitivity_pass if event.global_sensitivity_pass > 0 else 1.0


def _run(plan: _Plan, source: NoiseSource, ledger_entry: int | None) -> PTRRelease:
    p, event = plan.prepared, plan.event
    draw = sample_gaussian if event.test_noise == "gaussian" else sample_laplace
    noisy_distance = _distance(p, event.proposed_bound) + float(
        draw(event.test_scale, 1, source)[0]  # only the pass bit leaves
    )
    passed = bool(noisy_distance > plan.threshold)
    d = p.sorted.shape[1]
    # The values leave through gaussian_release (exact discrete Gaussian noise on a grid
    # 2^-30·σ fine): its RDP is the continuous Gaussian's that ptr_rdp assumes, for changes up
    # to the stated sensitivity and beyond (pass: min(β, GS2) covers both the safe and the
    # unsafe case), and it has no floating-point noise to leak through low-order bits.
    if passed:
        centre = p.sorted[p.trim : p.n - p.trim].mean(axis=0)
        value: Any = gaussian_release(centre, event.sigma_pass, _pass_sensitivity(event),
                                      source)
    elif plan.fallback == "mean":
        value = gaussian_release(p.sorted.mean(axis=0), event.sigma_fail,
                                 event.global_sensitivity_fail, source)
    else:
        value = None
    if value is not None and not p.vector:
        value = float(value[0])
    return PTRRelease(
        value=value,
        passed=passed,
        statistic=plan.statistic,
        fallback=plan.fallback,
        n=p.n,
        trim=p.trim,
        threshold=plan.threshold,
        event=event,
        neighboring_relation=NEIGHBORING_RELATION,
        seeded=source.seeded,
        ledger_entry=ledger_entry,
    )


def _charged_run(plan: _Plan, source: NoiseSource, ledger: Any, dataset: Any, purpose: Any,
                 scope: Any) -> PTRRelease:
    if ledger is None:
        return _run(plan, source, None)
    details = {
        "mechanism": "propose-test-release",
        "statistic": plan.statistic,
        "fallback": plan.fallback,
        "n": plan.prepared.n,
        "trim": plan.prepared.trim,
        "bounds": [plan.prepared.lower.tolist(), plan.prepared.upper.tolist()],
        "threshold": plan.threshold,
    }
    sensitivity = plan.event.proposed_bound if plan.event.proposed_bound > 0 else (
        plan.event.global_sensitivity_pass
    )
    with ledger.charge(
        dataset,
        plan.event,
        sensitivity=sensitivity,
        sampling="none",
        seeded=source.seeded,
        neighboring_relation=NEIGHBORING_RELATION,
        purpose=purpose,
        scope=scope,
        details=details,
    ) as entry:
        release = _run(plan, source, int(entry.id))
    return release


def _refuse_if_over(ledger: Any, dataset: str, event: Any, *, relation: str,
                    scope: Any = None) -> None:
    """Dry run of :meth:`accountants.ledger.Ledger.charge`'s cap check; writes nothing.

    Used before a batch of charges (one per group or participant, or two per round) so that
    a charge that will be refused refuses the whole batch before any charge is committed
    (each charge is committed on entering, and a refused later one would leave earlier ones
    spent with nothing returned). Same accountant, δ and neighbouring relation as the
    ledger, with its parallel composition: a scope's part sees every unscoped charge plus
    its own. Only the part the new charge touches is checked (other parts are unchanged); a
    concurrent charge by another process can still make the real charge refuse.

    Raises
    ------
    accountants.ledger.BudgetExceededError
        If the charge would exceed the dataset's cap.
    """
    import json

    from accountants.accountant import make_accountant, parse_neighboring_relation
    from accountants.ledger import BudgetExceededError

    budget = ledger.budget(dataset)
    history = ledger.history(dataset)
    rel = parse_neighboring_relation(history[0].neighboring_relation if history else relation)

    def eps(events: list) -> float:
        if not events:
            return 0.0
        acc = make_accountant(budget.accountant, neighboring_relation=rel)
        for e in events:
            acc.compose(e)
        return float(acc.get_epsilon(budget.delta))

    key = None if scope is None else json.dumps(scope)
    base = [h.event for h in history if h.scope is None]
    parts: dict[str, list] = {}
    for h in history:
        if h.scope is not None:
            parts.setdefault(json.dumps(h.scope), []).append(h.event)
    if key is None:
        before = [base] + [base + p for p in parts.values()]
        after = [base + [event]] + [base + [event] + p for p in parts.values()]
    else:
        before = [base + parts.get(key, [])]
        after = [base + parts.get(key, []) + [event]]
    total = max(eps(x) for x in after)
    if total > budget.epsilon:
        spent = max(eps(x) for x in before)
        raise BudgetExceededError(dataset, spent=spent, asked=eps([event]), total=total,
                                  remaining=max(budget.epsilon - spent, 0.0),
                                  cap=budget.epsilon, delta=budget.delta,
                                  accountant=budget.accountant)


def _check_ledger(ledger: Any, dataset: Any, purpose: Any, func: str) -> None:
    if ledger is None:
        if dataset is not None:  # the caller expects a charge that would never happen
            fail("dataset", func, "None when no ledger is given (nothing would be charged)",
                 dataset)
        return
    if not callable(getattr(ledger, "charge", None)):
        fail("ledger", func, "an accountants.ledger.Ledger or None", ledger, error=TypeError)
    if not isinstance(dataset, str) or not dataset:
        fail("dataset", func, "the ledger's dataset name (a non-empty str) when a ledger is given",
             dataset, error=TypeError if dataset is not None else ValueError)
    if purpose is not None and not isinstance(purpose, str):
        fail("purpose", func, "a str or None", purpose, error=TypeError)


def ptr_release(
    data: Any,
    statistic: str,
    *,
    bounds: Any,
    proposed_bound: float,
    test_scale: float,
    delta0: float,
    sigma_pass: float,
    fallback: str | None = "mean",
    sigma_fail: float | None = None,
    trim: Any = 0.1,
    rng: Any = None,
    ledger: Any = None,
    dataset: str | None = None,
    purpose: str | None = None,
    test_noise: str = "laplace",
) -> PTRRelease:
    """Release a median or trimmed mean by Propose-Test-Release (replace-one DP).

    Test ``Δ + Lap(b) > B`` with ``B = b·ln(1/(2·δ0))``; on pass release the statistic plus
    N(0, σ_pass² I), on fail the clipped mean plus N(0, σ_fail² I) (``fallback="mean"``) or ⊥
    (``fallback=None``). The guarantee is the RDP curve of
    :func:`accountants.ptr.ptr_rdp` for the returned ``event`` (Wang et al. 2022,
    Theorem 4.3); with a ledger the event is charged (replace-one relation, module
    docstring) before anything is computed from the data, and the release is returned only
    after the charge committed. Noise comes from :mod:`accountants.noise` (OS CSPRNG unless
    ``rng`` is given): the released value through :func:`accountants.noise.gaussian_release`
    (exact discrete Gaussian noise on a grid 2^-30·σ fine, with the continuous Gaussian's
    RDP), the test through a floating-point Laplace draw of which only the pass bit is used.

    Parameters
    ----------
    data : array_like
        Shape (n,) (scalar statistic) or (n, d) (coordinate-wise statistic, ℓ2 envelope).
    statistic : {"median", "trimmed_mean"}
        The robust statistic f2.
    bounds : tuple
        Declared range (lower, upper): floats or length-d arrays; data are clipped to it.
    proposed_bound : float
        β, the proposed ℓ2 local-sensitivity bound, in [0, inf).
    test_scale : float
        Scale b of the test noise, in (0, inf).
    delta0 : float
        Probability that a dataset at distance 0 passes, in (0, 0.5].
    sigma_pass : float
        Gaussian standard deviation on pass (calibrate to β), in (0, inf).
    fallback : {"mean"} or None, default "mean"
        Released on fail: the clipped mean (sensitivity ‖upper − lower‖₂/n) or ⊥ (None).
    sigma_fail : float, optional
        Gaussian standard deviation of the fallback; required iff ``fallback="mean"``.
    trim : int or float, default 0.1
        Records trimmed each side (int) or fraction of n (float in [0, 0.5)); the median
        ignores it.
    rng : None, int or numpy.random.Generator
        None: OS CSPRNG (secure). A seed or generator makes the release reproducible and marks
        it ``seeded`` (not secure).
    ledger : accountants.ledger.Ledger, optional
        Ledger to charge before releasing.
    dataset : str, optional
        Dataset name in the ledger; required with ``ledger``.
    purpose : str, optional
        Recorded with the charge.
    test_noise : {"laplace", "gaussian"}, default "laplace"
        Test noise: ``Δ + Lap(b) > b·ln(1/(2δ0))`` (Wang et al.'s test) or
        ``Δ + N(0, b²) > b·Φ̄⁻¹(δ0)``, which passes at about a third of the distance for small
        δ0 (accounted with the Gaussian's RDP α/(2b²); see :class:`accountants.events.PTRDpEvent`).

    Returns
    -------
    PTRRelease
        The value, the branch, and the charged event.

    Raises
    ------
    ValueError, TypeError
        On invalid parameters (nothing is charged).
    accountants.ledger.BudgetExceededError
        If the charge would exceed the dataset's budget (nothing is charged or released).

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(50, 5, size=2001)
    >>> r = ptr_release(x, "median", bounds=(0, 100), proposed_bound=0.5, test_scale=2.0,
    ...                 delta0=1e-6, sigma_pass=1.0, sigma_fail=10.0, rng=1)
    >>> r.passed, r.seeded, abs(r.value - 50) < 5
    (True, True, True)
    """
    func = "ptr_release"
    plan = _plan(data, statistic, bounds=bounds, trim=trim, proposed_bound=proposed_bound,
                 test_scale=test_scale, delta0=delta0, sigma_pass=sigma_pass,
                 fallback=fallback, sigma_fail=sigma_fail, func=func, test_noise=test_noise)
    _check_ledger(ledger, dataset, purpose, func)
    source = make_noise_source(rng)
    return _charged_run(plan, source, ledger, dataset, purpose, None)


# --------------------------------------------------------------------------- value summaries
@dataclass(frozen=True)
class ValueSummary:
    """Per-group PTR releases of a robust summary of data values.

    Attributes
    ----------
    groups : tuple
        Group ids, in sorted order.
    releases : dict
        Group id → :class:`PTRRelease`.
    statistic : str
        "median" or "trimmed_mean".
    """

    groups: tuple
    releases: dict
    statistic: str

    def values(self) -> dict:
        """Group id → released value (None where the fallback was ⊥)."""
        return {g: self.releases[g].value for g in self.groups}


def _scope(group: Any) -> str | int:
    if isinstance(group, (numbers.Integral, np.integer)) and not isinstance(group, bool):
        return int(group)
    return str(group)


def private_value_summary(
    values: Any,
    groups: Any,
    *,
    statistic: str = "trimmed_mean",
    bounds: Any,
    proposed_bound: float,
    test_scale: float,
    delta0: float,
    sigma_pass: float,
    fallback: str | None = "mean",
    sigma_fail: float | None = None,
    trim: Any = 0.1,
    rng: Any = None,
    ledger: Any = None,
    dataset: str | None = None,
    purpose: str | None = None,
    test_noise: str = "laplace",
) -> ValueSummary:
    """A PTR release of the median or trimmed mean of each group's data values.

    E.g. "the median value of data source X". Each value is a record; groups are disjoint, so
    the releases compose in parallel: each is charged with ``scope=`` its group id and a
    record's loss is that of its own group's release. Neighbouring relation: replace one
    value, keeping its group (group labels and sizes are public). This protects the *values
    as records*; if one training record influences many values (as in KNN-based valuation),
    the guarantee for that training record is weaker and must be derived separately.

    Parameters
    ----------
    values : array_like
        Shape (N,) data values.
    groups : array_like
        Shape (N,) group id of each value (ints or strings).
    statistic : {"median", "trimmed_mean"}, default "trimmed_mean"
        The robust summary.
    bounds, proposed_bound, test_scale, delta0, sigma_pass, fallback, sigma_fail, trim, rng, \
ledger, dataset, purpose, test_noise
        As in :func:`ptr_release`, shared by all groups (trim fractions apply per group).

    Returns
    -------
    ValueSummary
        One release per group.

    Raises
    ------
    ValueError, TypeError
        On invalid parameters (nothing is charged).
    accountants.ledger.BudgetExceededError
        If a group's charge would exceed the budget: checked for every group before any is
        charged, so nothing is spent (barring a concurrent charge by another process).

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> v = np.concatenate([rng.normal(0.2, 0.05, 3000), rng.normal(-0.1, 0.05, 3000)])
    >>> g = np.repeat(["a", "b"], 3000)
    >>> s = private_value_summary(v, g, bounds=(-1, 1), proposed_bound=0.002, test_scale=1.0,
    ...                           delta0=1e-6, sigma_pass=0.004, sigma_fail=0.01, rng=0)
    >>> {k: round(x, 1) for k, x in s.values().items()}
    {'a': 0.2, 'b': -0.1}
    """
    func = "private_value_summary"
    try:
        vals = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        fail("values", func, "a non-empty 1-D array of finite reals", values, error=TypeError)
    if vals.ndim != 1 or vals.size == 0 or not np.all(np.isfinite(vals)):
        fail("values", func, "a non-empty 1-D array of finite reals", vals)
    labels = np.asarray(groups)
    if labels.shape != vals.shape:
        fail("groups", func, f"an array of shape {vals.shape} (one group per value)", labels)
    if labels.dtype.kind not in "iubUSO":
        fail("groups", func, "an array of int or str group ids", labels, error=TypeError)
    _check_ledger(ledger, dataset, purpose, func)
    ids = np.unique(labels)
    plans = {}
    for g in ids:
        plans[g] = _plan(vals[labels == g], statistic, bounds=bounds, trim=trim,
                         proposed_bound=proposed_bound, test_scale=test_scale, delta0=delta0,
                         sigma_pass=sigma_pass, fallback=fallback, sigma_fail=sigma_fail,
                         func=func, test_noise=test_noise)
    if ledger is not None and len(ids) > 1:
        # Refuse the whole summary before any group is charged (module helper's docstring).
        for g in ids:
            key = g.item() if hasattr(g, "item") else g
            _refuse_if_over(ledger, dataset, plans[g].event, relation=NEIGHBORING_RELATION,
                            scope=_scope(key))
    source = make_noise_source(rng)
    releases = {}
    for g in ids:
        key = g.item() if hasattr(g, "item") else g
        releases[key] = _charged_run(plans[g], source, ledger, dataset, purpose, _scope(key))
    logger.info("private_value_summary: %d groups released", len(releases))
    return ValueSummary(tuple(releases), releases, statistic)
