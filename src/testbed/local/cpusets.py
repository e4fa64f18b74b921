"""Isolation of the system under test: the load balancer and proxies on CPUs of their own, the
load generators, analyzers, controllers and the runner on the others (cpuset cgroups).

On a cluster the load generators run on other nodes than the proxies; on one machine they
share its cores, and a proxy limited to 10m waits out a whole 100 ms CFS period whenever a
client or analyzer holds its core. Pinning the two sides to disjoint CPU sets keeps them from
preempting each other (docs/local-mode.md, "Isolation").

v1: a separate `cpuset` hierarchy, groups <root>/cpuset/ims-testbed/<sut|others> (each needs
cpuset.mems and cpuset.cpus before a process may join). v2: `cpuset.cpus` in the unified tree,
with +cpuset enabled in subtree_control; there a process is in one group only, so a proxy's
CPU-limit group (cgroups.py) gets the SUT's cpuset.cpus itself. Processes join before exec
(preexec), as in cgroups.py, so every child Kamailio forks inherits the set.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from testbed.local.cgroups import GROUP_PARENT

SUT = "sut"
OTHERS = "others"
SHIELD = "shield"  # outside processes, moved off the SUT's CPUs while a testbed is up
PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread


def group_name(role: str, state_dir: Path) -> str:
    """The cpuset group of one role of one testbed: two testbeds up at once (a test fixture and
    a run) each have their own, so neither rewrites nor removes the other's."""
    tag = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"{role}-{tag}"


# -- CPU lists ("0-1,3") ----------------------------------------------------------------------


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0-2,5' -> (0, 1, 2, 5): the kernel's list format (cpuset.cpus, Cpus_allowed_list)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"CPU list '{text}' is not like 0, 1-3 or 0,2-3") from None
        if first < 0 or last < first:
            raise ValueError(f"CPU list '{text}': bad range '{part}'")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError(f"CPU list '{text}' is empty")
    return tuple(sorted(cpus))


def format_cpu_list(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 5) -> '0-2,5'."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(ranges)


def describe_cpus(cpus: Iterable[int]) -> str:
    listed = tuple(cpus)
    return f"CPU{'s' if len(listed) > 1 else ''} {format_cpu_list(listed)}"


# -- the split ----------------------------------------------------------------------------------


class IsolationPlan(BaseModel):
    """The split a testbed is asked to apply (resolved against the machine's CPUs)."""

    enabled: bool
    sut_cpus: tuple[int, ...] = ()
    other_cpus: tuple[int, ...] = ()
    reason: str = ""  # why it is off, when it is
    shield: bool = False  # also move the machine's other processes off the SUT's CPUs

    def describe(self) -> str:
        if not self.enabled:
            return f"off ({self.reason})" if self.reason else "off"
        return (
            f"system under test on {describe_cpus(self.sut_cpus)}, "
            f"everything else on {describe_cpus(self.other_cpus)}"
            + (", the machine's other processes shielded off the former" if self.shield else "")
        )


def default_split(cpus: Iterable[int]) -> IsolationPlan:
    """The upper half of the CPUs (at least one) for the system under test; off below 2."""
    ordered = tuple(sorted(set(cpus)))
    if len(ordered) < 2:
        return IsolationPlan(
            enabled=False, reason=f"only {len(ordered)} CPU: nothing to split between the sides"
        )
    half = len(ordered) // 2
    return IsolationPlan(enabled=True, sut_cpus=ordered[half:], other_cpus=ordered[:half])


def resolve(
    enabled: bool | None,
    sut_cpus: str | None,
    other_cpus: str | None,
    machine: Iterable[int],
    shield: bool = False,
) -> IsolationPlan:
    """The plan for `enabled` (None: auto, on with >= 2 CPUs) and the given sets (a missing
    one is the rest of the machine); `shield` moves outside processes too. Raises ValueError
    naming the problem."""
    if enabled is False:
        if shield:
            raise ValueError("shield: needs isolation on")
        return IsolationPlan(enabled=False, reason="turned off")
    plan = _split(enabled, sut_cpus, other_cpus, tuple(sorted(set(machine))))
    if shield and not plan.enabled:
        raise ValueError(f"shield: needs isolation, which is off ({plan.reason})")
    return plan.model_copy(update={"shield": shield})


