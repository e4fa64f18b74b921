"""Fixtures for every test under tests/ (unit/, integration/, deploy/: see README "Tests")."""

from __future__ import annotations

import asyncio
import sys
import warnings

import pytest


@pytest.fixture(autouse=True)
def _usable_child_watcher() -> None:
    """pyshark (the analyzer's slow backend) installs a SafeChildWatcher bound to its own event
    loop and leaves it behind; once that loop is closed no later asyncio subprocess can start
    (Playwright's driver is one). Give each test the default watcher back (Python < 3.12)."""
    if sys.version_info >= (3, 12):
        return
    policy = asyncio.get_event_loop_policy()
    watcher = getattr(policy, "_watcher", None)
    if watcher is not None and not isinstance(watcher, asyncio.ThreadedChildWatcher):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(asyncio.ThreadedChildWatcher())
