"""Tests of privval.robust: PTR-SGD's aggregate, distance to instability, accounting, DP-SGD.

Oracles: the add/remove trimmed-sum change recomputed from sorted columns and compared with
the clamp identity; observed changes over explicit neighbours (random and extreme records)
against the envelope and GS2; accountants.ptr.ptr_rdp / a fresh RdpAccountant; ledger replay;
the exact Gaussian update distribution and Opacus' DPOptimizer for the DP-SGD reduction.
Statistical tests use fixed seeds and false-alarm rate alpha = 1e-6.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from accountants.accountant import UnsupportedEventError
from accountants.events import PoissonSampledDpEvent, PTRDpEvent
from accountants.ptr import ptr_rdp
from accountants.rdp import RdpAccountant
from privval.robust import (
    robust_aggregate,
    robust_distance_to_instability,
    robust_local_sensitivity_envelope,
    trimmed_sum_global_sensitivity,
)

ALPHA = 1e-6


# --------------------------------------------------------------------------- numpy maths
def _ball(rng: np.random.Generator, n: int, d: int, c: float, centre_scale: float = 0.6) -> np.ndarray:
    """n rows in the ℓ2 ball of radius c: a common direction plus spread (clipped)."""
    centre = rng.normal(size=d)
    centre *= centre_scale * c / np.linalg.norm(centre)
    rows = centre + rng.normal(scale=rng.uniform(0.05, 0.6) * c / math.sqrt(d), size=(n, d))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows * np.minimum(1.0, c / norms)


def _extreme_records(d: int, c: float, rng: np.random.Generator) -> list[np.ndarray]:
    out = [c * e for e in np.eye(d)] + [-c * e for e in np.eye(d)]
    out += [c * np.ones(d) / math.sqrt(d), -c * np.ones(d) / math.sqrt(d), np.zeros(d)]
    z = rng.normal(size=d)
    out.append(c * z / np.linalg.norm(z))
    return out


def _neighbours(x: np.ndarray, c: float, rng: np.random.Generator) -> list[np.ndarray]:
    adds = [np.vstack([x, z]) for z in _extreme_records(x.shape[1], c, rng)]
    removes = [np.delete(x, i, axis=0) for i in range(x.shape[0])]
    return adds + removes


def _trimmed_sum_oracle(x: np.ndarray, t: int, m: int) -> np.ndarray:
    """Direct definition, one column at a time (no shared code with the module)."""
    n, d = x.shape
    out = np.zeros(d)
    for j in range(d):
        col = sorted(x[:, j])
        out[j] = sum(col[t : n - t]) if n > 2 * t else 0.0
    return out / m


def test_trimmed_sum_matches_definition_and_clamp_identity(rng):
    c, m = 1.0, 7
    for _ in range(40):
        n, d, t = int(rng.integers(0, 12)), int(rng.integers(1, 5)), int(rng.integers(0, 4))
        x = _ball(rng, n, d, c)
        got = robust_aggregate(x.reshape(n, d), clip_norm=c, trim=t, expected_batch_size=m)
        np.testing.assert_allclose(got, _trimmed_sum_oracle(x, t, m), atol=1e-12)
        z = _ball(rng, 1, d, c)[0]
        bigger = robust_aggregate(np.vstack([x, z]), clip_norm=c, trim=t, expected_batch_size=m)
        xs = np.sort(x, axis=0)
        if n >= 2 * t:
            lo = xs[t - 1] if t >= 1 else np.full(d, -np.inf)
            hi = xs[n - t] if t >= 1 else np.full(d, np.inf)
            expected = np.clip(z, lo, hi) / m
        else:
            expected = np.zeros(d)
        np.testing.assert_allclose(bigger - got, expected, atol=1e-12)


def test_trim_zero_is_the_clipped_mean_over_m(rng):
    x = rng.normal(size=(9, 4))
    clipped = x * np.minimum(1.0, 0.5 / np.linalg.norm(x, axis=1))[:, None]
    got = robust_aggregate(x, clip_norm=0.5, trim=0, expected_batch_size=12)
    np.testing.assert_allclose(got, clipped.sum(axis=0) / 12, atol=1e-12)


def test_global_sensitivity_closed_form_bounds_observed_changes(rng):
    assert trimmed_sum_global_sensitivity(2.0, 0, 8) == pytest.approx(0.25)
    assert trimmed_sum_global_sensitivity(1.0, 3, 10) == pytest.approx(math.sqrt(1 + 6 / 4) / 10)
    worst = 0.0
    c, m = 1.0, 10
    for _ in range(60):
        n, d, t = int(rng.integers(2, 14)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
        # adversarial batches: rows concentrated on few coordinates at full norm
        x = np.zeros((n, d))
        x[np.arange(n), rng.integers(0, d, size=n)] = c * rng.choice([-1.0, 1.0], size=n)
        if rng.random() < 0.5:
            x = _ball(rng, n, d, c, centre_scale=rng.uniform(0, 1))
        gs = trimmed_sum_global_sensitivity(c, t, m)
        base = robust_aggregate(x, clip_norm=c, trim=t, expected_batch_size=m)
        for y in _neighbours(x, c, rng):
            change = np.linalg.norm(robust_aggregate(y, clip_norm=c, trim=t, expected_batch_size=m) - base)
            assert change <= gs * (1 + 1e-12)
            worst = max(worst, change / gs)
    assert worst > 0.5  # the search is not vacuous


def test_envelope_bounds_local_sensitivity_and_is_monotone(rng):
    c, m = 1.0, 12
    for _ in range(40):
        n, d, t = int(rng.integers(1, 16)), int(rng.integers(1, 6)), int(rng.integers(0, 4))
        x = _ball(rng, n, d, c, centre_scale=rng.uniform(0, 0.9))
        kw = {"clip_norm": c, "trim": t, "expected_batch_size": m}
        u = [robust_local_sensitivity_envelope(x, k, **kw) for k in range(n + 4)]
        assert all(a <= b + 1e-15 for a, b in itertools.pairwise(u))
        assert u[-1] <= trimmed_sum_global_sensitivity(c, t, m) * (1 + 1e-12)
        base = robust_aggregate(x, **kw)
        for y in _neighbours(x, c, rng):
            assert np.linalg.norm(robust_aggregate(y, **kw) - base) <= u[0] * (1 + 1e-12) + 1e-15


def test_distance_has_sensitivity_one_and_certifies_beta(rng):
    """|Δ(x) − Δ(x′)| ≤ 1 on random neighbouring batches; Δ ≥ 1 ⇒ every change ≤ β."""
    c, m = 1.0, 16
    seen = set()
    for _ in range(60):
        n, d, t = int(rng.integers(4, 24)), int(rng.integers(1, 6)), int(rng.integers(0, 5))
        x = _ball(rng, n, d, c, centre_scale=rng.uniform(0, 0.9))
        kw = {"clip_norm": c, "trim": t, "expected_batch_size": m}
        gs = trimmed_sum_global_sensitivity(c, t, m)
        base = robust_aggregate(x, **kw)
        for beta in np.linspace(0.3, 1.05, 7) * gs:
            dist = robust_distance_to_instability(x, proposed_bound=float(beta), **kw)
            seen.add(dist)
            for y in _neighbours(x, c, rng):
                other = robust_distance_to_instability(y, proposed_bound=float(beta), **kw)
                if math.isinf(dist) or math.isinf(other):
                    assert dist == other
                else:
                    assert abs(dist - other) <= 1
                if dist >= 1:
                    change = np.linalg.norm(robust_aggregate(y, **kw) - base)
                    assert change <= beta * (1 + 1e-12)
    finite = {v for v in seen if math.isfinite(v)}
    assert math.inf in seen and 0.0 in seen and len(finite) >= 5  # not vacuous


def _sparse_adversarial_batch(t: int, d: int, c: float, rng: np.random.Generator) -> np.ndarray:
    """n = 2t + 1 rows: one zero row and 2t rows with value v on random supports.

    Every column has t + 1 entries v > 0 above t zeros, so its median window holds v and its
    trimming interval [x_(t), x_(n-t+1)] contains 0: removing the zero row moves each column
    by v although the removed record is 0 (the removal direction of the envelope).
    """
    n = 2 * t + 1
    x = np.zeros((n, d))
    for j in range(d):
        x[1 + rng.choice(2 * t, size=t + 1, replace=False), j] = 1.0
    counts = x.sum(axis=1).max()
    return x * (c / math.sqrt(counts))


def test_envelope_bounds_removal_changes_on_sparse_batches(rng):
    """U^(0) must bound the change from *removing* a record too, and Δ ≥ 1 must certify β.

    Oracle: brute-force removal of every row with the definition-level trimmed sum
    (_trimmed_sum_oracle). Closed form for t = 2, d = 4, S_j = all rows but the j-th: each
    removal of the zero row moves every coordinate by C/√3, an ℓ2 change of 2C/(√3 m) > C/m.
    """
    c, m = 1.0, 10
    x = np.zeros((5, 4))
    for i in range(4):
        x[i + 1, [j for j in range(4) if j != i]] = c / math.sqrt(3)
    change = np.linalg.norm(_trimmed_sum_oracle(x[1:], 2, m) - _trimmed_sum_oracle(x, 2, m))
    assert change == pytest.approx(2 * c / (math.sqrt(3) * m))
    kw = {"clip_norm": c, "trim": 2, "expected_batch_size": m}
    assert robust_local_sensitivity_envelope(x, 0, **kw) >= change * (1 - 1e-12)
    beta = c / m  # below the true local sensitivity: PTR must not certify it
    assert robust_distance_to_instability(x, proposed_bound=beta, **kw) == 0.0
    for _ in range(40):
        t, d = int(rng.integers(1, 5)), int(rng.integers(2, 9))
        x = _sparse_adversarial_batch(t, d, c, rng)
        kw = {"clip_norm": c, "trim": t, "expected_batch_size": m}
        base = _trimmed_sum_oracle(x, t, m)
        worst = max(np.linalg.norm(_trimmed_sum_oracle(np.delete(x, i, axis=0), t, m) - base)
                    for i in range(x.shape[0]))
        u0 = robust_local_sensitivity_envelope(x, 0, **kw)
        assert worst <= u0 * (1 + 1e-12) + 1e-15
        for beta in np.linspace(0.5, 1.0, 6) * u0:
            if robust_distance_to_instability(x, proposed_bound=float(beta), **kw) >= 1:
                assert worst <= beta * (1 + 1e-12)


def test_poisson_batch_rate_never_exceeds_the_accounted_rate():
    """Accounting uses q; the realised inclusion probability must be ≤ q (a higher one is
    less private). The batch draws 53-bit uniforms k/2**53, so exactly the words k below the
    acceptance bound are kept. Oracle: the exact rational q·2**53 (fractions.Fraction); the
    largest kept k must satisfy k + 1 ≤ q·2**53, i.e. (#kept)/2**53 ≤ q."""
    from fractions import Fraction
    from types import SimpleNamespace

    from privval.robust import _PoissonTrainer

    for q in (1 / 3, 0.1, 0.7, 2**-10, 1 - 2**-40):
        limit = Fraction(q) * 2**53  # realised rate = (#accepted k) / 2**53
        first_rejected = math.floor(limit)  # keeping it would give rate (floor + 1)/2**53 > q
        if first_rejected == limit:
            continue  # q·2**53 integral: no rounding question
        ks = np.array([first_rejected - 1, first_rejected, first_rejected + 1], dtype=np.uint64)

        class _Words:
            seeded = True

            def __init__(self, values):
                self.values = values

            def words(self, size):
                assert size == self.values.size
                return self.values << np.uint64(11)

        stub = SimpleNamespace(_source=_Words(ks), _n_total=ks.size, sampling_rate=q)
        kept = _PoissonTrainer._poisson_batch(stub)
        assert kept.tolist() == [0], q


def test_beta_at_global_sensitivity_never_fails_the_test(rng):
    x = _ball(rng, 10, 3, 1.0)
    gs = trimmed_sum_global_sensitivity(1.0, 2, 10)
    kw = {"clip_norm": 1.0, "trim": 2, "expected_batch_size": 10}
    assert robust_distance_to_instability(x, proposed_bound=gs, **kw) == math.inf
    assert robust_distance_to_instability(np.zeros((0, 3)), proposed_bound=gs, **kw) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "name", "error"),
    [
        ({"grads": [[np.nan]]}, "grads", ValueError),
        ({"grads": [1.0, 2.0]}, "grads", ValueError),
        ({"grads": "abc"}, "grads", TypeError),
        ({"proposed_bound": -1.0}, "proposed_bound", ValueError),
        ({"proposed_bound": "1"}, "proposed_bound", TypeError),
        ({"clip_norm": 0.0}, "clip_norm", ValueError),
        ({"trim": 0.5}, "trim", ValueError),
        ({"trim": -1}, "trim", ValueError),
        ({"trim": True}, "trim", TypeError),
        ({"expected_batch_size": 0}, "expected_batch_size", ValueError),
    ],
)
def test_maths_bad_input(kwargs, name, error):
    args = {"grads": [[0.1, 0.2]], "proposed_bound": 0.1, "clip_norm": 1.0, "trim": 0, "expected_batch_size": 4}
    args.update(kwargs)
    with pytest.raises(error, match=f"'{name}' parameter of robust_distance_to_instability"):
        robust_distance_to_instability(args.pop("grads"), **args)


