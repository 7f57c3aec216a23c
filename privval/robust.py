"""Private and robust training: SGD whose aggregate is released by Propose-Test-Release.

The application of Wang, Mahloujifar, Wang, Jia & Mittal 2022 ("Rényi differential privacy of
propose-test-release and applications to private and robust machine learning",
arXiv 2209.07716, §6; DESIGN.md §5, notes/ptr.md §6): each step of :class:`PTRSGD`

1. draws a Poisson batch T (every training example independently with probability q = m/N,
   m the public *expected* batch size), from the OS CSPRNG unless seeded;
2. computes per-example gradients with Opacus' ``GradSampleModule`` and clips each to ℓ2 norm
   C (:math:`x_i`, rows of an (n, d) matrix, n = |T|);
3. computes the distance to instability Δ(T) of the robust aggregate (below) for the proposed
   bound β, tests ``Δ + Lap(b) > B = b·ln(1/(2·δ0))`` (or ``Δ + N(0, b²) > b·Φ̄⁻¹(δ0)``
   with ``test_noise="gaussian"``);
4. pass: releases f2(T) + N(0, (s·β)² I); fail: f1(T) + N(0, (s·C/m)² I) (both through
   :func:`accountants.noise.gaussian_release`: exact discrete Gaussian noise on a grid
   2^-30·σ fine, with the continuous Gaussian's RDP); updates θ ← θ − lr·(release);
5. composes ``PoissonSampledDpEvent(q, PTRDpEvent(...))`` into an RDP accountant (and, with a
   ledger, charges it *before* the batch is drawn or anything is computed from the data).

**Neighbouring relation: add or remove one training example** (the relation of DP-SGD and of
Opacus' accountants). Poisson sampling makes a neighbouring pair of training sets produce
batches T and T ∪ {z}; the subsampled PTR bound of :func:`accountants.ptr.ptr_rdp` needs Δ,
β and both global sensitivities stated for adding or removing one record of the *batch*,
which is what this module does. The batch size n is never released and never used as a
normaliser: as in DP-SGD (Abadi et al. 2016; Opacus' ``expected_batch_size``), both
aggregates divide by the public m.

**Aggregates** (per coordinate j; x₍ᵢ₎ⱼ the i-th smallest entry of column j, t a public trim):

* fallback f1(T) = (1/m)·Σᵢ xᵢ (the DP-SGD mean): global sensitivity GS1 = C/m;
* robust f2(T) = (1/m)·Σ_{i=t+1}^{n−t} x₍ᵢ₎ⱼ, the coordinate-wise *trimmed sum* (0 when
  n ≤ 2t); t = 0 gives f1 exactly.

*Add/remove identity* (derived here): adding z to a batch x of size n ≥ 2t changes the
trimmed sum of column j by exactly clamp(zⱼ, x₍ₜ₎ⱼ, x₍ₙ₋ₜ₊₁₎ⱼ) (and by 0 when n < 2t), with
x₍₀₎ = −∞, x₍ₙ₊₁₎ = +∞ for t = 0. Writing eⱼ = dist(0, [x₍ₜ₎ⱼ, x₍ₙ₋ₜ₊₁₎ⱼ]), the change is at
most max(|zⱼ|, eⱼ) in absolute value, and eⱼ > 0 forces n − t + 1 rows with |xᵢⱼ| ≥ eⱼ, so
Σⱼ eⱼ² ≤ Σᵢ‖xᵢ‖²/(n − t + 1) ≤ C²·n/(n − t + 1) ≤ 2t·C²/(t + 1) (n ≥ 2t). Hence

    GS2 = (C/m)·√(1 + 2t/(t + 1))        (C/m for t = 0; < √3·C/m),

independent of the dimension d — clipping in ℓ2, not in a box, is what keeps PTR's mixture
term bounded (notes/ptr.md §3, "bounded GS2 is required").

**Distance to instability via an ℓ2 envelope** (notes/ptr.md §1 recipe). Pad each sorted
column with x₍ᵢ₎ = −C for i ≤ 0 and +C for i ≥ n + 1 (every |xᵢⱼ| ≤ C). For k ≥ 0 let

* Mⱼ^(k) = max{|x₍ᵢ₎ⱼ| : |i − t| ≤ k or |i − (n−t+1)| ≤ k},
* eⱼ^(k) = max(x₍ₜ₊ₖ₎ⱼ, −x₍ₙ₋ₜ₊₁₋ₖ₎ⱼ, 0),
* U^(k) = min(‖M^(k)‖₂, √(C² + ‖e^(k+1)‖₂²), m·GS2) / m.

U^(0) bounds the local sensitivity (every neighbour's change lies coordinate-wise in
[x₍ₜ₎ⱼ, x₍ₙ₋ₜ₊₁₎ⱼ]; adding z changes coordinate j by at most max(|zⱼ|, eⱼ^(0)), removing z
by at most max(|zⱼ|, eⱼ^(1)), because the smaller batch's trimming interval contains
[x₍ₜ₊₁₎ⱼ, x₍ₙ₋ₜ₎ⱼ]); U^(k) is nondecreasing in k; and for
neighbours U^(k)(x′) ≤ U^(k+1)(x), because adding a record moves every order statistic down
by at most one index (x′₍ᵢ₎ ∈ [x₍ᵢ₋₁₎, x₍ᵢ₎]) and removing one moves it up by at most one
(x′₍ᵢ₎ ∈ [x₍ᵢ₎, x₍ᵢ₊₁₎]), so every window of x′ at radius k lies in x's window at radius k+1.
Therefore Δ(x) = min{k : U^(k)(x) > β} (∞ if none) has sensitivity 1 under add/remove and
Δ ≥ 1 ⇒ LS ≤ β, the two properties PTR needs. β ≥ GS2 gives Δ ≡ ∞ (always pass). U is
constant for k ≥ n + 1, so Δ is found by binary search over k ∈ [0, n + 1] in
O(d·n log n) time and O(n·d) memory.

torch and Opacus are imported lazily (extra ``privval[torch]``); the maths functions
(:func:`robust_aggregate`, :func:`robust_local_sensitivity_envelope`,
:func:`robust_distance_to_instability`, :func:`trimmed_sum_global_sensitivity`) need only
numpy.
"""

