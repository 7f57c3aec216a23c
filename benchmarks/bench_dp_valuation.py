"""DP-TKNN-Shapley: utility against the non-private and naive private baselines, and wall time.

Claims checked (issue "DP-TKNN-Shapley"), printed as PASS/FAIL lines:

1. Mislabel detection on the bundled real datasets (digits, breast cancer; rows L2-normalised
   with validation statistics, cosine distance, tau = 5% quantile of validation distances),
   10% of the training labels flipped, 5 seeds, ε ∈ {0.1, 0.5, 1, 2, 4}, δ = 1e-5: AUROC of
   DP-TKNN-Shapley (our (Ca, Cm) pair, sensitivity 1, default q = 0.1), non-private
   TKNN-Shapley, naive DP-KNN (k = 5, per-owner noise) and DP-TKNN with the paper's (Ct, Ca)
   pair (ℓ2 sensitivity √2, so √2 more noise for the same guarantee: noise scale σ√2 on each
   of Ct, Ca; same q and subsample mechanism); Spearman
   correlation of private values with the matching non-private values. Targets: DP-TKNN at
   ε = 0.1 within 0.02 AUROC of non-private; DP-TKNN above naive DP-KNN at every ε ≤ 1; the
   (Ca, Cm) pair has higher Spearman than (Ct, Ca) at every ε.
   Ablation rows: DP-TKNN with q = 1 (no subsampling) and q = 0.01 (the paper's q).
2. Wall time of one full release (calibration of σ from scratch + counts + values, default q)
   for
   N = 100,000, M = 1,000, d = 128 float32 (standard normal, tau = 5% validation quantile)
   against non-private ``tknn_shapley`` on the same data; target ≤ 1.5×.

Every release here is seeded (reproducible, not secure). Output: stdout and
``benchmarks/results/bench_dp_valuation.txt``; plot ``benchmarks/results/bench_dp_valuation.png``.

Run: ``python benchmarks/bench_dp_valuation.py`` (about 2-4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from accountants.noise import make_noise_source
from privval import (
    detection_auroc,
    dp_knn_shapley,
    dp_tknn_shapley,
    flip_labels,
    knn_shapley,
    load_dataset,
    tau_from_validation,
    tknn_shapley,
)
from privval.private import _calibrate_cached, _encode, _release_values

RESULTS = Path(__file__).resolve().parent / "results"
EPSILONS = (0.1, 0.5, 1.0, 2.0, 4.0)
DELTA = 1e-5
FLIP = 0.1
METRIC = "cosine"

TKNN = "TKNN (non-private)"
DP = "DP-TKNN (Ca, Cm)"
DP_CT = "DP-TKNN (Ct, Ca) sqrt2"
DPKNN = "naive DP-KNN k=5"
Q1 = "DP-TKNN q=1"
Q001 = "DP-TKNN q=0.01"
METHODS = (TKNN, DP, DP_CT, DPKNN, Q1, Q001)


class _Tee:
    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")

    def __call__(self, text: str = "") -> None:
        print(text)
        self.file.write(text + "\n")
        self.file.flush()


def _ct_ca_values(xt, yt, xv, yv, n_classes, tau, q, sigma, seed) -> np.ndarray:
    """DP-TKNN with the paper's (Ct, Ca) pair: same mechanism, noise σ√2 on Ct and on Ca."""
    codes_t, codes_v, c = _encode(np.asarray(yt), np.asarray(yv), n_classes, "bench")
    values, _ = _release_values(xt, codes_t, xv, codes_v, c, tau=tau, metric=METRIC, q=q,
                                sigma=sigma * math.sqrt(2.0), noise="discrete_gaussian",
                                source=make_noise_source(seed), max_contributions=None,
                                budget=2**23, progress=False, pair="ct_ca")
    return values / xv.shape[0]


