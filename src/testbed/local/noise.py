"""A noisy neighbour: a CPU hog that plays an unrelated process on the machine (a compiler, a
browser) for as long as a run lasts, to measure how sensitive a result is to one.

It burns `share` of one core: ceil(share) busy processes in a CPU cgroup of their own with a
CFS quota of share x period, on a chosen CPU set (default: every CPU, as an unrelated process
would). It is deliberately outside the testbed's isolation groups. Stopped by PID (its process
group, since it is a session leader), whatever happens to the run.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from testbed.local import cgroups, cpusets, processes


class NoiseError(RuntimeError):
    """The hog cannot be started as asked."""


class NoiseHog:
    def __init__(self, share: float, cpus: tuple[int, ...], log_file: Path) -> None:
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
        placement: cpusets.Placement | None = None
        self.cpuset = cpusets.detect()
        if self.cpuset is not None:
            if isinstance(self.cpuset, cpusets.CpusetV2):
                placement = self.cpuset.confine(self.group.paths[0], self.cpus)
            else:
                placement = cpusets.Placement((self.cpuset.group(self.name, self.cpus),))
        cpus = set(self.cpus)

        def pin() -> None:  # without a cpuset hierarchy: the affinity alone
            os.sched_setaffinity(0, cpus)

        preexec = cpusets.preexec_all(
            self.group.attach_self,
            placement.attach_self if placement else pin,
        )
        argv = [sys.executable, "-m", "testbed.local.noise_hog", str(self.workers)]
        self.handle = processes.spawn(argv, os.environ, self.log_file, preexec=preexec)
        self.started = time.monotonic()

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
            "cpus": cpusets.format_cpu_list(self.cpus),
            "workers": self.workers,
            "seconds": round(seconds, 2),
            "cpu_seconds": round(used, 2),
            "cores_used": round(used / seconds, 3) if seconds > 0 else None,
        }
        if problems:
            record["cleanup_errors"] = problems
        return record