# --------------------------------------------------------------------------- torch / Opacus
torch_mark = pytest.mark.torch


@pytest.fixture
def torch_mod():
    torch = pytest.importorskip("torch")
    pytest.importorskip("opacus")
    torch.set_num_threads(1)
    return torch


def _problem(torch, n: int = 40, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 2), x, y


def _ptr(torch, **overrides):
    from privval.robust import PTRSGD

    model, x, y = _problem(torch)
    kwargs = {"lr": 0.5, "clip_norm": 1.0, "expected_batch_size": 20, "trim": 2, "noise_multiplier": 1.5,
                  "proposed_bound": 0.06, "test_scale": 1.0, "delta0": 1e-6, "rng": 0}
    kwargs.update(overrides)
    return PTRSGD(model, x, y, **kwargs)


@torch_mark
def test_per_step_accounting_equals_ptr_rdp(torch_mod):
    sgd = _ptr(torch_mod)
    results = sgd.train(4)
    assert [r.step for r in results] == [1, 2, 3, 4] and sgd.steps == 4
    # the event written from the test's own parameters (s = 1.5, β = 0.06, C = 1, m = 20, t = 2)
    expected = PTRDpEvent(test_scale=1.0, delta0=1e-6, proposed_bound=0.06, sigma_pass=1.5 * 0.06,
                          global_sensitivity_pass=math.sqrt(1 + 4 / 3) / 20, sigma_fail=1.5 / 20,
                          global_sensitivity_fail=1 / 20)
    assert sgd.event.test_scale == expected.test_scale and sgd.event.delta0 == expected.delta0
    for field in ("proposed_bound", "sigma_pass", "global_sensitivity_pass", "sigma_fail",
                  "global_sensitivity_fail"):
        assert getattr(sgd.event, field) == pytest.approx(getattr(expected, field), rel=1e-12)
    orders = sgd.accountant.orders
    np.testing.assert_allclose(sgd.accountant.rdp, 4 * ptr_rdp(expected, orders, sampling_rate=0.5),
                               rtol=1e-9)
    fresh = RdpAccountant(orders=orders)
    for _ in range(4):  # one compose per step
        fresh.compose(PoissonSampledDpEvent(0.5, expected))
    assert sgd.epsilon(1e-5) == pytest.approx(fresh.get_epsilon(1e-5), rel=1e-9)
    g = sgd.guarantee(1e-5)
    assert g.epsilon == pytest.approx(fresh.get_epsilon(1e-5), rel=1e-9)
    assert (g.steps, g.neighboring_relation, g.seeded, g.accountant) == (4, "add_or_remove_one", True, "rdp")
    for name in ("pld", "mc"):  # PTR events have only the RDP bound
        with pytest.raises(UnsupportedEventError):
            sgd.guarantee(1e-5, accountant=name)


