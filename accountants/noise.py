"""Secure noise: exact discrete Gaussian and discrete Laplace samplers, and float noise.

Randomness comes from a :class:`NoiseSource`. By default it reads the operating system's
CSPRNG (``os.urandom``, the source behind :mod:`secrets`); a seed or a numpy ``Generator``
gives a reproducible source whose ``seeded`` flag is True, so releases made with it can be
marked as reproducible-not-secure.

Exactness (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy",
Algorithms 1-3). The integer samplers consume only uniformly random integers and make every
accept/reject decision by comparing integers: a ``Bernoulli(n/d)`` draw is ``U < n`` with
``U`` uniform on ``{0, ..., d-1}``, and ``Bernoulli(exp(-n/d))`` is Algorithm 1 built from
those. Parameters given as floats are converted exactly with :class:`fractions.Fraction`, so
the discrete Gaussian with ``sigma=s`` is sampled from exactly ``N_Z(0, s²)`` for the binary
value of ``s``. Integers that do not fit in int64 are handled as Python integers (numpy object
arrays), which keeps the arithmetic exact at some cost in speed. The samplers are vectorised:
all pending samples advance through each loop of the algorithms together, and a uniform
integer below ``d`` is drawn by masking random 64-bit words to ``bitlength(d-1)`` bits and
rejecting values ``≥ d``.

Floating-point noise (:func:`sample_gaussian`, :func:`sample_laplace`) is provided for
callers that need continuous noise. It is *floating-point* noise: its low-order bits are not
exactly distributed, which can leak information (Mironov 2012, "On significance of the least
significant bits for differential privacy"). Prefer the integer samplers for counts, and
:func:`gaussian_release` to release a real-valued statistic with Gaussian-mechanism RDP and no
floating-point noise, or :func:`lattice_release` (with :func:`lattice_for`) to release it as an
exactly accounted ``DiscreteGaussianDpEvent`` on a grid.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import threading
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import special

__all__ = [
    "NoiseSource",
    "gaussian_release",
    "lattice_for",
    "lattice_release",
    "make_noise_source",
    "sample_discrete_gaussian",
    "sample_discrete_laplace",
    "sample_gaussian",
    "sample_laplace",
]

logger = logging.getLogger(__name__)

_INT64_SAFE = 1 << 62  # integers below this are handled in int64 without overflow
_MAX_SCALE = 2.0**40  # larger scales are not meaningful for integer noise
_LAPLACE_DENOMINATOR_BITS = 30
_CSPRNG_BLOCK_WORDS = 4096


class NoiseSource:
    """A source of uniformly random 64-bit words.

    Parameters
    ----------
    generator : numpy.random.Generator or None
        None reads the operating system's CSPRNG (``os.urandom``); a Generator gives a
        reproducible, *non-secure* source.

    Attributes
    ----------
    seeded : bool
        True when the words come from a reproducible generator (tests, reproducibility);
        False for the OS CSPRNG.

    Example
    -------
    >>> make_noise_source().seeded
    False
    >>> make_noise_source(7).seeded
    True
    """

    __slots__ = ("_buffer", "_generator", "_lock", "_pid", "_pos", "seeded")

    def __init__(self, generator: np.random.Generator | None = None) -> None:
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise TypeError(
                "The 'generator' parameter of NoiseSource must be a numpy Generator or None. "
                f"Got {type(generator)} instead."
            )
        self._generator = generator
        self.seeded: bool = generator is not None
        self._buffer = np.zeros(0, dtype=np.uint64)
        self._pos = 0
        self._pid = os.getpid()
        # One source may serve several threads: handing out a buffer slice and advancing the
        # position must be atomic, or two draws get the same words (identical noise).
        self._lock = threading.Lock()

    def words(self, size: int) -> np.ndarray:
        """``size`` independent uniform uint64 words."""
        if size <= 0:
            return np.zeros(0, dtype=np.uint64)
        if self._pid != os.getpid():
            # A forked child discards the parent's buffer (so two processes never reuse the
            # same random words) and its lock (another parent thread may have held it).
            self._lock = threading.Lock()
            with self._lock:
                self._buffer, self._pos, self._pid = np.zeros(0, dtype=np.uint64), 0, os.getpid()
        with self._lock:
            if self._generator is not None:
                return self._generator.bit_generator.random_raw(size).astype(np.uint64, copy=False)
            # OS CSPRNG, read in blocks of >= 4096 words (one syscall serves many small
            # draws). Each word is handed out once.
            if self._pos + size > self._buffer.size:
                fresh = max(size, _CSPRNG_BLOCK_WORDS)
                self._buffer = np.frombuffer(os.urandom(8 * fresh), dtype=np.uint64)
                self._pos = 0
            out = self._buffer[self._pos : self._pos + size].copy()
            self._pos += size
            return out

    def uniform_below(self, bound: Any, size: int) -> np.ndarray:
        """Uniform integers in ``{0, ..., bound-1}``.

        ``bound`` is a positive Python int (any size) or an int64 array of shape (size,)
        with entries in [1, 2**62). Results are int64, or Python ints in an object array
        when ``bound ≥ 2**62``.
        """
        if isinstance(bound, np.ndarray):
            return self._uniform_below_array(bound.astype(np.int64, copy=False))
        bound = int(bound)
        if bound < _INT64_SAFE:
            return self._uniform_below_array(np.full(size, bound, dtype=np.int64))
        return self._uniform_below_big(bound, size)

    def _uniform_below_array(self, bound: np.ndarray) -> np.ndarray:
        size = bound.shape[0]
        out = np.empty(size, dtype=np.int64)
        # Smear the top bit of bound-1 down to get an all-ones mask of its bit length.
        mask = (bound - 1).astype(np.uint64)
        for shift in (1, 2, 4, 8, 16, 32):
            mask |= mask >> np.uint64(shift)
        todo = np.arange(size)
        while todo.size:
            draw = self.words(todo.size) & mask[todo]
            ok = draw < bound[todo].astype(np.uint64)
            out[todo[ok]] = draw[ok].astype(np.int64)
            todo = todo[~ok]
        return out

    def _uniform_below_big(self, bound: int, size: int) -> np.ndarray:
        bits = (bound - 1).bit_length()
        n_words = -(-bits // 64)
        top_mask = (1 << (bits - 64 * (n_words - 1))) - 1
        out = np.empty(size, dtype=object)
        todo = np.arange(size)
        while todo.size:
            words = self.words(todo.size * n_words).reshape(todo.size, n_words).astype(object)
            value = words[:, n_words - 1] & top_mask
            for k in range(n_words - 2, -1, -1):
                value = (value << 64) | words[:, k]
            ok = value < bound
            out[todo[ok]] = value[ok]
            todo = todo[~ok]
        return out

    def __repr__(self) -> str:
        return f"NoiseSource(seeded={self.seeded})"


def make_noise_source(rng: None | int | np.random.Generator | NoiseSource = None) -> NoiseSource:
    """Build a :class:`NoiseSource`.

    Parameters
    ----------
    rng : None, int, numpy.random.Generator or NoiseSource
        None (default): the OS CSPRNG. An int seeds a fresh PCG64 generator; a Generator is
        used as is (both reproducible, ``seeded=True``). A NoiseSource is returned unchanged.

    Returns
    -------
    NoiseSource

    Raises
    ------
    TypeError
        For any other type.

    Example
    -------
    >>> src = make_noise_source(1)
    >>> src.seeded
    True
    """
    if rng is None:
        return NoiseSource()
    if isinstance(rng, NoiseSource):
        return rng
    if isinstance(rng, np.random.Generator):
        return NoiseSource(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"The 'rng' parameter of make_noise_source must be a non-negative seed. Got {rng!r} instead.")
        return NoiseSource(np.random.default_rng(int(rng)))
    raise TypeError(
        "The 'rng' parameter of make_noise_source must be None, an int seed, a numpy "
        f"Generator or a NoiseSource. Got {type(rng)} instead."
    )


# --------------------------------------------------------------------------- exact Bernoullis
def _bernoulli_ratio(num: np.ndarray, den: int, source: NoiseSource) -> np.ndarray:
    """Bernoulli(num_i / den) for integers 0 ≤ num_i ≤ den: ``U < num_i``, U uniform below den."""
    if num.size == 0:
        return np.zeros(0, dtype=bool)
    if den < _INT64_SAFE:
        return np.asarray(source.uniform_below(den, num.size) < num.astype(np.int64), dtype=bool)
    return _bernoulli_ratio_big(num, den, source)


def _bernoulli_ratio_big(num: np.ndarray, den: int, source: NoiseSource) -> np.ndarray:
    """``U < num_i`` for U uniform below a big ``den``, deciding on U's top 62 bits first.

    U is drawn as ``w·2^S + low`` with w uniform on [0, 2^62) and low uniform on [0, 2^S),
    ``S = bitlength(den) − 62``, rejecting U ≥ den (probability < 1/2). Whenever w differs
    from the top bits of den and of num_i, the comparisons are decided by w alone; otherwise
    (probability about 2^-61) the low bits are drawn and the comparison is made exactly on
    Python integers. The decisions are therefore exactly those of comparing a uniform U.
    """
    shift = den.bit_length() - 62
    den_top = den >> shift
    num_top = np.array([int(v) >> shift for v in num], dtype=np.int64)
    out = np.zeros(num.size, dtype=bool)
    todo = np.arange(num.size)
    while todo.size:
        w = (source.words(todo.size) >> np.uint64(2)).astype(np.int64)
        top = num_top[todo]
        clear = (w != den_top) & (w != top)
        keep = clear & (w < den_top)
        out[todo[keep]] = w[keep] < top[keep]
        retry = [todo[clear & (w > den_top)]]
        for j in np.flatnonzero(~clear):  # rare: decide on the exact value
            low = _random_int_bits(source, shift)
            u = (int(w[j]) << shift) | low
            if u >= den:
                retry.append(todo[j : j + 1])
            else:
                out[todo[j]] = u < int(num[todo[j]])
        todo = np.concatenate(retry)
    return out


def _random_int_bits(source: NoiseSource, bits: int) -> int:
    """A uniform Python integer on [0, 2^bits)."""
    n_words = -(-bits // 64)
    value = 0
    for word in source.words(n_words):
        value = (value << 64) | int(word)
    return value >> (64 * n_words - bits)


def _bernoulli_exp_fraction(num: np.ndarray, den: int, source: NoiseSource) -> np.ndarray:
    """Bernoulli(exp(-num_i/den)) for 0 ≤ num_i ≤ den (CKS 2020, Algorithm 1, γ ≤ 1).

    K counts how long a run of Bernoulli(γ/K) successes lasts; P(K odd) = exp(-γ). Each
    Bernoulli(γ/K) is the product of independent Bernoulli(1/K) and Bernoulli(γ) draws.
    """
    n = num.shape[0]
    k = np.ones(n, dtype=np.int64)
    active = np.arange(n)
    while active.size:
        hit = source.uniform_below(k[active], active.size) == 0
        cand = active[hit]
        hit2 = _bernoulli_ratio(num[cand], den, source)
        k[cand[hit2]] += 1
        active = cand[hit2]
    return (k % 2) == 1


def _bernoulli_exp(num: np.ndarray, den: int, source: NoiseSource) -> np.ndarray:
    """Bernoulli(exp(-num_i/den)) for integers num_i ≥ 0, den ≥ 1 (CKS 2020, Algorithm 1)."""
    n = num.shape[0]
    whole = num // den
    frac = num - whole * den
    whole = whole.astype(np.int64)  # exp(-2**62) is 0 in any case; whole is small in practice
    alive = np.ones(n, dtype=bool)
    one = np.ones(1, dtype=np.int64)
    # exp(-floor γ): floor γ independent Bernoulli(exp(-1)) draws must all succeed.
    round_ = 0
    while True:
        need = np.flatnonzero(alive & (whole > round_))
        if need.size == 0:
            break
        alive[need] = _bernoulli_exp_fraction(np.broadcast_to(one, need.size).copy(), 1, source)
        round_ += 1
    idx = np.flatnonzero(alive)
    alive[idx] = _bernoulli_exp_fraction(frac[idx], den, source)
    return alive


def _geometric_exp_minus_one(n: int, source: NoiseSource) -> np.ndarray:
    """Number of Bernoulli(exp(-1)) successes before the first failure (CKS Algorithm 2, V)."""
    v = np.zeros(n, dtype=np.int64)
    active = np.arange(n)
    ones = np.ones(n, dtype=np.int64)
    while active.size:
        hit = _bernoulli_exp_fraction(ones[: active.size].copy(), 1, source)
        v[active[hit]] += 1
        active = active[hit]
    return v


def _discrete_laplace_batch(t: int, s: int, n: int, source: NoiseSource) -> np.ndarray:
    """n draws of CKS 2020 Algorithm 2 with rejection: P(z) ∝ exp(-|z|·s/t), exactly.

    Returns fewer than n values (the rejected ones are dropped); callers loop.
    """
    u = source.uniform_below(t, n)
    keep = _bernoulli_exp(u, t, source)
    u = u[keep]
    v = _geometric_exp_minus_one(u.size, source)
    if t < _INT64_SAFE // 64 and v.max(initial=0) < 64:
        x = u + t * v
    else:  # exact, slow path; essentially never taken
        x = u.astype(object) + t * v.astype(object)
    y = x // s
    b = source.uniform_below(2, y.size).astype(bool)
    ok = ~(b & (y == 0))
    y, b = y[ok], b[ok]
    return np.where(b, -y, y).astype(np.int64)


def _check_size(size: Any, owner: str) -> tuple[int, tuple[int, ...]]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        shape: tuple[int, ...] = (int(size),)
    elif isinstance(size, tuple) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size
    ):
        shape = tuple(int(s) for s in size)
    else:
        raise ValueError(
            f"The 'size' parameter of {owner} must be an int or a tuple of ints. Got {size!r} instead."
        )
    if any(s < 0 for s in shape):
        raise ValueError(f"The 'size' parameter of {owner} must be non-negative. Got {size!r} instead.")
    return int(np.prod(shape, dtype=np.int64)), shape


def _check_scale(value: Any, name: str, owner: str) -> Fraction:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0 < value <= _MAX_SCALE
    ):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in (0, 2**40]. Got {value!r} instead."
        )
    if isinstance(value, Fraction):
        return value
    return Fraction(float(value)) if not isinstance(value, numbers.Rational) else Fraction(value)


def _fill(shape_n: int, batch: Any) -> np.ndarray:
    out = np.empty(shape_n, dtype=np.int64)
    filled, rate = 0, 0.5
    while filled < shape_n:
        need = shape_n - filled
        # Propose enough for one pass at the observed acceptance rate (plus a margin).
        ask = int(need / rate * 1.1) + 16
        got = batch(ask)
        rate = max(got.size / ask, 0.05)
        draw = got[:need]
        out[filled : filled + draw.size] = draw
        filled += draw.size
    return out


def sample_discrete_laplace(scale: float, size: int | tuple[int, ...], source: NoiseSource | None = None) -> np.ndarray:
    """Exact discrete Laplace noise: ``P(Z = z) ∝ exp(-|z| / scale)`` on the integers.

    CKS 2020, Algorithm 2. ``scale`` is converted exactly to a rational; a scale whose binary
    value needs more than 30 fractional bits is first rounded *up* to a multiple of 2**-30
    (more noise, never less: the mechanism is then at least as private as accounted).

    Parameters
    ----------
    scale : float
        Laplace scale t in (0, 2**40]; matches ``DiscreteLaplaceDpEvent(scale)``.
    size : int or tuple of int
        Output shape.
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    ValueError
        On a bad ``scale`` or ``size``.

    Example
    -------
    >>> z = sample_discrete_laplace(2.0, 5, make_noise_source(0))
    >>> z.dtype, z.shape
    (dtype('int64'), (5,))
    """
    owner = "sample_discrete_laplace"
    exact = _check_scale(scale, "scale", owner)
    n, shape = _check_size(size, owner)
    source = _check_source(source, owner)
    if exact.denominator > (1 << _LAPLACE_DENOMINATOR_BITS):
        exact = Fraction(math.ceil(exact * (1 << _LAPLACE_DENOMINATOR_BITS)), 1 << _LAPLACE_DENOMINATOR_BITS)
    t, s = exact.numerator, exact.denominator
    return _fill(n, lambda m: _discrete_laplace_batch(t, s, m, source)).reshape(shape)


def sample_discrete_gaussian(sigma: float, size: int | tuple[int, ...], source: NoiseSource | None = None) -> np.ndarray:
    """Exact discrete Gaussian noise: ``P(Z = z) ∝ exp(-z² / (2 σ²))`` on the integers.

    CKS 2020, Algorithm 3: propose ``Y`` from the discrete Laplace with scale
    ``t = floor(σ) + 1``, accept with probability ``exp(-(|Y| - σ²/t)² / (2σ²))``; the
    acceptance is decided with exact integer arithmetic on ``σ² = Fraction(sigma)**2``.
    ``sigma`` is the scale parameter, not the standard deviation.

    Parameters
    ----------
    sigma : float
        Scale σ in (0, 2**40]; matches ``DiscreteGaussianDpEvent(sigma)``.
    size : int or tuple of int
        Output shape.
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    ValueError
        On a bad ``sigma`` or ``size``.

    Example
    -------
    >>> z = sample_discrete_gaussian(3.0, (2, 3), make_noise_source(0))
    >>> z.shape
    (2, 3)
    """
    owner = "sample_discrete_gaussian"
    sig = _check_scale(sigma, "sigma", owner)
    n, shape = _check_size(size, owner)
    source = _check_source(source, owner)
    sigma2 = sig * sig
    a, b = sigma2.numerator, sigma2.denominator
    t = math.floor(sig) + 1
    # γ(Y) = (|Y| − σ²/t)² / (2σ²) = (|Y|·t·b − a)² / (2·a·t²·b) =: num(Y) / den.
    den = 2 * a * t * t * b

    def batch(m: int) -> np.ndarray:
        y = _discrete_laplace_batch(t, 1, m, source)
        absy = np.abs(y)
        big = den >= _INT64_SAFE or int(absy.max(initial=0)) * t * b + a >= (1 << 31)
        if big:
            num = (absy.astype(object) * (t * b) - a) ** 2
        else:
            num = (absy * (t * b) - a) ** 2
        accept = _bernoulli_exp(num, den, source)
        return y[accept]

    return _fill(n, batch).reshape(shape)


def _check_source(source: Any, owner: str) -> NoiseSource:
    if source is None:
        return NoiseSource()
    if not isinstance(source, NoiseSource):
        raise TypeError(
            f"The 'source' parameter of {owner} must be a NoiseSource (see make_noise_source). "
            f"Got {type(source)} instead."
        )
    return source


def _open_uniform(source: NoiseSource, n: int) -> np.ndarray:
    # 53 random bits, centred in their cell: values in (0, 1), never 0 or 1.
    w = source.words(n) >> np.uint64(11)
    return (w.astype(np.float64) + 0.5) * 2.0**-53


def sample_gaussian(sigma: float, size: int | tuple[int, ...], source: NoiseSource | None = None) -> np.ndarray:
    """Continuous Gaussian noise N(0, σ²) as float64 -- **floating-point noise**.

    Inverse-CDF transform of 53-bit uniforms from ``source``. Its distribution is only as
    exact as float64 arithmetic; the low-order bits can leak information (Mironov 2012).
    Use :func:`sample_discrete_gaussian` for integer data.

    Parameters
    ----------
    sigma : float
        Standard deviation in (0, inf).
    size : int or tuple of int
        Output shape.
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of float64

    Example
    -------
    >>> sample_gaussian(1.0, 3, make_noise_source(0)).shape
    (3,)
    """
    owner = "sample_gaussian"
    _check_positive_float(sigma, "sigma", owner)
    n, shape = _check_size(size, owner)
    source = _check_source(source, owner)
    return (float(sigma) * special.ndtri(_open_uniform(source, n))).reshape(shape)


def sample_laplace(scale: float, size: int | tuple[int, ...], source: NoiseSource | None = None) -> np.ndarray:
    """Continuous Laplace noise with density ∝ exp(-|x|/scale) -- **floating-point noise**.

    A random sign times ``-scale·log(U)``, U uniform in (0, 1) with 53 random bits. Subject
    to the floating-point caveats of :func:`sample_gaussian` (Mironov 2012).

    Parameters
    ----------
    scale : float
        Laplace scale in (0, inf).
    size : int or tuple of int
        Output shape.
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of float64

    Example
    -------
    >>> sample_laplace(1.0, 3, make_noise_source(0)).shape
    (3,)
    """
    owner = "sample_laplace"
    _check_positive_float(scale, "scale", owner)
    n, shape = _check_size(size, owner)
    source = _check_source(source, owner)
    magnitude = -float(scale) * np.log(_open_uniform(source, n))
    sign = np.where((source.words(n) & np.uint64(1)) == 1, -1.0, 1.0)
    return (sign * magnitude).reshape(shape)


_GRID_BITS = 30  # grid step γ ≤ σ·2^-30: the release is N_Z on a grid 10^9 times finer than σ


def _grid_exponent(sigma: float, grid_bits: int) -> int:
    """e with γ = 2^e ≤ σ·2^-grid_bits: a function of σ alone, never of the value."""
    return math.frexp(sigma)[1] - 1 - grid_bits  # σ ∈ [2^(e+grid_bits), 2^(e+grid_bits+1))


def _centres(v: np.ndarray, e: int) -> tuple[np.ndarray, bool]:
    """round(v/2^e) exactly: int64 when every |v/2^e| < 2^52, else Python ints (objects)."""
    with np.errstate(over="ignore"):
        scaled = np.ldexp(v.reshape(-1), -e)
    if np.all(np.abs(scaled) < 2.0**52):
        return np.rint(scaled).astype(np.int64), True
    # Exact rational arithmetic: a float is a dyadic rational, so v/2^e is exact and its
    # rounding (half to even, as np.rint) is an exact integer of any size.
    unit = Fraction(2) ** e
    return np.array([round(Fraction(float(x)) / unit) for x in v.reshape(-1)], dtype=object), False


def gaussian_release(
    value: Any,
    sigma: float,
    sensitivity: float,
    source: NoiseSource | None = None,
    *,
    _grid_bits: int = _GRID_BITS,
    _inflate: bool = True,
) -> np.ndarray:
    """Release a real vector with the Gaussian mechanism's RDP and no floating-point noise.

    Output ``γ·(round(v/γ) + Z)`` with ``Z`` exact discrete Gaussian noise
    ``N_Z(0, (σ′/γ)²)`` per coordinate (:func:`sample_discrete_gaussian`), on the grid
    γ = 2^e ≤ σ·2^-30 chosen from σ alone (a power of two, so v/γ and its rounding are
    exact; centres beyond 2^52 grid steps are kept as exact Python integers), with
    ``σ′ = σ·(1 + γ√d/S)``, S = ``sensitivity``, d = the number of coordinates. The grid
    must not depend on the value: a value-dependent grid would make the set of possible
    outputs differ between neighbours (infinite divergence).

    **Guarantee.** If ‖v − v′‖₂ ≤ G for some G ≥ 0, the Rényi divergence of order α between
    the releases of v and v′ is at most α·max(G, S)²/(2σ²), the continuous Gaussian
    mechanism's with noise σ on a max(G, S)-sensitive query. Proof: coordinate-wise
    |round(a) − round(b)| ≤ |a − b| + 1, so the integer centres differ by
    u with ‖u‖₂ ≤ G/γ + √d; for integer shifts the discrete Gaussian has
    D_α(N_Z(μ, s²)‖N_Z(μ′, s²)) ≤ α‖μ − μ′‖²/(2s²) (Canonne, Kamath & Steinke 2020,
    Proposition 5; product over coordinates), giving α(G + γ√d)²/(2σ′²), and
    (G + γ√d)/σ′ = (G + γ√d)·S/(σ(S + γ√d)) ≤ max(G, S)/σ. So it replaces
    ``v + sample_gaussian(σ, d)`` wherever that release is accounted by RDP (not by a PLD
    of the continuous Gaussian, which is not proven to dominate the discrete one's).

    Parameters
    ----------
    value : array_like
        Finite real vector (any shape; d = its size).
    sigma : float
        σ in (0, inf): the continuous Gaussian's noise the accounting assumes.
    sensitivity : float
        S in (0, inf): the ℓ2 sensitivity the accounting assumes (σ/S is the noise multiplier).
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of float64
        Same shape as ``value``: γ·k for the released integer k, which is exact while
        |k| < 2^53 (about |value| < 2^23·σ) and otherwise the float nearest to γ·k (a
        post-processing of k). The noise standard deviation is within a factor
        1 + 2^-30·(σ/S)·√d of σ.

    Raises
    ------
    ValueError
        On a non-finite value or a bad ``sigma`` or ``sensitivity``.

    Example
    -------
    >>> out = gaussian_release([0.3, -1.2], 0.5, 1.0, make_noise_source(0))
    >>> out.shape, bool(np.all(np.ldexp(out, 31) == np.rint(np.ldexp(out, 31))))
    ((2,), True)
    """
    owner = "gaussian_release"
    _check_positive_float(sigma, "sigma", owner)
    _check_positive_float(sensitivity, "sensitivity", owner)
    v = _finite_array(value, owner)
    source = _check_source(source, owner)
    d = max(int(v.size), 1)
    e = _grid_exponent(float(sigma), _grid_bits)
    gamma = math.ldexp(1.0, e)
    scale = float(sigma)
    if _inflate:
        # σ′ = σ(1 + γ√d/S), rounded up at each float operation (never below the true value).
        up = math.inf
        ratio = math.nextafter(math.nextafter(gamma * math.sqrt(d), up) / float(sensitivity), up)
        scale = math.nextafter(float(sigma) * math.nextafter(1.0 + ratio, up), up)
    return _lattice_noise(v, math.ldexp(scale, -e), e, source)


def _lattice_noise(v: np.ndarray, sigma_steps: float, e: int, source: NoiseSource) -> np.ndarray:
    """γ·(round(v/γ) + N_Z(0, sigma_steps²)) per coordinate, γ = 2^e, computed exactly."""
    centre, small = _centres(v, e)
    noise = sample_discrete_gaussian(sigma_steps, max(int(v.size), 1), source)[: v.size]
    total = centre + noise
    if small and np.all(np.abs(total) < 2**53):
        with np.errstate(over="ignore"):  # ±inf beyond the float range (post-processing)
            out = np.ldexp(total.astype(np.float64), e)
    else:  # exact integers, then the float nearest to γ·k (post-processing)
        unit = Fraction(2) ** e
        out = np.array([_nearest_float(int(k) * unit) for k in total], dtype=np.float64)
    return out.reshape(v.shape)


def _nearest_float(x: Fraction) -> float:
    """float(x), or ±inf beyond the float range (post-processing of the released integer)."""
    try:
        return float(x)
    except OverflowError:
        return math.copysign(math.inf, x)


_LATTICE_BITS = 8  # S/γ in [2^8, 2^9): the +1 of the rounding costs at most 0.4% of S
_SUM_SLACK = 2.0**-20  # relative slack on S for floating-point summation error


def lattice_for(sensitivity: float, resolution_bits: int = _LATTICE_BITS) -> tuple[int, int]:
    """Grid and integer sensitivity for releasing an S-sensitive scalar on a lattice.

    Returns ``(e, K)``: the grid γ = 2^e with S/γ in [2^b, 2^(b+1)) (b = ``resolution_bits``),
    a function of S alone, and ``K = ⌊S(1 + 2^-20)/γ⌋ + 1``. If |v − v′| ≤ S(1 + 2^-20) then
    |round(v/γ) − round(v′/γ)| ≤ K: the rounded values differ by less than that over γ, plus
    1, and by an integer. The 2^-20 absorbs the floating-point error of the sums callers
    release (their neighbours may differ by a few ulps more than S). So
    :func:`lattice_release` with grid exponent e is the discrete Gaussian mechanism on an
    integer query of sensitivity K, accounted exactly by ``DiscreteGaussianDpEvent(sigma_steps,
    K)`` (post-processed by the exact scaling by γ).

    Parameters
    ----------
    sensitivity : float
        S in (0, inf): the largest change of the released value between neighbours.
    resolution_bits : int, default 8
        b in [1, 30]; larger b makes the rounding cheaper (K ≤ (1 + 2^-b)·S/γ) and the
        accounting slower (the discrete Gaussian's support grows as 2^b).

    Example
    -------
    >>> lattice_for(1.0)
    (-8, 257)
    >>> lattice_for(0.3)
    (-10, 308)
    """
    owner = "lattice_for"
    _check_positive_float(sensitivity, "sensitivity", owner)
    if (isinstance(resolution_bits, bool) or not isinstance(resolution_bits, numbers.Integral)
            or not 1 <= resolution_bits <= 30):
        raise ValueError(f"The 'resolution_bits' parameter of {owner} must be an int in "
                         f"[1, 30]. Got {resolution_bits!r} instead.")
    e = math.frexp(float(sensitivity))[1] - 1 - int(resolution_bits)
    slack = math.nextafter(math.ldexp(float(sensitivity), -e) * (1.0 + _SUM_SLACK), math.inf)
    return e, math.floor(slack) + 1


def lattice_release(value: Any, sigma_steps: float, exponent: int,
                    source: NoiseSource | None = None) -> np.ndarray:
    """Release ``γ·(round(v/γ) + Z)``, Z ~ N_Z(0, sigma_steps²) per coordinate, γ = 2^exponent.

    The rounding is exact (γ is a power of two) and the noise is the exact discrete Gaussian
    (:func:`sample_discrete_gaussian`), so no floating-point noise leaves the function. With
    ``(exponent, K) = lattice_for(S)`` and a value whose neighbours differ by at most S in
    one coordinate, this is ``DiscreteGaussianDpEvent(sigma_steps, K)``; the grid must come
    from public quantities (S), never from the value, or neighbours could have disjoint
    output sets.

    Parameters
    ----------
    value : array_like
        Finite real values (any shape).
    sigma_steps : float
        Scale of the discrete Gaussian in grid steps, in (0, 2**40].
    exponent : int
        e of the grid γ = 2^e, in [-1110, 1110] (every grid :func:`lattice_for` returns).
    source : NoiseSource, optional
        Randomness; default the OS CSPRNG.

    Returns
    -------
    numpy.ndarray of float64
        Same shape as ``value``: γ·k for the released integer k (the float nearest to γ·k
        once |k| ≥ 2^53, a post-processing of k).

    Example
    -------
    >>> e, k = lattice_for(1.0)
    >>> out = lattice_release([0.3, -1.2], 4.0 * k, e, make_noise_source(0))
    >>> out.shape, bool(np.all(np.ldexp(out, -e) == np.rint(np.ldexp(out, -e))))
    ((2,), True)
    """
    owner = "lattice_release"
    _check_positive_float(sigma_steps, "sigma_steps", owner)
    if sigma_steps > _MAX_SCALE:
        raise ValueError(f"The 'sigma_steps' parameter of {owner} must be a float in "
                         f"(0, 2**40]. Got {sigma_steps!r} instead.")
    if (isinstance(exponent, bool) or not isinstance(exponent, numbers.Integral)
            or not -1110 <= exponent <= 1110):
        raise ValueError(f"The 'exponent' parameter of {owner} must be an int in "
                         f"[-1110, 1110]. Got {exponent!r} instead.")
    v = _finite_array(value, owner)
    return _lattice_noise(v, float(sigma_steps), int(exponent), _check_source(source, owner))


def _finite_array(value: Any, owner: str) -> np.ndarray:
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        v = None
    if v is None or not np.all(np.isfinite(v)):
        raise ValueError(
            f"The 'value' parameter of {owner} must be an array of finite reals. "
            f"Got {value!r} instead."
        )
    return v


def _check_positive_float(value: Any, name: str, owner: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float in (0, inf). Got {value!r} instead."
        )
