"""The main job of ``privval demo``: find flipped labels in a bundled real dataset.

:func:`run_demo` loads scikit-learn's handwritten digits (1,797 images, 10 classes), splits them
deterministically into training and validation sets, flips 10% of the training labels, values
every training record with TKNN-Shapley and KNN-Shapley (hard and soft label), and reports how
well low values flag the flipped labels (detection AUROC; 1 is perfect, 0.5 is chance). It runs in
a few seconds. The result is a frozen dataclass, so callers (the private demo, the command line)
can add rows or serialise it; :func:`demo_data` rebuilds the exact same noisy data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from privval._validation import check_choice, check_fraction, check_int, check_metric
from privval.datasets import DATASETS, flip_labels, load_dataset
from privval.evaluate import detection_auroc
from privval.knn import knn_shapley
from privval.threshold import tau_from_validation
from privval.tknn import tknn_shapley

__all__ = ["DemoData", "DemoResult", "DemoRow", "demo_data", "run_demo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoData:
    """The demo's data: a bundled dataset with flipped training labels, and its radius.

    Attributes
    ----------
    name : str
        Dataset name.
    x_train, y_train : np.ndarray
        Training features and the **noisy** training labels.
    x_val, y_val : np.ndarray
        Validation features and (clean) labels.
    flipped : np.ndarray
        Boolean mask of the flipped training labels.
    n_classes : int
        Number of classes.
    tau : float
        TKNN radius chosen from the validation set only (no privacy cost).
    metric : str
        Distance metric used with ``tau``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    flipped: np.ndarray
    n_classes: int
    tau: float
    metric: str


@dataclass(frozen=True)
class DemoRow:
    """One valuation method's result.

    Attributes
    ----------
    method : str
        Human-readable method name.
    auroc : float
        Detection AUROC of the flipped labels by low values.
    seconds : float
        Wall-clock time of the valuation.
    privacy : str
        The privacy guarantee of the released values ("none" for exact values).
    """

    method: str
    auroc: float
    seconds: float
    privacy: str = "none"


@dataclass(frozen=True)
class DemoResult:
    """Everything :func:`run_demo` measured, plus the parameters that rebuild its data.

    Attributes
    ----------
    dataset : str
        Dataset name.
    n_train, n_val, n_flipped, n_classes : int
        Sizes.
    flip_fraction : float
        Fraction of training labels flipped.
    seed : int
        Seed of the split and the label flips (:func:`demo_data` with the same arguments rebuilds
        the same data).
    metric : str
        Distance metric.
    tau : float
        TKNN radius (from the validation set only).
    k : int
        Neighbours for KNN-Shapley.
    rows : tuple of DemoRow
        One row per method.
    """

    dataset: str
    n_train: int
    n_val: int
    n_flipped: int
    n_classes: int
    flip_fraction: float
    seed: int
    metric: str
    tau: float
    k: int
    rows: tuple[DemoRow, ...]

    def with_rows(self, *rows: DemoRow) -> DemoResult:
        """A copy with ``rows`` appended (e.g. differentially private releases)."""
        return replace(self, rows=self.rows + tuple(rows))

    def table(self) -> str:
        """The result as a small plain-text table."""
        width = max(len("method"), *(len(r.method) for r in self.rows))
        pwidth = max(len("privacy"), *(len(r.privacy) for r in self.rows))
        lines = [
            (f"{self.dataset}: {self.n_train} training records ({self.n_flipped} labels flipped, "
             f"{self.flip_fraction:.0%}), {self.n_val} validation records, {self.n_classes} "
             f"classes; {self.metric} distance, tau = {self.tau:.4g} (from validation data "
             f"only), k = {self.k}"),
            f"{'method':<{width}}  {'privacy':<{pwidth}}  {'AUROC':>6}  {'time':>7}",
        ]
        for r in self.rows:
            lines.append(f"{r.method:<{width}}  {r.privacy:<{pwidth}}  {r.auroc:>6.3f}  "
                         f"{r.seconds:>6.2f}s")
        lines.append("AUROC: how well low values flag the flipped labels (1 = perfect, 0.5 = "
                     "chance).")
        return "\n".join(lines)


