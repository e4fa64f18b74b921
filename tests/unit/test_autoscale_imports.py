"""Imports run one way: the experiment uses the autoscaler, never the other way round (the
autoscaler gets what it needs as arguments, testbed.autoscale.spec holds its file section)."""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

FORBIDDEN = "testbed.experiment"


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            base = node.module if node.level == 0 else f"testbed.autoscale.{node.module}"
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def test_autoscale_never_imports_the_experiment() -> None:
    files = sorted((ROOT / "src/testbed/autoscale").rglob("*.py"))
    assert files, "no autoscale modules found"
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imported_modules(path)
        if name == FORBIDDEN or name.startswith(f"{FORBIDDEN}.")
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from testbed.experiment.spec import Experiment\n")
    assert "testbed.experiment.spec" in imported_modules(module)
    module.write_text("from testbed import experiment\n")
    assert "testbed.experiment" in imported_modules(module)