from __future__ import annotations

import logging
import math
import numbers
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from accountants.accountant import make_accountant
from accountants.events import (
    DpEvent,
    GaussianDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SelfComposedDpEvent,
)
from accountants.noise import (
    NoiseSource,
    gaussian_release,
    make_noise_source,
    sample_gaussian,
    sample_laplace,
)
from accountants.ptr import ptr_threshold
from accountants.rdp import RdpAccountant
from privval._validation import check_choice, check_int, check_positive_float, fail
from privval.ptr import MIN_DELTA0

__all__ = [
    "DPSGD",
    "PTRSGD",
    "StepResult",
    "TrainingGuarantee",
    "robust_aggregate",
    "robust_distance_to_instability",
    "robust_local_sensitivity_envelope",
    "trimmed_sum_global_sensitivity",
]

logger = logging.getLogger(__name__)

NEIGHBORING_RELATION = "add_or_remove_one"
_EXTRA_MESSAGE = (
    "privval.robust needs torch and opacus: install them with `pip install privval[torch]`."
)


def _require_torch() -> tuple[Any, Any]:
    """Import torch and Opacus' GradSampleModule, or fail naming the extra."""
    try:
        import torch
        from opacus import GradSampleModule
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(f"{_EXTRA_MESSAGE} ({err})") from err
    return torch, GradSampleModule


# --------------------------------------------------------------------------- validation
def _check_grads(grads: Any, clip_norm: float, func: str) -> np.ndarray:
    """(n, d) float64 rows projected onto the ℓ2 ball of radius C (n = 0 allowed)."""
    try:
        array = np.asarray(grads, dtype=np.float64)
    except (TypeError, ValueError):
        fail("grads", func, "a 2-D array (n, d) of finite reals", grads, error=TypeError)
    if array.ndim != 2 or array.shape[1] == 0 or not np.all(np.isfinite(array)):
        fail("grads", func, "a 2-D array (n, d), d ≥ 1, of finite reals", array)
    return _clip_rows(array, clip_norm)


def _clip_rows(array: np.ndarray, clip_norm: float) -> np.ndarray:
    norms = np.linalg.norm(array, axis=1)
    scale = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))
    return array * scale[:, None]


def _check_trim(trim: Any, m: int, func: str) -> int:
    """A public trim count: an int t ≥ 0, or a fraction in [0, 0.5) of the expected size m."""
    requirement = "an int in [0, inf) or a float fraction in [0, 0.5) of expected_batch_size"
    if isinstance(trim, bool) or not isinstance(trim, numbers.Real):
        fail("trim", func, requirement, trim, error=TypeError)
    if isinstance(trim, numbers.Integral):
        return check_int(trim, "trim", func, minimum=0)
    if not 0 <= trim < 0.5:
        fail("trim", func, requirement, trim)
    return math.floor(float(trim) * m)


def _check_bound(value: Any, name: str, func: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, func, "a float in [0, inf)", value, error=TypeError)
    if not (math.isfinite(value) and value >= 0):
        fail(name, func, "a float in [0, inf)", value)
    return float(value)


def _check_delta0(value: Any, func: str) -> float:
    requirement = (f"a float in [{MIN_DELTA0:g}, 0.5] (the test's noise is drawn from 53-bit "
                   "uniforms and cannot resolve smaller tail probabilities)")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail("delta0", func, requirement, value, error=TypeError)
    if not MIN_DELTA0 <= value <= 0.5:
        fail("delta0", func, requirement, value)
    return float(value)


# --------------------------------------------------------------------------- maths (numpy)
def trimmed_sum_global_sensitivity(clip_norm: float, trim: int, expected_batch_size: int) -> float:
    """ℓ2 global sensitivity GS2 = (C/m)·√(1 + 2t/(t+1)) of the normalised trimmed sum.

    Under add/remove of one record of the batch, rows clipped to ℓ2 norm C (module docstring).

    Parameters
    ----------
    clip_norm : float
        C in (0, inf).
    trim : int
        t ≥ 0 records trimmed from each side of every coordinate.
    expected_batch_size : int
        The public normaliser m ≥ 1.

    Returns
    -------
    float
        GS2 (equal to C/m, the DP-SGD mean's, for t = 0).

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> trimmed_sum_global_sensitivity(1.0, 0, 10)
    0.1
    >>> round(trimmed_sum_global_sensitivity(1.0, 1, 10), 6)  # √2/10
    0.141421
    """
    func = "trimmed_sum_global_sensitivity"
    c = check_positive_float(clip_norm, "clip_norm", func)
    t = check_int(trim, "trim", func, minimum=0)
    m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1)
    return _gs2(c, t, m)


def _gs2(c: float, t: int, m: int) -> float:
    return c * math.sqrt(1.0 + 2.0 * t / (t + 1.0)) / m