def utility(seeds: int, out: _Tee) -> dict:
    auroc: dict = {}
    spear: dict = {}
    for name in ("digits", "breast_cancer"):
        data = load_dataset(name, preprocessing="l2")
        xt, xv, yv, c = data.x_train, data.x_val, data.y_val, data.n_classes
        tau = tau_from_validation(xv, metric=METRIC)
        out(f"{name}: N={xt.shape[0]} M={xv.shape[0]} d={xt.shape[1]} C={c} tau={tau:.4f} "
            f"(cosine, 5% validation quantile)")
        for seed in range(seeds):
            yt, flipped = flip_labels(data.y_train, FLIP, rng=seed)
            exact = tknn_shapley(xt, yt, xv, yv, tau=tau, metric=METRIC, n_classes=c)
            exact_knn = knn_shapley(xt, yt, xv, yv, k=5, metric=METRIC, n_classes=c)
            for eps in EPSILONS:
                rs = 1000 * seed + int(eps * 10)
                runs = {TKNN: (exact, exact)}
                rel = dp_tknn_shapley(xt, yt, xv, yv, tau=tau, epsilon=eps, delta=DELTA,
                                      metric=METRIC, n_classes=c, rng=rs)
                runs[DP] = (rel.values, exact)
                runs[DP_CT] = (_ct_ca_values(xt, yt, xv, yv, c, tau, rel.sampling_rate,
                                             rel.noise_scale, rs), exact)
                runs[DPKNN] = (dp_knn_shapley(xt, yt, xv, yv, k=5, epsilon=eps, delta=DELTA,
                                              metric=METRIC, n_classes=c, rng=rs).values, exact_knn)
                for label, q in ((Q1, 1.0), (Q001, 0.01)):
                    runs[label] = (dp_tknn_shapley(xt, yt, xv, yv, tau=tau, epsilon=eps,
                                                   delta=DELTA, sampling_rate=q, metric=METRIC,
                                                   n_classes=c, rng=rs).values, exact)
                for label, (values, reference) in runs.items():
                    auroc.setdefault((name, label, eps), []).append(detection_auroc(values, flipped))
                    rho = stats.spearmanr(values, reference).statistic
                    spear.setdefault((name, label, eps), []).append(float(rho))
    return {"auroc": auroc, "spearman": spear}


def _table(out: _Tee, title: str, data: dict, methods: tuple[str, ...]) -> None:
    out()
    out(title)
    head = f"{'dataset':<14}{'method':<24}" + "".join(f"{'eps=' + format(e, 'g'):>16}" for e in EPSILONS)
    out(head)
    for name in ("digits", "breast_cancer"):
        for label in methods:
            cells = []
            for eps in EPSILONS:
                vals = np.asarray(data[(name, label, eps)])
                cells.append(f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}".rjust(16))
            out(f"{name:<14}{label:<24}" + "".join(cells))


def _markdown(out: _Tee, data: dict) -> None:
    out()
    out("Markdown (mean AUROC over seeds):")
    out("| dataset | method | " + " | ".join(f"ε={e:g}" for e in EPSILONS) + " |")
    out("|---|---|" + "---|" * len(EPSILONS))
    for name in ("digits", "breast_cancer"):
        for label in (TKNN, DP, DP_CT, DPKNN):
            cells = " | ".join(f"{np.mean(data[(name, label, e)]):.3f}" for e in EPSILONS)
            out(f"| {name} | {label} | {cells} |")


def _targets(out: _Tee, res: dict) -> None:
    auroc, spear = res["auroc"], res["spearman"]
    out()
    for name in ("digits", "breast_cancer"):
        gap = np.mean(auroc[(name, TKNN, 0.1)]) - np.mean(auroc[(name, DP, 0.1)])
        out(f"[target] {name}: DP-TKNN at eps=0.1 within 0.02 AUROC of non-private: "
            f"gap {gap:+.3f} -> {'PASS' if gap <= 0.02 else 'FAIL'}")
        beats = [np.mean(auroc[(name, DP, e)]) > np.mean(auroc[(name, DPKNN, e)])
                 for e in EPSILONS if e <= 1]
        out(f"[target] {name}: DP-TKNN above naive DP-KNN at every eps <= 1: "
            f"{'PASS' if all(beats) else 'FAIL'}")
        better = [np.mean(spear[(name, DP, e)]) > np.mean(spear[(name, DP_CT, e)]) for e in EPSILONS]
        out(f"[target] {name}: (Ca, Cm) Spearman above (Ct, Ca) at every eps: "
            f"{'PASS' if all(better) else 'FAIL'} ({sum(better)}/{len(better)})")


