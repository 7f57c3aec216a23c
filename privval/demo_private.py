"""The private half of ``privval demo``: DP-TKNN-Shapley at a few ε, charged to a demo ledger.

:func:`privval.demo.run_demo` values a bundled real dataset with 10% flipped labels without
privacy. :func:`run_private_demo` takes the same data and releases DP-TKNN-Shapley values
(Wang, Zhu, Wang, Jia, Mittal 2023, arXiv 2308.15709) at each requested ε through a fresh budget
in a demo ledger, shows that a request beyond the remaining budget is refused (nothing spent,
nothing released), and writes the HTML compliance report next to the ledger.

The demo ledger lives in its own directory (default ``./privval-demo/``), never in the user's
ledger; each run records its releases under a new dataset name stamped with the UTC time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from privval.demo import DemoData, DemoRow

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EPSILONS", "PrivateDemoResult", "PrivateDemoRow", "run_private_demo"]

DEFAULT_EPSILONS = (0.1, 0.5, 1.0, 4.0)


@dataclass(frozen=True)
class PrivateDemoRow:
    """One private release of the demo.

    Attributes
    ----------
    epsilon, delta : float
        The guarantee the release was calibrated to (add/remove one training record).
    auroc : float
        How well low released values flag the flipped labels (0.5 = chance).
    seconds : float
        Wall time of the release (calibration, ledger charge, counts, values).
    noise_scale : float
        The calibrated noise scale σ on each count.
    ledger_entry : int or None
        The ledger charge, committed before the values were returned.
    seeded : bool
        True when the noise came from a seed (reproducible, not secure).
    """

    epsilon: float
    delta: float
    auroc: float
    seconds: float
    noise_scale: float
    ledger_entry: int | None
    seeded: bool

    def as_demo_row(self) -> DemoRow:
        """This release as a row of :meth:`privval.demo.DemoResult.table`."""
        return DemoRow("DP-TKNN-Shapley", self.auroc, self.seconds,
                       privacy=f"(ε={self.epsilon:g}, δ={self.delta:g})-DP")


@dataclass(frozen=True)
class PrivateDemoResult:
    """Private rows of the demo, the refused over-budget request, and where the files are.

    Attributes
    ----------
    rows : tuple of PrivateDemoRow
        One per requested ε, in order.
    refused : str or None
        The ledger's refusal message for the request past the cap (None if not attempted).
    dataset : str
        The dataset name the releases were charged to in the demo ledger.
    budget_epsilon, budget_delta : float
        The cap set for this run.
    ledger_path, report_path : str
        The demo ledger and the HTML compliance report written next to it.
    seconds : float
        Wall time of the private part.
    """

    rows: tuple[PrivateDemoRow, ...]
    refused: str | None
    dataset: str
    budget_epsilon: float
    budget_delta: float
    ledger_path: str
    report_path: str
    seconds: float

    def summary(self) -> str:
        """Plain text: the budget, the refused request, and where the ledger and report are."""
        lines = [(f"Private rows were charged to dataset {self.dataset!r} (cap "
                  f"ε={self.budget_epsilon:.3g}, δ={self.budget_delta:.1e}); each protects every "
                  f"training record (add/remove one).")]
        if self.refused is not None:
            lines.append(f"One more request was refused, spending nothing: {self.refused}")
        lines.append(f"Ledger: {self.ledger_path}")
        lines.append(f"Compliance report: {self.report_path}")
        return "\n".join(lines)


def run_private_demo(
    data: DemoData,
    *,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    delta: float = 1e-5,
    out_dir: str | Path = "privval-demo",
    try_over_budget: bool = True,
    rng: None | int | np.random.Generator = None,
    progress: bool | None = None,
) -> PrivateDemoResult:
    """Release DP-TKNN-Shapley values at each ε against a fresh demo budget; write the report.

    Parameters
    ----------
    data : privval.demo.DemoData
        The demo's data (:func:`privval.demo.demo_data`): noisy training labels, the flipped
        mask, the metric and the radius chosen from the validation set (no privacy cost).
    epsilons : sequence of float
        ε of each release, each > 0.
    delta : float
        δ of each release, in (0, 1).
    out_dir : str or Path
        Directory for ``ledger.db`` and ``report.html`` (created if needed).
    try_over_budget : bool
        Finally ask for one more release at the whole cap's ε, which the ledger refuses
        (nothing spent, nothing released).
    rng : None, int or np.random.Generator
        None (default) draws noise from the OS CSPRNG; a seed makes the releases reproducible
        and the ledger marks them seeded.
    progress : bool or None
        Progress bars of the counting (None: only on a terminal).

    Returns
    -------
    PrivateDemoResult

    Raises
    ------
    ValueError
        An ε ≤ 0 or δ outside (0, 1).

    Example
    -------
    >>> import tempfile
    >>> from privval.demo import demo_data
    >>> result = run_private_demo(demo_data("breast_cancer"), epsilons=[1.0],
    ...                           out_dir=tempfile.mkdtemp(), rng=0)
    >>> len(result.rows), result.refused is not None
    (1, True)
    """
    epsilons = tuple(float(e) for e in epsilons)
    if not epsilons or any(not (math.isfinite(e) and e > 0) for e in epsilons):
        raise ValueError(f"The 'epsilons' parameter of run_private_demo must be a non-empty list "
                         f"of finite floats > 0. Got {epsilons!r} instead.")
    if not 0 < delta < 1:
        raise ValueError(f"The 'delta' parameter of run_private_demo must be a float in (0, 1). "
                         f"Got {delta!r} instead.")
    from accountants.ledger import BudgetExceededError, Ledger
    from accountants.report import render_report
    from privval.evaluate import detection_auroc
    from privval.private import dp_tknn_shapley

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / "ledger.db"
    report_path = out / "report.html"
    dataset = f"demo-{data.name}-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    # PLD composes the releases to at most the sum of their ε at the summed δ (basic
    # composition); the 5% headroom absorbs its pessimistic discretisation.
    budget_epsilon = round(1.05 * sum(epsilons), 6)
    budget_delta = 2.0 * delta * len(epsilons)

    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        # One stream for all releases: re-seeding each release with the same integer would
        # give them identical or correlated noise, which the ledger composes as independent.
        rng = np.random.default_rng(rng)

    def release(eps: float, purpose: str) -> Any:
        return dp_tknn_shapley(
            data.x_train, data.y_train, data.x_val, data.y_val, tau=data.tau, epsilon=eps,
            delta=delta, ledger=ledger, dataset=dataset, purpose=purpose, rng=rng,
            metric=data.metric, n_classes=data.n_classes, progress=progress)

    ledger = Ledger(ledger_path)
    try:
        ledger.set_budget(dataset, epsilon=budget_epsilon, delta=budget_delta)
        rows = []
        for eps in epsilons:
            t0 = time.perf_counter()
            r = release(eps, f"privval demo, epsilon={eps:g}")
            rows.append(PrivateDemoRow(
                epsilon=eps, delta=delta, auroc=float(detection_auroc(r.values, data.flipped)),
                seconds=time.perf_counter() - t0, noise_scale=float(r.noise_scale),
                ledger_entry=r.ledger_entry, seeded=bool(r.seeded)))
            logger.info("demo release at epsilon=%g: AUROC %.3f", eps, rows[-1].auroc)
        refused = None
        if try_over_budget:
            # Asking for the whole cap again cannot fit once anything has been spent.
            try:
                release(budget_epsilon, "privval demo, a request over the budget")
            except BudgetExceededError as exc:
                refused = str(exc)
            else:
                logger.warning("the demo's over-budget request fitted under the cap")
        # The bounds only: a Monte Carlo column over hundreds of composed steps would cost more
        # than the whole demo (``privval report`` on the demo ledger adds it).
        render_report(ledger, dataset=dataset, format="html", path=report_path,
                      accountants=("pld", "rdp"))
    finally:
        ledger.close()
    return PrivateDemoResult(
        rows=tuple(rows), refused=refused, dataset=dataset, budget_epsilon=budget_epsilon,
        budget_delta=budget_delta, ledger_path=str(ledger_path), report_path=str(report_path),
        seconds=time.perf_counter() - start)
