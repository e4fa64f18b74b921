"""CPU limits for local proxies, like a pod's CPU limit: cgroup v2 `cpu.max` or v1 CFS quota.

Each limited process gets its own group below `<root>/ims-testbed/`. The process joins the group
itself before exec (see `attach_self`), so every child Kamailio forks inherits the limit.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.quantity import cpu_millicores

CFS_PERIOD_US = 100_000
GROUP_PARENT = "ims-testbed"


def parse_millicores(text: str) -> int:
    """Kubernetes CPU quantity to millicores: '30m' -> 30, '0.5' -> 500, '2' -> 2000."""
    return cpu_millicores(text)


@dataclass(frozen=True)
class CpuGroup:
    """One process group's CPU cgroup(s); `paths` are the dirs whose cgroup.procs it joins."""

    name: str
    millicores: int | None  # None: accounted, not limited
    paths: tuple[Path, ...]
    usage_file: Path
    usage_unit_ns: int  # v1 cpuacct.usage is ns; v2 cpu.stat usage_usec is 1000 ns

    def attach_self(self) -> None:
        """Move the calling process into the group (used as preexec_fn before exec)."""
        pid = str(os.getpid())
        for path in self.paths:
            (path / "cgroup.procs").write_text(pid)

    def usage_seconds(self) -> float:
        text = self.usage_file.read_text()
        if self.usage_file.name == "cpu.stat":
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) * self.usage_unit_ns / 1e9
            raise ValueError(f"{self.usage_file}: no usage_usec line")
        return int(text.strip()) * self.usage_unit_ns / 1e9


class CgroupDriver(abc.ABC):
    kind = ""

    @abc.abstractmethod
    def create(self, name: str, millicores: int | None) -> CpuGroup:
        """A group for one process tree; `millicores=None` only accounts its CPU."""


class CgroupV2(CgroupDriver):
    kind = "v2"

    def __init__(self, root: Path) -> None:
        self.root = root

    def create(self, name: str, millicores: int | None) -> CpuGroup:
        parent = self.root / GROUP_PARENT
        _enable_cpu_controller(self.root)
        parent.mkdir(exist_ok=True)
        _enable_cpu_controller(parent)
        group = parent / name
        group.mkdir(exist_ok=True)
        quota = "max" if millicores is None else str(millicores * CFS_PERIOD_US // 1000)
        (group / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")
        return CpuGroup(name, millicores, (group,), group / "cpu.stat", 1000)


def _enable_cpu_controller(directory: Path) -> None:
    control = directory / "cgroup.subtree_control"
    if "cpu" not in control.read_text().split():
        control.write_text("+cpu")


class CgroupV1(CgroupDriver):
    kind = "v1"

    def __init__(self, cpu_root: Path, cpuacct_root: Path | None) -> None:
        self.cpu_root = cpu_root
        self.cpuacct_root = cpuacct_root

    def create(self, name: str, millicores: int | None) -> CpuGroup:
        cpu_group = self.cpu_root / GROUP_PARENT / name
        cpu_group.mkdir(parents=True, exist_ok=True)
        (cpu_group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        quota = -1 if millicores is None else millicores * CFS_PERIOD_US // 1000
        (cpu_group / "cpu.cfs_quota_us").write_text(str(quota))
        paths = [cpu_group]
        usage = cpu_group / "cpuacct.usage"  # present when cpu and cpuacct are mounted together
        if not usage.exists() and self.cpuacct_root is not None:
            acct_group = self.cpuacct_root / GROUP_PARENT / name
            acct_group.mkdir(parents=True, exist_ok=True)
            paths.append(acct_group)
            usage = acct_group / "cpuacct.usage"
        return CpuGroup(name, millicores, tuple(paths), usage, 1)


def detect(root: Path = Path("/sys/fs/cgroup")) -> CgroupDriver | None:
    """The writable cgroup hierarchy of this machine, or None (then proxies run unlimited)."""
    if (root / "cgroup.controllers").exists():
        if "cpu" in (root / "cgroup.controllers").read_text().split() and os.access(root, os.W_OK):
            return CgroupV2(root)
        return None
    for cpu_dir in (root / "cpu", root / "cpu,cpuacct"):
        if (cpu_dir / "cpu.cfs_quota_us").exists() and os.access(cpu_dir, os.W_OK):
            acct = root / "cpuacct"
            return CgroupV1(cpu_dir, acct if (acct / "cpuacct.usage").exists() else None)
    return None


def remove_group(group: CpuGroup, wait_s: float = 3.0) -> list[str]:
    """Remove the group's directories (its processes must be gone); returns the failures.

    A process that has just been killed can still be leaving its group: the kernel refuses
    the removal (EBUSY) for that moment, so it is retried for up to `wait_s`."""
    failures = []
    deadline = time.monotonic() + wait_s
    for path in group.paths:
        while True:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                failures.append(f"{path}: {exc}")
            break
    for path in group.paths:  # the shared parent too, once its last group is gone
        with contextlib.suppress(OSError):
            path.parent.rmdir()
    return failures


def group_from_paths(
    name: str, millicores: int | None, paths: list[str], usage_file: str, unit_ns: int
) -> CpuGroup:
    """Rebuild a CpuGroup recorded in the state file."""
    return CpuGroup(name, millicores, tuple(Path(p) for p in paths), Path(usage_file), unit_ns)
