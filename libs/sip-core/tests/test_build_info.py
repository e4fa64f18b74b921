"""sip_core.build_info: which build runs (the sources or the mypyc-compiled wheel), and the
compiled wheel's build requirements."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import sip_core
from sip_core import build_info

MEMBER = Path(__file__).resolve().parents[1]
WORKSPACE = MEMBER.parents[1]
EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def module_origins() -> dict[str, str]:
    """Every sip_core module -> the file the import system loads it from."""
    names = ["sip_core", *(m.name for m in pkgutil.iter_modules(sip_core.__path__, "sip_core."))]
    origins = {}
    for name in names:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        origins[name] = spec.origin
    return origins


def test_compiled_tells_what_every_module_is_loaded_from() -> None:
    origins = module_origins()
    assert {"sip_core.message", "sip_core.headers", "sip_core.build_info"} <= set(origins)
    kinds = {name: origin.endswith(EXTENSIONS) for name, origin in origins.items()}
    # all compiled or none: a half-compiled package would be a packaging bug
    assert set(kinds.values()) == {build_info.compiled()}, origins


def test_the_build_the_run_expects() -> None:
    """scripts/mypyc-tests.sh sets SIP_CORE_EXPECT_COMPILED=1: its tests must not silently run
    the Python sources."""
    expected = os.environ.get("SIP_CORE_EXPECT_COMPILED")
    if expected is None:
        pytest.skip("SIP_CORE_EXPECT_COMPILED is not set (scripts/mypyc-tests.sh sets it)")
    assert build_info.compiled() is (expected == "1"), sip_core.message.__file__


def test_the_sources_are_never_compiled_in_place() -> None:
    # an editable build with SIP_CORE_MYPYC=1 would put extension modules next to the .py
    # files, and they would shadow every later edit (setup.py refuses editable builds)
    package = MEMBER / "src" / "sip_core"
    assert not [p.name for p in package.iterdir() if p.name.endswith(EXTENSIONS)]


def test_the_wheel_is_compiled_by_the_mypy_the_workspace_checks_with() -> None:
    requires = tomllib.loads((MEMBER / "pyproject.toml").read_text())["build-system"]["requires"]
    pinned = [r.split("==", 1)[1] for r in requires if re.match(r"mypy\s*==", r)]
    locked = [
        p["version"]
        for p in tomllib.loads((WORKSPACE / "uv.lock").read_text())["package"]
        if p["name"] == "mypy"
    ]
    assert len(pinned) == 1
    assert pinned == locked