def _trimmed_sum(sorted_grads: np.ndarray, t: int, m: int) -> np.ndarray:
    n = sorted_grads.shape[0]
    if n <= 2 * t:
        return np.zeros(sorted_grads.shape[1])
    return sorted_grads[t : n - t].sum(axis=0) / m


def robust_aggregate(grads: Any, *, clip_norm: float, trim: Any, expected_batch_size: int) -> np.ndarray:
    """Coordinate-wise trimmed sum of clipped rows over the public size m (f2, not private).

    Parameters
    ----------
    grads : array_like
        (n, d) per-example gradients; rows are projected onto the ℓ2 ball of radius C.
    clip_norm : float
        C in (0, inf).
    trim : int or float
        t records trimmed from each side per coordinate, or a fraction in [0, 0.5) of m.
    expected_batch_size : int
        m ≥ 1.

    Returns
    -------
    numpy.ndarray
        Shape (d,): (1/m)·Σ_{i=t+1}^{n−t} x₍ᵢ₎ⱼ (zeros when n ≤ 2t).

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> robust_aggregate([[0.1], [0.2], [5.0]], clip_norm=1.0, trim=1, expected_batch_size=2)
    array([0.1])
    """
    func = "robust_aggregate"
    c = check_positive_float(clip_norm, "clip_norm", func)
    m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1)
    t = _check_trim(trim, m, func)
    x = np.sort(_check_grads(grads, c, func), axis=0)
    return _trimmed_sum(x, t, m)


def _order_stat(sorted_grads: np.ndarray, i: np.ndarray | int, c: float) -> np.ndarray:
    """x₍ᵢ₎ (1-based, rows) with the padding −C for i ≤ 0 and +C for i ≥ n + 1."""
    n, d = sorted_grads.shape
    idx = np.atleast_1d(np.asarray(i))
    out = np.empty((idx.size, d))
    low, high, mid = idx <= 0, idx >= n + 1, (idx >= 1) & (idx <= n)
    out[low] = -c
    out[high] = c
    out[mid] = sorted_grads[idx[mid] - 1]
    return out


def _envelope(sorted_grads: np.ndarray, k: int, c: float, t: int, m: int) -> float:
    """U^(k) of the module docstring for sorted, clipped rows, in O(d).

    A sorted column's absolute values decrease then increase, so the maximum of |x₍ᵢ₎ⱼ| over
    a window of indices is attained at one of its two ends.
    """
    n = sorted_grads.shape[0]
    hi_centre = n - t + 1
    ends = _order_stat(sorted_grads, np.array([t - k, t + k, hi_centre - k, hi_centre + k,
                                               t + k + 1, hi_centre - k - 1]), c)
    big_m = np.max(np.abs(ends[:4]), axis=0)
    # e^(k+1), not e^(k): removing a record z leaves a batch whose trimming interval
    # [x''_(t), x''_(n-t)] contains only [x_(t+1), x_(n-t)], so the removal change
    # clamp(z_j, x''_(t), x''_(n-t)) is bounded by max(|z_j|, e_j^(1)) (e^(0) bounds only the
    # add direction; with e^(0) a sparse batch had LS 1.15·U^(0)).
    e = np.maximum(np.maximum(ends[4], -ends[5]), 0.0)
    value = min(float(np.linalg.norm(big_m)), math.sqrt(c * c + float(e @ e)), m * _gs2(c, t, m))
    return value / m


def _distance(sorted_grads: np.ndarray, beta: float, c: float, t: int, m: int) -> float:
    top = sorted_grads.shape[0] + 1  # U^(k) is constant for k ≥ n + 1
    if _envelope(sorted_grads, top, c, t, m) <= beta:
        return math.inf
    lo, hi = 0, top  # invariant: U^(hi) > β, answer in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if _envelope(sorted_grads, mid, c, t, m) > beta:
            hi = mid
        else:
            lo = mid + 1
    return float(lo)


def robust_local_sensitivity_envelope(
    grads: Any, k: int, *, clip_norm: float, trim: Any, expected_batch_size: int
) -> float:
    """U^(k): an upper envelope of the local sensitivity at distance k of the trimmed sum.

    Add/remove relation, ℓ2 norm (module docstring); U^(0) ≥ the local sensitivity.

    Parameters
    ----------
    grads : array_like
        (n, d) per-example gradients; rows are projected onto the ℓ2 ball of radius C.
    k : int
        Distance (records added or removed), ≥ 0.
    clip_norm, trim, expected_batch_size
        As in :func:`robust_aggregate`.

    Returns
    -------
    float
        U^(k), at most :func:`trimmed_sum_global_sensitivity`.

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> g = [[0.5], [0.5], [0.5], [0.5], [0.5]]
    >>> robust_local_sensitivity_envelope(g, 0, clip_norm=1.0, trim=1, expected_batch_size=5)
    0.1
    """
    func = "robust_local_sensitivity_envelope"
    c = check_positive_float(clip_norm, "clip_norm", func)
    m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1)
    t = _check_trim(trim, m, func)
    k = check_int(k, "k", func, minimum=0)
    x = np.sort(_check_grads(grads, c, func), axis=0)
    return _envelope(x, min(k, x.shape[0] + 1), c, t, m)


