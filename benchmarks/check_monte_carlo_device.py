"""Check that the torch/CUDA sampler of the Monte Carlo accountant agrees with numpy's.

The issue asks for a torch backend (``device="cuda"``) with "same results in distribution".
The unit tests compare torch-on-CPU with numpy; this script runs the same comparison on a
GPU, where CI cannot. For each mechanism (Gaussian, Laplace, discrete Gaussian, discrete
Laplace, each plain and Poisson-subsampled, composed over T steps) it estimates δ(ε) with
``m`` samples per backend and seed and reports the z-score of the difference,
z = (δ_cuda − δ_numpy)/√(SE_cuda² + SE_numpy²). Both estimates are unbiased for the same δ,
so |z| > 5.33 has probability ≈ 1e-7 per row under the null; with the rows below the
family-wise false-alarm rate is below 2e-6 (Bonferroni). Exit code 1 if any row fails.

Run on a machine with a GPU: ``python benchmarks/check_monte_carlo_device.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

from accountants.events import (
    DiscreteGaussianDpEvent,
    DiscreteLaplaceDpEvent,
    GaussianDpEvent,
    LaplaceDpEvent,
    PoissonSampledDpEvent,
)
from accountants.monte_carlo import MonteCarloAccountant

Z_LIMIT = 5.33  # two-sided P(|N(0,1)| > 5.33) ≈ 1e-7


def cases() -> list[tuple[str, object, int, float]]:
    """(name, per-step event, steps, ε) with δ(ε) around 1e-2..1e-3 (well resolved)."""
    base = [
        ("gaussian σ=1", GaussianDpEvent(1.0)),
        ("laplace b=1", LaplaceDpEvent(1.0)),
        ("discrete gaussian σ=1", DiscreteGaussianDpEvent(1.0)),
        ("discrete laplace t=1", DiscreteLaplaceDpEvent(1.0)),
    ]
    out = []
    for name, event in base:
        out.append((name, event, 4, 2.0))
        out.append((f"{name}, q=0.05", PoissonSampledDpEvent(0.05, event), 100, 1.0))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    failures = 0
    print(f"{'case':32} {'T':>4} {'ε':>4} {'δ numpy':>11} {'δ ' + args.device:>11} {'z':>7} "
          f"{'t numpy':>8} {'t dev':>7}")
    for name, event, steps, eps in cases():
        row = []
        for seed, device in ((0, "cpu"), (1, args.device)):
            start = time.perf_counter()
            acc = MonteCarloAccountant(args.samples, rng=seed, device=device)
            est = acc.compose(event, steps).estimate_delta(eps)
            row.append((est, time.perf_counter() - start))
        (a, ta), (b, tb) = row
        se = math.hypot(a.standard_error, b.standard_error)
        z = (b.value - a.value) / se if se > 0 else (0.0 if a.value == b.value else math.inf)
        ok = abs(z) <= Z_LIMIT
        failures += not ok
        print(f"{name:32} {steps:>4} {eps:>4g} {a.value:>11.4e} {b.value:>11.4e} {z:>7.2f} "
              f"{ta:>8.2f} {tb:>7.2f}{'' if ok else '  FAIL'}", flush=True)
    print(f"{'all rows agree' if failures == 0 else f'{failures} row(s) disagree'} "
          f"(|z| ≤ {Z_LIMIT}, family-wise false alarm < 2e-6)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