@torch_mark
def test_calibrated_run_meets_target_and_refuses_extra_steps(torch_mod):
    from privval.robust import PTRSGD

    model, x, y = _problem(torch_mod)
    sgd = PTRSGD.calibrated(model, x, y, epsilon=3.0, delta=1e-5, steps=3, lr=0.5, clip_norm=1.0,
                            expected_batch_size=20, trim=2, rng=1)
    sgd.train(3)
    assert sgd.epsilon(1e-5) <= 3.0
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="max_steps=3"):
        sgd.step()
    assert sgd.steps == 3 and all(torch_mod.equal(a, b) for a, b in zip(before, model.parameters()))


@torch_mark
def test_ledger_replays_to_the_same_epsilon(torch_mod, tmp_path):
    from accountants.ledger import BudgetExceededError, Ledger

    ledger = Ledger(tmp_path / "ledger.db")
    ledger.set_budget("train", epsilon=50.0, delta=1e-5, accountant="rdp")
    sgd = _ptr(torch_mod, ledger=ledger, dataset="train", purpose="test")
    results = sgd.train(3)
    assert all(r.ledger_entry is not None for r in results)
    assert ledger.spent("train").epsilon == pytest.approx(sgd.epsilon(1e-5), rel=1e-9)
    assert ledger.replay("train", "rdp").epsilon == pytest.approx(sgd.epsilon(1e-5), rel=1e-9)
    assert len(ledger.history("train")) == 3
    # a refused charge spends nothing, computes nothing and leaves the model untouched
    ledger.set_budget("small", epsilon=0.01, delta=1e-5, accountant="rdp")
    small = _ptr(torch_mod, ledger=ledger, dataset="small")
    before = [p.detach().clone() for p in small._params]
    with pytest.raises(BudgetExceededError):
        small.step()
    assert small.steps == 0 and small.epsilon(1e-5) == 0.0
    assert all(torch_mod.equal(a, b) for a, b in zip(before, small._params))
    assert ledger.spent("small").charges == 0


