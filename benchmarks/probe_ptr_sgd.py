"""Probe: can any trim make PTR-SGD's noise smaller than DP-SGD's on bench_robust_training?

Companion to ``bench_robust_training.py`` (issue 10), same data, model and corruption
(digits, 25% of training labels flipped, MLP 64-32-10, full batch m = N, T = 100, C = 1, seed
0). Three measurements:

1. **Local sensitivity along a training run.** The trimmed sum's envelope U^(k) (an upper
   bound on its local sensitivity at distance k, privval.robust) for heavy trims t and
   distances k, on the clipped per-example gradients of a noiseless run, in units of C/m
   (DP-SGD's sensitivity), and divided by the kept fraction (m − 2t)/m: the trimmed sum
   sums only m − 2t rows, so its signal is about that fraction of the mean's, and the noise
   that matters is U relative to it.
2. **Noiseless ceilings** of the heavy-trim aggregate with the learning rate scaled by
   m/(m − 2t) (to undo the smaller sum) and 1.5× that.
3. **PTR-SGD at ε = 1** (full batch, Gaussian test, RDP accountant) on a grid of trims, β/(C/m)
   and b/s, with the scaled learning rate; DP-SGD at the same (ε, δ) reaches 0.705 (3 seeds,
   bench_robust_training.txt).

Run: ``python benchmarks/probe_ptr_sgd.py`` (about 5 minutes on 2 CPU cores); output in
``benchmarks/results/probe_ptr_sgd.txt``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_robust_training as bench

from privval.robust import (
    PTRSGD,
    robust_local_sensitivity_envelope,
    trimmed_sum_global_sensitivity,
)

SEED = 0
STEPS = 100
LR = 2.0  # bench_robust_training's full-batch learning rate
TRIMS = (0.3, 0.4, 0.45)
DISTANCES = (0.1, 0.15, 0.2)
PROBE_STEPS = (0, 10, 20, 40, 70, 100)


def main() -> None:
    torch.set_num_threads(1)
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    x, y, x_te, y_te = bench._data(SEED)
    m = len(x)
    say(f"# probe_ptr_sgd  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; digits, "
        f"{bench.CORRUPTION:.0%} flipped, full batch m = {m}, T = {STEPS}, C = {bench.CLIP}, "
        f"seed {SEED}")

    say("# 1. envelope U^(k) on a noiseless run (trim 0.02, lr 2.0), units of C/m; "
        "in brackets U / ((m - 2t)/m), i.e. relative to the trimmed sum's signal")
    model = bench._model(SEED)
    gs2 = trimmed_sum_global_sensitivity(bench.CLIP, math.floor(bench.TRIM * m), m)
    run = PTRSGD(model, x, y, lr=LR, clip_norm=bench.CLIP, expected_batch_size=m, rng=SEED,
                 trim=bench.TRIM, noise_multiplier=1e-12, proposed_bound=gs2, test_scale=1.0,
                 delta0=0.5)
    rows = np.arange(m)
    for step in range(STEPS + 1):
        if step in PROBE_STEPS:
            grads = run._per_example_grads(rows)
            cells = []
            for tf in TRIMS:
                t = math.floor(tf * m)
                for kf in DISTANCES:
                    u = robust_local_sensitivity_envelope(
                        grads, math.floor(kf * m), clip_norm=bench.CLIP, trim=t,
                        expected_batch_size=m) / (bench.CLIP / m)
                    cells.append(f"t{tf}/k{kf} {u:.2f} [{u * m / (m - 2 * t):.2f}]")
            say(f"step {step:3d} acc {bench._accuracy(model, x_te, y_te):.3f}: " + ", ".join(cells))
        if step < STEPS:
            run.step()
    run.close()

    say("# 2. noiseless ceilings of the trimmed sum, lr scaled by m/(m - 2t) (x1 and x1.5); "
        "clipped mean 0.952, DP-SGD eps=4 0.927 (bench_robust_training, 3 seeds)")
    for tf in TRIMS:
        t = math.floor(tf * m)
        accs = []
        for mult in (1.0, 1.5):
            model = bench._model(SEED)
            gs2 = trimmed_sum_global_sensitivity(bench.CLIP, t, m)
            ceiling = PTRSGD(model, x, y, lr=LR * m / (m - 2 * t) * mult, clip_norm=bench.CLIP,
                             expected_batch_size=m, rng=SEED, trim=t, noise_multiplier=1e-12,
                             proposed_bound=gs2, test_scale=1.0, delta0=0.5)
            ceiling.train(STEPS, progress=False)
            ceiling.close()
            accs.append(bench._accuracy(model, x_te, y_te))
        say(f"trim {tf}: accuracy {accs[0]:.4f} (lr x1), {accs[1]:.4f} (lr x1.5)")

    say("# 3. PTR-SGD at eps=1, delta=1e-5, Gaussian test, lr scaled by m/(m - 2t); "
        "DP-SGD 0.705 at the same (eps, delta)")
    for tf in (0.3, 0.4):
        t = math.floor(tf * m)
        for ratio in (0.4, 0.7):
            for scale_ratio in (1.0, 2.0):
                model = bench._model(SEED)
                trainer = PTRSGD.calibrated(
                    model, x, y, epsilon=1.0, delta=bench.DELTA, steps=STEPS,
                    lr=LR * m / (m - 2 * t), clip_norm=bench.CLIP, expected_batch_size=m,
                    trim=tf, bound_ratio=ratio, test_scale_ratio=scale_ratio,
                    test_noise="gaussian", rng=SEED)
                trainer.train(STEPS, progress=False)
                say(f"trim {tf}, beta {ratio}·C/m, b/s {scale_ratio}: s {trainer.noise_multiplier:.2f}, "
                    f"b {trainer.event.test_scale:.2f}, threshold {trainer.threshold:.0f}, pass rate "
                    f"{trainer.passes / STEPS:.2f}, pass-branch noise "
                    f"{trainer.noise_multiplier * ratio:.1f}·C/m, "
                    f"{trainer.noise_multiplier * ratio * m / (m - 2 * t):.1f} relative to the "
                    f"trimmed sum's signal (DP-SGD 40.5), accuracy "
                    f"{bench._accuracy(model, x_te, y_te):.4f}, eps {trainer.epsilon(bench.DELTA):.3f}")
                trainer.close()

    out = Path(__file__).parent / "results" / "probe_ptr_sgd.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"# saved to {out}")


if __name__ == "__main__":
    main()
