"""Accountants: ε and wall time of our RDP/PLD wrappers against the libraries they wrap.

Claim 1 (fidelity): on DP-SGD-style settings our ``RdpAccountant`` and ``PldAccountant``
report the same ε as dp-accounting's RDP and PLD accountants called directly (ours are
rounded up by a relative 1e-12 and one ulp), and sit where expected against Opacus'
``RDPAccountant`` and ``PRVAccountant`` (RDP ≥ PLD ≈ PRV estimate).

Claim 2 (overhead): the wrappers add < 10 % time over calling dp-accounting directly (runs
interleaved, medians; the ratio is given in CPU time of this process, which other processes on
a shared machine disturb far less than wall time, and in wall time).

Claim 3 (sampler throughput): the exact discrete Gaussian sampler (CKS 2020, integer
arithmetic) draws 10^5 samples well under a second, from the OS CSPRNG or a seeded generator.

Also printed for information: ε of the Poisson-subsampled *discrete* Gaussian with the same
parameters (our additions; no library baseline).

Run: ``python benchmarks/bench_accountants.py [--repeats 5] [--out benchmarks/results]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dp_accounting
import numpy as np

from accountants.events import DiscreteGaussianDpEvent, GaussianDpEvent, PoissonSampledDpEvent
from accountants.noise import make_noise_source, sample_discrete_gaussian, sample_gaussian
from accountants.pld import PldAccountant
from accountants.rdp import RdpAccountant

SETTINGS = [(0.04, 1.5, 2250, 1e-5), (0.004, 0.8, 10_000, 1e-5)]
VDI = 1e-4  # PLD value discretisation interval (dp-accounting's default)


def _timed(fn: Callable[[], float]) -> tuple[float, float, float]:
    """(value, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def _median_times(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, tuple[float, float, float]]:
    """Run the callables interleaved ``repeats`` times; return (value, median wall s, median CPU s)."""
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    values: dict[str, float] = {}
    for _ in range(repeats):
        for name, fn in fns.items():
            value, wall, cpu = _timed(fn)
            values[name] = value
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {k: (values[k], statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


def accountants_table(out: list[str], repeats: int) -> None:
    from opacus.accountants import PRVAccountant, RDPAccountant

    for q, sigma, steps, delta in SETTINGS:
        event = PoissonSampledDpEvent(q, GaussianDpEvent(sigma))

        def ours_rdp() -> float:
            return RdpAccountant().compose(event, steps).get_epsilon(delta)

        def direct_rdp() -> float:
            return dp_accounting.rdp.RdpAccountant().compose(event, steps).get_epsilon(delta)

        def ours_pld() -> float:
            return PldAccountant(VDI).compose(event, steps).get_epsilon(delta)

        def direct_pld() -> float:
            return dp_accounting.pld.PLDAccountant(value_discretization_interval=VDI).compose(event, steps).get_epsilon(delta)

        def opacus_rdp() -> float:
            acc = RDPAccountant()
            acc.history = [(sigma, q, steps)]
            return acc.get_epsilon(delta)

        def opacus_prv() -> float:
            acc = PRVAccountant()
            acc.history = [(sigma, q, steps)]
            return acc.get_epsilon(delta)  # Opacus returns the upper end of its error band

        # RDP runs take milliseconds: more repeats so that the ratio is not timer noise.
        res = _median_times({"ours RDP": ours_rdp, "dp-accounting RDP": direct_rdp}, 6 * repeats)
        res |= _median_times({"ours PLD": ours_pld, "dp-accounting PLD": direct_pld}, repeats)
        res |= _median_times({"Opacus RDPAccountant": opacus_rdp, "Opacus PRVAccountant": opacus_prv},
                             max(1, repeats // 2))
        dg = PoissonSampledDpEvent(q, DiscreteGaussianDpEvent(sigma))
        res |= _median_times(
            {"ours RDP, discrete Gaussian": lambda: RdpAccountant().compose(dg, steps).get_epsilon(delta),
             "ours PLD, discrete Gaussian": lambda: PldAccountant(VDI).compose(dg, steps).get_epsilon(delta)},
            max(1, repeats // 2),
        )

        out.append(f"== Poisson-subsampled Gaussian: q = {q}, sigma = {sigma}, T = {steps}, delta = {delta} ==")
        out.append(f"{'accountant':<32}{'epsilon':>16}{'wall s':>10}{'CPU s':>10}")
        for name, (eps, wall, cpu) in res.items():
            out.append(f"{name:<32}{eps:>16.9f}{wall:>10.4f}{cpu:>10.4f}")
        for kind in ("RDP", "PLD"):
            (e_ours, w_ours, c_ours), (e_dir, w_dir, c_dir) = res[f"ours {kind}"], res[f"dp-accounting {kind}"]
            out.append(
                f"overhead {kind}: ours / dp-accounting = {c_ours / c_dir:.3f} CPU time, "
                f"{w_ours / w_dir:.3f} wall time (target < 1.10); epsilon ratio = {e_ours / e_dir:.15f}"
            )
        out.append("")


def sampler_table(out: list[str]) -> None:
    out.append("== Exact discrete Gaussian sampler throughput (samples per second) ==")
    out.append("(sigma = 1.5 and 100.0 have short binary expansions: int64 arithmetic; 3.3 and 12345.678 need Python big integers)")
    out.append(f"{'sigma':>18}{'source':>8}{'n':>8}{'wall s':>9}{'CPU s':>8}{'samples/s (wall)':>18}")
    n = 100_000
    for sigma in (1.5, 3.3, 100.0, 12345.678):
        for label, rng in (("CSPRNG", None), ("seeded", 0)):
            source = make_noise_source(rng)
            sample_discrete_gaussian(sigma, 1000, source)  # warm-up
            _, wall, cpu = _timed(lambda: float(sample_discrete_gaussian(sigma, n, source).size))
            out.append(f"{sigma:>18}{label:>8}{n:>8}{wall:>9.4f}{cpu:>8.4f}{n / wall:>18.0f}")
    for label, rng in (("CSPRNG", None), ("seeded", 0)):
        source = make_noise_source(rng)
        _, wall, cpu = _timed(lambda: float(sample_gaussian(1.5, n, source).size))
        out.append(f"{'float N(0, 1.5^2)':>18}{label:>8}{n:>8}{wall:>9.4f}{cpu:>8.4f}{n / wall:>18.0f}  (float noise, reference)")
    out.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per accountant (median)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    import opacus

    out = [
        "bench_accountants: our RDP/PLD wrappers vs dp-accounting and Opacus; sampler throughput",
        f"python {platform.python_version()}, numpy {np.__version__}, dp-accounting "
        f"{getattr(dp_accounting, '__version__', '0.6.0')}, opacus {opacus.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; PLD value_discretization_interval {VDI}; "
        f"median of {args.repeats} interleaved runs per accountant (6x for RDP)",
        "",
    ]
    accountants_table(out, args.repeats)
    sampler_table(out)
    text = "\n".join(out)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_accountants.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
