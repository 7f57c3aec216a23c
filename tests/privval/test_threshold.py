"""Tests for privval.threshold.tau_from_validation."""

from __future__ import annotations

import numpy as np
import pytest

from privval import neighbor_counts
from privval.threshold import tau_from_validation


def test_quantile_of_pairwise_distances_by_hand():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    # pairwise distances 5, 10, 5
    assert tau_from_validation(x, quantile=1.0) == pytest.approx(10.0)
    assert tau_from_validation(x, quantile=0.5) == pytest.approx(5.0)


def test_cosine_distances():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    # cosine distances 1, 2, 1
    assert tau_from_validation(x, quantile=1.0, metric="cosine") == pytest.approx(2.0)


def test_ball_fraction_tracks_the_quantile(rng):
    x_train = rng.normal(size=(4000, 5))
    x_val = rng.normal(size=(400, 5))
    tau = tau_from_validation(x_val, quantile=0.05)
    counts = neighbor_counts(x_train, np.zeros(4000, int), x_val, np.zeros(400, int), tau=tau)
    fraction = counts[:, 0].mean() / 4000
    assert 0.03 < fraction < 0.07


def test_subsampling_is_seeded(rng):
    x = rng.normal(size=(300, 3))
    a = tau_from_validation(x, max_points=50, seed=1)
    assert a == tau_from_validation(x, max_points=50, seed=1)
    assert a != tau_from_validation(x, max_points=50, seed=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"x_val": np.zeros((1, 2))}, ValueError, "x_val"),
        ({"quantile": 0.0}, ValueError, "quantile"),
        ({"metric": "l1"}, ValueError, "metric"),
        ({"x_val": np.zeros((5, 2))}, ValueError, "quantile"),
        ({"max_points": 1}, ValueError, "max_points"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, error, name):
    params = {"x_val": np.arange(10.0).reshape(5, 2), **kwargs}
    with pytest.raises(error, match=f"'{name}' parameter of tau_from_validation"):
        tau_from_validation(**params)
