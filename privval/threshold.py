"""Choosing the TKNN radius ``tau`` from the validation set alone.

The radius decides which training points count as neighbours, so choosing it by looking at the
training data (e.g. tuning the valuation accuracy on it, as the paper's code does) is itself a
data-dependent release that an honest privacy analysis would have to account for.
:func:`tau_from_validation` looks only at the validation set, which belongs to the curator and is
not protected in the DP-TKNN-Shapley threat model (DESIGN.md §4): **it costs no privacy budget**.

Heuristic: when training and validation data come from the same distribution, the fraction of
validation-to-validation pairs within distance ``tau`` estimates the fraction of training points
in a typical validation ball. A quantile ``q`` of those distances therefore gives balls holding
about ``q * N`` training points (a few percent is a sensible default).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import pdist

from privval._validation import check_features, check_fraction, check_int, check_metric, fail

__all__ = ["tau_from_validation"]


def tau_from_validation(
    x_val: Any,
    *,
    quantile: float = 0.05,
    metric: str = "euclidean",
    max_points: int = 2000,
    seed: int = 0,
) -> float:
    """A neighbourhood radius: a quantile of the distances between validation points.

    Parameters
    ----------
    x_val : array-like of shape (M, d)
        Validation features (M >= 2), preprocessed as they will be for valuation.
    quantile : float
        Quantile in (0, 1] of the pairwise distances (self-pairs excluded). About the fraction of
        training points each ball should hold.
    metric : {"euclidean", "cosine"}
        The metric the radius will be used with (cosine distance = 1 - cosine similarity).
    max_points : int
        At most this many validation points (a seeded uniform subset) enter the pairwise
        distances, bounding the cost at ``max_points**2 / 2`` distances.
    seed : int
        Seed of that subset (only used when ``M > max_points``).

    Returns
    -------
    float
        ``tau`` > 0. It is computed from the validation set only and costs no privacy.

    Raises
    ------
    ValueError
        Fewer than two validation points, a quantile outside (0, 1], or a quantile that falls on
        distance 0 (duplicated validation points: choose a larger quantile).
    TypeError
        Non-numeric input.

    Example
    -------
    >>> import numpy as np
    >>> from privval.threshold import tau_from_validation
    >>> tau_from_validation(np.array([[0.0], [1.0], [3.0]]), quantile=0.5)
    2.0
    """
    func = "tau_from_validation"
    x = check_features(x_val, "x_val", func).astype(np.float64, copy=False)
    quantile = check_fraction(quantile, "quantile", func, low_open=True)
    metric = check_metric(metric, func)
    max_points = check_int(max_points, "max_points", func, minimum=2)
    seed = check_int(seed, "seed", func, minimum=0)
    if x.shape[0] < 2:
        fail("x_val", func, "an array with at least two rows", x)
    if x.shape[0] > max_points:
        rows = np.random.default_rng(seed).choice(x.shape[0], size=max_points, replace=False)
        x = x[np.sort(rows)]
    if metric == "cosine" and np.any(np.linalg.norm(x, axis=1) == 0):
        fail("x_val", func, "free of all-zero rows under the cosine metric", x)
    distances = pdist(x, metric=metric)
    tau = float(np.quantile(distances, quantile))
    if not tau > 0:
        fail("quantile", func, "high enough to fall above distance 0 (many validation points are "
             "duplicates)", quantile)
    return tau