def robust_distance_to_instability(
    grads: Any, *, proposed_bound: float, clip_norm: float, trim: Any, expected_batch_size: int
) -> float:
    """Distance to instability Δ = min{k : U^(k) > β} of the trimmed sum (add/remove).

    Sensitivity 1 and Δ ≥ 1 ⇒ local sensitivity ≤ β (module docstring). **Not private**:
    it is the input of the PTR test, never release it.

    Parameters
    ----------
    grads : array_like
        (n, d) per-example gradients; rows are projected onto the ℓ2 ball of radius C.
    proposed_bound : float
        β in [0, inf), ℓ2 bound on the change of the normalised trimmed sum.
    clip_norm, trim, expected_batch_size
        As in :func:`robust_aggregate`.

    Returns
    -------
    float
        Δ, an integer as a float, or inf when β ≥ the envelope everywhere (e.g. β ≥ GS2).

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> g = [[0.0]] * 5 + [[0.5]] * 5
    >>> robust_distance_to_instability(g, proposed_bound=0.09, clip_norm=1.0, trim=2,
    ...                                expected_batch_size=10)
    2.0
    """
    func = "robust_distance_to_instability"
    beta = _check_bound(proposed_bound, "proposed_bound", func)
    c = check_positive_float(clip_norm, "clip_norm", func)
    m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1)
    t = _check_trim(trim, m, func)
    x = np.sort(_check_grads(grads, c, func), axis=0)
    return _distance(x, beta, c, t, m)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class StepResult:
    """What one private step released (besides the parameter update itself).

    Attributes
    ----------
    step : int
        1-based index of the step.
    passed : bool or None
        PTR branch (part of the private output, covered by the analysis); None for DP-SGD.
    ledger_entry : int or None
        Id of the step's ledger charge, if a ledger was given.
    """

    step: int
    passed: bool | None
    ledger_entry: int | None


@dataclass(frozen=True)
class TrainingGuarantee:
    """The privacy guarantee of a training run so far.

    Attributes
    ----------
    epsilon : float
        ε at ``delta`` (rounded up by the accountant; an estimate for "mc").
    delta : float
        δ.
    accountant : str
        Accountant name ("rdp" is a rigorous bound; "mc" an estimate, where supported).
    steps : int
        Steps composed.
    event : DpEvent
        The per-step event (Poisson-sampled PTR or Gaussian).
    neighboring_relation : str
        "add_or_remove_one" (one training example).
    seeded : bool
        True if the run's randomness was seeded (reproducible, not secure).
    """

    epsilon: float
    delta: float
    accountant: str
    steps: int
    event: DpEvent
    neighboring_relation: str
    seeded: bool


# --------------------------------------------------------------------------- training loops
def _check_common(model: Any, x: Any, y: Any, lr: Any, clip_norm: Any, expected_batch_size: Any,
                  func: str) -> tuple[Any, Any, Any, float, float, int]:
    torch, _ = _require_torch()
    if not isinstance(model, torch.nn.Module):
        fail("model", func, "a torch.nn.Module", model, error=TypeError)
    try:
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x)
        yt = torch.as_tensor(y if torch.is_tensor(y) else np.asarray(y))
    except (TypeError, ValueError):
        fail("x", func, "an array-like of features with one row per example", x, error=TypeError)
    if xt.ndim < 1 or xt.shape[0] == 0 or not bool(torch.isfinite(xt.float()).all()):
        fail("x", func, "a non-empty array of finite features, one row per example", xt)
    if yt.shape[:1] != xt.shape[:1]:
        fail("y", func, f"an array with {xt.shape[0]} targets (one per row of x)", yt)
    lr = check_positive_float(lr, "lr", func)
    c = check_positive_float(clip_norm, "clip_norm", func)
    m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1, maximum=int(xt.shape[0]))
    return xt, yt, model, lr, c, m


def _default_loss(outputs: Any, targets: Any) -> Any:
    torch, _ = _require_torch()
    return torch.nn.functional.cross_entropy(outputs, targets, reduction="none")


