"""Shared fixtures for the privval and accountants test suites."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator: statistical tests state their false-alarm rate against it."""
    return np.random.default_rng(20261126)
