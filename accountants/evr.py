"""Estimate-verify-release (EVR) with a plain Monte Carlo verifier.

Wang, Mahloujifar, Wu, Jia, Mittal, "A Randomized Approach to Tight Privacy Accounting",
NeurIPS 2023 (arXiv 2304.07927); DESIGN.md §6.

1. **Estimate** ε̂ from the public mechanism description only (a :class:`DpEvent`), with the
   Monte Carlo accountant (:mod:`accountants.monte_carlo`).
2. **Verify** the claim (ε̂, δ_b) on ``m`` *fresh* plain Monte Carlo samples, drawn with
   randomness independent of step 1 (OS CSPRNG by default): accept iff
   ``max over directions of δ̂(ε̂) ≤ δ_b``. The summands ``(1 - e^{ε-L})_+`` lie in [0, 1],
   so by the Chernoff bound in Bernoulli-KL form (Chua et al. 2024, arXiv 2412.16802,
   Fact 4.2), if the true ``δ(ε̂) ≥ τ·δ_b`` then ``Pr[accept] ≤ exp(-m·kl(δ_b ‖ τδ_b)) ≤ p``.
   Acceptance needs *both* directions of the add/remove relation to pass, so the bound holds
   for the worse direction without a union bound.
3. **Release** M(D) only on acceptance, with the guarantee (ε̂, τ·δ_b + p) (the conservative
   form of Theorem 1: acceptance is data-independent, and a bad claim is accepted with
   probability ≤ p). On rejection return ⊥, or run a fallback whose guarantee comes from a
   rigorous accountant.

Importance sampling is used for estimation only: its weighted summands are not bounded by 1,
so the Chernoff bound above would not apply to them.

Every verification attempt spends its own p: :func:`calibrate_noise` splits the failure
budget p over all the attempts it may make, fixed in advance.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from accountants.accountant import UnsupportedEventError, make_accountant, round_up
from accountants.events import DpEvent, NoOpDpEvent, to_dict
from accountants.monte_carlo import (
    MonteCarloAccountant,
    MonteCarloEstimate,
    _make_backend,
    _plan,
    _seed_from,
    choose_importance_factor,
    epsilon_from_losses,
    sample_loss_sums,
)

__all__ = [
    "Certificate",
    "EVRResult",
    "NoiseCalibration",
    "SamplePlan",
    "calibrate_noise",
    "evr_release",
    "plan_samples",
    "verify",
]

logger = logging.getLogger(__name__)

# Claims are shrunk by this factor so that, after rounding up, they still meet the target.
_SHRINK = 1.0 - 1e-9
# Samples per verification chunk: bounds memory (two float64 vectors of this length).
_CHUNK = 1 << 18
METHOD = "plain Monte Carlo; Bernoulli-KL Chernoff bound (Wang et al. 2023, EVR Theorem 1)"


# --------------------------------------------------------------------------- validation
def _real(value: Any, name: str, owner: str, low: float, high: float,
          *, open_low: bool = True, open_high: bool = True) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and not math.isnan(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high)
    if not ok:
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in {lo}{low}, {high}{hi}. "
            f"Got {value!r} instead."
        )
    return float(value)


def _check_count(value: Any, name: str, owner: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be an int in [{low}, inf). "
            f"Got {value!r} instead."
        )
    return int(value)


def _check_plan_args(delta_b: Any, tau: Any, p: Any, owner: str) -> tuple[float, float, float]:
    delta_b = _real(delta_b, "delta_b", owner, 0.0, 1.0)
    tau = _real(tau, "tau", owner, 1.0, math.inf)
    p = _real(p, "p", owner, 0.0, 1.0)
    if tau * delta_b >= 1.0:
        raise ValueError(
            f"The 'tau' parameter of {owner} must satisfy tau * delta_b < 1. "
            f"Got tau={tau!r} with delta_b={delta_b!r} instead."
        )
    return delta_b, tau, p


# --------------------------------------------------------------------------- sample size
def bernoulli_kl(a: float, b: float) -> float:
    """KL divergence kl(a ‖ b) between Bernoulli(a) and Bernoulli(b), for a, b in (0, 1).

    Example
    -------
    >>> round(bernoulli_kl(0.1, 0.2), 6)
    0.03669
    """
    return a * math.log(a / b) + (1.0 - a) * (math.log1p(-a) - math.log1p(-b))


@dataclass(frozen=True)
class SamplePlan:
    """Sample size of the Monte Carlo verifier and its error probabilities.

    Attributes
    ----------
    n_samples : int
        m, the number of fresh samples.
    delta_b, tau, p : float
        The verified δ, the slack and the requested false-positive bound.
    false_positive_bound : float
        ``exp(-m·kl(δ_b ‖ τδ_b)) ≤ p``: acceptance probability of a claim whose true δ ≥ τ·δ_b.
    kappa : float
        Utility margin of the false-negative bound.
    false_negative_bound : float
        ``exp(-m·kl(δ_b ‖ δ_b/κ))``: rejection probability of a claim whose true δ ≤ δ_b/κ.
    """

    n_samples: int
    delta_b: float
    tau: float
    p: float
    false_positive_bound: float
    kappa: float
    false_negative_bound: float


def plan_samples(delta_b: float, tau: float, p: float, *, kappa: float = 2.0) -> SamplePlan:
    """Number of fresh samples so that a claim with true δ ≥ τ·δ_b is accepted w.p. ≤ p.

    ``m = ⌈ln(1/p) / kl(δ_b ‖ τδ_b)⌉`` (Chernoff bound in Bernoulli-KL form, for the mean of
    m i.i.d. variables in [0, 1]; kl(δ_b ‖ μ) grows with μ > δ_b, so it covers every true
    δ ≥ τ·δ_b). Roughly ``ln(1/p) / (δ_b·(τ - 1 - ln τ))``.

    Parameters
    ----------
    delta_b : float
        The δ the verifier checks against, in (0, 1).
    tau : float
        Slack, in (1, inf), with ``tau * delta_b < 1``.
    p : float
        False-positive bound, in (0, 1).
    kappa : float, default 2.0
        For the false-negative bound: true δ = δ_b/κ, κ in (1, inf).

    Returns
    -------
    SamplePlan

    Raises
    ------
    ValueError
        On a parameter outside its range.

    Example
    -------
    >>> plan = plan_samples(1e-2, 2.0, 1e-6)
    >>> plan.n_samples, plan.false_positive_bound <= 1e-6
    (4429, True)
    """
    delta_b, tau, p = _check_plan_args(delta_b, tau, p, "plan_samples")
    kappa = _real(kappa, "kappa", "plan_samples", 1.0, math.inf)
    kl = bernoulli_kl(delta_b, tau * delta_b)
    m = max(1, math.ceil(math.log(1.0 / p) / kl))
    while m * kl < math.log(1.0 / p):  # guard against rounding in the division
        m += 1
    return SamplePlan(
        n_samples=m,
        delta_b=delta_b,
        tau=tau,
        p=p,
        false_positive_bound=math.exp(-m * kl),
        kappa=kappa,
        false_negative_bound=math.exp(-m * bernoulli_kl(delta_b, delta_b / kappa)),
    )


# --------------------------------------------------------------------------- verifier
@dataclass(frozen=True)
class Certificate:
    """Outcome of one Monte Carlo verification of a claim (ε, δ_b).

    Attributes
    ----------
    epsilon : float
        The verified ε.
    delta_b : float
        The δ checked against.
    tau : float
        Slack: a claim whose true δ(ε) ≥ τ·δ_b is accepted with probability ≤ p.
    p : float
        False-positive bound of this attempt.
    n_samples : int
        m planned by :func:`plan_samples`.
    samples_used : int
        Samples drawn (fewer than m when the estimate already exceeded δ_b: early rejection).
    delta_estimate : float
        ``max`` over directions of the plain Monte Carlo δ̂(ε) on the samples used.
    accepted : bool
        Whether the claim passed.
    seeded : bool
        True if the verifier's randomness came from a caller's seed (reproducible, not
        secure); False for the OS CSPRNG.
    guarantee_epsilon, guarantee_delta : float
        (ε, τ·δ_b + p), δ rounded up: the guarantee of releasing on acceptance. Only
        meaningful when ``accepted`` is True.
    event : dict
        The verified event tree (:func:`accountants.events.to_dict`).
    method : str
        How the verdict was reached.
    """

    epsilon: float
    delta_b: float
    tau: float
    p: float
    n_samples: int
    samples_used: int
    delta_estimate: float
    accepted: bool
    seeded: bool
    guarantee_epsilon: float
    guarantee_delta: float
    event: dict[str, Any] = field(repr=False)
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for the ledger and reports)."""
        return asdict(self)