class _PoissonTrainer:
    """Shared machinery: Poisson batches from a NoiseSource, per-example clipped gradients."""

    _func = "_PoissonTrainer"

    def __init__(self, model: Any, x: Any, y: Any, *, lr: float, clip_norm: float,
                 expected_batch_size: int, loss_fn: Any, rng: Any, max_steps: int | None) -> None:
        torch, grad_sample_module = _require_torch()
        self._torch = torch
        self._x, self._y, self._model, self.lr, self.clip_norm, self.expected_batch_size = (
            _check_common(model, x, y, lr, clip_norm, expected_batch_size, self._func)
        )
        if loss_fn is not None and not callable(loss_fn):
            fail("loss_fn", self._func, "a callable (outputs, targets) -> per-example losses", loss_fn,
                 error=TypeError)
        self._loss_fn = _default_loss if loss_fn is None else loss_fn
        if max_steps is not None:
            max_steps = check_int(max_steps, "max_steps", self._func, minimum=1)
        self.max_steps = max_steps
        self._n_total = int(self._x.shape[0])
        self.sampling_rate = self.expected_batch_size / self._n_total
        self._source: NoiseSource = make_noise_source(rng)
        self._params = [p for p in self._model.parameters() if p.requires_grad]
        if not self._params:
            fail("model", self._func, "a module with trainable parameters", model)
        self._gsm = grad_sample_module(self._model, loss_reduction="sum")
        self.dimension = int(sum(p.numel() for p in self._params))
        self.steps = 0

    @property
    def seeded(self) -> bool:
        """True if batches and noise come from a seeded generator (not secure)."""
        return self._source.seeded

    def _check_budget(self) -> None:
        if self.max_steps is not None and self.steps >= self.max_steps:
            raise ValueError(
                f"{type(self).__name__} was calibrated for max_steps={self.max_steps} steps; "
                "another step would exceed the calibrated (ε, δ). Refusing (nothing spent)."
            )

    def _poisson_batch(self) -> np.ndarray:
        # Keep a row iff its 53-bit uniform k satisfies k < floor(q·2**53): the realised rate
        # floor(q·2**53)/2**53 is ≤ q (comparing k/2**53 < q kept ceil(q·2**53) values, a rate
        # just above the accounted q). A lower rate is at least as private.
        from fractions import Fraction

        bound = np.uint64(math.floor(Fraction(self.sampling_rate) * 2**53))
        return np.flatnonzero((self._source.words(self._n_total) >> np.uint64(11)) < bound)

    def _per_example_grads(self, idx: np.ndarray) -> np.ndarray:
        """(n, d) float64 per-example gradients, clipped to ℓ2 norm C."""
        torch = self._torch
        if idx.size == 0:
            return np.zeros((0, self.dimension))
        xb, yb = self._x[torch.as_tensor(idx)], self._y[torch.as_tensor(idx)]
        self._gsm.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # torch warns that the full backward hooks fire with no input requiring grad:
            # expected here (only parameters need gradients).
            warnings.filterwarnings("ignore", message="Full backward hook", category=UserWarning)
            losses = self._loss_fn(self._gsm(xb), yb)
            if losses.shape == (idx.size,):
                losses.sum().backward()
        if losses.shape != (idx.size,):
            raise ValueError(
                f"The 'loss_fn' parameter of {self._func} must return one loss per example "
                f"(reduction='none'), shape ({idx.size},). Got shape {tuple(losses.shape)} instead."
            )
        grads = torch.cat([p.grad_sample.reshape(idx.size, -1) for p in self._params], dim=1)
        for p in self._params:
            p.grad_sample = None
            p.grad = None
        return _clip_rows(grads.detach().double().numpy(), self.clip_norm)

    def _apply(self, update: np.ndarray) -> None:
        torch = self._torch
        offset = 0
        with torch.no_grad():
            for p in self._params:
                size = p.numel()
                chunk = torch.as_tensor(update[offset : offset + size], dtype=p.dtype).view_as(p)
                p.sub_(self.lr * chunk)
                offset += size

    def close(self) -> None:
        """Remove Opacus' hooks from the model (the trained parameters stay)."""
        self._gsm._close()

    def train(self, steps: int, *, progress: bool | None = None) -> list[StepResult]:
        """Run ``steps`` private steps (tqdm bar when ``progress`` or, by default, on a TTY).

        Raises
        ------
        ValueError
            If ``steps`` is not a positive int, or a step would pass ``max_steps``.
        accountants.ledger.BudgetExceededError
            If the ledger refuses a step (earlier steps stay charged and applied).
        """
        steps = check_int(steps, "steps", f"{type(self).__name__}.train", minimum=1)
        from tqdm.auto import tqdm

        show = sys.stderr.isatty() if progress is None else bool(progress)
        return [self.step() for _ in tqdm(range(steps), disable=not show, leave=False)]

    def step(self) -> StepResult:  # pragma: no cover - overridden
        raise NotImplementedError

    def _events(self) -> DpEvent:  # pragma: no cover - overridden
        raise NotImplementedError

    def _accountant_kwargs(self, name: str) -> dict[str, Any]:
        return {}

    def guarantee(self, delta: float, accountant: str = "rdp", *,
                  accountant_options: dict[str, Any] | None = None) -> TrainingGuarantee:
        """The run's (ε, δ) after the steps taken so far, replayed with any accountant.

        Parameters
        ----------
        delta : float
            δ in (0, 1).
        accountant : str, default "rdp"
            A registered accountant ("rdp": rigorous; "mc": Monte Carlo estimate, which
            supports the DP-SGD Gaussian but not PTR events; "pld").
        accountant_options : dict, optional
            Keyword arguments for :func:`accountants.accountant.make_accountant`, e.g.
            ``{"rng": 0}`` for a reproducible Monte Carlo estimate.

        Returns
        -------
        TrainingGuarantee

        Raises
        ------
        ValueError
            On a bad ``delta`` or name; ``accountants.UnsupportedEventError`` (a ValueError)
            if the accountant cannot handle the per-step event.
        """
        func = f"{type(self).__name__}.guarantee"
        if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < 1:
            fail("delta", func, "a float in (0, 1)", delta)
        if not isinstance(accountant, str):
            fail("accountant", func, "an accountant name (str)", accountant, error=TypeError)
        if accountant_options is not None and not isinstance(accountant_options, dict):
            fail("accountant_options", func, "a dict or None", accountant_options, error=TypeError)
        event = self._events()
        if self.steps == 0:
            eps = 0.0
        else:
            options = {**self._accountant_kwargs(accountant), **(accountant_options or {})}
            acc = make_accountant(accountant, **options)
            acc.compose(SelfComposedDpEvent(event, self.steps))
            eps = float(acc.get_epsilon(float(delta)))
        return TrainingGuarantee(eps, float(delta), accountant, self.steps, event,
                                 NEIGHBORING_RELATION, self.seeded)


