"""Benchmark of the valuation core: the three figures of the "Valuation core" issue.

1. TKNN-Shapley time for N = 100,000, M = 1,000, d = 128 (float32) divided by the time of the bare
   distance matrix product of the same shape, ``x_val @ x_train.T`` (target <= 2).
2. KNN-Shapley (k = 5) against pyDVL's ``KNNShapleyValuation`` on N = 10,000, M = 100, d = 64:
   speed ratio (target >= 50) and max absolute difference of the values (target <= 1e-9).
   pyDVL is never a dependency of privval: it runs in a separate virtual environment
   (``--pydvl-python``, default ``/work/team/venv-bench/bin/python`` or ``$PRIVVAL_PYDVL_PYTHON``),
   in a subprocess that receives the data as .npy files; the comparison is skipped, with a
   message, when that interpreter cannot import pyDVL.
3. Peak memory (resident set, ``ru_maxrss`` of a fresh subprocess) of TKNN-Shapley on
   N = 1,000,000, M = 1,000, d = 64 float32 (target < 2 GiB; the training features alone take
   256 MiB).

Timings are the best of ``--repeat`` runs (default 3), interleaved, on whatever machine runs the
script: on a shared machine, the best run is the least disturbed one. Usage::

    python benchmarks/bench_valuation.py [--quick] [--repeat 3] [--pydvl-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from privval import knn_shapley, tknn_shapley
from privval.threshold import tau_from_validation

DEFAULT_PYDVL_PYTHON = os.environ.get("PRIVVAL_PYDVL_PYTHON", "/work/team/venv-bench/bin/python")


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_tknn_vs_matmul(n: int, m: int, d: int, repeat: int) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.standard_normal((n, d), dtype=np.float32)
    x_val = rng.standard_normal((m, d), dtype=np.float32)
    y_train = rng.integers(0, 10, n)
    y_val = rng.integers(0, 10, m)
    tau = tau_from_validation(x_val, quantile=0.05)
    t_mm, t_tknn = float("inf"), float("inf")
    for _ in range(repeat):  # interleaved, so both see the same machine load
        t_mm = min(t_mm, _best(lambda: x_val @ x_train.T, 1))
        t_tknn = min(t_tknn, _best(lambda: tknn_shapley(x_train, y_train, x_val, y_val, tau=tau,
                                                          progress=False), 1))
    print(f"[1] TKNN-Shapley, N={n:,} M={m:,} d={d} float32 (tau = validation 5% quantile): "
          f"{t_tknn:.3f} s; bare x_val @ x_train.T: {t_mm:.3f} s; "
          f"ratio {t_tknn / t_mm:.2f}x (target <= 2x)")


_PYDVL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier
    from pydvl.valuation.dataset import Dataset
    from pydvl.valuation.methods import KNNShapleyValuation
    import pydvl
    folder = sys.argv[1]
    xt, yt, xv, yv = (np.load(f"{folder}/{n}.npy") for n in ("xt", "yt", "xv", "yv"))
    k = int(sys.argv[2])
    best = float("inf")
    for _ in range(int(sys.argv[3])):
        start = time.perf_counter()
        valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=k),
                                        test_data=Dataset(xv, yv), progress=False)
        valuation.fit(Dataset(xt, yt))
        result = valuation.result
        best = min(best, time.perf_counter() - start)
    values = np.empty(len(xt))
    values[np.asarray(result.indices)] = np.asarray(result.values)
    np.save(f"{folder}/values.npy", values)
    print(json.dumps({"seconds": best, "version": pydvl.__version__}))
""")


def bench_knn_vs_pydvl(n: int, m: int, d: int, k: int, repeat: int, python: str) -> None:
    rng = np.random.default_rng(1)
    x_train = rng.standard_normal((n, d))
    x_val = rng.standard_normal((m, d))
    y_train = rng.integers(0, 3, n)
    y_val = rng.integers(0, 3, m)
    t_ours = _best(lambda: knn_shapley(x_train, y_train, x_val, y_val, k=k, progress=False),
                   repeat)
    ours = knn_shapley(x_train, y_train, x_val, y_val, k=k, progress=False)
    head = f"[2] KNN-Shapley k={k}, N={n:,} M={m:,} d={d}: privval {t_ours:.3f} s"
    if not Path(python).exists():
        print(f"{head}; pyDVL comparison SKIPPED: no interpreter at {python} (install pyDVL in a "
              f"separate venv and pass --pydvl-python)")
        return
    probe = subprocess.run([python, "-c", "import pydvl.valuation.methods"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        print(f"{head}; pyDVL comparison SKIPPED: {python} cannot import pyDVL "
              f"({probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else '?'})")
        return
    with tempfile.TemporaryDirectory() as folder:
        for name, arr in (("xt", x_train), ("yt", y_train), ("xv", x_val), ("yv", y_val)):
            np.save(f"{folder}/{name}.npy", arr)
        run = subprocess.run([python, "-c", _PYDVL_SCRIPT, folder, str(k), str(repeat)],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            print(f"{head}; pyDVL run FAILED:\n{run.stderr[-2000:]}")
            return
        info = json.loads(run.stdout.strip().splitlines()[-1])
        theirs = np.load(f"{folder}/values.npy")
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"{head}; pyDVL {info['version']} KNNShapleyValuation {info['seconds']:.3f} s; "
          f"speed-up {info['seconds'] / t_ours:.1f}x (target >= 50x); "
          f"max |difference| {diff:.2e} (target <= 1e-9)")


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from privval import tknn_shapley
    from privval.threshold import tau_from_validation
    n, m, d = (int(a) for a in sys.argv[2:5])
    rng = np.random.default_rng(2)
    x_train = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):  # generated chunk-wise, straight into float32
        x_train[s:s + 100_000] = rng.standard_normal((min(100_000, n - s), d), dtype=np.float32)
    y_train = rng.integers(0, 10, n).astype(np.int8)
    x_val = rng.standard_normal((m, d), dtype=np.float32)
    y_val = rng.integers(0, 10, m).astype(np.int8)
    tau = tau_from_validation(x_val, quantile=0.01)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    values = tknn_shapley(x_train, y_train, x_val, y_val, tau=tau, progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(before, peak, seconds, float(np.abs(values).sum()))
""")


def bench_memory(n: int, m: int, d: int) -> None:
    run = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(ROOT), str(n), str(m),
                          str(d)], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        print(f"[3] memory run FAILED:\n{run.stderr[-2000:]}")
        return
    before, peak, seconds, _ = run.stdout.split()
    to_mib = 1 / 1024  # ru_maxrss is in KiB on Linux
    print(f"[3] TKNN-Shapley, N={n:,} M={m:,} d={d} float32: peak resident memory "
          f"{int(peak) * to_mib:.0f} MiB (process incl. data, {int(before) * to_mib:.0f} MiB "
          f"before valuing; target < 2048 MiB), {float(seconds):.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller problems (smoke test)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pydvl-python", default=DEFAULT_PYDVL_PYTHON)
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"privval valuation benchmark on {platform.machine()} with {os.cpu_count()} CPU(s), "
          f"numpy {np.__version__}, Python {platform.python_version()}, load average {load}"
          f"{' (QUICK: sizes / 10)' if args.quick else ''}")
    bench_tknn_vs_matmul(100_000 // scale, 1_000, 128, args.repeat)
    bench_knn_vs_pydvl(10_000 // scale, 100, 64, 5, args.repeat, args.pydvl_python)
    bench_memory(1_000_000 // scale, 1_000, 64)


if __name__ == "__main__":
    main()
