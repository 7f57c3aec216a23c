"""Monte Carlo accountant and EVR verifier: accuracy, throughput and verification cost.

Claim 1 (accuracy and time): for DP-SGD settings (q, σ, T) at δ = 1e-5, our Monte Carlo
estimate ± SE against dp-accounting's PLD (value discretisation 1e-4, treated as the
reference) and Opacus' PRV accountant (its upper bound, eps_error 0.01), with wall times.
Target: |MC − PLD| ≤ 1 % of PLD at equal or lower wall time than Opacus PRV. Each setting
is estimated with plain Monte Carlo (f = 1), with importance sampling (inflated Poisson
rate q′ = min(f·q, (1+q)/2)) at the same m, and with importance sampling at m/4; ESS is the effective number of samples behind the
estimate (below ~30 the estimate and its SE are unreliable).

Claim 2 (throughput): samples × steps per second of the composition loop (both directions
of the add/remove relation are updated for every sample-step), numpy and torch backends on
the CPU (and on CUDA when torch sees a GPU).

Claim 3 (verification cost): plain Monte Carlo samples m (from ``plan_samples``) and seconds
to verify a claim with δ_b = 1e-5, τ ∈ {1.5, 2}, p = 1e-6 at (0.01, 3.8, 200). With
``--full-verify`` the τ = 2 verification runs to completion; otherwise (and always for
τ = 1.5) the seconds are extrapolated from the measured rate on a pilot of the same paths,
and marked as such.

With ``--device cuda`` (a GPU): Claim 1 adds the same rows sampled on the GPU (after an
untimed warm-up) and one at 10·m, Claim 3 runs both verifications in full on the GPU, and the
output goes to ``bench_monte_carlo_cuda.txt``; the CPU rows are measured in the same run.

Run: ``python benchmarks/bench_monte_carlo.py [--full-verify] [--device cuda] [--out benchmarks/results]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import dp_accounting
import numpy as np
from dp_accounting.pld import PLDAccountant

from accountants.events import GaussianDpEvent, PoissonSampledDpEvent
from accountants.evr import plan_samples, verify
from accountants.monte_carlo import (
    MonteCarloAccountant,
    _make_backend,
    _plan,
    sample_loss_sums,
)

DELTA = 1e-5
# (q, σ, T, n_samples, importance factor f); f picked by a small pilot per setting (too large
# an f degenerates the weights, which the effective sample size column exposes).
SETTINGS = [
    (0.04, 1.5, 2250, 5_000, 4.0),
    (0.004, 0.8, 10_000, 10_000, 8.0),
    (0.01, 3.8, 200, 20_000, 50.0),
]


def _time(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def _mc_epsilon(event, steps: int, m: int, factor: float, device: str = "cpu"):
    acc = MonteCarloAccountant(m, rng=0, importance_factor=factor, device=device)
    return acc.compose(event, steps).estimate_epsilon(DELTA)


def _pld_epsilon(event, steps: int) -> float:
    return PLDAccountant(value_discretization_interval=1e-4).compose(event, steps).get_epsilon(DELTA)


def _prv_epsilon(sigma: float, q: float, steps: int) -> float:
    from opacus.accountants import PRVAccountant

    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    return acc.get_epsilon(DELTA)


def accuracy_table(out: list[str], scale: float, device: str = "cpu") -> None:
    out.append(f"## Claim 1: ε at δ = {DELTA:g} (MC seed 0; times in seconds; dev = MC sampling device)")
    out.append(f"{'q':>7} {'σ':>4} {'T':>6} | {'MC ε ± SE':>18} {'m':>7} {'f':>3} {'dev':>4} {'ESS':>7} {'t_MC':>6} |"
               f" {'PLD ε':>9} {'t_PLD':>6} | {'PRV ε':>9} {'t_PRV':>6} | {'|MC-PLD|/PLD':>12} {'t_MC/t_PRV':>10}")
    for q, sigma, steps, m, best in SETTINGS:
        m = max(2, int(m * scale))
        event = PoissonSampledDpEvent(q, GaussianDpEvent(sigma))
        pld, t_pld = _time(_pld_epsilon, event, steps)
        prv, t_prv = _time(_prv_epsilon, sigma, q, steps)
        # Plain MC, importance sampling, and importance sampling with m/4 (the time trade-off);
        # on a GPU also the same rows there (after one warm-up), and importance sampling at 10·m.
        rows = [(m, 1.0, "cpu"), (m, best, "cpu"), (max(2, m // 4), best, "cpu")]
        if device != "cpu":
            _mc_epsilon(event, 2, 64, 1.0, device)  # CUDA context and kernels, not timed
            rows += [(m_r, f, device) for m_r, f, _ in rows] + [(10 * m, best, device)]
        for m_row, factor, dev in rows:
            est, t_mc = _time(_mc_epsilon, event, steps, m_row, factor, dev)
            rel = abs(est.value - pld) / pld
            out.append(
                f"{q:>7g} {sigma:>4g} {steps:>6d} | {est.value:>9.4f} ± {est.standard_error:<6.4f}"
                f" {m_row:>7d} {factor:>3g} {dev[:4]:>4} {est.effective_sample_size:>7.0f} {t_mc:>6.2f} |"
                f" {pld:>9.4f} {t_pld:>6.2f} | {prv:>9.4f} {t_prv:>6.2f} |"
                f" {100 * rel:>11.3f}% {t_mc / t_prv:>10.2f}"
            )
            print(out[-1], flush=True)


def throughput_table(out: list[str], scale: float) -> None:
    out.append("")
    out.append("## Claim 2: samples × steps per second (both directions per sample-step)")
    event = PoissonSampledDpEvent(0.01, GaussianDpEvent(1.0))
    m, steps = max(2, int(100_000 * scale)), 50
    configs = [("numpy", "cpu", 1.0), ("numpy", "cpu", 4.0)]
    try:
        import torch

        configs.append(("torch", "cpu", 1.0))
        if torch.cuda.is_available():
            configs += [("torch", "cuda", 1.0), ("torch", "cuda", 4.0)]
    except ImportError:
        pass
    for backend, device, factor in configs:
        if backend == "torch" and device == "cpu":
            # Torch's intra-op threads spin against each other on a loaded 2-core machine
            # (100x slower reductions in our runs); one thread is the fair CPU figure.
            torch.set_num_threads(1)
        acc = MonteCarloAccountant(m, rng=0, device=device, backend=backend, importance_factor=factor)
        acc.compose(event, 2)  # warm-up
        _, seconds = _time(acc.compose, event, steps)
        kind = "plain" if factor == 1.0 else f"IS f={factor:g}"
        threads = f", {torch.get_num_threads()} thread(s)" if backend == "torch" else ""
        out.append(f"{backend:>6} {device:>5} {kind:>8}: m={m}, T={steps}{threads}: "
                   f"{m * steps / seconds / 1e6:8.2f} M sample-steps/s ({seconds:.2f} s)")
        print(out[-1], flush=True)


def verification_table(out: list[str], full: bool, scale: float, device: str = "cpu") -> None:
    out.append("")
    q, sigma, steps = 0.01, 3.8, 200
    delta_b, p = 1e-5, 1e-6
    out.append(f"## Claim 3: verification cost at (q, σ, T) = ({q}, {sigma}, {steps}), δ_b = {delta_b:g}, p = {p:g}")
    event = PoissonSampledDpEvent(q, GaussianDpEvent(sigma))
    composed = dp_accounting.SelfComposedDpEvent(event, steps)
    # The claim: ε̂ at δ_b/2 from a separate, seeded estimate (as evr_release does).
    claim = MonteCarloAccountant(max(2, int(50_000 * scale)), rng=1, importance_factor=50.0).compose(
        event, steps).estimate_epsilon(delta_b / 2)
    eps = claim.value + claim.standard_error
    out.append(f"claim ε = {eps:.4f} (estimate at δ_b/2 plus one SE)")
    pilot_n = max(2, int(200_000 * scale))
    be = _make_backend(2, device, None)
    if device != "cpu":
        sample_loss_sums(_plan(composed).steps, 4096, be)  # warm-up, not timed
    _, t_pilot = _time(sample_loss_sums, _plan(composed).steps, pilot_n, be)
    rate = pilot_n / t_pilot
    out.append(f"pilot on {device}: {pilot_n} paths of {steps} steps in {t_pilot:.2f} s "
               f"({rate * steps / 1e6:.2f} M sample-steps/s)")
    for tau in (1.5, 2.0):
        plan = plan_samples(delta_b, tau, p)
        if (full and tau == 2.0) or device != "cpu":
            cert, seconds = _time(verify, composed, eps, delta_b, tau=tau, p=p, rng=3, device=device)
            how = f"measured on {device}, accepted={cert.accepted}, δ̂={cert.delta_estimate:.3g}"
        else:
            seconds, how = plan.n_samples / rate, "extrapolated from the pilot rate"
        out.append(f"τ={tau:g}: m = {plan.n_samples:,} paths ({plan.n_samples * steps:.3g} sample-steps), "
                   f"FN bound at κ=2: {plan.false_negative_bound:.2g}, guarantee δ = τδ_b + p = "
                   f"{tau * delta_b + p:.3g}; {seconds:.1f} s ({how})")
        print(out[-1], flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full-verify", action="store_true", help="run the τ = 2 verification fully")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every sample size (smoke runs)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--device", default="cpu",
                        help="also sample on this torch device (e.g. cuda): Claim 1 rows, Claim 3 "
                             "measured in full; results go to bench_monte_carlo_<device>.txt")
    args = parser.parse_args(argv)
    out = [
        "# bench_monte_carlo",
        (
            f"python {platform.python_version()}, numpy {np.__version__}, dp-accounting "
            f"{metadata.version('dp-accounting')}, {platform.machine()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)"
        ),
        "",
    ]
    try:
        import opacus
        import torch

        out[1] += f", torch {torch.__version__}, opacus {opacus.__version__}"
    except ImportError:
        pass
    if args.device != "cpu":
        import torch

        out[1] += f", device {torch.cuda.get_device_name() if 'cuda' in args.device else args.device}"
    accuracy_table(out, args.scale, args.device)
    throughput_table(out, args.scale)
    verification_table(out, args.full_verify, args.scale, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "cpu" else f"_{args.device.replace(':', '')}"
    path = args.out / f"bench_monte_carlo{suffix}.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