class PTRSGD(_PoissonTrainer):
    """SGD whose per-step aggregate is a PTR release of a coordinate-wise trimmed sum.

    See the module docstring for the mechanism, its add/remove neighbouring relation, the
    aggregates and Δ. Each step is the event
    ``PoissonSampledDpEvent(q, PTRDpEvent(b, δ0, β, s·β, GS2, s·C/m, C/m))`` (Wang et al.
    2022, Algorithm 1 with their calibration σ_pass = s·β, σ_fail = s·GS1), accounted by
    :func:`accountants.ptr.ptr_rdp` through :class:`accountants.rdp.RdpAccountant`.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place (Opacus' hooks are added; :meth:`close` removes them).
    x, y : array_like or torch.Tensor
        Training features (N, ...) and targets (N,).
    lr : float
        Learning rate.
    clip_norm : float
        Per-example ℓ2 clipping norm C.
    expected_batch_size : int
        m in [1, N]; Poisson rate q = m/N; both aggregates divide by m.
    trim : int or float
        Public trim t per side and coordinate: an int, or a fraction in [0, 0.5) of m.
    noise_multiplier : float
        s: σ_pass = s·β, σ_fail = s·C/m.
    proposed_bound : float
        β in (0, inf), proposed ℓ2 local-sensitivity bound of the normalised trimmed sum.
        Meaningful values lie in [C/m, GS2) (below C/m the test can never pass; at or above
        GS2 it always passes). :meth:`calibrated` takes it as ``bound_ratio``·C/m.
    test_scale : float
        Scale b of the test noise.
    delta0 : float
        Pass probability of an unstable batch, in (0, 0.5].
    loss_fn : callable, optional
        ``(outputs, targets) -> losses`` of shape (n,) (reduction="none"); default
        cross-entropy.
    rng : None, int or numpy.random.Generator
        None: OS CSPRNG for batches and noise. A seed makes the run reproducible and
        ``seeded`` (not secure).
    ledger : accountants.ledger.Ledger, optional
        Each step is charged (add/remove relation) before its batch is drawn; use an
        ``accountant="rdp"`` budget (PTR events have no PLD).
    dataset : str, optional
        Ledger dataset name; required with ``ledger``.
    purpose : str, optional
        Recorded with each charge.
    max_steps : int, optional
        Refuse steps beyond this many (set by :meth:`calibrated`).
    orders : array_like, optional
        Rényi orders for the accountant (default: accountants.rdp's).
    test_noise : {"laplace", "gaussian"}, default "laplace"
        Test noise (see :func:`privval.ptr.ptr_release`); "gaussian" lowers the threshold B
        about threefold at small δ0.

    Attributes
    ----------
    event : PTRDpEvent
        The (un-sampled) per-step PTR release.
    threshold : float
        B = b·ln(1/(2·δ0)) (Laplace test) or b·Φ̄⁻¹(δ0) (Gaussian test).
    passes : int
        Steps that took the robust branch (a function of the private outputs).

    Example
    -------
    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> x = torch.randn(200, 4); y = (x[:, 0] > 0).long()
    >>> sgd = PTRSGD.calibrated(torch.nn.Linear(4, 2), x, y, epsilon=4.0, delta=1e-5, steps=5,
    ...                         lr=0.5, clip_norm=1.0, expected_batch_size=100, rng=0)
    >>> _ = sgd.train(5)
    >>> sgd.guarantee(1e-5).epsilon <= 4.0
    True
    """

    _func = "PTRSGD"

    def __init__(
        self,
        model: Any,
        x: Any,
        y: Any,
        *,
        lr: float,
        clip_norm: float,
        expected_batch_size: int,
        trim: Any = 0.1,
        noise_multiplier: float,
        proposed_bound: float,
        test_scale: float,
        delta0: float,
        loss_fn: Any = None,
        rng: Any = None,
        ledger: Any = None,
        dataset: str | None = None,
        purpose: str | None = None,
        max_steps: int | None = None,
        orders: Any = None,
        test_noise: str = "laplace",
    ) -> None:
        func = self._func
        s = check_positive_float(noise_multiplier, "noise_multiplier", func)
        beta = check_positive_float(proposed_bound, "proposed_bound", func)
        b = check_positive_float(test_scale, "test_scale", func)
        d0 = _check_delta0(delta0, func)
        if ledger is not None:
            if not callable(getattr(ledger, "charge", None)):
                fail("ledger", func, "an accountants.ledger.Ledger or None", ledger, error=TypeError)
            if not isinstance(dataset, str) or not dataset:
                fail("dataset", func, "the ledger's dataset name (a non-empty str) with a ledger",
                     dataset, error=TypeError if dataset is not None else ValueError)
        elif dataset is not None:  # the caller expects charges that would never happen
            fail("dataset", func, "None when no ledger is given (nothing would be charged)",
                 dataset)
        if purpose is not None and not isinstance(purpose, str):
            fail("purpose", func, "a str or None", purpose, error=TypeError)
        self._orders = RdpAccountant(orders=orders).orders  # validates the orders
        self._composed: tuple[int, RdpAccountant] | None = None
        super().__init__(model, x, y, lr=lr, clip_norm=clip_norm,
                         expected_batch_size=expected_batch_size, loss_fn=loss_fn, rng=rng,
                         max_steps=max_steps)
        m, c = self.expected_batch_size, self.clip_norm
        self.trim = _check_trim(trim, m, func)
        self.noise_multiplier = s
        self.proposed_bound = beta
        self.event = PTRDpEvent(
            test_scale=b,
            delta0=d0,
            proposed_bound=beta,
            sigma_pass=s * beta,
            global_sensitivity_pass=_gs2(c, self.trim, m),
            sigma_fail=s * c / m,
            global_sensitivity_fail=c / m,
            test_noise=check_choice(test_noise, "test_noise", func, ("laplace", "gaussian")),
        )
        self.threshold = ptr_threshold(self.event)
        self._ledger, self._dataset, self._purpose = ledger, dataset, purpose
        self.passes = 0

    @classmethod
    def calibrated(
        cls,
        model: Any,
        x: Any,
        y: Any,
        *,
        epsilon: float,
        delta: float,
        steps: int,
        lr: float,
        clip_norm: float,
        expected_batch_size: int,
        trim: Any = 0.1,
        bound_ratio: float = 1.5,
        test_scale: float | None = None,
        test_scale_ratio: float = 1.0,
        delta0: float | None = None,
        orders: Any = None,
        test_noise: str = "laplace",
        **kwargs: Any,
    ) -> PTRSGD:
        """A PTRSGD whose ``steps`` steps are (ε, δ)-DP (add/remove) by the RDP accountant.

        β = ``bound_ratio``·C/m; the noise multiplier s (and b = ``test_scale_ratio``·s
        unless ``test_scale`` is fixed) come from :func:`accountants.ptr.calibrate_ptr` with
        sampling rate m/N; δ0 defaults to δ/(10·steps). ``max_steps`` is set to ``steps``.
        Other keyword arguments go to the constructor.

        Raises
        ------
        ValueError, TypeError
            On invalid parameters, or if the target cannot be met.
        """
        from accountants.ptr import calibrate_ptr

        func = "PTRSGD.calibrated"
        steps = check_int(steps, "steps", func, minimum=1)
        c = check_positive_float(clip_norm, "clip_norm", func)
        ratio = check_positive_float(bound_ratio, "bound_ratio", func)
        n_total = len(x)
        m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1, maximum=n_total)
        t = _check_trim(trim, m, func)
        beta = ratio * c / m
        gs2 = _gs2(c, t, m)
        cal = calibrate_ptr(
            epsilon, delta, steps,
            proposed_bound=min(beta, gs2),
            global_sensitivity_pass=gs2,
            global_sensitivity_fail=c / m,
            delta0=delta0,
            test_scale=test_scale,
            test_scale_ratio=test_scale_ratio,
            sampling_rate=m / n_total,
            orders=orders,
            test_noise=test_noise,
        )
        logger.info("PTRSGD.calibrated: s=%.4g b=%.4g B=%.4g eps=%.4g", cal.noise_multiplier,
                    cal.test_scale, cal.threshold, cal.epsilon)
        return cls(model, x, y, lr=lr, clip_norm=c, expected_batch_size=m, trim=t,
                   noise_multiplier=cal.noise_multiplier, proposed_bound=min(beta, gs2),
                   test_scale=cal.test_scale, delta0=cal.delta0, max_steps=steps,
                   orders=orders, test_noise=test_noise, **kwargs)

    def _events(self) -> DpEvent:
        return PoissonSampledDpEvent(self.sampling_rate, self.event)

    def _accountant_kwargs(self, name: str) -> dict[str, Any]:
        return {"orders": self._orders} if name == "rdp" else {}

    def epsilon(self, delta: float) -> float:
        """ε at δ so far from the RDP accountant (rigorous, rounded up)."""
        return float(self.accountant.get_epsilon(delta))

    @property
    def accountant(self) -> RdpAccountant:
        """An RDP accountant holding every step charged so far (add/remove relation).

        Every step is the same event, so the accountant is built as one
        ``compose(event, count=steps)`` (RDP composition multiplies the curve by the count)
        instead of recomputing the subsampled PTR curve at each step; a step counts as
        composed from the moment it is charged, before its batch is drawn.
        """
        if self._composed is None or self._composed[0] != self.steps:
            acc = RdpAccountant(orders=self._orders, neighboring_relation=NEIGHBORING_RELATION)
            if self.steps:
                acc.compose(self._events(), self.steps)
            self._composed = (self.steps, acc)
        return self._composed[1]

    def step(self) -> StepResult:
        """One private step; charged (ledger, then the step count) before data is touched.

        Raises
        ------
        ValueError
            If ``max_steps`` would be exceeded (nothing spent).
        accountants.ledger.BudgetExceededError
            If the ledger refuses the charge (nothing spent, nothing computed).
        """
        self._check_budget()
        event = self._events()
        if self._ledger is None:
            return self._run(None)
        details = {
            "mechanism": "ptr-sgd",
            "step": self.steps + 1,
            "trim": self.trim,
            "clip_norm": self.clip_norm,
            "expected_batch_size": self.expected_batch_size,
            "threshold": self.threshold,
        }
        with self._ledger.charge(
            self._dataset,
            event,
            sensitivity=self.proposed_bound,
            sampling={"type": "poisson", "rate": self.sampling_rate},
            seeded=self.seeded,
            neighboring_relation=NEIGHBORING_RELATION,
            purpose=self._purpose,
            details=details,
        ) as entry:
            result = self._run(int(entry.id))
        return result

    def _run(self, ledger_entry: int | None) -> StepResult:
        self.steps += 1  # composed from here on (see :attr:`accountant`)
        grads = self._per_example_grads(self._poisson_batch())
        update, passed = self._release(grads)
        self._apply(update)
        self.passes += int(passed)
        return StepResult(self.steps, passed, ledger_entry)

    def _release(self, grads: np.ndarray) -> tuple[np.ndarray, bool]:
        """The PTR release on clipped per-example gradients of one batch: (update, passed)."""
        e, m, t, c = self.event, self.expected_batch_size, self.trim, self.clip_norm
        x = np.sort(grads, axis=0)
        distance = _distance(x, e.proposed_bound, c, t, m)
        draw = sample_gaussian if e.test_noise == "gaussian" else sample_laplace
        noisy = distance + float(draw(e.test_scale, 1, self._source)[0])  # only the bit leaves
        passed = bool(noisy > self.threshold)
        # gaussian_release: exact discrete Gaussian noise on a 2^-30·σ grid with the
        # continuous Gaussian's RDP for changes up to the stated sensitivity and beyond
        # (pass: min(β, GS2) covers the safe and the unsafe case).
        if passed:
            centre, sigma = _trimmed_sum(x, t, m), e.sigma_pass
            sens = min(e.proposed_bound, e.global_sensitivity_pass)
        else:
            centre, sigma, sens = grads.sum(axis=0) / m, e.sigma_fail, e.global_sensitivity_fail
        return gaussian_release(centre, sigma, sens, self._source), passed


