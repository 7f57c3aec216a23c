"""The HTML compliance report opens in a real browser, offline, and shows something.

Headless Chromium (Debian package ``chromium``) takes a screenshot of the report written by
``privval report``; the screenshot must not be blank and must contain the coloured pixels of the
embedded cumulative-ε plot. A blank page screenshotted the same way is the control that shows the
blankness check can fail. Skipped, with the reason, when ``/usr/bin/chromium`` is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium not installed (/usr/bin/chromium missing); install the Debian "
           "'chromium' package to run the browser check of the HTML report",
)


def _screenshot(html: Path, png: Path) -> np.ndarray:
    """Render ``html`` in headless Chromium with every network lookup blocked; RGB floats."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", "--no-first-run", "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1280,2000", f"--screenshot={png}", html.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False,
                            env={**os.environ, "HOME": str(png.parent)})
    assert png.exists(), f"Chromium wrote no screenshot (rc={result.returncode}): {result.stderr[-2000:]}"
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(png))[..., :3].astype(np.float64)


def _ink(image: np.ndarray) -> float:
    """Fraction of pixels that differ from the most common (background) colour."""
    flat = image.reshape(-1, 3)
    colours, counts = np.unique(np.round(flat * 255).astype(np.int64), axis=0, return_counts=True)
    background = colours[np.argmax(counts)] / 255.0
    return float(np.mean(np.abs(flat - background).max(axis=1) > 0.05))


def _saturated(image: np.ndarray) -> int:
    """Pixels with a clear colour (not grey/black/white): the plot's line and markers."""
    return int(np.sum(image.max(axis=2) - image.min(axis=2) > 0.25))


def test_html_report_renders_offline_and_is_not_blank(tmp_path) -> None:
    env = {**os.environ, "PRIVVAL_LEDGER": str(tmp_path / "ledger.db"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    from accountants.events import GaussianDpEvent, PoissonSampledDpEvent
    from accountants.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.db")
    ledger.set_budget("patients", epsilon=8.0, delta=1e-5)
    for sigma in (2.0, 1.5, 1.0):
        event = PoissonSampledDpEvent(0.1, GaussianDpEvent(sigma))
        with ledger.charge("patients", event, sensitivity=1.0, sampling="poisson", seeded=True,
                           purpose=f"browser test sigma={sigma}"):
            pass
    close = getattr(ledger, "close", None)
    if callable(close):
        close()
    report = tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "privval", "report", "--format", "html",
                             "--out", str(report)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    html = report.read_text(encoding="utf-8")
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, flags=re.IGNORECASE)
    assert not external, f"the report loads assets from the network: {external[:3]}"

    shot = _screenshot(report, tmp_path / "report.png")
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>", encoding="utf-8")
    control = _screenshot(blank, tmp_path / "blank.png")

    assert _ink(control) == 0.0, "the blankness check is broken: an empty page has ink"
    assert _ink(shot) > 0.01, "the report renders as a blank page"
    assert _saturated(shot) > 200, "the embedded cumulative-ε plot did not render"
