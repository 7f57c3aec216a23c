"""Samplers against their exact probability mass functions, and the randomness source.

Every statistical test uses a fixed seed and a false-alarm rate α = 1e-6: χ² goodness of fit
(p-value ≥ α), the Dvoretzky-Kiefer-Wolfowitz bound sup|F_n − F| ≤ sqrt(ln(2/α)/(2n)) (valid,
conservatively, for discrete laws), and moments within z_{α/2} = 4.89 standard errors. The
oracles are the pmfs written from their definitions, P(x) ∝ exp(−x²/(2σ²)) and
P(x) ∝ exp(−|x|/t), normalised numerically over a wide window.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from scipy import stats

from accountants import noise
from accountants.noise import (
    NoiseSource,
    make_noise_source,
    sample_discrete_gaussian,
    sample_discrete_laplace,
    sample_gaussian,
    sample_laplace,
)

ALPHA = 1e-6
Z = stats.norm.isf(ALPHA / 2)  # 4.89
N = 200_000


def dg_pmf(sigma: float, support: np.ndarray) -> np.ndarray:
    window = np.arange(-int(60 * sigma) - 50, int(60 * sigma) + 51)
    log_norm = np.log(np.sum(np.exp(-(window.astype(float) ** 2) / (2 * sigma**2))))
    return np.exp(-(support.astype(float) ** 2) / (2 * sigma**2) - log_norm)


def dl_pmf(scale: float, support: np.ndarray) -> np.ndarray:
    a = 1.0 / scale
    return math.tanh(a / 2) * np.exp(-a * np.abs(support.astype(float)))


def check_against_pmf(samples: np.ndarray, pmf, width: float) -> None:
    n = samples.size
    half = max(int(math.ceil(width)), int(np.abs(samples).max()) + 1)
    lo = -half
    support = np.arange(-half, half + 1)
    p = pmf(support)
    assert 1.0 - p.sum() < 1e-9  # the window holds (essentially) all the mass
    counts = np.bincount(samples - lo, minlength=support.size)
    # χ²: individual cells with expected count ≥ 20, tails pooled
    expected = n * p
    keep = expected >= 20
    first, last = np.flatnonzero(keep)[[0, -1]]
    obs = [counts[:first].sum(), *counts[first : last + 1], counts[last + 1 :].sum()]
    exp = [expected[:first].sum(), *expected[first : last + 1], expected[last + 1 :].sum()]
    obs, exp = np.array(obs, float), np.array(exp, float)
    mask = exp > 0
    exp = exp[mask] * obs[mask].sum() / exp[mask].sum()
    pvalue = stats.chisquare(obs[mask], exp).pvalue
    assert pvalue >= ALPHA, f"chi-square p = {pvalue}"
    # DKW (Kolmogorov-type) bound on the empirical CDF
    gap = np.max(np.abs(np.cumsum(counts) / n - np.cumsum(p)))
    assert gap <= math.sqrt(math.log(2 / ALPHA) / (2 * n)), f"sup|F_n - F| = {gap}"
    # mean and variance within Z standard errors of the exact moments
    mean = float(np.sum(support * p))
    var = float(np.sum((support - mean) ** 2 * p))
    mu4 = float(np.sum((support - mean) ** 4 * p))
    assert abs(samples.mean() - mean) <= Z * math.sqrt(var / n)
    assert abs(samples.var() - var) <= Z * math.sqrt((mu4 - var**2) / n) + 1e-12


@pytest.mark.parametrize(
    "sigma, seed",
    [(0.4, 1), (1.5, 2), (3.3, 3), (40.0, 4)],  # 1.5 is dyadic (int64 path); 3.3 needs big ints
)
def test_discrete_gaussian_matches_pmf(sigma, seed):
    z = sample_discrete_gaussian(sigma, N, make_noise_source(seed))
    assert z.dtype == np.int64 and z.shape == (N,)
    check_against_pmf(z, lambda s: dg_pmf(sigma, s), 12 * sigma + 10)


@pytest.mark.parametrize("scale, seed", [(0.3, 5), (1.0, 6), (2.5, 7), (0.7, 8)])
def test_discrete_laplace_matches_pmf(scale, seed):
    z = sample_discrete_laplace(scale, N, make_noise_source(seed))
    assert z.dtype == np.int64
    check_against_pmf(z, lambda s: dl_pmf(scale, s), 40 * scale + 10)


@pytest.mark.parametrize("num, den", [(3, 10), (17, 10), (5, 2), (0, 7), (7, 7)])
def test_bernoulli_exp_is_exact(num, den):
    src = make_noise_source(11)
    n = 100_000
    draws = noise._bernoulli_exp(np.full(n, num, dtype=np.int64), den, src)
    p = math.exp(-num / den)
    if p == 1.0:
        assert draws.all()
        return
    assert abs(draws.mean() - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_bernoulli_exp_big_integers():
    # denominators beyond int64 take the exact Python-int path
    den = 3 * 2**100 + 1
    num = np.array([den // 2] * 50_000, dtype=object)
    draws = noise._bernoulli_exp(num, den, make_noise_source(12))
    p = math.exp(-0.5)
    assert abs(draws.mean() - p) <= Z * math.sqrt(p * (1 - p) / 50_000)


def test_uniform_below_is_uniform():
    src = make_noise_source(13)
    for bound in (1, 2, 3, 7, 2**40 + 3):
        u = src.uniform_below(bound, 30_000)
        assert u.min() >= 0 and u.max() < bound
    u = src.uniform_below(6, 60_000)
    assert stats.chisquare(np.bincount(u, minlength=6)).pvalue >= ALPHA
    big = src.uniform_below(2**70 + 1, 20_000)
    assert all(0 <= int(v) <= 2**70 for v in big)
    top = np.array([int(v) >> 67 for v in big])  # top 3 bits of 71: eight near-equal cells
    assert stats.chisquare(np.bincount(top, minlength=9)[:8]).pvalue >= ALPHA


def test_default_source_uses_os_csprng(monkeypatch):
    calls = []
    real = os.urandom

    def spy(n):
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", spy)
    src = make_noise_source()
    assert src.seeded is False
    sample_discrete_gaussian(2.0, 100, src)
    assert calls, "the default source must read os.urandom"
    calls.clear()
    sample_discrete_laplace(2.0, 10)  # source=None also means the CSPRNG
    assert calls


def test_seeded_source_never_touches_csprng_and_is_reproducible(monkeypatch):
    def forbidden(n):
        raise AssertionError("seeded source read the OS CSPRNG")

    monkeypatch.setattr(os, "urandom", forbidden)
    a = sample_discrete_gaussian(2.5, 1000, make_noise_source(42))
    b = sample_discrete_gaussian(2.5, 1000, make_noise_source(42))
    np.testing.assert_array_equal(a, b)
    assert make_noise_source(np.random.default_rng(1)).seeded is True
    assert make_noise_source(7).seeded is True


def test_continuous_samplers_moments():
    src = make_noise_source(21)
    g = sample_gaussian(2.0, N, src)
    assert abs(g.mean()) <= Z * 2.0 / math.sqrt(N)
    assert abs(g.var() - 4.0) <= Z * math.sqrt(2 * 16 / N)
    assert stats.kstest(g, "norm", args=(0, 2.0)).pvalue >= ALPHA
    lap = sample_laplace(1.5, N, src)
    assert stats.kstest(lap, "laplace", args=(0, 1.5)).pvalue >= ALPHA


def test_shapes_and_empty():
    src = make_noise_source(0)
    assert sample_discrete_gaussian(1.0, (3, 4), src).shape == (3, 4)
    assert sample_discrete_laplace(1.0, 0, src).shape == (0,)
    assert sample_gaussian(1.0, (2, 0), src).shape == (2, 0)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: sample_discrete_gaussian(0.0, 3), "sigma"),
        (lambda: sample_discrete_gaussian(math.inf, 3), "sigma"),
        (lambda: sample_discrete_gaussian(2.0**41, 3), "sigma"),
        (lambda: sample_discrete_laplace(-1.0, 3), "scale"),
        (lambda: sample_discrete_gaussian(1.0, -2), "size"),
        (lambda: sample_discrete_gaussian(1.0, 2.5), "size"),
        (lambda: sample_gaussian(math.nan, 3), "sigma"),
        (lambda: sample_laplace(0.0, 3), "scale"),
        (lambda: make_noise_source(-1), "rng"),
    ],
)
def test_invalid_parameters(call, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        call()


def test_invalid_source_types():
    with pytest.raises(TypeError, match="source"):
        sample_discrete_gaussian(1.0, 3, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng"):
        make_noise_source("seed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        NoiseSource(42)  # type: ignore[arg-type]


def test_csprng_buffer_is_not_shared_after_fork(monkeypatch):
    src = make_noise_source()
    first = src.words(4)
    calls = []
    real = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: calls.append(n) or real(n))
    src.words(4)
    assert not calls  # served from the buffer
    monkeypatch.setattr(src, "_pid", -1)  # as if this were a forked child
    second = src.words(4)
    assert calls, "a child process must not reuse the parent's buffered random words"
    assert not np.array_equal(first, second)


class _ScriptedSource(NoiseSource):
    """Hands out the given words first, then seeded random words."""

    def __init__(self, words):
        super().__init__(np.random.default_rng(0))
        self._script = list(words)

    def words(self, size):
        head, self._script = self._script[:size], self._script[size:]
        tail = super().words(size - len(head))
        return np.concatenate([np.array(head, dtype=np.uint64), tail])


@pytest.mark.parametrize("low_word", [0, 2**63, 2**64 - 1])
def test_bernoulli_ratio_big_ties_are_decided_exactly(low_word):
    # When the top 62 bits of U equal those of num (probability ~2^-61), the low bits decide.
    den = 2**70 + 12_345
    num = den // 3
    shift = den.bit_length() - 62
    top = num >> shift
    src = _ScriptedSource([top << 2, low_word])
    got = noise._bernoulli_ratio_big(np.array([num], dtype=object), den, src)
    u = (top << shift) | (low_word >> (64 - shift))
    assert bool(got[0]) == (u < num)


def test_bernoulli_ratio_big_rejects_values_at_or_above_den():
    den = 2**70 + 12_345
    shift = den.bit_length() - 62
    # first U = den_top·2^S + 511 ≥ den: rejected and redrawn; the redraw U < 2^S < num: True
    src = _ScriptedSource([(den >> shift) << 2, 2**64 - 1, 0])
    assert noise._bernoulli_ratio_big(np.array([den // 3], dtype=object), den, src)[0]
    # and with num = 0 nothing is ever accepted
    src = _ScriptedSource([(den >> shift) << 2, 2**64 - 1, 0])
    assert not noise._bernoulli_ratio_big(np.array([0], dtype=object), den, src)[0]


def test_shared_csprng_source_never_hands_out_a_word_twice_across_threads():
    # Two releases drawing from one NoiseSource in different threads must get independent
    # noise: a word handed out twice gives two releases identical noise, whose difference
    # cancels it. Oracle: 480,000 independent uniform 64-bit words collide with probability
    # below 480000**2 / 2**65 < 1e-8, so any repeated word is a failure (alpha < 1e-8).
    import sys
    import threading

    source = make_noise_source()
    out: list[list[np.ndarray]] = [[] for _ in range(8)]

    def work(i: int) -> None:
        for _ in range(20_000):
            out[i].append(source.words(3))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so an unguarded read-modify-write races
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    words = np.concatenate([np.concatenate(o) for o in out])
    assert words.size == 480_000
    assert np.unique(words).size == words.size
