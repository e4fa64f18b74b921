"""Is a component healthy: its HTTP check while it starts, and the word `testbed status` shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from testbed.local import processes

HEALTHY = "healthy"


class StartupError(RuntimeError):
    """A component did not come up; the message says which and shows its log."""


def health_problem(http: httpx.Client, url: str) -> str | None:
    """What is wrong with the component whose health check is GET `url` (unreachable, or the
    HTTP status when it is not 200); None when nothing is."""
    try:
        response = http.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def wait_healthy(
    http: httpx.Client,
    name: str,
    url: str,
    handle: processes.ProcessHandle,
    log_file: Path,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once `url` answers 200; StartupError when the process exits first or `timeout`
    seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if not handle.alive():
            raise StartupError(f"{name} exited during start-up:\n{processes.tail(log_file)}")
        if health_problem(http, url) is None:
            return
        if time.monotonic() > deadline:
            raise StartupError(
                f"{name} not healthy within {timeout:.0f} s:\n" + processes.tail(log_file)
            )
        sleep(0.1)


def status_word(
    alive: bool | None, problem: Callable[[], str | None], reachable: Callable[[], bool]
) -> str:
    """The health `testbed status` shows. `alive`: whether the process runs (None: a component
    without a process, a SQLite file or an external DB, judged by `reachable`); `problem`: its
    check (health_problem, or a database ping)."""
    if alive is None:
        return HEALTHY if reachable() else "unreachable"
    if not alive:
        return "dead"
    return problem() or HEALTHY