def demo_data(
    dataset: str = "digits",
    *,
    flip_fraction: float = 0.1,
    seed: int = 0,
    metric: str = "cosine",
    quantile: float = 0.05,
) -> DemoData:
    """Load the demo's dataset, flip a fraction of training labels, choose ``tau``.

    Parameters
    ----------
    dataset : {"digits", "breast_cancer"}
        Bundled dataset (standardised with validation statistics).
    flip_fraction : float
        Fraction of training labels flipped, in [0, 1).
    seed : int
        Seed of the split and of the flips (an experiment, not a privacy mechanism).
    metric : {"euclidean", "cosine"}
        Distance metric.
    quantile : float
        Quantile of validation-to-validation distances used as ``tau``.

    Returns
    -------
    DemoData

    Example
    -------
    >>> from privval.demo import demo_data
    >>> data = demo_data("breast_cancer")
    >>> int(data.flipped.sum()), data.x_train.shape[0]
    (40, 398)
    """
    func = "demo_data"
    dataset = check_choice(dataset, "dataset", func, DATASETS)
    flip_fraction = check_fraction(flip_fraction, "flip_fraction", func, high_open=True)
    seed = check_int(seed, "seed", func, minimum=0)
    metric = check_metric(metric, func)
    data = load_dataset(dataset, seed=seed)
    noisy, flipped = flip_labels(data.y_train, flip_fraction, rng=np.random.default_rng(seed))
    tau = tau_from_validation(data.x_val, quantile=quantile, metric=metric)
    return DemoData(dataset, data.x_train, noisy, data.x_val, data.y_val, flipped,
                    data.n_classes, tau, metric)


def run_demo(
    progress: bool = True,
    *,
    dataset: str = "digits",
    flip_fraction: float = 0.1,
    seed: int = 0,
    k: int = 5,
    metric: str = "cosine",
    quantile: float = 0.05,
    echo: bool | None = None,
) -> DemoResult:
    """Value a bundled dataset with flipped labels; report how well values find the flips.

    Parameters
    ----------
    progress : bool
        Progress messages and bars (bars only on a terminal).
    dataset, flip_fraction, seed, metric, quantile
        See :func:`demo_data`.
    k : int
        Neighbours for KNN-Shapley.
    echo : bool, optional
        Print the result table; defaults to ``progress``.

    Returns
    -------
    DemoResult
        The rows TKNN-Shapley, KNN-Shapley (hard label) and KNN-Shapley (soft label).

    Example
    -------
    >>> from privval.demo import run_demo
    >>> result = run_demo(progress=False, dataset="breast_cancer")
    >>> [row.method for row in result.rows]
    ['TKNN-Shapley', 'KNN-Shapley', 'KNN-Shapley (soft label)']
    """
    k = check_int(k, "k", "run_demo", minimum=1)
    data = demo_data(dataset, flip_fraction=flip_fraction, seed=seed, metric=metric,
                     quantile=quantile)
    if echo is None:
        echo = progress
    if progress:
        print(f"Valuing {data.x_train.shape[0]} {dataset} records, "
              f"{int(data.flipped.sum())} with flipped labels...", flush=True)
    args = (data.x_train, data.y_train, data.x_val, data.y_val)
    methods: list[tuple[str, Any]] = [
        ("TKNN-Shapley", lambda: tknn_shapley(*args, tau=data.tau, metric=metric,
                                              n_classes=data.n_classes, progress=progress)),
        ("KNN-Shapley", lambda: knn_shapley(*args, k=k, metric=metric, progress=progress)),
        ("KNN-Shapley (soft label)", lambda: knn_shapley(
            *args, k=k, metric=metric, soft_label=True, n_classes=data.n_classes,
            progress=progress)),
    ]
    rows = []
    for name, compute in methods:
        start = time.perf_counter()
        values = compute()
        seconds = time.perf_counter() - start
        rows.append(DemoRow(name, detection_auroc(values, data.flipped), seconds))
        logger.info("%s: AUROC %.3f in %.2fs", name, rows[-1].auroc, seconds)
    result = DemoResult(
        dataset=dataset,
        n_train=int(data.x_train.shape[0]),
        n_val=int(data.x_val.shape[0]),
        n_flipped=int(data.flipped.sum()),
        n_classes=data.n_classes,
        flip_fraction=flip_fraction,
        seed=seed,
        metric=metric,
        tau=data.tau,
        k=k,
        rows=tuple(rows),
    )
    if echo:
        print(result.table(), flush=True)
    return result
