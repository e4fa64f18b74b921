"""The dispatching thread's short scheduler slice: asked for on Linux, a no-op elsewhere."""

from __future__ import annotations

import platform
import re
import sys
import threading
from pathlib import Path

import pytest

from scenario_controller import latency


def _slice_of_this_thread() -> int | None:
    """se.slice from the kernel's view of the calling thread (None: not shown by this kernel)."""
    for line in Path("/proc/thread-self/sched").read_text().splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "aarch64"),
    reason="sched_setattr is Linux's, numbered here for x86_64 and aarch64",
)
def test_the_calling_thread_gets_the_slice_and_no_other() -> None:
    seen: dict[str, object] = {}

    def in_a_thread() -> None:  # not the test runner's thread: its slice stays as it was
        seen["before"] = _slice_of_this_thread()
        seen["accepted"] = latency.request_short_slice(300_000)
        seen["after"] = _slice_of_this_thread()

    main_before = _slice_of_this_thread()
    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    assert seen["accepted"] is True
    if seen["before"] is None:
        pytest.skip("this kernel does not show se.slice (before 6.6): the call is all we see")
    if seen["before"] == 300_000:
        pytest.skip("the default slice is already 0.3 ms here: a change cannot be seen")
    release = re.match(r"(\d+)\.(\d+)", platform.release())
    kernel = (int(release.group(1)), int(release.group(2))) if release else (0, 0)
    # custom slices came with 6.12; a kernel that shows the slice but is older keeps its default
    assert seen["after"] == (300_000 if kernel >= (6, 12) else seen["before"])
    assert _slice_of_this_thread() == main_before


def test_an_unknown_machine_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "vax")
    assert latency.request_short_slice() is False
