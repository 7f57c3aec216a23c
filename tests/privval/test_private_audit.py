"""Statistical DP audit of DP-TKNN-Shapley's released counts on neighbouring datasets.

D and D' differ in one training record placed in the ball of the only validation point with a
matching label, so it can only move the released ``Ca``. We run the public mechanism many times
on each (independent seeds) and test, for every threshold set S = {Ca >= t} and its complement,
the (ε, δ)-DP inequality P_D'(S) ≤ e^ε P_D(S) + δ (and with D, D' swapped) with Clopper-Pearson
bounds: a violation beyond sampling error fails. All tests together have false-alarm rate at
most ALPHA (Bonferroni over sets and directions). A negative control runs the same audit on a
deliberately broken release (too little noise, no subsampling) and must flag it, so the audit
is shown to have power.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from accountants.noise import make_noise_source
from privval.private import _encode, _release_values, dp_tknn_shapley

ALPHA = 1e-6
RUNS = 2000  # releases per dataset for the audit
BROKEN_RUNS = 600  # for the negative control, whose violation is large
EPSILON, DELTA, RATE = 1.0, 1e-5, 0.5


def _neighbouring_datasets():
    x_val = np.zeros((1, 2))
    y_val = np.array([1])
    # 6 matching and 3 non-matching records in the ball (radius 1), 4 far away.
    x_in = np.array([[0.1 * i, 0.05] for i in range(9)])
    x_far = np.full((4, 2), 5.0) + np.arange(4)[:, None]
    x_train = np.vstack([x_in, x_far])
    y_train = np.array([1] * 6 + [0] * 3 + [1, 0, 1, 0])
    extra = np.array([[0.0, -0.3]])
    x_neigh = np.vstack([x_train, extra])
    y_neigh = np.append(y_train, 1)
    return (x_train, y_train), (x_neigh, y_neigh), (x_val, y_val)


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    lo = 0.0 if k == 0 else stats.beta.ppf(level, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.isf(level, k + 1, n - k)
    return float(lo), float(hi)


def _audit(ca_d: np.ndarray, ca_n: np.ndarray, epsilon: float, delta: float) -> tuple[bool, float]:
    """(all inequalities hold within sampling error, best empirical ε lower bound)."""
    thresholds = np.arange(min(ca_d.min(), ca_n.min()), max(ca_d.max(), ca_n.max()) + 2)
    sets = [(lambda c, t=t: c >= t) for t in thresholds] + [(lambda c, t=t: c < t) for t in thresholds]
    level = ALPHA / (2 * 2 * len(sets))  # two tails per test, two directions, all sets
    ok, best = True, 0.0
    for member in sets:
        k_d, k_n = int(member(ca_d).sum()), int(member(ca_n).sum())
        for k_p, n_p, k_q, n_q in ((k_n, ca_n.size, k_d, ca_d.size), (k_d, ca_d.size, k_n, ca_n.size)):
            p_lo, _ = _clopper_pearson(k_p, n_p, level)
            _, q_hi = _clopper_pearson(k_q, n_q, level)
            if p_lo > math.exp(epsilon) * q_hi + delta:
                ok = False
            if p_lo - delta > 0 and q_hi > 0:
                best = max(best, math.log((p_lo - delta) / q_hi))
    return ok, best


def _released_ca(x_train, y_train, x_val, y_val, seeds) -> np.ndarray:
    out = np.empty(len(seeds), dtype=np.int64)
    for i, seed in enumerate(seeds):
        rel = dp_tknn_shapley(x_train, y_train, x_val, y_val, tau=1.0, epsilon=EPSILON,
                              delta=DELTA, sampling_rate=RATE, rng=int(seed), n_classes=2)
        out[i] = rel.noisy_counts[0, 0]
    return out


@pytest.mark.slow
def test_released_counts_respect_the_claimed_guarantee():
    (xt, yt), (xn, yn), (xv, yv) = _neighbouring_datasets()
    ca_d = _released_ca(xt, yt, xv, yv, range(RUNS))
    ca_n = _released_ca(xn, yn, xv, yv, range(RUNS, 2 * RUNS))
    # The neighbour's record is in the ball and matches: it shifts Ca by Bernoulli(q).
    assert ca_n.mean() > ca_d.mean()
    ok, empirical = _audit(ca_d, ca_n, EPSILON, DELTA)
    assert ok, f"empirical privacy loss {empirical:.3f} exceeds the claim ε={EPSILON}"
    assert empirical <= EPSILON


@pytest.mark.slow
def test_the_audit_flags_a_release_with_too_little_noise():
    (xt, yt), (xn, yn), (xv, yv) = _neighbouring_datasets()
    sigma = dp_tknn_shapley(xt, yt, xv, yv, tau=1.0, epsilon=EPSILON, delta=DELTA,
                            sampling_rate=RATE, rng=0, n_classes=2).noise_scale

    def broken(x, y, seed0):
        ct, cv, c = _encode(y, yv, 2, "audit")
        src = make_noise_source(seed0)
        out = np.empty(BROKEN_RUNS, dtype=np.int64)
        for i in range(BROKEN_RUNS):
            # No subsampling and a fifth of the calibrated noise: a privacy bug.
            _, noisy = _release_values(x, ct, xv, cv, c, tau=1.0, metric="euclidean", q=1.0,
                                       sigma=sigma / 5, noise="discrete_gaussian", source=src,
                                       max_contributions=None, budget=2**20, progress=False)
            out[i] = noisy[0, 0]
        return out

    ok, empirical = _audit(broken(xt, yt, 1), broken(xn, yn, 2), EPSILON, DELTA)
    assert not ok and empirical > EPSILON
