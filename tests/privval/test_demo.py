"""Tests for privval.demo: the demo's structured result and its table."""

from __future__ import annotations

import numpy as np

from privval import knn_shapley
from privval.demo import DemoRow, demo_data, run_demo
from privval.evaluate import detection_auroc


def test_demo_finds_flipped_labels_and_prints_a_table(capsys):
    result = run_demo(progress=False, echo=True)
    out = capsys.readouterr().out
    assert [r.method for r in result.rows] == [
        "TKNN-Shapley", "KNN-Shapley", "KNN-Shapley (soft label)"]
    assert result.dataset == "digits" and result.n_flipped == round(0.1 * result.n_train)
    for row in result.rows:
        assert row.auroc > 0.9 and row.privacy == "none"
        assert row.method in out
    assert "AUROC" in out


def test_demo_data_rebuilds_the_same_data_and_rows_are_reproducible():
    result = run_demo(progress=False, dataset="breast_cancer", seed=2)
    data = demo_data("breast_cancer", seed=2)
    assert data.tau == result.tau and int(data.flipped.sum()) == result.n_flipped
    values = knn_shapley(data.x_train, data.y_train, data.x_val, data.y_val, k=result.k,
                         metric=result.metric)
    assert detection_auroc(values, data.flipped) == result.rows[1].auroc
    np.testing.assert_array_equal(data.y_train != demo_data("breast_cancer", seed=2).y_train,
                                  np.zeros(result.n_train, bool))


def test_quiet_demo_prints_nothing_and_rows_can_be_added(capsys):
    result = run_demo(progress=False, dataset="breast_cancer")
    assert capsys.readouterr().out == ""
    extended = result.with_rows(DemoRow("DP-TKNN-Shapley", 0.8, 0.1, "(1, 1e-5)-DP"))
    assert len(extended.rows) == 4 and len(result.rows) == 3
    assert "(1, 1e-5)-DP" in extended.table()