def _plot(res: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    styles = ((TKNN, "k--"), (DP, "o-"), (DP_CT, "s-"), (DPKNN, "^-"), (Q1, "x:"), (Q001, "d:"))
    for col, name in enumerate(("digits", "breast_cancer")):
        for row, metric in enumerate(("auroc", "spearman")):
            ax = axes[row, col]
            for label, style in styles:
                if metric == "spearman" and label == TKNN:
                    continue
                vals = [res[metric][(name, label, e)] for e in EPSILONS]
                ax.errorbar(EPSILONS, [np.mean(v) for v in vals],
                            yerr=[np.std(v, ddof=1) for v in vals], fmt=style, label=label,
                            capsize=2)
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(f"{name}: 10% flipped labels, 5 seeds")
            else:
                ax.set_xlabel("ε (δ = 1e-5)")
    axes[0, 0].set_ylabel("mislabel detection AUROC")
    axes[1, 0].set_ylabel("Spearman vs non-private values")
    axes[0, 1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = RESULTS / "bench_dp_valuation.png"
    fig.savefig(path, dpi=120)
    return path


def wall_time(n: int, m: int, d: int, repeat: int, out: _Tee) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.standard_normal((n, d), dtype=np.float32)
    x_val = rng.standard_normal((m, d), dtype=np.float32)
    y_train = rng.integers(0, 2, n)
    y_val = rng.integers(0, 2, m)
    tau = tau_from_validation(x_val, quantile=0.05)
    t_plain, t_dp, t_cal = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        tknn_shapley(x_train, y_train, x_val, y_val, tau=tau, progress=False)
        t_plain.append(time.perf_counter() - start)
        _calibrate_cached.cache_clear()  # time the calibration, too
        start = time.perf_counter()
        rel = dp_tknn_shapley(x_train, y_train, x_val, y_val, tau=tau, epsilon=1.0, delta=DELTA,
                              rng=1, progress=False)
        t_dp.append(time.perf_counter() - start)
        _calibrate_cached.cache_clear()
        start = time.perf_counter()
        _calibrate_cached("counts", (rel.sampling_rate, "discrete_gaussian", m), 1.0, DELTA,
                          "pld")
        t_cal.append(time.perf_counter() - start)
    ratio = min(t_dp) / min(t_plain)
    out()
    out(f"Full release, N={n:,} M={m:,} d={d} float32, tau = 5% validation quantile, eps=1, "
        f"delta=1e-5, q={rel.sampling_rate:g} (best of {repeat}):")
    out(f"  tknn_shapley (non-private): {min(t_plain):.2f} s  (runs: "
        + ", ".join(f"{t:.2f}" for t in t_plain) + ")")
    out(f"  dp_tknn_shapley (calibration + counts + values): {min(t_dp):.2f} s  (runs: "
        + ", ".join(f"{t:.2f}" for t in t_dp) + f"), of which calibrating sigma={rel.noise_scale:.2f}: "
        f"{min(t_cal):.2f} s")
    out(f"[target] full DP release within 1.5x of non-private TKNN-Shapley: ratio {ratio:.2f} -> "
        f"{'PASS' if ratio <= 1.5 else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = _Tee(RESULTS / "bench_dp_valuation.txt")
    out(f"bench_dp_valuation (python {sys.version.split()[0]}, numpy {np.__version__})")
    start = time.perf_counter()
    res = utility(2 if args.quick else args.seeds, out)
    _table(out, "Mislabel detection AUROC (mean ± sd over seeds)", res["auroc"], METHODS)
    _table(out, "Spearman correlation with the non-private values (TKNN; KNN for DP-KNN)",
           res["spearman"], METHODS[1:])
    _markdown(out, res["auroc"])
    _targets(out, res)
    out(f"plot: {_plot(res).relative_to(RESULTS.parent.parent)}")
    out(f"(utility part: {time.perf_counter() - start:.0f} s)")
    if args.quick:
        wall_time(10_000, 200, 32, 1, out)
    else:
        wall_time(100_000, 1_000, 128, args.repeat, out)


if __name__ == "__main__":
    main()
