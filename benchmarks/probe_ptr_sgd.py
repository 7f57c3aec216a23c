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

4. **Clip-norm sweep** (``--clip-sweep``, about 4 minutes; output in
   ``benchmarks/results/probe_ptr_sgd_clip.txt``). The benchmark shares C = 1 between the
   methods. PTR's local sensitivity is set by the magnitudes of the central order statistics,
   not by C, so a larger C could favour it; a smaller C could favour DP-SGD (clipping is then a
   normalisation). This section measures both: DP-SGD at C in {0.1, 0.3, 1, 3} with the
   learning rate 2 and 2/C, the noiseless trimmed-sum ceiling and envelope U^(0.06m) at
   C in {1, 3, 10}, and PTR-SGD at C = 10, trim 0.2 at eps in {1, 4}. The update's noise is
   lr·(noise std on the aggregate); the section prints it in units of 1/m for both methods.

5. **Per-participant gradients** (``--participants``, about 5 minutes; output in
   ``benchmarks/results/probe_ptr_sgd_participants.txt``). The issue allows per-participant
   gradients. The training rows are split at random into participants of 5 records; a quarter
   of the participants are corrupted (each shifts all of its labels by its own random non-zero
   amount mod 10). Each step takes every participant (full batch), averages its per-example
   gradients, clips the average to C and aggregates the P participant vectors: DP-SGD sums them
   and adds N(0, (s·C)²) (s calibrated by RDP for T Gaussian steps), PTR-SGD runs
   ``PTRSGD._release`` on them (Gaussian test, calibrated by ``calibrate_ptr`` with m = P).
   Both are private for adding or removing one *participant*. Seeds 0 and 1; C in {0.3, 1};
   trims 0.05, 0.2 and 0.3 with β = 1.1, 0.5 and 0.3·C/m; learning rate 2 (PTR: 2·m/(m − 2t)).

6. **Gradient corruption** (``--gradient-attack``, about 5 minutes; output in
   ``benchmarks/results/probe_ptr_sgd_attack.txt``). Clean labels; a quarter of the training
   examples (fixed per seed) send −10 times their gradient, which clipping turns into a
   reversed gradient of norm C. Same two aggregators as section 5 on the clipped per-example
   rows (add/remove one example), trims 0.3 and 0.4, β = 0.4 and 0.7·C/m.

Run: ``python benchmarks/probe_ptr_sgd.py`` (about 5 minutes on 2 CPU cores); output in
``benchmarks/results/probe_ptr_sgd.txt``.
"""

from __future__ import annotations

import argparse
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


def clip_sweep() -> None:
    """Section 4: does a clip norm other than the benchmark's C = 1 change the verdict?"""
    from privval.robust import DPSGD

    say = _Report()
    x, y, x_te, y_te = bench._data(SEED)
    m = len(x)
    say(f"# probe_ptr_sgd --clip-sweep  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; "
        f"digits, {bench.CORRUPTION:.0%} flipped, full batch m = {m}, T = {STEPS}, seed {SEED}")
    say("# 4a. DP-SGD (RDP-calibrated) by clip norm C and learning rate; update noise "
        "= lr·s·C in units of 1/m")
    for eps in (1.0, 4.0):
        for c in (0.1, 0.3, 1.0, 3.0):
            for lr in sorted({LR, LR / c}):
                model = bench._model(SEED)
                trainer = DPSGD.calibrated(model, x, y, epsilon=eps, delta=bench.DELTA,
                                           steps=STEPS, lr=lr, clip_norm=c,
                                           expected_batch_size=m, rng=SEED)
                trainer.train(STEPS, progress=False)
                trainer.close()
                say(f"dp-sgd eps={eps:g} C={c:g} lr={lr:.3g}: accuracy "
                    f"{bench._accuracy(model, x_te, y_te):.4f}, update noise "
                    f"{lr * trainer.noise_multiplier * c:.1f}/m")
    say("# 4b. noiseless trimmed sum by C and trim (lr 2·m/(m - 2t)); envelope U^(k), k = 0.06m, "
        "after 20, 60 and 99 steps, in units of C/m and (brackets) of 1/m")
    for c in (1.0, 3.0, 10.0):
        for tf in (0.05, 0.1, 0.2):
            t, k = math.floor(tf * m), math.floor(0.06 * m)
            model = bench._model(SEED)
            run = PTRSGD(model, x, y, lr=LR * m / (m - 2 * t), clip_norm=c, expected_batch_size=m,
                         rng=SEED, trim=t, noise_multiplier=1e-12,
                         proposed_bound=trimmed_sum_global_sensitivity(c, t, m), test_scale=1.0,
                         delta0=0.5)
            envelope = []
            for step in range(STEPS):
                if step in (20, 60, 99):
                    grads = run._per_example_grads(np.arange(m))
                    envelope.append(robust_local_sensitivity_envelope(
                        grads, k, clip_norm=c, trim=t, expected_batch_size=m) / (c / m))
                run.step()
            run.close()
            cells = ", ".join(f"{u:.3f} [{u * c:.2f}]" for u in envelope)
            say(f"ceiling C={c:g} trim={tf}: accuracy {bench._accuracy(model, x_te, y_te):.4f}, "
                f"U {cells}")
    say("# 4c. PTR-SGD at C = 10, trim 0.2, Gaussian test, lr 2·m/(m - 2t); update noise "
        "= lr·s·beta in units of 1/m")
    c, tf = 10.0, 0.2
    t = math.floor(tf * m)
    for eps in (1.0, 4.0):
        for ratio in (0.1, 0.2):
            model = bench._model(SEED)
            trainer = PTRSGD.calibrated(
                model, x, y, epsilon=eps, delta=bench.DELTA, steps=STEPS, lr=LR * m / (m - 2 * t),
                clip_norm=c, expected_batch_size=m, trim=tf, bound_ratio=ratio,
                test_noise="gaussian", rng=SEED)
            trainer.train(STEPS, progress=False)
            trainer.close()
            say(f"ptr-sgd eps={eps:g} beta={ratio}·C/m: s {trainer.noise_multiplier:.2f}, threshold "
                f"{trainer.threshold:.0f}, pass rate {trainer.passes / STEPS:.2f}, update noise "
                f"{trainer.lr * trainer.noise_multiplier * ratio * c:.1f}/m (pass branch), "
                f"accuracy {bench._accuracy(model, x_te, y_te):.4f}, "
                f"eps {trainer.epsilon(bench.DELTA):.3f}")
    say.save("probe_ptr_sgd_clip.txt")


