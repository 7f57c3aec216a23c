"""Monte Carlo privacy accountant: sampled privacy losses, estimates with standard errors.

For a dominating pair (P, Q) of a mechanism the privacy loss variable is
``L = ln(dP/dQ)(Y)`` with ``Y ~ P``, and ``δ(ε) = E_P[(1 - e^{ε-L})_+]``; composition adds
independent losses (DESIGN.md §6; Wang, Mahloujifar, Wu, Jia, Mittal, "A Randomized Approach
to Tight Privacy Accounting", NeurIPS 2023, arXiv 2304.07927). This module keeps ``m``
running sums of sampled per-step losses, one vector per direction of the add/remove-one
relation, and answers ``δ̂(ε)`` (a sample mean of values in [0, 1]) and ``ε̂(δ)`` (the exact
inverse of the piecewise empirical curve), each with a standard error.

**These are estimates, not bounds.** ``get_epsilon``/``get_delta`` of
:class:`MonteCarloAccountant` return point estimates that are below the true value about
half of the time. A rigorous claim needs the verifier of :mod:`accountants.evr`, which checks
an estimate on fresh samples and states the resulting (ε, τ·δ_b + p) guarantee.

Supported mechanisms (neighbouring relation: add or remove one record; the worse of the two
directions is reported, as dp-accounting's PLD accountant does):

* ``GaussianDpEvent(σ)`` -- ℓ2 sensitivity 1, noise N(0, σ²);
* ``LaplaceDpEvent(b)`` -- ℓ1 sensitivity 1, noise Lap(b);
* :class:`accountants.events.DiscreteGaussianDpEvent` -- integer sensitivity Δ on one coordinate;
* :class:`accountants.events.DiscreteLaplaceDpEvent` (and dp-accounting's, with scale
  ``1/noise_parameter``) -- integer sensitivity Δ on one coordinate;
* ``PoissonSampledDpEvent(q, ·)`` over any of the above (or over a composition of Gaussians,
  which is one Gaussian with ``σ = (Σ σ_i⁻²)^{-1/2}``);
* ``SelfComposedDpEvent``, ``ComposedDpEvent``, ``NoOpDpEvent``, ``NonPrivateDpEvent``.

Dominating pairs, with ``μ_s`` the noise distribution centred at ``s`` and
``r(x) = ln μ_Δ(x)/μ_0(x)``: remove direction ``P = (1-q)μ_0 + qμ_Δ``, ``Q = μ_0``, loss
``ℓ(x) = ln[(1-q) + q e^{r(x)}]`` with ``x ~ P``; add direction ``-ℓ(y)`` with ``y ~ μ_0``.
"""

from __future__ import annotations

import logging
import math
import numbers
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
from dp_accounting import dp_event as _dpe
from dp_accounting.privacy_accountant import NeighboringRelation

from accountants.accountant import (
    Accountant,
    UnsupportedEventError,
    parse_neighboring_relation,
    register_accountant,
)
from accountants.events import DiscreteGaussianDpEvent, DiscreteLaplaceDpEvent

__all__ = [
    "IMPORTANCE_CANDIDATES",
    "MonteCarloAccountant",
    "MonteCarloEstimate",
    "choose_importance_factor",
    "delta_from_losses",
    "effective_sample_size",
    "epsilon_from_losses",
    "proposal_rate",
    "sample_loss_sums",
]

logger = logging.getLogger(__name__)

