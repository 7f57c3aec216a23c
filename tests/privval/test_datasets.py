"""Tests for privval.datasets: deterministic splits, validation-only scaling, label flips."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privval.datasets import flip_labels, load_dataset


def test_split_is_deterministic_disjoint_and_complete():
    a = load_dataset("breast_cancer", seed=3, preprocessing="none")
    b = load_dataset("breast_cancer", seed=3, preprocessing="none")
    c = load_dataset("breast_cancer", seed=4, preprocessing="none")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_val, c.x_val)
    raw = load_breast_cancer()
    together = np.vstack([a.x_train, a.x_val])
    assert together.shape == raw.data.shape
    # every raw row appears exactly once across the two splits
    keys = {tuple(r) for r in raw.data}
    assert {tuple(r) for r in together} == keys
    assert a.x_val.shape[0] == round(0.3 * raw.data.shape[0])
    assert a.n_classes == 2 and set(np.unique(a.y_train)) == {0, 1}


def test_standardize_uses_validation_statistics_only():
    data = load_dataset("digits", seed=1)
    np.testing.assert_allclose(data.x_val.mean(axis=0), 0.0, atol=1e-12)
    stds = data.x_val.std(axis=0)
    # non-constant columns have unit validation std; constant ones are only centred
    assert np.all((np.abs(stds - 1.0) < 1e-12) | (stds < 1e-12))
    raw = load_dataset("digits", seed=1, preprocessing="none")
    mean, std = raw.x_val.mean(axis=0), raw.x_val.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(data.x_train, (raw.x_train - mean) / std, rtol=1e-12)


def test_l2_rows_have_unit_norm():
    data = load_dataset("breast_cancer", preprocessing="l2")
    np.testing.assert_allclose(np.linalg.norm(data.x_train, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(data.x_val, axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37, 1.0])
def test_flip_labels_flips_exactly_the_masked_positions(fraction):
    y = np.random.default_rng(0).integers(0, 4, 500)
    noisy, flipped = flip_labels(y, fraction, np.random.default_rng(1))
    assert flipped.dtype == bool and flipped.sum() == round(fraction * 500)
    np.testing.assert_array_equal(noisy != y, flipped)
    assert set(np.unique(noisy)) <= {0, 1, 2, 3}
    noisy_again, _ = flip_labels(y, fraction, 1)
    np.testing.assert_array_equal(noisy, noisy_again)


def test_flipped_labels_spread_over_the_other_classes():
    # a flipped label is uniform over the C - 1 other classes: with 3000 flips of class 0 among
    # 4 classes each other class gets 1000 in expectation; 5.5 sd bounds the false alarm ~ 1e-7
    y = np.zeros(3000, dtype=int)
    y[:3] = [1, 2, 3]
    noisy, _ = flip_labels(y, 1.0, np.random.default_rng(5))
    counts = np.bincount(noisy[y == 0], minlength=4)
    assert counts[0] == 0
    sd = np.sqrt(2997 * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts[1:] - 999) < 5.5 * sd)


def test_string_labels_are_flipped_to_other_strings():
    y = np.array(["cat", "dog", "eel"] * 10)
    noisy, flipped = flip_labels(y, 0.5, 0)
    assert noisy.dtype.kind == "U" and set(noisy) <= {"cat", "dog", "eel"}
    np.testing.assert_array_equal(noisy != y, flipped)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: load_dataset("mnist"), ValueError, "name"),
        (lambda: load_dataset(val_fraction=1.0), ValueError, "val_fraction"),
        (lambda: load_dataset(preprocessing="minmax"), ValueError, "preprocessing"),
        (lambda: load_dataset(seed=1.5), TypeError, "seed"),
        (lambda: flip_labels([0, 1], 1.5, 0), ValueError, "fraction"),
        (lambda: flip_labels([0, 0], 0.5, 0), ValueError, "y"),
        (lambda: flip_labels([0.5, 1.0], 0.5, 0), TypeError, "y"),
        (lambda: flip_labels([0, 1], 0.5, "seed"), TypeError, "rng"),
    ],
)
def test_bad_input_names_the_parameter(call, error, name):
    with pytest.raises(error, match=f"'{name}' parameter"):
        call()