def _participant_data(seed: int, size: int) -> tuple:
    """bench._data's split, with participants of ``size`` rows and a quarter of them corrupted."""
    x, y, x_te, y_te = bench._data(seed, corruption=0.0)
    rng = np.random.default_rng(seed)
    n_part = len(y) // size
    owner = rng.permutation(np.arange(len(y)) % n_part)
    bad = rng.random(n_part) < bench.CORRUPTION
    shift = torch.as_tensor(rng.integers(1, 10, size=n_part))
    rows = torch.as_tensor(bad[owner])
    y = y.clone()
    y[rows] = (y[rows] + shift[torch.as_tensor(owner)][rows]) % 10
    return x, y, x_te, y_te, owner, n_part


def _manual_run(method: str, eps: float | None, seed: int, c: float, lr: float,
                trim: float = 0.0, ratio: float = 1.0, *, mode: str) -> tuple[float, int]:
    """Accuracy and passes of one full-batch run (sections 5 and 6).

    ``mode="participants"``: the aggregated rows are the clipped participant averages;
    ``mode="attack"``: the clipped per-example gradients, those of the attacked quarter of the
    examples reversed and scaled by 10 before clipping. DP-SGD's step is (Σ rows + N(0, σ²))/m,
    PTR-SGD's is ``PTRSGD._release`` on the rows.
    """
    from accountants.calibrate import calibrate
    from accountants.events import GaussianDpEvent, SelfComposedDpEvent
    from accountants.noise import sample_gaussian
    from accountants.ptr import calibrate_ptr
    from privval.robust import _clip_rows

    if mode == "participants":
        x, y, x_te, y_te, owner, n_part = _participant_data(seed, 5)
        m = n_part
    else:
        x, y, x_te, y_te = bench._data(seed, corruption=0.0)
        attacked = np.random.default_rng(seed).random(len(x)) < bench.CORRUPTION
        m = len(x)
    model = bench._model(seed)
    # a trainer used only for its per-example gradients (C = 1e6: no clipping) and updates
    grads_of = PTRSGD(model, x, y, lr=lr, clip_norm=1e6, expected_batch_size=len(x), rng=seed,
                      trim=0, noise_multiplier=1e-12, proposed_bound=1.0, test_scale=1.0,
                      delta0=0.5)
    source, sigma, ptr = grads_of._source, 0.0, None
    if method == "dp" and eps is not None:
        sigma = c * calibrate(lambda s: SelfComposedDpEvent(GaussianDpEvent(s), STEPS), eps,
                              bench.DELTA, accountant="rdp")
    elif method == "ptr":
        t = math.floor(trim * m)
        gs2 = trimmed_sum_global_sensitivity(c, t, m)
        beta = min(ratio * c / m, gs2)
        if eps is None:
            params = {"noise_multiplier": 1e-12, "proposed_bound": gs2, "test_scale": 1.0,
                      "delta0": 0.5}
        else:
            cal = calibrate_ptr(eps, bench.DELTA, STEPS, proposed_bound=beta,
                                global_sensitivity_pass=gs2, global_sensitivity_fail=c / m,
                                sampling_rate=1.0, test_noise="gaussian")
            params = {"noise_multiplier": cal.noise_multiplier, "proposed_bound": beta,
                      "test_scale": cal.test_scale, "delta0": cal.delta0,
                      "test_noise": "gaussian"}
        ptr = PTRSGD(bench._model(seed), x, y, lr=lr, clip_norm=c, expected_batch_size=m,
                     rng=seed, trim=t, **params)
        ptr._source = source
    passes = 0
    for _ in range(STEPS):
        grads = grads_of._per_example_grads(np.arange(len(x)))
        if mode == "participants":
            vectors = np.zeros((m, grads.shape[1]))
            np.add.at(vectors, owner, grads)
            vectors = _clip_rows(vectors / np.bincount(owner, minlength=m)[:, None], c)
        else:
            grads[attacked] *= -10.0
            vectors = _clip_rows(grads, c)
        if ptr is None:
            noise = sample_gaussian(sigma, vectors.shape[1], source) if sigma else 0.0
            update = (vectors.sum(axis=0) + noise) / m
        else:
            update, passed = ptr._release(vectors)
            passes += int(passed)
        grads_of._apply(update)
    grads_of.close()
    if ptr is not None:
        ptr.close()
    return bench._accuracy(model, x_te, y_te), passes