_DIRECTIONS = ("remove", "add")
_KINDS = ("gaussian", "laplace", "discrete_gaussian", "discrete_laplace")
# Elements drawn per vectorised block (steps x samples); bounds memory at ~8 MiB per array.
_BLOCK = 1 << 20
# Fewer effective samples than this behind an estimate trigger a warning.
_MIN_ESS = 30.0


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo estimate of ε or δ with its standard error.

    Attributes
    ----------
    value : float
        Point estimate (never negative). An *estimate*, not an upper bound.
    standard_error : float
        Estimated standard error of ``value`` (delta method for ε).
    n_samples : int
        Number of sampled privacy-loss sums per direction.
    direction : str
        ``"remove"`` or ``"add"``: the direction whose estimate is reported (the larger one).
    effective_sample_size : float
        ``(Σ s_i)² / Σ s_i²`` over the summands ``s_i = w_i (1 - e^{ε-L_i})_+`` of δ̂ at the
        reported point: how many samples effectively carry the estimate. Below ~30 the
        estimate *and its standard error* are unreliable (too few tail samples, or
        degenerate importance weights); a warning is logged.
    """

    value: float
    standard_error: float
    n_samples: int
    direction: str
    effective_sample_size: float | None = None


# --------------------------------------------------------------------------- event plan
@dataclass(frozen=True)
class _Step:
    """One mechanism step: noise ``kind`` with ``scale``, shift ``sensitivity``, rate ``q``."""

    kind: str
    scale: float
    sensitivity: float
    sampling_rate: float = 1.0


@dataclass(frozen=True)
class _Plan:
    steps: tuple[tuple[_Step, int], ...]
    non_private: bool = False


def _unsupported(event: Any, why: str) -> UnsupportedEventError:
    return UnsupportedEventError(
        f"MonteCarloAccountant does not support {type(event).__name__} ({why}): {event!r}"
    )


def _positive_scale(event: Any, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise _unsupported(event, f"noise scale must be a float in [0, inf), got {value!r}")
    return float(value)


def _leaf(event: _dpe.DpEvent) -> _Step | None:
    """The step of a base mechanism; None for a non-private one (zero noise)."""
    if isinstance(event, _dpe.GaussianDpEvent):
        s = _positive_scale(event, event.noise_multiplier)
        return _Step("gaussian", s, 1.0) if s > 0 else None
    if isinstance(event, _dpe.LaplaceDpEvent):
        s = _positive_scale(event, event.noise_multiplier)
        return _Step("laplace", s, 1.0) if s > 0 else None
    if isinstance(event, DiscreteGaussianDpEvent):
        return _Step("discrete_gaussian", float(event.sigma), float(event.sensitivity))
    if isinstance(event, DiscreteLaplaceDpEvent):
        return _Step("discrete_laplace", float(event.scale), float(event.sensitivity))
    if isinstance(event, _dpe.DiscreteLaplaceDpEvent):
        noise = _positive_scale(event, event.noise_parameter)
        if noise == 0:
            return None
        return _Step("discrete_laplace", 1.0 / noise, float(event.sensitivity))
    raise _unsupported(event, "no Monte Carlo sampler for this mechanism")


def _plan(event: _dpe.DpEvent) -> _Plan:
    """Flatten an event tree into (step, count) pairs; raises UnsupportedEventError."""
    if isinstance(event, _dpe.NoOpDpEvent):
        return _Plan(())
    if isinstance(event, _dpe.NonPrivateDpEvent):
        return _Plan((), non_private=True)
    if isinstance(event, _dpe.SelfComposedDpEvent):
        count = event.count
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise _unsupported(event, f"count must be an int in [0, inf), got {count!r}")
        inner = _plan(event.event)
        if count == 0:
            return _Plan(())
        return _Plan(tuple((s, c * int(count)) for s, c in inner.steps), inner.non_private)
    if isinstance(event, _dpe.ComposedDpEvent):
        steps: list[tuple[_Step, int]] = []
        non_private = False
        for sub in event.events:
            inner = _plan(sub)
            steps.extend(inner.steps)
            non_private = non_private or inner.non_private
        return _Plan(tuple(steps), non_private)
    if isinstance(event, _dpe.PoissonSampledDpEvent):
        q = event.sampling_probability
        if isinstance(q, bool) or not isinstance(q, numbers.Real) or not 0 <= q <= 1:
            raise _unsupported(event, f"sampling_probability must be in [0, 1], got {q!r}")
        inner = _plan(event.event)
        if q == 0 or (not inner.steps and not inner.non_private):
            return _Plan(())
        if inner.non_private:
            raise _unsupported(event, "Poisson sampling of a non-private mechanism")
        step = _single_step(event, inner)
        if step.sampling_rate != 1.0:
            raise _unsupported(event, "nested Poisson sampling")
        return _Plan(((_Step(step.kind, step.scale, step.sensitivity, float(q)), 1),))
    if isinstance(event, _dpe.DpEvent):
        step = _leaf(event)
        if step is None:
            return _Plan((), non_private=True)
        return _Plan(((step, 1),))
    raise TypeError(
        f"The 'event' parameter must be a dp_accounting DpEvent. Got {type(event).__name__}."
    )


def _single_step(event: Any, inner: _Plan) -> _Step:
    """The one mechanism a Poisson-sampled event applies to its sampled batch."""
    if len(inner.steps) == 1 and inner.steps[0][1] == 1:
        return inner.steps[0][0]
    # A composition of Gaussians on the same batch is one Gaussian with combined precision.
    if all(s.kind == "gaussian" and s.sampling_rate == 1.0 for s, _ in inner.steps):
        precision = sum(c / s.scale**2 for s, c in inner.steps)
        return _Step("gaussian", 1.0 / math.sqrt(precision), 1.0)
    raise _unsupported(event, "Poisson sampling of a composition of non-Gaussian mechanisms")


# --------------------------------------------------------------------------- backends
class _NumpyBackend:
    """Sampling on the CPU with a numpy Generator."""

    name = "numpy"

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.standard_normal(shape)

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.random(shape)

    def exponential(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.standard_exponential(shape)

    def bernoulli(self, q: float, shape: tuple[int, ...]) -> np.ndarray:
        return (self.rng.random(shape) < q).astype(np.float64)

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros(n)

    def mixture_loss(self, q: float, r: np.ndarray) -> np.ndarray:
        if r.max() > _R_CLIP:  # rare: only for tiny noise; avoid expm1 overflow
            return np.log1p(q * np.expm1(np.minimum(r, _R_CLIP))) + np.maximum(r - _R_CLIP, 0.0)
        out = np.expm1(r)  # in place from here on: this is the hot loop
        out *= q
        return np.log1p(out, out=out)

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts)

    def to_numpy(self, v: np.ndarray) -> np.ndarray:
        return v

    # elementwise maths named as in the torch backend
    abs = staticmethod(np.abs)
    exp = staticmethod(np.exp)
    floor = staticmethod(np.floor)


class _TorchBackend:
    """Sampling with torch on ``device`` (float64 throughout): same distributions as numpy."""

    name = "torch"

    def __init__(self, seed: int, device: str) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed % (1 << 63))
        self.kw = {"dtype": torch.float64, "device": self.device}

    def normal(self, shape: tuple[int, ...]) -> Any:
        return self.torch.randn(shape, generator=self.gen, **self.kw)

    def uniform(self, shape: tuple[int, ...]) -> Any:
        return self.torch.rand(shape, generator=self.gen, **self.kw)

    def exponential(self, shape: tuple[int, ...]) -> Any:
        return self.torch.empty(shape, **self.kw).exponential_(generator=self.gen)

    def bernoulli(self, q: float, shape: tuple[int, ...]) -> Any:
        return (self.uniform(shape) < q).to(self.torch.float64)

    def zeros(self, n: int) -> Any:
        return self.torch.zeros(n, **self.kw)

    def mixture_loss(self, q: float, r: Any) -> Any:
        t = self.torch
        return t.log1p(q * t.expm1(t.clamp(r, max=_R_CLIP))) + t.clamp(r - _R_CLIP, min=0.0)

    def concat(self, parts: list[Any]) -> Any:
        return self.torch.cat(parts)

    def to_numpy(self, v: Any) -> np.ndarray:
        return v.detach().cpu().numpy()

    def abs(self, v: Any) -> Any:
        return self.torch.abs(v)

    def exp(self, v: Any) -> Any:
        return self.torch.exp(v)

    def floor(self, v: Any) -> Any:
        return self.torch.floor(v)


def _make_backend(seed: int, device: str, backend: str | None) -> _NumpyBackend | _TorchBackend:
    if backend is None:
        backend = "numpy" if device == "cpu" else "torch"
    if backend == "numpy":
        if device != "cpu":
            raise ValueError(
                "The 'device' parameter must be 'cpu' with the numpy backend. "
                f"Got {device!r} instead."
            )
        return _NumpyBackend(seed)
    if backend == "torch":
        try:
            import torch
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ValueError(
                "The torch backend needs the 'torch' extra: pip install 'privval[torch]'."
            ) from err
        try:
            torch.zeros(1, device=device)
        except (RuntimeError, AssertionError) as err:
            raise ValueError(
                f"The 'device' parameter must name an available torch device. Got {device!r} "
                f"instead ({err})."
            ) from err
        return _TorchBackend(seed, device)
    raise ValueError(
        f"The 'backend' parameter must be 'numpy', 'torch' or None. Got {backend!r} instead."
    )


def _seed_from(rng: None | int | np.random.Generator) -> tuple[int, bool]:
    """A 128-bit seed and whether it is reproducible (None: from the OS CSPRNG)."""
    if rng is None:
        return secrets.randbits(128), False
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 1 << 63)), True
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return int(rng), True
    raise TypeError(
        "The 'rng' parameter must be None (OS CSPRNG), a non-negative int seed or a "
        f"numpy Generator. Got {rng!r} instead."
    )


# --------------------------------------------------------------------------- samplers
def _discrete_laplace(be: Any, t: float, shape: tuple[int, ...]) -> Any:
    # floor(t·E) with E ~ Exp(1) is geometric on {0,1,...} with ratio e^{-1/t}; the difference
    # of two independent copies has P(x) ∝ e^{-|x|/t}.
    return be.floor(t * be.exponential(shape)) - be.floor(t * be.exponential(shape))


def _discrete_gaussian(be: Any, sigma: float, shape: tuple[int, ...]) -> Any:
    """Discrete Gaussian by rejection from a discrete Laplace (Canonne, Kamath, Steinke 2020,
    Algorithm 3), vectorised; floating-point acceptance, which is fine for accounting."""
    n = int(np.prod(shape))
    t = math.floor(sigma) + 1.0
    parts, have = [], 0
    while have < n:
        want = max(1024, int(1.3 * (n - have)))
        y = _discrete_laplace(be, t, (want,))
        accept = be.uniform((want,)) < be.exp(-((be.abs(y) - sigma**2 / t) ** 2) / (2 * sigma**2))
        y = y[accept]
        parts.append(y)
        have += int(y.shape[0])
    return be.concat(parts)[:n].reshape(shape)


def _noise(be: Any, step: _Step, shape: tuple[int, ...]) -> Any:
    """Noise centred at 0 with the step's distribution."""
    if step.kind == "gaussian":
        return step.scale * be.normal(shape)
    if step.kind == "laplace":
        return step.scale * (be.exponential(shape) - be.exponential(shape))
    if step.kind == "discrete_gaussian":
        return _discrete_gaussian(be, step.scale, shape)
    return _discrete_laplace(be, step.scale, shape)


