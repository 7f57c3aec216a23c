"""The GPU agreement script (benchmarks/check_monte_carlo_device.py) runs and agrees on torch-CPU.

CI has no GPU; this keeps the script that checks the CUDA sampler working, by running its
comparison with torch on the CPU (the same code path as device="cuda" up to the device).
Fixed seeds, so the outcome is deterministic; under the null each row's false-alarm rate is
≈ 1e-7 (|z| > 5.33).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "check_monte_carlo_device.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_monte_carlo_device", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_agrees_on_torch_cpu(capsys):
    assert _load().main(["--device", "cpu:0", "--samples", "20000"]) == 0
    out = capsys.readouterr().out
    assert "all rows agree" in out
    assert out.count("\n") >= 10  # header, 8 rows, verdict


def test_script_flags_a_disagreement(monkeypatch, capsys):
    """Negative control: a sampler with a different mechanism on the device side must fail."""
    module = _load()
    real = module.MonteCarloAccountant

    class Skewed(real):
        def compose(self, event, count=1):
            # the device run composes twice as many steps: a different distribution
            return super().compose(event, count * (2 if self._device != "cpu" else 1))

    def make(n, rng=None, device="cpu", **kw):
        acc = Skewed(n, rng=rng, device=device, **kw)
        acc._device = device
        return acc

    monkeypatch.setattr(module, "MonteCarloAccountant", make)
    assert module.main(["--device", "cpu:0", "--samples", "20000"]) == 1
    assert "FAIL" in capsys.readouterr().out