class _Report:
    """Prints each line as it comes and saves them all under benchmarks/results."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self, name: str) -> None:
        out = Path(__file__).parent / "results" / name
        out.write_text("\n".join(self.lines) + "\n")
        print(f"# saved to {out}")


def _robust_sweep(say: _Report, mode: str, c: float,
                  configs: tuple[tuple[float, float], ...]) -> None:
    """DP-SGD and PTR-SGD (each (trim, β/(C/m)) in ``configs``) at ε = inf, 1, 4, seeds 0, 1."""
    for eps in (None, 1.0, 4.0):
        accs = [_manual_run("dp", eps, seed, c, LR, mode=mode)[0] for seed in (0, 1)]
        where = f"eps={'inf' if eps is None else f'{eps:g}'}"
        if mode == "participants":
            where += f" C={c:g}"
        say(f"{where}: DP-SGD {', '.join(f'{a:.3f}' for a in accs)}")
        for trim, ratio in configs:
            runs = [_manual_run("ptr", eps, seed, c, LR / (1 - 2 * trim), trim, ratio, mode=mode)
                    for seed in (0, 1)]
            say(f"    PTR-SGD trim {trim}, beta {ratio}·C/m: "
                f"{', '.join(f'{a:.3f}' for a, _ in runs)}; passes "
                f"{', '.join(str(p) for _, p in runs)}")


def participants() -> None:
    """Section 5: per-participant gradients, add/remove one participant."""
    say = _Report()
    say(f"# probe_ptr_sgd --participants  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; "
        f"digits, participants of 5 rows, {bench.CORRUPTION:.0%} of participants corrupted, full "
        f"batch, T = {STEPS}, seeds 0 and 1; accuracy per seed (PTR: and its passes per seed)")
    for c in (0.3, 1.0):
        _robust_sweep(say, "participants", c, ((0.05, 1.1), (0.2, 0.5), (0.3, 0.3)))
    say.save("probe_ptr_sgd_participants.txt")


def gradient_attack() -> None:
    """Section 6: a quarter of the examples send reversed, scaled gradients; clean labels."""
    say = _Report()
    say(f"# probe_ptr_sgd --gradient-attack  {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} "
        f"UTC; digits, clean labels, {bench.CORRUPTION:.0%} of examples send -10 x their gradient "
        f"(then clipped to C = {bench.CLIP}), full batch, T = {STEPS}, seeds 0 and 1; accuracy per "
        "seed (PTR: and its passes per seed)")
    _robust_sweep(say, "attack", bench.CLIP,
                  tuple((trim, ratio) for trim in (0.3, 0.4) for ratio in (0.4, 0.7)))
    say.save("probe_ptr_sgd_attack.txt")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-sweep", action="store_true",
                        help="run only section 4, the clip-norm sweep")
    parser.add_argument("--participants", action="store_true",
                        help="run only section 5, per-participant gradients")
    parser.add_argument("--gradient-attack", action="store_true",
                        help="run only section 6, reversed gradients from a quarter of examples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gradient_attack:
        gradient_attack()
        return
    if args.participants:
        participants()
        return
    if args.clip_sweep:
        clip_sweep()
        return
    say = _Report()
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

    say.save("probe_ptr_sgd.txt")


if __name__ == "__main__":
    main()
