"""Tests for privval.evaluate.detection_auroc against scikit-learn and by-hand pair counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from privval.evaluate import detection_auroc


@pytest.mark.parametrize("ties", [False, True])
def test_matches_sklearn_roc_auc(rng, ties):
    values = rng.normal(size=400)
    if ties:
        values = np.round(values, 1)
    mask = rng.random(400) < 0.15
    values[mask] -= 0.5
    expected = roc_auc_score(mask, -values)  # low value = flagged
    assert detection_auroc(values, mask) == pytest.approx(expected, abs=1e-12)


def test_pair_counting_by_hand():
    values = np.array([0.0, 1.0, 1.0, 2.0])
    mask = np.array([False, True, False, True])
    # flipped {1.0, 2.0} vs clean {0.0, 1.0}: pairs (1,0) no, (1,1) tie, (2,0) no, (2,1) no
    assert detection_auroc(values, mask) == pytest.approx(0.5 / 4)
    assert detection_auroc(-values, mask) == pytest.approx(3.5 / 4)


@pytest.mark.parametrize(
    ("values", "mask", "error", "name"),
    [
        ([1.0, 2.0], [True, True], ValueError, "flipped_mask"),
        ([1.0, 2.0], [1, 0], TypeError, "flipped_mask"),
        ([1.0, 2.0], [True, False, False], ValueError, "flipped_mask"),
        ([1.0, np.nan], [True, False], ValueError, "values"),
        (["a", "b"], [True, False], TypeError, "values"),
    ],
)
def test_bad_input_names_the_parameter(values, mask, error, name):
    with pytest.raises(error, match=f"'{name}' parameter of detection_auroc"):
        detection_auroc(values, mask)
