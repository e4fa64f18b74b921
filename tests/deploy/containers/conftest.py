"""Fixtures for the tests against the real images: the engine docker/engine.sh chooses, every
image built once per session by docker/build.sh, and containers that are removed afterwards
whatever the test's outcome.

These need root and podman (scripts/setup-containers.sh); a missing engine is an error, not a
skip. Host ports are always free ones on 127.0.0.1: the local-mode tests of the same session
hold 127.0.0.1:5060 and :8000.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from deploy.containers.harness import Containers, Image, expected_version
from support import ROOT

from testbed.containers.engine import Engine
from testbed.containers.engine import engine as find_engine

TIMINGS = pytest.StashKey[dict[str, float]]()


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> dict[str, float]:
    return request.config.stash.setdefault(TIMINGS, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    measured = terminalreporter.config.stash.get(TIMINGS, {})
    if measured:
        terminalreporter.section("container timings")
        for what, seconds in measured.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")


@pytest.fixture(scope="session")
def engine() -> Engine:
    return find_engine()


@pytest.fixture(scope="session")
def images(engine: Engine, timings: dict[str, float]) -> dict[str, Image]:
    """Every image, built (or found up to date in the layer cache) once per session."""
    build = ROOT / "docker" / "build.sh"
    start = time.monotonic()
    result = subprocess.run(
        [str(build)], env=engine.env, capture_output=True, text=True, check=False, timeout=3000
    )
    timings["docker/build.sh (all images)"] = time.monotonic() - start
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-6000:]
        pytest.fail(f"docker/build.sh exited {result.returncode}:\n{output}", pytrace=False)
    refs = subprocess.run(
        [str(build), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    found = {}
    for ref in refs:
        name = ref.rsplit("/", 1)[1].split(":")[0]
        if ref.endswith("-debug"):
            name += "-debug"
        found[name] = Image(name, ref, expected_version(name))
    return found


@pytest.fixture
def containers(engine: Engine, images: dict[str, Image]) -> Iterator[Containers]:
    running = Containers(engine)
    try:
        yield running
    finally:
        left = running.remove_all()
    assert not left, f"containers not removed: {left}"
