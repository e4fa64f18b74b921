"""How busy the whole machine was, and how much CPU its hypervisor took (steal), per sample.

Isolation and the shield keep this machine's own processes off the system under test's CPUs;
they cannot keep a hypervisor's other tenants off the physical cores behind them. Steal time
is the one trace of those tenants a guest sees, so every run records it next to its figures.
Sans-I/O: the text of /proc/stat goes in, shares come out; the runner reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")


class HostCpuError(ValueError):
    """/proc/stat's text did not have the aggregate `cpu` line this module reads."""


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate `cpu` line of /proc/stat, in clock ticks since boot."""

    idle: int  # idle + iowait: nothing to run
    steal: int  # runnable, but the hypervisor ran someone else
    total: int  # every field up to steal (guest time is already inside user and nice)


@dataclass(frozen=True)
class CpuShares:
    busy_pct: float  # of all CPUs: neither idle nor stolen
    steal_pct: float  # of all CPUs


def parse_proc_stat(text: str) -> CpuTimes:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            try:
                # user nice system idle iowait irq softirq steal (guest, guest_nice follow)
                ticks = [int(v) for v in fields[1:9]]
            except ValueError:
                raise HostCpuError(
                    f"/proc/stat: a field of the cpu line is not a number: {line!r}"
                ) from None
            if len(ticks) < 8:
                raise HostCpuError(f"/proc/stat: the cpu line has no steal field: {line!r}")
            return CpuTimes(idle=ticks[3] + ticks[4], steal=ticks[7], total=sum(ticks))
    raise HostCpuError("/proc/stat: no aggregate cpu line")


def shares(before: CpuTimes, after: CpuTimes) -> CpuShares | None:
    """Shares between two readings; None when no tick passed (or the counters went back)."""
    total = after.total - before.total
    if total <= 0:
        return None
    steal = max(0, after.steal - before.steal)
    idle = max(0, after.idle - before.idle)
    busy = max(0, total - idle - steal)
    return CpuShares(busy_pct=100 * busy / total, steal_pct=100 * steal / total)


class HostCpuTracker:
    """Feed it /proc/stat's text once per sample; it answers for the span since the last."""

    def __init__(self) -> None:
        self._last: CpuTimes | None = None

    def update(self, text: str) -> CpuShares | None:
        now = parse_proc_stat(text)
        last, self._last = self._last, now
        return None if last is None else shares(last, now)