def _log_ratio(be: Any, step: _Step, x: Any) -> Any:
    """r(x) = ln μ_Δ(x) / μ_0(x) for the step's noise (normalisers cancel for shifts)."""
    d = step.sensitivity
    if step.kind in ("gaussian", "discrete_gaussian"):
        return (d / step.scale**2) * (x - d / 2)
    return (be.abs(x) - be.abs(x - d)) / step.scale


# Above this r, expm1(r) would overflow; there ℓ_q(r) = ln q + r to double precision.
_R_CLIP = 700.0


def _mixture_loss(be: Any, q: float, r: Any) -> Any:
    """ℓ_q = ln[(1-q) + q e^r] = log1p(q·expm1(r)): stable for r → -inf, no overflow."""
    return be.mixture_loss(q, r)


def proposal_rate(q: float, factor: float) -> float:
    """The inflated sampling rate q′ = min(factor·q, (1+q)/2) of the importance sampler."""
    return q if factor == 1.0 or q >= 1.0 else min(factor * q, (1.0 + q) / 2.0)


Sums = dict[str, tuple[Any, Any | None]]


def _step_block(be: Any, step: _Step, shape: tuple[int, ...], factor: float) -> Sums:
    """Sampled losses (and log importance weights, or None) of a block of steps, per direction.

    Remove direction: ``x ~ (1-q′)μ_0 + q′μ_Δ``, loss ``ℓ_q(x)``, log weight
    ``ℓ_q(x) - ℓ_q′(x)``. Add direction: ``y ~ (1-q′)μ_0 + q′μ_{-Δ}``, loss ``-ℓ_q(y)``,
    log weight ``-ℓ_q′(-y)`` (the mirrored ratio: the noises are symmetric). With q′ = q
    this is plain Monte Carlo and the weights are 1 (None). Both directions start from the
    same noise draws: each direction's samples are still i.i.d. from its own pair, and the
    two are estimated (and verified) separately, so sharing only correlates the two
    estimates and halves the sampling cost.
    """
    q = step.sampling_rate
    qp = proposal_rate(q, factor)
    noise = _noise(be, step, shape)
    d = step.sensitivity
    if q >= 1.0:
        return {"remove": (_log_ratio(be, step, noise + d), None),
                "add": (-_log_ratio(be, step, noise), None)}
    x = noise + d * be.bernoulli(qp, shape)
    r = _log_ratio(be, step, x)
    remove_loss = _mixture_loss(be, q, r)
    if qp == q:
        add_loss = -_mixture_loss(be, q, _log_ratio(be, step, noise))
        return {"remove": (remove_loss, None), "add": (add_loss, None)}
    y = noise - d * be.bernoulli(qp, shape)
    return {
        "remove": (remove_loss, remove_loss - _mixture_loss(be, qp, r)),
        "add": (-_mixture_loss(be, q, _log_ratio(be, step, y)),
                -_mixture_loss(be, qp, _log_ratio(be, step, -y))),
    }