def _supported_plan(event: Any, owner: str) -> Any:
    if not isinstance(event, DpEvent):
        raise TypeError(
            f"The 'event' parameter of {owner} must be a DpEvent. Got {type(event)} instead."
        )
    checker = MonteCarloAccountant(n_samples=2, rng=0)
    reason = checker.unsupported_reason(event)  # validates the fields, too
    if reason is not None:
        raise UnsupportedEventError(f"{owner} cannot verify {event!r}: {reason}")
    return _plan(event)


def verify(
    event: DpEvent,
    epsilon: float,
    delta_b: float,
    *,
    tau: float,
    p: float,
    rng: None | int | np.random.Generator = None,
    device: str = "cpu",
    backend: str | None = None,
) -> Certificate:
    """Verify the claim "``event`` is (ε, δ_b)-DP" up to slack τ with false-positive rate p.

    Draws ``m = plan_samples(delta_b, tau, p).n_samples`` fresh composed privacy losses per
    direction (plain Monte Carlo, no importance weights) and accepts iff
    ``max_direction mean((1 - e^{ε-L_i})_+) ≤ δ_b``. If the true δ(ε) ≥ τ·δ_b, the
    probability of acceptance is at most p (module notes). Sampling stops early, with a
    rejection, once the running sum already exceeds ``m·δ_b``; that only lowers the
    acceptance probability.

    Parameters
    ----------
    event : DpEvent
        Public description of the mechanism (add/remove-one relation).
    epsilon : float
        Claimed ε, in [0, inf).
    delta_b : float
        Claimed δ, in (0, 1).
    tau : float
        Slack, in (1, inf), ``tau * delta_b < 1``.
    p : float
        False-positive bound, in (0, 1).
    rng : None, int or numpy.random.Generator, default None
        None: seeded from the OS CSPRNG (use this for releases: the verifier's coins must
        be independent of everything else, including the estimation samples). A seed makes
        the certificate reproducible and marks it ``seeded``.
    device, backend : str
        Sampling device/library, as for :class:`~accountants.monte_carlo.MonteCarloAccountant`.

    Returns
    -------
    Certificate

    Raises
    ------
    ValueError
        On a parameter outside its range.
    UnsupportedEventError
        If the event has no Monte Carlo sampler.

    Example
    -------
    >>> from accountants.events import GaussianDpEvent
    >>> cert = verify(GaussianDpEvent(1.0), 2.5, 0.02, tau=2.0, p=1e-3, rng=0)
    >>> cert.accepted, cert.n_samples, round(cert.guarantee_delta, 6)  # exact δ(2.5) = 0.0063
    (True, 1089, 0.041)
    """
    owner = "verify"
    epsilon = _real(epsilon, "epsilon", owner, 0.0, math.inf, open_low=False)
    delta_b, tau, p = _check_plan_args(delta_b, tau, p, owner)
    steps = _supported_plan(event, owner)
    plan = plan_samples(delta_b, tau, p)
    seed, seeded = _seed_from(rng)
    m = plan.n_samples
    total = {"remove": 0.0, "add": 0.0}
    used = 0
    if steps.non_private:
        total = {"remove": float(m), "add": float(m)}
        used = m
    else:
        be = _make_backend(seed, device, backend)
        chunk = min(_CHUNK, max(4096, -(-m // 8)))  # ≥ 8 chances to stop early
        while used < m:
            n = min(chunk, m - used)
            for direction, (losses, _) in sample_loss_sums(steps.steps, n, be).items():
                a = np.minimum(epsilon - losses, 0.0)
                total[direction] += float(-np.expm1(a).sum())
            used += n
            if max(total.values()) > m * delta_b:
                break
    estimate = max(total.values()) / used
    accepted = used == m and max(total.values()) <= m * delta_b
    cert = Certificate(
        epsilon=epsilon,
        delta_b=delta_b,
        tau=tau,
        p=p,
        n_samples=m,
        samples_used=used,
        delta_estimate=estimate,
        accepted=accepted,
        seeded=seeded,
        guarantee_epsilon=epsilon,
        guarantee_delta=round_up(tau * delta_b + p, upper=1.0),
        event=to_dict(event),
    )
    logger.info("EVR verification of (ε=%g, δ_b=%g) with m=%d: %s (δ̂=%g).", epsilon,
                delta_b, m, "accepted" if accepted else "rejected", estimate)
    return cert


# --------------------------------------------------------------------------- release
@dataclass(frozen=True)
class EVRResult:
    """What :func:`evr_release` returns.

    Attributes
    ----------
    output : Any
        The mechanism's (or fallback's) output; None (⊥) when nothing was released.
    released : bool
        Whether a mechanism ran on the data.
    path : str
        ``"verified"`` (M(D) under the verified claim), ``"fallback"`` (the fallback under its
        rigorous guarantee) or ``"rejected"`` (⊥: data-independent, reveals nothing).
    epsilon, delta : float
        Guarantee of the output: (ε̂, τ·δ_b + p) on the verified path, the rigorous
        accountant's (ε, target δ) on the fallback path, (0, 0) for ⊥.
    estimate : MonteCarloEstimate
        The Monte Carlo estimate ε̂ (at δ_b/κ) the claim was built from.
    certificate : Certificate
        The verification's certificate.
    ledger_entry_id : int or None
        Ledger row of the charge, when a ledger was given.
    seeded : bool
        True if the run was reproducible rather than secure: the caller declared the
        mechanism's noise seeded, or the verifier's coins came from a seed.
    """

    output: Any
    released: bool
    path: str
    epsilon: float
    delta: float
    estimate: MonteCarloEstimate
    certificate: Certificate
    ledger_entry_id: int | None = None
    seeded: bool = False


def _split_rng(rng: None | int | np.random.Generator) -> tuple[Any, Any]:
    """Independent randomness for estimation and verification."""
    if rng is None:
        return None, None
    seed, _ = _seed_from(rng)
    a, b = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(a), np.random.default_rng(b)


def _rigorous_epsilon(event: DpEvent, delta: float, accountant: str) -> float:
    return make_accountant(accountant).compose(event).get_epsilon(delta)


def evr_release(
    mechanism: Callable[[Any], Any],
    data: Any,
    event: DpEvent,
    *,
    target_epsilon: float,
    target_delta: float,
    tau: float = 2.0,
    p: float | None = None,
    kappa: float = 2.0,
    margin_se: float = 1.0,
    n_estimate: int = 100_000,
    importance_factor: float | str = 1.0,
    ledger: Any = None,
    dataset: str | None = None,
    fallback: Callable[[Any], Any] | None = None,
    fallback_event: DpEvent | None = None,
    fallback_accountant: str = "pld",
    sensitivity: float = 1.0,
    sampling: str | dict[str, Any] = "as described by the event",
    seeded: bool = False,
    purpose: str | None = None,
    rng: None | int | np.random.Generator = None,
    device: str = "cpu",
) -> EVRResult:
    """Estimate ε from ``event``, verify it on fresh samples, and release only if verified.

    Steps (Wang et al. 2023; DESIGN.md §6), with ``p`` the verifier's false-positive bound
    and ``δ_b = (target_delta - p)/τ`` so that ``τ·δ_b + p = target_delta``:

    1. ε̂ = Monte Carlo estimate of ε(δ_b/κ) from ``event`` alone (``n_estimate`` samples);
       the claim is ``ε_c = min(ε̂ + margin_se·SE, target_epsilon)``.
    2. :func:`verify` the claim (ε_c, δ_b) with randomness independent of step 1.
    3. Accepted: charge the ledger (event + certificate), then return ``mechanism(data)``
       with the guarantee (ε_c, τ·δ_b + p) ≤ (target_epsilon, target_delta).
       Rejected: run ``fallback(data)`` under the rigorous guarantee of ``fallback_event``
       (charged first), or return ⊥ (``output=None``; a zero-cost NoOp charge carrying the
       certificate records the attempt in the ledger).

    The data is touched only by ``mechanism`` or ``fallback``, after the charge commits.

    Parameters
    ----------
    mechanism : callable
        ``mechanism(data) -> output``; must implement exactly ``event`` (add/remove one).
    data : Any
        Passed to ``mechanism``/``fallback`` only.
    event : DpEvent
        Public description of ``mechanism``.
    target_epsilon : float
        Largest acceptable ε, in (0, inf).
    target_delta : float
        Total δ of the guarantee, in (0, 1).
    tau : float, default 2.0
        Verifier slack, in (1, inf).
    p : float, optional
        Verifier false-positive bound, in (0, target_delta); default target_delta/10.
    kappa : float, default 2.0
        Utility margin: ε̂ is estimated at δ_b/κ, so the verifier rarely rejects.
    margin_se : float, default 1.0
        Standard errors added to ε̂, in [0, inf).
    n_estimate : int, default 100_000
        Samples of the estimating accountant.
    importance_factor : float or "auto", default 1.0
        Importance sampling of the *estimate* (never of the verification); "auto" picks it
        with :func:`~accountants.monte_carlo.choose_importance_factor` on a pilot of
        ``n_estimate // 10`` samples.
    ledger : accountants.ledger.Ledger, optional
        Charged before any output is returned; needs ``dataset``.
    dataset : str, optional
        Ledger dataset name.
    fallback : callable, optional
        ``fallback(data) -> output`` run on rejection; needs ``fallback_event``.
    fallback_event : DpEvent, optional
        Event of ``fallback``; its ε at ``target_delta`` under ``fallback_accountant`` must be
        ≤ ``target_epsilon`` (checked before anything runs).
    fallback_accountant : str, default "pld"
        Rigorous accountant for the fallback.
    sensitivity, sampling, seeded, purpose
        Recorded with the ledger charge (``seeded`` refers to the mechanism's noise; a seeded
        verifier also marks the charge seeded).
    rng : None, int or numpy.random.Generator, default None
        None: OS CSPRNG for both estimation and verification. A seed makes the run
        reproducible (two independent streams are derived from it).
    device : str, default "cpu"
        Sampling device.

    Returns
    -------
    EVRResult

    Raises
    ------
    ValueError, TypeError
        On invalid parameters (nothing runs).
    UnsupportedEventError
        If ``event`` has no Monte Carlo sampler.
    accountants.ledger.BudgetExceededError
        If the ledger refuses the charge (nothing is released).

    Example
    -------
    >>> import numpy as np
    >>> from accountants.events import GaussianDpEvent
    >>> from accountants.noise import sample_gaussian
    >>> data = np.array([1.0, 0.0, 1.0])   # a count query, sensitivity 1
    >>> res = evr_release(lambda d: d.sum() + sample_gaussian(2.0, 1)[0],
    ...                   data, GaussianDpEvent(2.0), target_epsilon=2.0, target_delta=0.05,
    ...                   n_estimate=20_000, rng=1)
    >>> res.path, res.epsilon <= 2.0, res.delta <= 0.05
    ('verified', True, True)
    """
    owner = "evr_release"
    if not callable(mechanism):
        raise TypeError(f"The 'mechanism' parameter of {owner} must be callable. Got {mechanism!r}.")
    target_epsilon = _real(target_epsilon, "target_epsilon", owner, 0.0, math.inf)
    target_delta = _real(target_delta, "target_delta", owner, 0.0, 1.0)
    tau = _real(tau, "tau", owner, 1.0, math.inf)
    p = target_delta / 10.0 if p is None else _real(p, "p", owner, 0.0, target_delta)
    kappa = _real(kappa, "kappa", owner, 1.0, math.inf)
    margin_se = _real(margin_se, "margin_se", owner, 0.0, math.inf, open_low=False)
    n_estimate = _check_count(n_estimate, "n_estimate", owner, 2)
    if importance_factor != "auto":
        importance_factor = _real(importance_factor, "importance_factor", owner, 1.0, math.inf,
                                  open_low=False)
    delta_b = (target_delta - p) / tau * _SHRINK
    steps = _supported_plan(event, owner)
    if ledger is not None and not isinstance(dataset, str):
        raise ValueError(f"The 'dataset' parameter of {owner} must be a str when a ledger is given.")
    if (fallback is None) != (fallback_event is None):
        raise ValueError(
            f"The 'fallback' and 'fallback_event' parameters of {owner} must be given together."
        )
    if fallback is not None and not callable(fallback):
        raise TypeError(f"The 'fallback' parameter of {owner} must be callable. Got {fallback!r}.")
    if not isinstance(seeded, bool):
        raise TypeError(f"The 'seeded' parameter of {owner} must be a bool. Got {seeded!r}.")
    # Checked here as well as by the ledger, so bad input fails before the verification runs.
    sensitivity = _real(sensitivity, "sensitivity", owner, 0.0, math.inf)
    if not isinstance(sampling, (str, dict)):
        raise TypeError(f"The 'sampling' parameter of {owner} must be a str or a dict. Got {sampling!r}.")
    fallback_epsilon = None
    if fallback_event is not None:
        fallback_epsilon = _rigorous_epsilon(fallback_event, target_delta, fallback_accountant)
        if fallback_epsilon > target_epsilon:
            raise ValueError(
                f"The 'fallback_event' parameter of {owner} must meet the target: its "
                f"{fallback_accountant} ε at δ={target_delta} is {fallback_epsilon}, above "
                f"target_epsilon={target_epsilon}."
            )

    estimate_rng, verify_rng = _split_rng(rng)
    if steps.non_private:
        estimate = MonteCarloEstimate(math.inf, 0.0, 0, "remove")
    else:
        if importance_factor == "auto":
            importance_factor = choose_importance_factor(
                event, delta_b / kappa, n_pilot=max(1_000, n_estimate // 10), rng=estimate_rng)
        accountant = MonteCarloAccountant(
            n_estimate, rng=estimate_rng, device=device, importance_factor=importance_factor
        )
        estimate = accountant.compose(event).estimate_epsilon(delta_b / kappa)
    claim = min(estimate.value + margin_se * estimate.standard_error, target_epsilon * _SHRINK)
    cert = verify(event, claim, delta_b, tau=tau, p=p, rng=verify_rng, device=device)

    if cert.accepted:
        path, run, charged, eps, dlt = (
            "verified", mechanism, event, cert.guarantee_epsilon, cert.guarantee_delta)
    elif fallback is not None:
        assert fallback_event is not None and fallback_epsilon is not None
        path, run, charged, eps, dlt = (
            "fallback", fallback, fallback_event, fallback_epsilon, target_delta)
    else:
        path, run, charged, eps, dlt = ("rejected", None, NoOpDpEvent(), 0.0, 0.0)

    entry_id = None
    if ledger is not None:
        with ledger.charge(
            dataset,
            charged,
            sensitivity=sensitivity,
            sampling=sampling,
            seeded=seeded or cert.seeded,
            purpose=purpose,
            certificate=cert.to_dict(),
            details={"evr_path": path, "guarantee": {"epsilon": eps, "delta": dlt}},
        ) as entry:
            output = None if run is None else run(data)
            entry_id = entry.id
    else:
        output = None if run is None else run(data)
    return EVRResult(output, run is not None, path, eps, dlt, estimate, cert, entry_id,
                     seeded or cert.seeded)


# --------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class NoiseCalibration:
    """Noise scale meeting (ε, δ) with EVR, next to the scale a rigorous accountant needs.

    Attributes
    ----------
    evr_scale : float or None
        Smallest scale (to ``rtol``) whose Monte Carlo estimate meets the target and whose
        claim passed verification; None if every attempt was rejected.
    rigorous_scale : float
        Smallest scale (to ``rtol``) the rigorous accountant certifies.
    ratio : float or None
        ``evr_scale / rigorous_scale`` (< 1 means EVR needs less noise).
    epsilon, delta : float
        The guarantee at ``evr_scale``: (target ε, τ·δ_b + p), p summed over all attempts.
    rigorous_accountant : str
        Name of the rigorous accountant.
    certificates : tuple of Certificate
        One per verification attempt, in order.
    """

    evr_scale: float | None
    rigorous_scale: float
    ratio: float | None
    epsilon: float
    delta: float
    rigorous_accountant: str
    certificates: tuple[Certificate, ...]


def _smallest_scale(ok: Callable[[float], bool], lower: float, upper: float, rtol: float,
                    owner: str) -> float:
    """Smallest s in [lower, upper] with ok(s), by bisection in log space (ok monotone)."""
    if not ok(upper):
        raise ValueError(
            f"The 'upper' parameter of {owner} is too small: even scale {upper} misses the "
            "target. Increase it."
        )
    if ok(lower):
        return lower
    lo, hi = lower, upper
    while hi / lo > 1.0 + rtol:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def calibrate_noise(
    make_event: Callable[[float], DpEvent],
    target_epsilon: float,
    target_delta: float,
    *,
    lower: float,
    upper: float,
    tau: float = 2.0,
    p: float | None = None,
    kappa: float = 2.0,
    n_estimate: int = 20_000,
    max_attempts: int = 1,
    growth: float = 1.05,
    rtol: float = 1e-2,
    rigorous_accountant: str = "pld",
    rng: None | int | np.random.Generator = None,
    device: str = "cpu",
) -> NoiseCalibration:
    """Smallest noise scale whose EVR-verified ε meets a target, and the rigorous one.

    The EVR scale is found by bisection on the Monte Carlo estimate ε̂(δ_b/κ) ≤ target_epsilon
    (common random numbers across scales, so the search is deterministic), then the claim
    (target_epsilon, δ_b) is verified at that scale with fresh randomness. On rejection the
    scale grows by ``growth`` and is verified again, up to ``max_attempts`` times; each
    attempt gets ``p / max_attempts``, so the guarantee (target ε, τ·δ_b + p) counts every
    attempt that may run. The rigorous scale is the smallest one ``rigorous_accountant``
    certifies at (target_epsilon, target_delta).

    Parameters
    ----------
    make_event : callable
        ``make_event(scale) -> DpEvent``; privacy must improve as scale grows.
    target_epsilon : float
        In (0, inf).
    target_delta : float
        In (0, 1); δ_b = (target_delta - p)/τ.
    lower, upper : float
        Search bracket, 0 < lower < upper.
    tau, p, kappa, n_estimate
        As in :func:`evr_release` (p defaults to target_delta/10).
    max_attempts : int, default 1
        Verification attempts, in [1, inf).
    growth : float, default 1.05
        Scale factor between attempts, in (1, inf).
    rtol : float, default 1e-2
        Relative precision of both scales.
    rigorous_accountant : str, default "pld"
        Registry name of the rigorous accountant.
    rng : None, int or numpy.random.Generator
        None: OS CSPRNG; a seed makes the calibration reproducible.
    device : str, default "cpu"
        Sampling device.

    Returns
    -------
    NoiseCalibration

    Raises
    ------
    ValueError
        On invalid parameters or a bracket whose upper end misses the target.

    Example
    -------
    >>> from accountants.events import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent
    >>> make = lambda s: SelfComposedDpEvent(PoissonSampledDpEvent(0.05, GaussianDpEvent(s)), 100)
    >>> cal = calibrate_noise(make, 1.0, 1e-3, lower=0.3, upper=10.0, tau=1.5, kappa=1.5,
    ...                       n_estimate=20_000, rng=0, rigorous_accountant="rdp")
    >>> cal.certificates[0].accepted, cal.evr_scale < cal.rigorous_scale
    (True, True)
    """
    owner = "calibrate_noise"
    if not callable(make_event):
        raise TypeError(f"The 'make_event' parameter of {owner} must be callable.")
    target_epsilon = _real(target_epsilon, "target_epsilon", owner, 0.0, math.inf)
    target_delta = _real(target_delta, "target_delta", owner, 0.0, 1.0)
    lower = _real(lower, "lower", owner, 0.0, math.inf)
    upper = _real(upper, "upper", owner, lower, math.inf)
    tau = _real(tau, "tau", owner, 1.0, math.inf)
    p = target_delta / 10.0 if p is None else _real(p, "p", owner, 0.0, target_delta)
    kappa = _real(kappa, "kappa", owner, 1.0, math.inf)
    growth = _real(growth, "growth", owner, 1.0, math.inf)
    rtol = _real(rtol, "rtol", owner, 0.0, 1.0)
    max_attempts = _check_count(max_attempts, "max_attempts", owner, 1)
    n_estimate = _check_count(n_estimate, "n_estimate", owner, 2)
    delta_b = (target_delta - p) / tau * _SHRINK
    estimate_rng, verify_rng = _split_rng(rng)
    crn_seed, _ = _seed_from(estimate_rng)

    def evr_ok(scale: float) -> bool:
        acc = MonteCarloAccountant(n_estimate, rng=crn_seed, device=device)
        acc.compose(make_event(scale))
        # Module-level solver: far-off scales of the bracket need not log reliability warnings.
        eps = max(epsilon_from_losses(losses, delta_b / kappa, logw)[0]
                  for losses, logw in map(acc.loss_samples, ("remove", "add")))
        return eps <= target_epsilon

    def rigorous_ok(scale: float) -> bool:
        return _rigorous_epsilon(make_event(scale), target_delta, rigorous_accountant) <= target_epsilon

    rigorous_scale = _smallest_scale(rigorous_ok, lower, upper, rtol, owner)
    scale = _smallest_scale(evr_ok, lower, upper, rtol, owner)
    certificates = []
    evr_scale = None
    for _ in range(max_attempts):
        cert = verify(make_event(scale), target_epsilon * _SHRINK, delta_b, tau=tau, p=p / max_attempts,
                      rng=verify_rng, device=device)
        certificates.append(cert)
        if cert.accepted:
            evr_scale = scale
            break
        scale *= growth
    return NoiseCalibration(
        evr_scale=evr_scale,
        rigorous_scale=rigorous_scale,
        ratio=None if evr_scale is None else evr_scale / rigorous_scale,
        epsilon=target_epsilon * _SHRINK,
        delta=round_up(tau * delta_b + p, upper=1.0),
        rigorous_accountant=rigorous_accountant,
        certificates=tuple(certificates),
    )
