"""A noisy neighbour: a CPU hog that plays an unrelated process on the machine (a compiler, a
browser) for as long as a run lasts, to measure how sensitive a result is to one.

It burns `share` of one core: ceil(share) busy processes in a CPU cgroup of their own with a
CFS quota of share x period, on a chosen CPU set, or by default wherever its parent's cpuset
lets it run (the root one before the testbed is up: every CPU, as an unrelated process would,
and a shield moves it like one). It is deliberately outside the testbed's isolation groups.
Stopped by PID (its process group, since it is a session leader), whatever happens to the run.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.local import cgroups, cpusets, processes


class NoiseError(RuntimeError):
    """The hog cannot be started as asked."""


class NoiseHog:
    def __init__(self, share: float, cpus: tuple[int, ...] | None, log_file: Path) -> None:
        self.share = share
        self.cpus = cpus
        self.log_file = log_file
        self.name = f"noise-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self.handle: processes.ProcessHandle | None = None
        self.group: cgroups.CpuGroup | None = None
        self.cpuset: cpusets.CpusetDriver | None = None
        self.started = 0.0
        self.stopped: float | None = None

    @property
    def workers(self) -> int:
        return max(1, math.ceil(self.share - 1e-9))

    def start(self) -> None:
        driver = cgroups.detect()
        if driver is None:
            raise NoiseError(
                "noise needs a writable cpu cgroup (v1 cpu or v2 cpu.max) for its quota"
            )
        self.group = driver.create(self.name, max(1, round(self.share * 1000)))
        preexec = cpusets.preexec_all(self.group.attach_self, self._placement(self.group))
        argv = [sys.executable, "-m", "testbed.local.noise_hog", str(self.workers)]
        with processes.interrupts_held():  # stop() must find what was started
            self.handle = processes.spawn(argv, os.environ, self.log_file, preexec=preexec)
        self.started = time.monotonic()

    def _placement(self, group: cgroups.CpuGroup) -> Callable[[], None] | None:
        """How the hog gets onto its chosen CPUs (None: not chosen, it stays where it is)."""
        if self.cpus is None:
            return None
        self.cpuset = cpusets.detect()
        if self.cpuset is None:
            cpus = set(self.cpus)

            def pin() -> None:  # without a cpuset hierarchy: the affinity alone
                os.sched_setaffinity(0, cpus)

            return pin
        if isinstance(self.cpuset, cpusets.CpusetV2):
            return self.cpuset.confine(group.paths[0], self.cpus).attach_self
        return cpusets.Placement((self.cpuset.group(self.name, self.cpus),)).attach_self

    def cpu_seconds(self) -> float:
        return self.group.usage_seconds() if self.group is not None else 0.0

    def stop(self) -> dict[str, Any]:
        """Stop it (by PID and its process group), remove its groups; what it used."""
        problems: list[str] = []
        if self.handle is not None:
            processes.stop(self.handle, timeout=5.0)
            if processes.group_members(self.handle.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.handle.pid, signal.SIGKILL)
        self.stopped = time.monotonic()
        used = 0.0
        with contextlib.suppress(OSError, ValueError):
            used = self.cpu_seconds()
        if self.group is not None:
            problems += cgroups.remove_group(self.group)
        if self.cpuset is not None and not isinstance(self.cpuset, cpusets.CpusetV2):
            problems += self.cpuset.remove(self.name)
        seconds = self.stopped - self.started if self.started else 0.0
        record: dict[str, Any] = {
            "share": self.share,
            "cpus": "inherited" if self.cpus is None else cpusets.format_cpu_list(self.cpus),
            "workers": self.workers,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(used, 2),
            "cores_used": round(used / seconds, 3) if seconds > 0 else None,
        }
        if problems:
            record["cleanup_errors"] = problems
        return record