def _accumulate(be: Any, step: _Step, count: int, sums: Sums, factor: float) -> Sums:
    """Add ``count`` independent steps to the running sums, in blocks of bounded size."""
    m = int(sums["remove"][0].shape[0])
    per_block = max(1, _BLOCK // max(m, 1))
    sums = dict(sums)
    done = 0
    while done < count:
        k = min(per_block, count - done)
        block = _step_block(be, step, (k, m), factor)
        for direction, (loss, lw) in block.items():
            losses, logw = sums[direction]
            losses = losses + loss.sum(0)
            if lw is not None:
                logw = lw.sum(0) if logw is None else logw + lw.sum(0)
            sums[direction] = (losses, logw)
        done += k
    return sums


def sample_loss_sums(
    plan_steps: tuple[tuple[_Step, int], ...], n: int, be: Any, factor: float = 1.0
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Sampled composed losses (and log weights) of ``n`` independent runs, per direction."""
    sums: Sums = {d: (be.zeros(n), None) for d in _DIRECTIONS}
    for step, count in plan_steps:
        sums = _accumulate(be, step, count, sums, factor)
    return {d: (be.to_numpy(l), None if w is None else be.to_numpy(w)) for d, (l, w) in sums.items()}


# --------------------------------------------------------------------------- estimators
def _summands(losses: np.ndarray, epsilon: float, logw: np.ndarray | None) -> np.ndarray:
    """s_i = w_i·(1 - e^{ε-L_i})_+, with the weights applied in log space."""
    z = np.zeros(losses.shape[0])
    if math.isinf(epsilon):
        return z
    a = epsilon - losses
    above = a < 0
    # (1 - e^{a})_+ = -expm1(a) for a < 0; with weights, exp(ln w + ln(-expm1(a))).
    if logw is None:
        z[above] = -np.expm1(a[above])
    else:
        z[above] = np.exp(logw[above] + np.log(-np.expm1(a[above])))
    return z


def effective_sample_size(losses: np.ndarray, epsilon: float, logw: np.ndarray | None = None) -> float:
    """``(Σ s_i)² / Σ s_i²`` of the summands of δ̂(ε) (0 when all are 0)."""
    z = _summands(losses, epsilon, logw)
    total = float(np.sum(z**2))
    return float(np.sum(z)) ** 2 / total if total > 0 else 0.0


def delta_from_losses(
    losses: np.ndarray, epsilon: float, logw: np.ndarray | None = None
) -> tuple[float, float]:
    """δ̂(ε) = mean of w_i·(1 - e^{ε-L_i})_+ and its standard error.

    Parameters
    ----------
    losses : np.ndarray
        Sampled privacy losses ``L_i``, shape (m,).
    epsilon : float
        ε ≥ 0 (``inf`` gives 0).
    logw : np.ndarray or None
        Log importance weights ``ln w_i`` (None: plain Monte Carlo, all weights 1).

    Returns
    -------
    (float, float)
        The estimate (in [0, 1] for plain Monte Carlo) and its standard error.
    """
    m = losses.shape[0]
    if math.isinf(epsilon):
        return 0.0, 0.0
    z = _summands(losses, epsilon, logw)
    mean = float(z.mean())
    se = float(z.std(ddof=1) / math.sqrt(m)) if m > 1 else math.inf
    return max(mean, 0.0), se


def epsilon_from_losses(
    losses: np.ndarray, delta: float, logw: np.ndarray | None = None
) -> tuple[float, float]:
    """ε̂(δ): the smallest ε ≥ 0 with δ̂(ε) ≤ δ, and its delta-method standard error.

    On the segment where exactly the top ``k`` sorted losses exceed ε,
    ``δ̂(ε) = W_k - e^ε B_k`` with ``W_k = (1/m) Σ_{i≤k} w_i`` and
    ``B_k = (1/m) Σ_{i≤k} w_i e^{-L_i}``, so ``ε = ln((W_k - δ)/B_k)`` (the inversion used by
    Gopi, Lee, Wutschitz 2021 on a grid, here on the samples themselves). ``B_k`` is kept in log
    space. ``SE(ε̂) ≈ SE(δ̂(ε̂)) / |δ̂′(ε̂)|`` with ``δ̂′(ε) = -e^ε B_k``.

    Parameters
    ----------
    losses : np.ndarray
        Sampled privacy losses, shape (m,).
    delta : float
        Target δ in (0, 1).
    logw : np.ndarray or None
        Log importance weights (None: plain Monte Carlo).

    Returns
    -------
    (float, float)
        The estimate (never negative) and its standard error.
    """
    m = losses.shape[0]
    order = np.argsort(-losses, kind="stable")
    s = losses[order]
    lw = np.zeros(m) if logw is None else logw[order]
    w_cum = np.cumsum(np.exp(lw)) / m
    log_b = np.logaddexp.accumulate(lw - s) - math.log(m)
    w_prev = np.concatenate(([0.0], w_cum[:-1]))
    log_b_prev = np.concatenate(([-np.inf], log_b[:-1]))
    # δ̂ at each breakpoint s_k (top k-1 strictly above); non-decreasing in k up to rounding.
    d_break = np.maximum.accumulate(w_prev - np.exp(s + log_b_prev))
    k = int(np.searchsorted(d_break, delta, side="right"))  # ≥ 1 since d_break[0] = 0 < δ
    gap = w_cum[k - 1] - delta
    if gap <= 0:
        return 0.0, 0.0
    eps = math.log(gap) - float(log_b[k - 1])
    # Keep the solution on its segment [s_{k+1}, s_k] despite rounding.
    eps = min(eps, float(s[k - 1]))
    if k < m:
        eps = max(eps, float(s[k]))
    if eps <= 0:
        return 0.0, 0.0
    _, se_delta = delta_from_losses(losses, eps, logw)
    slope = math.exp(eps + float(log_b[k - 1]))
    return eps, (se_delta / slope if slope > 0 else math.inf)


# --------------------------------------------------------------------------- accountant
class MonteCarloAccountant(Accountant):
    """Privacy accountant that *estimates* ε and δ from sampled privacy losses.

    Keeps ``n_samples`` running sums of independent per-step privacy losses for each
    direction of the add/remove-one relation (composing one more step costs O(n_samples));
    queries sort once (O(m log m)). Optional importance sampling (an inflated Poisson rate
    ``q′ = importance_factor·q``, log-space weights) sharpens estimates of small δ for
    subsampled mechanisms.

    **The results are estimates, not bounds**: ``get_epsilon``/``get_delta`` return the point
    estimate, which is below the true value about half the time, unlike the RDP and PLD
    accountants that round toward more privacy loss. Use :meth:`estimate_epsilon` /
    :meth:`estimate_delta` for the standard error, and :func:`accountants.evr.verify` or
    :func:`accountants.evr.evr_release` for a guarantee.

    Parameters
    ----------
    n_samples : int, default 100_000
        Number m of sampled loss sums per direction, in [2, inf).
    rng : None, int or numpy.random.Generator, default None
        Randomness. None seeds from the OS CSPRNG; an int or Generator makes the estimates
        reproducible.
    device : str, default "cpu"
        Where to sample. "cpu" uses numpy unless ``backend="torch"``; any other device (e.g.
        "cuda") uses torch.
    importance_factor : float, default 1.0
        Inflation of the Poisson rate for importance sampling, in [1, inf); 1 is plain
        Monte Carlo.
    backend : {"numpy", "torch"} or None, default None
        Sampling library; None chooses from ``device``.
    neighboring_relation : NeighboringRelation, default ADD_OR_REMOVE_ONE
        Only add/remove one is supported.

    Raises
    ------
    ValueError, TypeError
        On invalid parameters.

    Example
    -------
    >>> from accountants.events import GaussianDpEvent, PoissonSampledDpEvent
    >>> acc = MonteCarloAccountant(n_samples=20_000, rng=0)
    >>> _ = acc.compose(PoissonSampledDpEvent(0.1, GaussianDpEvent(1.0)), count=50)
    >>> est = acc.estimate_epsilon(1e-3)
    >>> 2.5 < est.value < 4.0 and est.standard_error < 0.2  # dp-accounting PLD: 3.31
    True
    """

    name = "mc"

    def __init__(
        self,
        n_samples: int = 100_000,
        rng: None | int | np.random.Generator = None,
        device: str = "cpu",
        *,
        importance_factor: float = 1.0,
        backend: str | None = None,
        neighboring_relation: NeighboringRelation | str = NeighboringRelation.ADD_OR_REMOVE_ONE,
    ) -> None:
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 2
        ):
            raise ValueError(
                "The 'n_samples' parameter of MonteCarloAccountant must be an int in [2, inf). "
                f"Got {n_samples!r} instead."
            )
        if (
            isinstance(importance_factor, bool)
            or not isinstance(importance_factor, numbers.Real)
            or not 1.0 <= importance_factor < math.inf
        ):
            raise ValueError(
                "The 'importance_factor' parameter of MonteCarloAccountant must be a float in "
                f"[1, inf). Got {importance_factor!r} instead."
            )
        neighboring_relation = parse_neighboring_relation(neighboring_relation)
        if neighboring_relation is not NeighboringRelation.ADD_OR_REMOVE_ONE:
            raise ValueError(
                "The 'neighboring_relation' parameter of MonteCarloAccountant must be "
                f"NeighboringRelation.ADD_OR_REMOVE_ONE. Got {neighboring_relation!r} instead."
            )
        if not isinstance(device, str):
            raise TypeError(f"The 'device' parameter must be a str. Got {device!r} instead.")
        super().__init__(neighboring_relation)
        seed, self.seeded = _seed_from(rng)
        self._backend = _make_backend(seed, device, backend)
        self.n_samples = int(n_samples)
        self.importance_factor = float(importance_factor)
        self._losses = {d: self._backend.zeros(self.n_samples) for d in _DIRECTIONS}
        self._logw: dict[str, Any] = {d: None for d in _DIRECTIONS}
        self._host: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    # ------------------------------------------------------------------ composition
    def _unsupported_reason(self, event: _dpe.DpEvent) -> str | None:
        try:
            _plan(event)
        except UnsupportedEventError as err:
            return str(err)
        return None

    def _compose(self, event: _dpe.DpEvent, count: int) -> None:
        plan = _plan(event)
        if plan.non_private:
            # Also catches zero-noise events (e.g. GaussianDpEvent(0)) the base class misses.
            self._non_private = True
        sums = {d: (self._losses[d], self._logw[d]) for d in _DIRECTIONS}
        for step, c in plan.steps:
            sums = _accumulate(self._backend, step, c * count, sums, self.importance_factor)
        for d in _DIRECTIONS:
            self._losses[d], self._logw[d] = sums[d]
        self._host.clear()

    def _get_state(self) -> Any:
        # Arrays are replaced, never mutated in place, so shallow copies are snapshots.
        return dict(self._losses), dict(self._logw)

    def _set_state(self, state: Any) -> None:
        self._losses, self._logw = dict(state[0]), dict(state[1])
        self._host.clear()

    def _samples(self, direction: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Loss sums and log weights of one direction as numpy arrays (cached per state)."""
        if direction not in self._host:
            be, logw = self._backend, self._logw[direction]
            self._host[direction] = (
                be.to_numpy(self._losses[direction]),
                None if logw is None else be.to_numpy(logw),
            )
        return self._host[direction]

    def loss_samples(self, direction: str = "remove") -> tuple[np.ndarray, np.ndarray | None]:
        """The sampled composed privacy losses and log importance weights of one direction.

        Parameters
        ----------
        direction : {"remove", "add"}
            Direction of the add/remove-one relation.

        Returns
        -------
        (np.ndarray, np.ndarray or None)
            Copies of the m loss sums and their log weights (None for plain Monte Carlo).
        """
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"The 'direction' parameter must be 'remove' or 'add'. Got {direction!r} instead."
            )
        losses, logw = self._samples(direction)
        return losses.copy(), (None if logw is None else logw.copy())

    # ------------------------------------------------------------------ queries
    def estimate_delta(self, epsilon: float) -> MonteCarloEstimate:
        """Estimate δ(ε) (the worse direction) with its standard error.

        Parameters
        ----------
        epsilon : float
            ε in [0, inf].

        Returns
        -------
        MonteCarloEstimate
            ``value`` in [0, 1] and its standard error. **Not an upper bound.**

        Raises
        ------
        ValueError
            If ``epsilon`` is negative or NaN.
        """
        epsilon = _check_epsilon(epsilon)
        if self._non_private:
            return MonteCarloEstimate(1.0, 0.0, self.n_samples, "remove")
        estimates = []
        for direction in _DIRECTIONS:
            losses, logw = self._samples(direction)
            value, se = delta_from_losses(losses, epsilon, logw)
            estimates.append((min(value, 1.0), se, direction))
        best = max(estimates, key=lambda e: e[0])
        return self._result(best, epsilon)

    def estimate_epsilon(self, delta: float) -> MonteCarloEstimate:
        """Estimate ε(δ) (the worse direction) with its delta-method standard error.

        Parameters
        ----------
        delta : float
            δ in (0, 1).

        Returns
        -------
        MonteCarloEstimate
            ``value`` ≥ 0 (``inf`` for a non-private history). **Not an upper bound.**

        Raises
        ------
        ValueError
            If ``delta`` is not in (0, 1).
        """
        delta = _check_delta(delta)
        if self._non_private:
            return MonteCarloEstimate(math.inf, 0.0, self.n_samples, "remove")
        estimates = []
        for direction in _DIRECTIONS:
            losses, logw = self._samples(direction)
            value, se = epsilon_from_losses(losses, delta, logw)
            estimates.append((value, se, direction))
        best = max(estimates, key=lambda e: e[0])
        return self._result(best, best[0])

    def _result(self, best: tuple[float, float, str], epsilon: float) -> MonteCarloEstimate:
        value, se, direction = best
        losses, logw = self._samples(direction)
        ess = effective_sample_size(losses, epsilon, logw)
        if ess < _MIN_ESS:
            logger.warning(
                "Only %.1f effective samples carry the Monte Carlo estimate %g ± %g (%s "
                "direction): it is unreliable. Raise n_samples%s.", ess, value, se, direction,
                "" if logw is None else " or change importance_factor")
        return MonteCarloEstimate(value, se, self.n_samples, direction, ess)

    def get_epsilon(self, delta: float) -> float:
        """Point estimate of ε(δ). **An estimate, not an upper bound** (see the class notes).

        ``delta = 0`` gives ``inf`` (no finite sample can certify it); ``delta = 1`` gives 0.
        """
        return super().get_epsilon(delta)

    def get_delta(self, epsilon: float) -> float:
        """Point estimate of δ(ε). **An estimate, not an upper bound** (see the class notes)."""
        return super().get_delta(epsilon)

    def _quiet_estimate(self, event: _dpe.DpEvent, delta: float) -> MonteCarloEstimate:
        """Compose ``event`` and estimate ε(δ) without logging reliability warnings."""
        self.compose(event)
        if self._non_private:
            return MonteCarloEstimate(math.inf, 0.0, self.n_samples, "remove", 0.0)
        estimates = []
        for direction in _DIRECTIONS:
            losses, logw = self._samples(direction)
            value, se = epsilon_from_losses(losses, delta, logw)
            ess = effective_sample_size(losses, value, logw)
            estimates.append(MonteCarloEstimate(value, se, self.n_samples, direction, ess))
        return max(estimates, key=lambda e: e.value)

    def _epsilon(self, delta: float) -> float:
        if delta == 0.0:
            return math.inf
        if delta >= 1.0:
            return 0.0
        return self.estimate_epsilon(delta).value

    def _delta(self, epsilon: float) -> float:
        return self.estimate_delta(epsilon).value


def _check_epsilon(epsilon: Any) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon >= 0:
        raise ValueError(
            f"The 'epsilon' parameter must be a float in [0, inf]. Got {epsilon!r} instead."
        )
    return float(epsilon)


def _check_delta(delta: Any) -> float:
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < 1:
        raise ValueError(f"The 'delta' parameter must be a float in (0, 1). Got {delta!r} instead.")
    return float(delta)


IMPORTANCE_CANDIDATES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Importance factors :func:`choose_importance_factor` tries by default."""


def choose_importance_factor(
    event: _dpe.DpEvent,
    delta: float,
    *,
    candidates: tuple[float, ...] = IMPORTANCE_CANDIDATES,
    n_pilot: int = 2_000,
    rng: None | int | np.random.Generator = None,
) -> float:
    """Pick the importance factor whose pilot estimate of ε(δ) has the smallest relative SE.

    Each candidate composes ``event`` on ``n_pilot`` samples; candidates whose estimate rests
    on fewer than 30 effective samples are skipped unless all are (then the one with the most
    effective samples wins). Only estimation uses this choice; verification stays plain Monte
    Carlo, so a poor choice costs accuracy, never soundness.

    Parameters
    ----------
    event : DpEvent
        The composed mechanism.
    delta : float
        The δ of the query, in (0, 1).
    candidates : tuple of float
        Factors to try, each in [1, inf).
    n_pilot : int, default 2000
        Pilot samples per candidate.
    rng : None, int or numpy.random.Generator
        Pilot randomness (None: OS CSPRNG).

    Returns
    -------
    float
        The chosen factor (1.0 means plain Monte Carlo).

    Example
    -------
    >>> from accountants.events import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent
    >>> event = SelfComposedDpEvent(PoissonSampledDpEvent(0.01, GaussianDpEvent(3.8)), 200)
    >>> choose_importance_factor(event, 1e-5, rng=0) > 1.0
    True
    """
    delta = _check_delta(delta)
    if not candidates:
        raise ValueError("The 'candidates' parameter of choose_importance_factor must not be empty.")
    seed, _ = _seed_from(rng)
    scored = []
    for factor in candidates:
        est = MonteCarloAccountant(n_pilot, rng=seed, importance_factor=factor)
        est = est._quiet_estimate(event, delta)
        reliable = est.effective_sample_size is not None and est.effective_sample_size >= _MIN_ESS
        rel_se = est.standard_error / est.value if est.value > 0 else math.inf
        scored.append((reliable, rel_se, est.effective_sample_size or 0.0, float(factor)))
    reliable = [s for s in scored if s[0] and math.isfinite(s[1])]
    if reliable:
        return min(reliable, key=lambda s: s[1])[3]
    return max(scored, key=lambda s: s[2])[3]


register_accountant("mc", MonteCarloAccountant)
