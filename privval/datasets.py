"""Bundled real datasets, a deterministic train/validation split, and label-noise injection.

The datasets ship with scikit-learn (no download): ``"digits"`` (1,797 8x8 images of handwritten
digits, 64 features, 10 classes) and ``"breast_cancer"`` (569 tumours, 30 features, 2 classes).

Preprocessing is fitted on the **validation split only**: in the DP-TKNN-Shapley threat model
(DESIGN.md §4) the validation set belongs to the curator and is not protected, whereas every
statistic of the training set would be a release to account for. So ``"standardize"`` centres and
scales every column with the validation mean and standard deviation (a constant column is only
centred), and ``"l2"`` additionally scales every row to unit Euclidean norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from privval._validation import check_choice, check_fraction, check_int, check_labels, fail

__all__ = ["DATASETS", "Dataset", "flip_labels", "load_dataset"]

#: Names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "breast_cancer")

_PREPROCESSING = ("standardize", "l2", "none")


@dataclass(frozen=True)
class Dataset:
    """A train/validation split of a bundled dataset.

    Attributes
    ----------
    name : str
        The dataset's name (one of :data:`DATASETS`).
    x_train, y_train : np.ndarray
        Training features (float64, shape (N, d)) and integer labels (N,).
    x_val, y_val : np.ndarray
        Validation features (M, d) and labels (M,).
    n_classes : int
        Number of classes of the task.
    preprocessing : str
        ``"standardize"``, ``"l2"`` or ``"none"`` (see the module docstring).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_classes: int
    preprocessing: str


def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as sk

    loader = {"digits": sk.load_digits, "breast_cancer": sk.load_breast_cancer}[name]
    bunch = loader()
    return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def load_dataset(
    name: str = "digits",
    *,
    val_fraction: float = 0.3,
    seed: int = 0,
    preprocessing: str = "standardize",
) -> Dataset:
    """Load a bundled real dataset, split it deterministically and preprocess it.

    Parameters
    ----------
    name : {"digits", "breast_cancer"}
        Which dataset.
    val_fraction : float
        Fraction of the rows, in (0, 1), that go to the validation split (rounded, at least
        one row on each side).
    seed : int
        Seed of the split's permutation: the same seed gives the same split on every machine.
    preprocessing : {"standardize", "l2", "none"}
        Column standardisation with validation statistics, that plus unit-norm rows, or none.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError, TypeError
        Unknown name or preprocessing, ``val_fraction`` outside (0, 1), a non-integer seed.

    Example
    -------
    >>> from privval.datasets import load_dataset
    >>> data = load_dataset("breast_cancer")
    >>> data.x_train.shape, data.x_val.shape, data.n_classes
    ((398, 30), (171, 30), 2)
    """
    func = "load_dataset"
    name = check_choice(name, "name", func, DATASETS)
    val_fraction = check_fraction(val_fraction, "val_fraction", func, low_open=True,
                                  high_open=True)
    seed = check_int(seed, "seed", func, minimum=0)
    preprocessing = check_choice(preprocessing, "preprocessing", func, _PREPROCESSING)
    x, y = _raw(name)
    n = x.shape[0]
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    x_train, x_val = x[train_idx], x[val_idx]
    if preprocessing in ("standardize", "l2"):
        mean = x_val.mean(axis=0)
        std = x_val.std(axis=0)
        std[std == 0] = 1.0
        x_train = (x_train - mean) / std
        x_val = (x_val - mean) / std
    if preprocessing == "l2":
        x_train = _unit_rows(x_train)
        x_val = _unit_rows(x_val)
    return Dataset(name, x_train, y[train_idx], x_val, y[val_idx], int(y.max()) + 1,
                   preprocessing)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def flip_labels(
    y: Any, fraction: float, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flip a fraction of the labels, each to a different class chosen uniformly at random.

    Exactly ``round(fraction * len(y))`` distinct positions are flipped; a flipped label takes a
    uniformly random value among the *other* classes present in ``y``. This is the label-noise
    experiment of the data-valuation literature (mislabelled points should get low values).

    Parameters
    ----------
    y : array-like of shape (N,)
        Integer or string labels with at least two distinct classes.
    fraction : float
        Fraction of labels to flip, in [0, 1].
    rng : numpy.random.Generator, int or None
        Randomness (an int seeds a new generator; None draws fresh entropy). This is an
        experiment tool, not a privacy mechanism.

    Returns
    -------
    (noisy_y, flipped_mask) : tuple of np.ndarray
        A copy of ``y`` with flipped labels, and the boolean mask of flipped positions.

    Raises
    ------
    ValueError
        ``fraction`` outside [0, 1], fewer than two classes.
    TypeError
        Labels that are not integers or strings, an invalid ``rng``.

    Example
    -------
    >>> import numpy as np
    >>> from privval.datasets import flip_labels
    >>> noisy, flipped = flip_labels(np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), 0.3, rng=0)
    >>> int(flipped.sum()), bool(np.all((noisy != [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]) == flipped))
    (3, True)
    """
    func = "flip_labels"
    labels = check_labels(y, "y", func)
    fraction = check_fraction(fraction, "fraction", func)
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        gen = np.random.default_rng(rng)
    elif isinstance(rng, np.random.Generator):
        gen = rng
    else:
        fail("rng", func, "a numpy.random.Generator, an int seed or None", rng, error=TypeError)
    classes = np.unique(labels)
    if classes.shape[0] < 2:
        fail("y", func, "labels with at least two distinct classes", labels)
    n = labels.shape[0]
    n_flip = round(fraction * n)
    positions = gen.choice(n, size=n_flip, replace=False)
    # index of each current label among the classes, shifted by 1..C-1 (never 0): a different class
    current = np.searchsorted(classes, labels[positions])
    shift = gen.integers(1, classes.shape[0], size=n_flip)
    noisy = labels.copy()
    noisy[positions] = classes[(current + shift) % classes.shape[0]]
    flipped = np.zeros(n, dtype=bool)
    flipped[positions] = True
    return noisy, flipped