def _split(
    enabled: bool | None, sut_cpus: str | None, other_cpus: str | None, have: tuple[int, ...]
) -> IsolationPlan:
    if sut_cpus is None and other_cpus is None:
        plan = default_split(have)
        if enabled and not plan.enabled:
            raise ValueError(f"isolation enabled, but {plan.reason}")
        return plan
    sut = parse_cpu_list(sut_cpus) if sut_cpus is not None else None
    others = parse_cpu_list(other_cpus) if other_cpus is not None else None
    for field, cpus in (("sut_cpus", sut), ("other_cpus", others)):
        missing = sorted(set(cpus or ()) - set(have))
        if missing:
            raise ValueError(
                f"{field}: this machine has no {describe_cpus(missing)} "
                f"(it has {format_cpu_list(have)})"
            )
    if sut is None:
        assert others is not None
        sut = tuple(c for c in have if c not in others)
    if others is None:
        others = tuple(c for c in have if c not in sut)
    if not sut or not others:
        raise ValueError(
            f"no CPU left for the {'system under test' if not sut else 'other processes'} "
            f"(the machine has {format_cpu_list(have)})"
        )
    overlap = sorted(set(sut) & set(others))
    if overlap:
        raise ValueError(f"sut_cpus and other_cpus overlap on {describe_cpus(overlap)}")
    return IsolationPlan(enabled=True, sut_cpus=sut, other_cpus=others)


def machine_cpus(root: Path = Path("/sys/fs/cgroup")) -> tuple[int, ...]:
    """The CPUs this machine lets processes use: the root cpuset's effective CPUs (not this
    process's affinity, which an isolated runner has narrowed)."""
    for path in (
        root / "cpuset" / "cpuset.effective_cpus",
        root / "cpuset" / "cpuset.cpus",
        root / "cpuset.cpus.effective",
        Path("/sys/devices/system/cpu/online"),
    ):
        with contextlib.suppress(OSError, ValueError):
            return parse_cpu_list(path.read_text())
    return tuple(range(os.cpu_count() or 1))


def allowed_cpus(pid: int) -> str | None:
    """Where a process may run, as the kernel has it (/proc/<pid>/status Cpus_allowed_list)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return None


# -- drivers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """The directories a process writes its PID to (cgroup.procs) to run on a CPU set."""

    paths: tuple[Path, ...]

    def attach_self(self) -> None:
        """Used as preexec_fn: the process and everything it forks run on the set."""
        pid = str(os.getpid())
        for path in self.paths:
            (path / "cgroup.procs").write_text(pid)

    def attach(self, pid: int) -> None:
        """Move a running process, all its threads (cgroup.procs moves the thread group)."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))


class CpusetDriver(abc.ABC):
    kind = ""

    @abc.abstractmethod
    def group(self, name: str, cpus: tuple[int, ...]) -> Path:
        """Create (or reuse, e.g. a stale one of a killed run) group `name` on `cpus`."""

    @abc.abstractmethod
    def confine(self, cpu_group: Path, cpus: tuple[int, ...]) -> Placement:
        """Where a process that also joins the CPU-limit group `cpu_group` goes to run on
        `cpus` (v1: a cpuset group beside it; v2: the same group, with cpuset.cpus)."""

    @abc.abstractmethod
    def root(self) -> Path:
        """The group a process leaves to (the hierarchy's root)."""

    def remove(self, name: str, wait_s: float = 3.0) -> list[str]:
        """Remove group `name` (and the shared parent once empty); returns the failures."""
        failures = []
        target = self.root() / GROUP_PARENT / name
        failure = _rmdir(target, wait_s)
        if failure:
            failures.append(failure)
        with contextlib.suppress(OSError):  # other groups (a noise hog, proxies) may remain
            (self.root() / GROUP_PARENT).rmdir()
        return failures


class CpusetV1(CpusetDriver):
    kind = "v1"

    def __init__(self, cpuset_root: Path) -> None:
        self.cpuset_root = cpuset_root
        # mounted with or without the "cpuset." prefix (noprefix)
        self.prefix = "cpuset." if (cpuset_root / "cpuset.cpus").exists() else ""

    def root(self) -> Path:
        return self.cpuset_root

    def _file(self, group: Path, name: str) -> Path:
        return group / f"{self.prefix}{name}"

    def _parent(self) -> Path:
        parent = self.cpuset_root / GROUP_PARENT
        parent.mkdir(exist_ok=True)
        # the parent spans every CPU and memory node, so its children may take any of them
        for name in ("mems", "cpus"):
            value = self._file(self.cpuset_root, name).read_text().strip()
            if self._file(parent, name).read_text().strip() != value:
                self._file(parent, name).write_text(value)
        return parent

    def group(self, name: str, cpus: tuple[int, ...]) -> Path:
        group = self._parent() / name
        group.mkdir(exist_ok=True)
        mems = self._file(self.cpuset_root, "mems").read_text().strip()
        self._file(group, "mems").write_text(mems)  # before cpus: a process may join only then
        self._file(group, "cpus").write_text(format_cpu_list(cpus))
        return group

    def confine(self, cpu_group: Path, cpus: tuple[int, ...]) -> Placement:
        return Placement((self.group(SUT, cpus),))


