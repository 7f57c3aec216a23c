"""Inventory of floating-point noise in privval: every use is listed here with its reason.

Floating-point noise leaks through its low-order bits (Mironov 2012), so a released real value
must go through the lattice Gaussian (accountants.lattice) or gaussian_release. This test
parses every privval module and fails when a function that was not reviewed starts drawing
float noise (a new release path), or when a listed one stops (the list must stay true).
"""

from __future__ import annotations

import ast
from pathlib import Path

import privval

FLOAT_SAMPLERS = {"sample_gaussian", "sample_laplace"}

# (module, enclosing function) -> why the float noise never reaches a user as a real value.
REVIEWED = {
    ("distributed.py", "_draw_count_noise"):
        'noise="gaussian" counts: rounded to integers, so the output is count + round(Z)',
    ("private.py", "_noise"):
        'noise="gaussian" counts: rounded to integers, as above',
    ("ptr.py", "_run"):
        "the PTR test's noise: only the pass bit leaves (releases refuse delta0 < 1e-12)",
    ("robust.py", "_release"):
        "PTR-SGD's test noise: only the pass bit leaves",
    ("robust.py", "_add_noise"):
        "DP-SGD baseline (Opacus DPOptimizer's float Gaussian noise, drawn from our CSPRNG)",
}


def _float_noise_uses() -> set[tuple[str, str]]:
    """(module, innermost enclosing function) of every reference to a float sampler."""
    uses: set[tuple[str, str]] = set()

    class Finder(ast.NodeVisitor):
        def __init__(self, module: str) -> None:
            self.module, self.stack = module, ["<module>"]

        def visit_FunctionDef(self, node: ast.AST) -> None:
            self.stack.append(node.name)
            self.generic_visit(node)
            self.stack.pop()

        visit_AsyncFunctionDef = visit_FunctionDef

        def visit_Name(self, node: ast.Name) -> None:
            if node.id in FLOAT_SAMPLERS and isinstance(node.ctx, ast.Load):
                uses.add((self.module, self.stack[-1]))

        def visit_Attribute(self, node: ast.Attribute) -> None:
            if node.attr in FLOAT_SAMPLERS:
                uses.add((self.module, self.stack[-1]))
            self.generic_visit(node)

    for path in sorted(Path(privval.__file__).parent.glob("*.py")):
        Finder(path.name).visit(ast.parse(path.read_text(encoding="utf-8")))
    return uses


def test_every_float_noise_use_is_reviewed():
    uses = _float_noise_uses()
    assert not uses - set(REVIEWED), (
        f"float noise in a new place (release real values with accountants.lattice): "
        f"{uses - set(REVIEWED)}")
    assert set(REVIEWED) <= uses, f"listed but gone (update the list): {set(REVIEWED) - uses}"


def test_the_inventory_catches_a_new_float_release(tmp_path, monkeypatch):
    # Negative control: a module with a new release that adds float noise is flagged.
    fake = tmp_path / "privval"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "leaky.py").write_text(
        "from accountants.noise import sample_gaussian\n"
        "def release(v, s):\n    return v + sample_gaussian(s, 1)[0]\n")
    monkeypatch.setattr(privval, "__file__", str(fake / "__init__.py"))
    assert ("leaky.py", "release") in _float_noise_uses()
