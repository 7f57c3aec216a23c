"""How well data values find corrupted records: detection AUROC."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from privval._validation import fail

__all__ = ["detection_auroc"]


def detection_auroc(values: Any, flipped_mask: Any) -> float:
    """Area under the ROC curve of "low value" as a detector of flipped labels.

    The probability that a randomly chosen flipped record has a *lower* value than a randomly
    chosen clean one, ties counting one half (the Mann-Whitney U statistic divided by
    ``n_flipped * n_clean``, computed from average ranks). 1 is perfect, 0.5 is chance.

    Parameters
    ----------
    values : array-like of shape (N,)
        Finite data values, one per training record.
    flipped_mask : array-like of bool, shape (N,)
        True where the record's label was flipped. Both classes must be present.

    Returns
    -------
    float
        The AUROC in [0, 1].

    Raises
    ------
    ValueError
        Shapes that differ, non-finite values, a mask that is all True or all False.
    TypeError
        A mask that is not boolean, values that are not real numbers.

    Example
    -------
    >>> from privval.evaluate import detection_auroc
    >>> detection_auroc([0.1, 0.5, -0.2, 0.3], [False, False, True, False])
    1.0
    >>> detection_auroc([1.0, 1.0], [True, False])
    0.5
    """
    func = "detection_auroc"
    vals = np.asarray(values)
    if vals.dtype.kind not in "iuf" or vals.dtype == bool:
        fail("values", func, "a 1-D array of real numbers", vals, error=TypeError)
    if vals.ndim != 1:
        fail("values", func, "a 1-D array of real numbers", vals)
    if not np.all(np.isfinite(vals)):
        fail("values", func, "finite (no NaN or inf)", vals)
    mask = np.asarray(flipped_mask)
    if mask.dtype != bool:
        fail("flipped_mask", func, "a boolean array", mask, error=TypeError)
    if mask.shape != vals.shape:
        fail("flipped_mask", func, f"a boolean array of shape {vals.shape}, like values", mask)
    n_pos = int(mask.sum())
    n_neg = mask.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        fail("flipped_mask", func, "a mask with both flipped and clean records", mask)
    ranks = rankdata(vals)  # ascending, ties share their average rank
    # U counts the (flipped, clean) pairs where the clean record ranks higher, ties 1/2
    u = float(ranks[~mask].sum()) - n_neg * (n_neg + 1) / 2.0
    return u / (n_pos * n_neg)
