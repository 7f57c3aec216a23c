"""The private demo: seeded releases share one random stream, never one re-seeded per release."""

from __future__ import annotations

import numpy as np

import privval.private as private
from privval.demo import demo_data
from privval.demo_private import run_private_demo


def test_seeded_demo_releases_draw_independent_noise(tmp_path, monkeypatch) -> None:
    # Two releases at the same ε: re-seeding each with the same integer would give identical
    # noisy counts (perfectly correlated noise), which the ledger would still compose as two
    # independent releases. With one shared stream they differ (probability of equality on
    # every count is negligible at these noise scales).
    releases = []
    real = private.dp_tknn_shapley

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        releases.append(out)
        return out

    monkeypatch.setattr(private, "dp_tknn_shapley", recording)
    result = run_private_demo(demo_data("breast_cancer"), epsilons=[1.0, 1.0],
                              out_dir=tmp_path, try_over_budget=False, rng=7, progress=False)
    assert len(releases) == 2 and all(row.seeded for row in result.rows)
    assert not np.array_equal(releases[0].noisy_counts, releases[1].noisy_counts)
