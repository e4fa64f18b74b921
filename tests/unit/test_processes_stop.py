"""Stopping a process that is itself stopped (SIGSTOP: a `stop` fault, a debugger): it gets
to act on SIGTERM and clean up, instead of waiting out the timeout for SIGKILL."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from testbed.local import processes
from testbed.local.environment import base_environment

CHILD = """
import pathlib, signal, sys, time
def term(*_):
    pathlib.Path(sys.argv[1]).write_text("terminated cleanly")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
pathlib.Path(sys.argv[1] + ".ready").touch()
while True:
    time.sleep(1)
"""


def test_a_stopped_process_is_continued_and_acts_on_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    handle = processes.spawn(
        [sys.executable, "-c", CHILD, str(marker)], base_environment(), tmp_path / "child.log"
    )
    deadline = time.monotonic() + 20
    while not Path(f"{marker}.ready").exists():
        assert time.monotonic() < deadline, processes.tail(tmp_path / "child.log")
        time.sleep(0.05)
    os.kill(handle.pid, signal.SIGSTOP)
    assert processes.stop(handle, timeout=3)
    # with SIGKILL after the timeout the handler would never have run
    assert marker.read_text() == "terminated cleanly"