class CpusetV2(CpusetDriver):
    kind = "v2"

    def __init__(self, root: Path) -> None:
        self.unified_root = root

    def root(self) -> Path:
        return self.unified_root

    def _parent(self) -> Path:
        _enable_cpuset(self.unified_root)
        parent = self.unified_root / GROUP_PARENT
        parent.mkdir(exist_ok=True)
        _enable_cpuset(parent)
        return parent

    def group(self, name: str, cpus: tuple[int, ...]) -> Path:
        group = self._parent() / name
        group.mkdir(exist_ok=True)
        (group / "cpuset.cpus").write_text(format_cpu_list(cpus))
        return group

    def confine(self, cpu_group: Path, cpus: tuple[int, ...]) -> Placement:
        self._parent()
        (cpu_group / "cpuset.cpus").write_text(format_cpu_list(cpus))
        return Placement(())  # joining its CPU group places it


def _enable_cpuset(directory: Path) -> None:
    control = directory / "cgroup.subtree_control"
    if "cpuset" not in control.read_text().split():
        control.write_text("+cpuset")


def detect(root: Path = Path("/sys/fs/cgroup")) -> CpusetDriver | None:
    """The writable cpuset hierarchy of this machine, or None."""
    if (root / "cgroup.controllers").exists():
        if "cpuset" in (root / "cgroup.controllers").read_text().split() and os.access(
            root, os.W_OK
        ):
            return CpusetV2(root)
        return None
    cpuset = root / "cpuset"
    for name in ("cpuset.cpus", "cpus"):
        if (cpuset / name).exists() and os.access(cpuset, os.W_OK):
            return CpusetV1(cpuset)
    return None


def driver_of(kind: str, group: Path) -> CpusetDriver:
    """The driver of a group a testbed recorded, <root>/ims-testbed/<name> (its state file)."""
    root = group.parent.parent
    return CpusetV2(root) if kind == "v2" else CpusetV1(root)


def release_self(driver: CpusetDriver) -> None:
    """Move this process (all its threads) back to the root set, e.g. before its group goes."""
    with contextlib.suppress(OSError):
        (driver.root() / "cgroup.procs").write_text(str(os.getpid()))


def preexec_all(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    """One preexec_fn running the given ones in order (None when there is none)."""
    chosen = [s for s in steps if s is not None]
    if not chosen:
        return None

    def run() -> None:
        for step in chosen:
            step()

    return run


def _rmdir(path: Path, wait_s: float) -> str | None:
    """rmdir a cgroup; a process just killed may still be leaving it (EBUSY) for a moment."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return f"{path}: {exc}"
        return None


def self_in_group(driver: CpusetDriver) -> bool:
    """Whether this process sits in one of the testbed's cpuset groups."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        _id, controllers, path = line.split(":", 2)
        ours = controllers == "" if driver.kind == "v2" else "cpuset" in controllers.split(",")
        if ours and path.startswith(f"/{GROUP_PARENT}/"):
            return True
    return False


# -- the shield: outside processes off the SUT's CPUs ---------------------------------------------
#
# Isolation keeps the testbed's own processes apart; an unrelated process (a compiler, another
# user's job) still runs anywhere, and the kernel's load balancer puts it on the SUT's mostly
# idle CPUs. The shield (as `cset shield` does, or Kubernetes' static CPU manager for a
# Guaranteed pod) moves every user-space process of the root cpuset into a group on the other
# CPUs while the testbed is up, and back when it goes. Their children inherit the group.


@dataclass(frozen=True)
class Sweep:
    moved: int  # processes now in the shield group
    left: int  # kernel threads, processes pinned by their owner, or gone meanwhile


def _kernel_thread(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone: nothing to move
    fields = stat.rsplit(")", 1)[1].split()
    return bool(int(fields[6]) & PF_KTHREAD)  # field 9 of stat; fields[0] is field 3


def _pids(procs: Path) -> list[int]:
    return [int(line) for line in procs.read_text().split() if line.strip()]


def sweep_into(driver: CpusetDriver, group: Path, machine: tuple[int, ...]) -> Sweep:
    """Move every user-space process of the root cpuset that may run on every CPU into
    `group` (a process pinned by its owner to chosen CPUs keeps them). v1 only: on v2 the
    machine's processes sit in slices the testbed does not own."""
    if not isinstance(driver, CpusetV1):
        raise ValueError("the shield needs a cgroup v1 cpuset hierarchy")
    everywhere = format_cpu_list(machine)
    moved = left = 0
    for pid in _pids(driver.root() / "cgroup.procs"):
        if _kernel_thread(pid) or allowed_cpus(pid) != everywhere:
            left += 1
            continue
        try:
            (group / "cgroup.procs").write_text(str(pid))
        except OSError:  # gone meanwhile, or refused by the kernel
            left += 1
        else:
            moved += 1
    return Sweep(moved, left)


def release_all(driver: CpusetDriver, group: Path, passes: int = 5) -> list[str]:
    """Move every process in `group` back to the root set (a few passes: one may fork while
    we move its siblings), then remove the group; returns the failures."""
    for _ in range(passes):
        try:
            pids = _pids(group / "cgroup.procs")
        except FileNotFoundError:
            return []
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):  # gone meanwhile
                (driver.root() / "cgroup.procs").write_text(str(pid))
    failure = _rmdir(group, 3.0)
    return [failure] if failure else []