class DPSGD(_PoissonTrainer):
    """DP-SGD baseline (Abadi et al. 2016) with Opacus' ``DPOptimizer``, add/remove relation.

    Poisson batches at rate m/N, per-example clipping to C, N(0, (s·C)²) noise on the sum,
    division by the public m (Opacus ``expected_batch_size``). Each step is
    ``PoissonSampledDpEvent(m/N, GaussianDpEvent(s))``. Opacus clips and sums; the Gaussian
    noise is drawn from :mod:`accountants.noise` (the OS CSPRNG unless ``rng`` is given),
    not from Opacus' torch generator, which is not cryptographically secure.

    Parameters
    ----------
    model, x, y, lr, clip_norm, expected_batch_size, loss_fn, rng, max_steps
        As in :class:`PTRSGD`.
    noise_multiplier : float
        s in (0, inf).

    Example
    -------
    >>> import torch
    >>> x = torch.randn(200, 4); y = (x[:, 0] > 0).long()
    >>> sgd = DPSGD.calibrated(torch.nn.Linear(4, 2), x, y, epsilon=2.0, delta=1e-5, steps=5,
    ...                        lr=0.5, clip_norm=1.0, expected_batch_size=50, rng=0)
    >>> _ = sgd.train(5)
    >>> sgd.guarantee(1e-5).epsilon <= 2.0
    True
    """

    _func = "DPSGD"

    def __init__(self, model: Any, x: Any, y: Any, *, lr: float, clip_norm: float,
                 expected_batch_size: int, noise_multiplier: float, loss_fn: Any = None,
                 rng: Any = None, max_steps: int | None = None) -> None:
        s = check_positive_float(noise_multiplier, "noise_multiplier", self._func)
        super().__init__(model, x, y, lr=lr, clip_norm=clip_norm,
                         expected_batch_size=expected_batch_size, loss_fn=loss_fn, rng=rng,
                         max_steps=max_steps)
        from opacus.optimizers import DPOptimizer

        self.noise_multiplier = s
        self._optimizer = DPOptimizer(
            self._torch.optim.SGD(self._params, lr=self.lr),
            noise_multiplier=s,
            max_grad_norm=self.clip_norm,
            expected_batch_size=self.expected_batch_size,
            loss_reduction="mean",
        )
        # Opacus draws its noise from a torch generator (Mersenne Twister, not a CSPRNG):
        # replace that one step so the noise comes from this trainer's NoiseSource (the OS
        # CSPRNG unless seeded), like every other release in privval.
        self._optimizer.add_noise = self._add_noise

    def _add_noise(self) -> None:
        """Opacus' DPOptimizer.add_noise with N(0, (s·C)²) noise from the NoiseSource."""
        from opacus.optimizers.optimizer import (
            _check_processed_flag,
            _mark_as_processed,
        )

        torch, std = self._torch, self.noise_multiplier * self.clip_norm
        for p in self._optimizer.params:
            _check_processed_flag(p.summed_grad)
            ref = p.summed_grad
            noise = sample_gaussian(std, ref.numel(), self._source)
            p.grad = (ref + torch.as_tensor(noise, dtype=ref.dtype, device=ref.device)
                      .view_as(ref)).view_as(p)
            _mark_as_processed(p.summed_grad)

    @classmethod
    def calibrated(cls, model: Any, x: Any, y: Any, *, epsilon: float, delta: float, steps: int,
                   expected_batch_size: int, accountant: str = "rdp", **kwargs: Any) -> DPSGD:
        """A DPSGD whose ``steps`` steps are (ε, δ)-DP by ``accountant`` (default RDP).

        The noise multiplier is the smallest found by :func:`accountants.calibrate.calibrate`;
        ``max_steps`` is set to ``steps``.
        """
        from accountants.calibrate import calibrate

        func = "DPSGD.calibrated"
        steps = check_int(steps, "steps", func, minimum=1)
        n_total = len(x)
        m = check_int(expected_batch_size, "expected_batch_size", func, minimum=1, maximum=n_total)
        q = m / n_total
        s = calibrate(lambda s: SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(s)), steps),
                      epsilon, delta, accountant=accountant)
        return cls(model, x, y, expected_batch_size=m, noise_multiplier=s, max_steps=steps, **kwargs)

    def _events(self) -> DpEvent:
        return PoissonSampledDpEvent(self.sampling_rate, GaussianDpEvent(self.noise_multiplier))

    def epsilon(self, delta: float) -> float:
        """ε at δ so far by the RDP accountant."""
        return self.guarantee(delta).epsilon

    def step(self) -> StepResult:
        """One DP-SGD step.

        Raises
        ------
        ValueError
            If ``max_steps`` would be exceeded (nothing spent).
        """
        self._check_budget()
        self.steps += 1
        torch = self._torch
        idx = self._poisson_batch()
        self._optimizer.zero_grad(set_to_none=True)
        if idx.size == 0:
            for p in self._params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
        else:
            xb, yb = self._x[torch.as_tensor(idx)], self._y[torch.as_tensor(idx)]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Full backward hook", category=UserWarning)
                self._loss_fn(self._gsm(xb), yb).sum().backward()
        self._optimizer.step()
        return StepResult(self.steps, None, None)