def _one_step_updates(torch, make, reps: int) -> np.ndarray:
    """(reps, d) samples of the update u = (θ0 − θ1)/lr of one step from fixed θ0."""
    out = []
    for r in range(reps):
        sgd = make(r)
        theta0 = torch.cat([p.detach().reshape(-1) for p in sgd._params]).clone()
        sgd.step()
        theta1 = torch.cat([p.detach().reshape(-1) for p in sgd._params])
        out.append(((theta0 - theta1) / sgd.lr).double().numpy())
        sgd.close()
    return np.array(out)


def _clipped_mean_oracle(torch, model, x, y, c: float, m: int) -> np.ndarray:
    """Per-example gradients by plain autograd, one example at a time (no Opacus)."""
    rows = []
    for i in range(x.shape[0]):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        g = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy()
        rows.append(g * min(1.0, c / np.linalg.norm(g)))
    return np.sum(rows, axis=0) / m


@torch_mark
@pytest.mark.slow
def test_no_corruption_beta_at_gs_matches_dp_sgd_distribution(torch_mod):
    """trim = 0, β = GS2 = C/m, q = 1: every step passes and PTR-SGD's update is DP-SGD's.

    Expected: u ~ N(Σ clip(g_i)/m, (s·C/m)² I). One-sample KS of the pooled standardised
    coordinates against N(0, 1) for PTR-SGD and for Opacus' DPOptimizer, and a two-sample KS
    between them, each at alpha = 1e-6; a 1.25x noise multiplier must be rejected (power).
    """
    from privval.robust import DPSGD, PTRSGD

    torch = torch_mod
    n, c, s, reps = 16, 0.8, 1.3, 300
    model, x, y = _problem(torch, n=n, seed=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mean = _clipped_mean_oracle(torch, model, x, y, c, n)
    scale = s * c / n

    def fresh():
        model.load_state_dict(state)
        return model

    def ptr(r, mult=s):
        return PTRSGD(fresh(), x, y, lr=0.1, clip_norm=c, expected_batch_size=n, trim=0,
                      noise_multiplier=mult, proposed_bound=c / n, test_scale=1.0, delta0=1e-6,
                      rng=1000 + r)

    def dpsgd(r):
        return DPSGD(fresh(), x, y, lr=0.1, clip_norm=c, expected_batch_size=n,
                     noise_multiplier=s, rng=5000 + r)

    u_ptr = _one_step_updates(torch, ptr, reps)
    u_dp = _one_step_updates(torch, dpsgd, reps)
    z_ptr = ((u_ptr - mean) / scale).ravel()
    z_dp = ((u_dp - mean) / scale).ravel()
    assert stats.kstest(z_ptr, "norm").pvalue > ALPHA
    assert stats.kstest(z_dp, "norm").pvalue > ALPHA
    assert stats.ks_2samp(z_ptr, z_dp).pvalue > ALPHA
    u_wrong = _one_step_updates(torch, lambda r: ptr(r, 1.25 * s), reps)
    assert stats.kstest(((u_wrong - mean) / scale).ravel(), "norm").pvalue < ALPHA


@torch_mark
def test_unstable_batches_pass_with_probability_delta0(torch_mod):
    """β below C/m makes Δ = 0 on every batch, so the test passes w.p. exactly δ0."""
    sgd = _ptr(torch_mod, proposed_bound=0.01, delta0=0.25, lr=1e-6, rng=7)
    steps = 400
    sgd.train(steps)
    p = stats.binomtest(sgd.passes, steps, 0.25).pvalue
    assert p > ALPHA


@torch_mark
def test_gaussian_test_unstable_batches_pass_with_probability_delta0(torch_mod):
    """The Gaussian test: threshold b·Φ̄⁻¹(δ0), so Δ = 0 passes w.p. δ0 too."""
    sgd = _ptr(torch_mod, proposed_bound=0.01, delta0=0.25, lr=1e-6, rng=8,
               test_noise="gaussian")
    assert sgd.event.test_noise == "gaussian"
    assert sgd.threshold == pytest.approx(1.0 * stats.norm.isf(0.25), rel=1e-9)
    steps = 400
    sgd.train(steps)
    assert stats.binomtest(sgd.passes, steps, 0.25).pvalue > ALPHA
    np.testing.assert_allclose(sgd.accountant.rdp,
                               steps * ptr_rdp(sgd.event, sgd.accountant.orders, 0.5), rtol=1e-9)


@torch_mark
def test_calibrated_gaussian_test_meets_target(torch_mod):
    from privval.robust import PTRSGD

    model, x, y = _problem(torch_mod)
    sgd = PTRSGD.calibrated(model, x, y, epsilon=3.0, delta=1e-5, steps=3, lr=0.5, clip_norm=1.0,
                            expected_batch_size=20, trim=2, rng=1, test_noise="gaussian")
    sgd.train(3)
    assert sgd.event.test_noise == "gaussian" and sgd.epsilon(1e-5) <= 3.0
    with pytest.raises(ValueError, match="'test_noise'"):
        _ptr(torch_mod, test_noise="student")


@torch_mark
def test_seeded_runs_reproduce_and_secure_runs_are_not_seeded(torch_mod):
    a, b = _ptr(torch_mod, rng=3), _ptr(torch_mod, rng=3)
    a.train(3)
    b.train(3)
    assert all(torch_mod.equal(p, q) for p, q in zip(a._params, b._params))
    secure = _ptr(torch_mod, rng=None)
    secure.step()
    assert secure.seeded is False and secure.guarantee(1e-5).seeded is False


@torch_mark
def test_dp_sgd_baseline_calibrated(torch_mod):
    from privval.robust import DPSGD

    model, x, y = _problem(torch_mod)
    sgd = DPSGD.calibrated(model, x, y, epsilon=2.0, delta=1e-5, steps=3, lr=0.5, clip_norm=1.0,
                           expected_batch_size=10, rng=0)
    sgd.train(3)
    assert sgd.epsilon(1e-5) <= 2.0
    # Monte Carlo estimate of the tight curve: below the RDP upper bound (large margin here)
    mc = sgd.guarantee(1e-5, accountant="mc", accountant_options={"rng": 0})
    assert mc.accountant == "mc" and 0 < mc.epsilon < sgd.epsilon(1e-5)
    assert sgd.guarantee(1e-5).event == PoissonSampledDpEvent(0.25, sgd._events().event)
    with pytest.raises(ValueError, match="max_steps=3"):
        sgd.step()


@torch_mark
def test_dp_sgd_noise_comes_from_the_noise_source(torch_mod, monkeypatch):
    """DP-SGD's Gaussian noise must be drawn from accountants.noise (OS CSPRNG by default),
    not from a torch generator. Oracle: q = 1 (every example in the batch), the clipped mean
    by plain autograd (_clipped_mean_oracle), and the recorded draws: the update must equal
    mean + noise/m exactly, with d draws of standard deviation s·C from the trainer's source.
    """
    import privval.robust as robust_mod

    torch = torch_mod
    n, c, s = 12, 0.8, 1.3
    model, x, y = _problem(torch, n=n, seed=5)
    mean = _clipped_mean_oracle(torch, model, x, y, c, n)
    draws = []
    real = robust_mod.sample_gaussian

    def recording(sigma, size, source):
        out = real(sigma, size, source)
        draws.append((sigma, source, np.array(out, dtype=np.float64).ravel()))
        return out

    monkeypatch.setattr(robust_mod, "sample_gaussian", recording)
    sgd = robust_mod.DPSGD(model, x, y, lr=0.1, clip_norm=c, expected_batch_size=n,
                           noise_multiplier=s, rng=None)
    theta0 = torch.cat([p.detach().reshape(-1) for p in sgd._params]).double().numpy()
    sgd.step()
    theta1 = torch.cat([p.detach().reshape(-1) for p in sgd._params]).double().numpy()
    assert sgd.seeded is False
    assert draws and all(sig == pytest.approx(s * c) and src is sgd._source for sig, src, _ in draws)
    noise = np.concatenate([d for _, _, d in draws])
    assert noise.size == sgd.dimension
    np.testing.assert_allclose((theta0 - theta1) / sgd.lr, mean + noise / n, rtol=0, atol=1e-5)
    sgd.close()


@torch_mark
@pytest.mark.parametrize(
    ("overrides", "name", "error"),
    [
        ({"noise_multiplier": -1.0}, "noise_multiplier", ValueError),
        ({"proposed_bound": 0.0}, "proposed_bound", ValueError),
        ({"test_scale": math.inf}, "test_scale", ValueError),
        ({"delta0": 0.7}, "delta0", ValueError),
        ({"delta0": 1e-15}, "delta0", ValueError),
        ({"trim": 0.5}, "trim", ValueError),
        ({"expected_batch_size": 41}, "expected_batch_size", ValueError),
        ({"dataset": "train"}, "dataset", ValueError),  # no ledger: nothing would be charged
        ({"lr": 0}, "lr", ValueError),
        ({"clip_norm": -1.0}, "clip_norm", ValueError),
        ({"ledger": object(), "dataset": "d"}, "ledger", TypeError),
        ({"purpose": 3}, "purpose", TypeError),
        ({"loss_fn": 3}, "loss_fn", TypeError),
        ({"max_steps": 0}, "max_steps", ValueError),
    ],
)
def test_ptrsgd_bad_input(torch_mod, overrides, name, error):
    with pytest.raises(error, match=f"'{name}' parameter of PTRSGD"):
        _ptr(torch_mod, **overrides)


@torch_mark
def test_ptrsgd_bad_model_data_and_loss(torch_mod):
    from privval.robust import PTRSGD

    model, x, y = _problem(torch_mod)
    kw = {"lr": 0.5, "clip_norm": 1.0, "expected_batch_size": 20, "noise_multiplier": 1.0,
              "proposed_bound": 0.06, "test_scale": 1.0, "delta0": 1e-6}
    with pytest.raises(TypeError, match="'model' parameter of PTRSGD"):
        PTRSGD("model", x, y, **kw)
    with pytest.raises(ValueError, match="'y' parameter of PTRSGD"):
        PTRSGD(model, x, y[:5], **kw)
    with pytest.raises(ValueError, match="'x' parameter of PTRSGD"):
        PTRSGD(model, x * math.nan, y, **kw)
    mean_loss = PTRSGD(model, x, y, loss_fn=torch_mod.nn.CrossEntropyLoss(), rng=0, **kw)
    with pytest.raises(ValueError, match="'loss_fn' parameter of PTRSGD"):
        mean_loss.step()
    with pytest.raises(ValueError, match="'delta' parameter of PTRSGD.guarantee"):
        mean_loss.guarantee(0.0)


def test_privval_imports_without_torch_and_trainers_name_the_extra():
    """In a fresh interpreter where torch/opacus cannot be imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'opacus'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import privval\n"
        "assert 'torch' not in sys.modules\n"
        "try:\n"
        "    privval.PTRSGD(None, [[1.0]], [0], lr=1.0, clip_norm=1.0, expected_batch_size=1,\n"
        "                   noise_multiplier=1.0, proposed_bound=1.0, test_scale=1.0, delta0=0.1)\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install privval[torch]" in out.stdout
