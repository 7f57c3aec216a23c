"""Tests of the Monte Carlo verifier and estimate-verify-release.

The verifier's soundness is a security property: its empirical false-positive rate on claims
whose true δ equals τ·δ_b (exact Gaussian curve, Balle & Wang 2018) must stay ≤ p, checked by
a one-sided binomial test at α = 1e-6 with fixed seeds. The sample-size formula is checked
against exact binomial tails (scipy), an independent computation of the same event for
Bernoulli summands.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from accountants.accountant import UnsupportedEventError, make_accountant
from accountants.events import (
    GaussianDpEvent,
    NonPrivateDpEvent,
    PoissonSampledDpEvent,
    PTRDpEvent,
    SampledWithoutReplacementDpEvent,
    SelfComposedDpEvent,
)
from accountants.evr import (
    Certificate,
    EVRResult,
    calibrate_noise,
    evr_release,
    plan_samples,
    verify,
)
from accountants.ledger import BudgetExceededError, Ledger

ALPHA = 1e-6


def gaussian_delta(eps: float, mu: float) -> float:
    return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)


def epsilon_at(delta: float, mu: float) -> float:
    return optimize.brentq(lambda e: gaussian_delta(e, mu) - delta, 0.0, 200.0, xtol=1e-12)


# --------------------------------------------------------------------------- plan_samples
@pytest.mark.parametrize("delta_b,tau,p", [(0.05, 2.0, 1e-3), (0.01, 1.5, 1e-6), (1e-3, 3.0, 0.1)])
def test_plan_samples_is_minimal_and_bounds_exact_binomial_tails(delta_b, tau, p) -> None:
    plan = plan_samples(delta_b, tau, p, kappa=2.0)
    m = plan.n_samples
    kl = delta_b * math.log(1 / tau) + (1 - delta_b) * math.log((1 - delta_b) / (1 - tau * delta_b))
    assert m * kl >= math.log(1 / p) > (m - 1) * kl
    assert plan.false_positive_bound <= p
    # Bernoulli summands with mean τ·δ_b: exact P[mean ≤ δ_b] must respect the bound.
    assert stats.binom.cdf(math.floor(m * delta_b), m, tau * delta_b) <= plan.false_positive_bound
    # Mean δ_b/κ: exact P[mean > δ_b] must respect the false-negative bound.
    assert stats.binom.sf(math.floor(m * delta_b), m, delta_b / 2) <= plan.false_negative_bound
    assert 0 < plan.false_negative_bound < 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"delta_b": 0.0}, "delta_b"),
        ({"delta_b": -1e-3}, "delta_b"),
        ({"delta_b": 1.0}, "delta_b"),
        ({"tau": 1.0}, "tau"),
        ({"tau": 0.5}, "tau"),
        ({"tau": 200.0}, "tau"),  # tau * delta_b >= 1
        ({"p": 0.0}, "'p'"),
        ({"p": 1.0}, "'p'"),
        ({"p": float("nan")}, "'p'"),
        ({"kappa": 1.0}, "kappa"),
    ],
)
def test_plan_samples_bad_input(kwargs, match) -> None:
    args = {"delta_b": 0.01, "tau": 2.0, "p": 1e-3, "kappa": 2.0} | kwargs
    with pytest.raises(ValueError, match=match):
        plan_samples(args.pop("delta_b"), args.pop("tau"), args.pop("p"), **args)


# --------------------------------------------------------------------------- verifier
@pytest.mark.slow
@pytest.mark.parametrize("p,reps,mu", [(0.2, 1500, 1.0), (0.02, 1500, 1.0), (0.2, 1500, 10.0)])
def test_verifier_false_positive_rate_at_most_p(p: float, reps: int, mu: float) -> None:
    # μ = 10 makes the summands (1 - e^{ε-L})_+ nearly Bernoulli, the Chernoff bound's worst case.
    delta_b, tau = 0.05, 2.0
    eps = epsilon_at(tau * delta_b, mu)  # true δ(ε) = τ·δ_b exactly: the hardest bad claim
    event = SelfComposedDpEvent(GaussianDpEvent(4.0 / mu), 16)  # √16 / (4/μ) = μ
    accepted = sum(verify(event, eps, delta_b, tau=tau, p=p, rng=1000 + i).accepted
                   for i in range(reps))
    # One-sided test of H0: rate ≤ p; reject H0 (fail) only if P[Bin(reps, p) ≥ accepted] < α.
    assert stats.binom.sf(accepted - 1, reps, p) >= ALPHA, accepted


def test_verifier_accepts_good_claims_at_the_planned_rate() -> None:
    delta_b, tau, p, kappa, reps = 0.05, 2.0, 0.01, 2.0, 400
    eps = epsilon_at(delta_b / kappa, 1.0)  # true δ = δ_b/κ
    event = SelfComposedDpEvent(GaussianDpEvent(2.0), 4)
    fn = plan_samples(delta_b, tau, p, kappa=kappa).false_negative_bound
    rejected = sum(not verify(event, eps, delta_b, tau=tau, p=p, rng=5000 + i).accepted
                   for i in range(reps))
    assert stats.binom.sf(rejected - 1, reps, fn) >= ALPHA, (rejected, fn)


def test_certificate_contents_and_seed_status() -> None:
    event = PoissonSampledDpEvent(0.2, GaussianDpEvent(1.0))
    cert = verify(event, 1.0, 0.02, tau=1.5, p=1e-3, rng=7)
    plan = plan_samples(0.02, 1.5, 1e-3)
    assert isinstance(cert, Certificate) and cert.seeded is True
    assert cert.n_samples == plan.n_samples and cert.samples_used <= cert.n_samples
    assert cert.epsilon == cert.guarantee_epsilon == 1.0
    assert cert.guarantee_delta >= 1.5 * 0.02 + 1e-3
    assert cert.guarantee_delta == pytest.approx(1.5 * 0.02 + 1e-3, rel=1e-9)
    d = cert.to_dict()
    assert d["accepted"] == cert.accepted and d["event"]["event"]["type"].endswith("PoissonSampledDpEvent")
    assert verify(event, 1.0, 0.02, tau=1.5, p=1e-3).seeded is False  # OS CSPRNG by default


def test_verifier_rejects_non_private_and_early() -> None:
    cert = verify(NonPrivateDpEvent(), 5.0, 0.01, tau=2.0, p=1e-3, rng=0)
    assert not cert.accepted and cert.delta_estimate == 1.0
    # A grossly false claim is rejected before all samples are drawn.
    cert = verify(GaussianDpEvent(0.5), 0.1, 1e-3, tau=2.0, p=1e-6, rng=0)
    assert not cert.accepted and cert.samples_used < cert.n_samples


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"delta_b": 0.0}, ValueError, "delta_b"),
        ({"tau": 1.0}, ValueError, "tau"),
        ({"p": 0.0}, ValueError, "'p'"),
        ({"p": 1.5}, ValueError, "'p'"),
        ({"epsilon": -0.1}, ValueError, "epsilon"),
        ({"epsilon": math.inf}, ValueError, "epsilon"),
        ({"event": "gaussian"}, TypeError, "event"),
        ({"event": SampledWithoutReplacementDpEvent(10, 2, GaussianDpEvent(1.0))},
         UnsupportedEventError, "verify"),
        ({"event": PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 10.0, None, 0.0)}, UnsupportedEventError, "verify"),
        ({"rng": "secret"}, TypeError, "rng"),
    ],
)
def test_verify_bad_input(kwargs, err, match) -> None:
    args = {"event": GaussianDpEvent(1.0), "epsilon": 1.0, "delta_b": 0.01, "tau": 2.0,
            "p": 1e-3, "rng": 0} | kwargs
    with pytest.raises(err, match=match):
        verify(args.pop("event"), args.pop("epsilon"), args.pop("delta_b"), **args)


# --------------------------------------------------------------------------- release
class Recorder:
    """A mechanism that records its calls and what the ledger held when it ran."""

    def __init__(self, ledger_path=None, dataset=None, value=42.0):
        self.calls, self.ledger_path, self.dataset, self.value = 0, ledger_path, dataset, value
        self.seen_charges = None

    def __call__(self, data):
        self.calls += 1
        if self.ledger_path is not None:
            with Ledger(self.ledger_path, record=()) as other:  # a second connection
                self.seen_charges = other.history(self.dataset)
        return self.value + float(np.sum(data))


@pytest.fixture
def ledger(tmp_path):
    path = tmp_path / "ledger.db"
    with Ledger(path, record=()) as led:
        led.set_budget("people", epsilon=10.0, delta=0.1, accountant="pld")
        yield led


def test_verified_release_is_charged_before_the_output(ledger) -> None:
    mech = Recorder(ledger.path, "people")
    res = evr_release(mech, np.ones(3), GaussianDpEvent(2.0), target_epsilon=2.0,
                      target_delta=0.05, n_estimate=20_000, ledger=ledger, dataset="people",
                      purpose="count", rng=3)
    assert isinstance(res, EVRResult) and res.path == "verified" and res.released
    assert mech.calls == 1 and res.output == 45.0
    assert res.certificate.accepted and res.epsilon <= 2.0 and res.delta <= 0.05
    assert res.epsilon == res.certificate.epsilon
    assert res.delta == pytest.approx(res.certificate.tau * res.certificate.delta_b + res.certificate.p)
    # The mechanism ran only after the charge (with its certificate) was committed.
    assert len(mech.seen_charges) == 1 and not mech.seen_charges[0].released
    assert mech.seen_charges[0].certificate["accepted"] is True
    record = ledger.history("people")[-1]
    assert record.released and record.id == res.ledger_entry_id and record.seeded is True
    assert record.certificate == res.certificate.to_dict()
    # The verified claim is within the estimate's reach: ε̂ at δ_b/κ plus one SE.
    assert res.epsilon == pytest.approx(
        min(res.estimate.value + res.estimate.standard_error, 2.0), rel=1e-6)


def test_rejection_never_releases(ledger) -> None:
    mech = Recorder()
    # True ε at these δ's is ≈ 4: the claim (≤ 0.3) is false and the verifier rejects it.
    res = evr_release(mech, np.ones(3), GaussianDpEvent(1.0), target_epsilon=0.3,
                      target_delta=0.05, n_estimate=10_000, ledger=ledger, dataset="people", rng=4)
    assert mech.calls == 0 and res.output is None and not res.released
    assert res.path == "rejected" and not res.certificate.accepted
    assert (res.epsilon, res.delta) == (0.0, 0.0)
    record = ledger.history("people")[-1]  # the attempt is recorded, at zero cost
    assert record.certificate["accepted"] is False and record.details["evr_path"] == "rejected"
    assert ledger.spent("people").epsilon == 0.0


def test_fallback_guarantee_is_the_rigorous_accountants(ledger) -> None:
    mech, fb = Recorder(value=1.0), Recorder(value=2.0)
    fallback_event = GaussianDpEvent(30.0)
    res = evr_release(mech, np.zeros(2), GaussianDpEvent(1.0), target_epsilon=0.3,
                      target_delta=0.05, n_estimate=10_000, fallback=fb,
                      fallback_event=fallback_event, ledger=ledger, dataset="people", rng=5)
    assert mech.calls == 0 and fb.calls == 1 and res.output == 2.0 and res.path == "fallback"
    rigorous = make_accountant("pld").compose(fallback_event).get_epsilon(0.05)
    assert res.epsilon == rigorous and res.delta == 0.05
    record = ledger.history("people")[-1]
    assert record.event == fallback_event and record.certificate["accepted"] is False


def test_fallback_must_meet_the_target_before_anything_runs() -> None:
    fb = Recorder()
    with pytest.raises(ValueError, match="fallback_event"):
        evr_release(Recorder(), 0, GaussianDpEvent(1.0), target_epsilon=0.3, target_delta=0.05,
                    fallback=fb, fallback_event=GaussianDpEvent(1.0), rng=0)
    assert fb.calls == 0
    with pytest.raises(ValueError, match="together"):
        evr_release(Recorder(), 0, GaussianDpEvent(1.0), target_epsilon=1.0, target_delta=0.05,
                    fallback=fb, rng=0)


def test_budget_exceeded_releases_nothing(tmp_path) -> None:
    with Ledger(tmp_path / "l.db", record=()) as led:
        led.set_budget("tiny", epsilon=0.1, delta=1e-3, accountant="pld")
        mech = Recorder()
        with pytest.raises(BudgetExceededError):
            evr_release(mech, 0, GaussianDpEvent(2.0), target_epsilon=2.0, target_delta=0.05,
                        n_estimate=10_000, ledger=led, dataset="tiny", rng=6)
        assert mech.calls == 0 and led.spent("tiny").charges == 0


def test_release_without_ledger_and_with_csprng() -> None:
    mech = Recorder()
    res = evr_release(mech, np.ones(2), PoissonSampledDpEvent(0.5, GaussianDpEvent(1.5)),
                      target_epsilon=3.0, target_delta=0.05, n_estimate=20_000,
                      importance_factor="auto")
    assert res.path == "verified" and mech.calls == 1 and res.certificate.seeded is False
    assert res.ledger_entry_id is None


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"target_epsilon": 0.0}, ValueError, "target_epsilon"),
        ({"target_delta": 0.0}, ValueError, "target_delta"),
        ({"target_delta": 1.0}, ValueError, "target_delta"),
        ({"tau": 1.0}, ValueError, "tau"),
        ({"p": 0.06}, ValueError, "'p'"),
        ({"kappa": 0.5}, ValueError, "kappa"),
        ({"margin_se": -1.0}, ValueError, "margin_se"),
        ({"mechanism": 3}, TypeError, "mechanism"),
        ({"event": PTRDpEvent(1.0, 1e-6, 0.5, 2.0, 10.0, None, 0.0)}, UnsupportedEventError, "evr_release"),
        ({"ledger": object()}, ValueError, "dataset"),
        ({"seeded": 1}, TypeError, "seeded"),
        ({"n_estimate": 1}, ValueError, "n_estimate"),
        ({"sensitivity": 0.0}, ValueError, "sensitivity"),
        ({"sampling": 3}, TypeError, "sampling"),
        ({"importance_factor": 0.5}, ValueError, "importance_factor"),
        ({"importance_factor": "best"}, ValueError, "importance_factor"),
    ],
)
def test_evr_release_bad_input(kwargs, err, match) -> None:
    mech = Recorder()
    args = {"mechanism": mech, "event": GaussianDpEvent(1.0), "target_epsilon": 1.0,
            "target_delta": 0.05, "rng": 0} | kwargs
    with pytest.raises(err, match=match):
        evr_release(args.pop("mechanism"), 0, args.pop("event"), **args)
    assert mech.calls == 0


# --------------------------------------------------------------------------- calibration
def test_calibrate_noise_reports_both_scales() -> None:
    def make(s):
        return SelfComposedDpEvent(PoissonSampledDpEvent(0.1, GaussianDpEvent(s)), 20)

    cal = calibrate_noise(make, 1.0, 1e-2, lower=0.2, upper=20.0, tau=1.5, kappa=1.5,
                          n_estimate=10_000, rng=8, rigorous_accountant="rdp", rtol=1e-2)
    assert cal.evr_scale is not None and cal.certificates[-1].accepted
    assert len(cal.certificates) == 1 and cal.delta <= 1e-2 and cal.epsilon <= 1.0
    assert cal.ratio == pytest.approx(cal.evr_scale / cal.rigorous_scale)
    # The rigorous scale meets the target and is minimal to within rtol.
    rdp = lambda s: make_accountant("rdp").compose(make(s)).get_epsilon(1e-2)
    assert rdp(cal.rigorous_scale) <= 1.0 < rdp(cal.rigorous_scale / 1.011)
    with pytest.raises(ValueError, match="upper"):
        calibrate_noise(make, 1.0, 1e-2, lower=0.01, upper=0.02, rng=0, rigorous_accountant="rdp")
    with pytest.raises(ValueError, match="max_attempts"):
        calibrate_noise(make, 1.0, 1e-2, lower=0.2, upper=20.0, max_attempts=0)


def test_calibrate_noise_counts_every_attempt() -> None:
    # Far too many samples are not needed: a claim at the bisection's edge may be rejected,
    # and each of the attempts gets p / max_attempts so the total stays p.
    def make(s):
        return SelfComposedDpEvent(GaussianDpEvent(s), 4)

    cal = calibrate_noise(make, 1.0, 0.05, lower=0.5, upper=20.0, p=0.004, max_attempts=4,
                          n_estimate=5_000, rng=9, rigorous_accountant="rdp")
    assert all(c.p == pytest.approx(0.001) for c in cal.certificates)
    assert cal.delta == pytest.approx(cal.certificates[0].tau * cal.certificates[0].delta_b + 0.004)


def test_release_result_marks_seeded_runs() -> None:
    # A reproducible (seeded) run, or a mechanism whose noise the caller declares seeded, must
    # say so on the released result itself, not only in the ledger row.
    event = GaussianDpEvent(2.0)
    kw = {"target_epsilon": 2.0, "target_delta": 0.05, "n_estimate": 10_000}
    assert evr_release(Recorder(), 0, event, rng=3, **kw).seeded is True
    assert evr_release(Recorder(), 0, event, seeded=True, **kw).seeded is True
    assert evr_release(Recorder(), 0, event, **kw).seeded is False
