"""Where a component's processes run: the cpuset split of the system under test and the rest
(cpusets.py), and a proxy's own CPU cgroup (cgroups.py), created, joined and removed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from testbed.local import cgroups, cpusets
from testbed.local.health import StartupError
from testbed.local.state import CgroupRecord, IsolationRecord, TestbedState

Notify = Callable[[str], None]


class Isolation:
    """The cpuset groups of the testbed whose state lives in `state_dir` (named after it)."""

    def __init__(self, state_dir: Path, notify: Notify) -> None:
        self.state_dir = state_dir
        self._notify = notify

    def isolate(self, plan: cpusets.IsolationPlan | None) -> IsolationRecord:
        """Create the two cpuset groups of `plan` (default: the machine's default split)."""
        asked = plan is not None
        if plan is None:
            plan = cpusets.default_split(cpusets.machine_cpus())
        if not plan.enabled:
            return IsolationRecord(enabled=False, reason=plan.reason)
        driver = cpusets.detect()
        if driver is None:
            reason = "no writable cpuset cgroup (v1 cpuset or v2 cpuset.cpus) on this machine"
            self._notify(f"warning: {reason}; every process shares every CPU")
            return IsolationRecord(enabled=False, reason=reason)
        try:
            groups = {
                role: driver.group(cpusets.group_name(role, self.state_dir), cpus)
                for role, cpus in ((cpusets.SUT, plan.sut_cpus), (cpusets.OTHERS, plan.other_cpus))
            }
        except OSError as exc:
            if asked:  # a split the user chose fails loudly; the default one falls back
                raise StartupError(f"cannot apply isolation ({plan.describe()}): {exc}") from exc
            reason = f"cpuset groups not created ({exc})"
            self._notify(f"warning: {reason}; every process shares every CPU")
            return IsolationRecord(enabled=False, reason=reason)
        record = IsolationRecord(
            enabled=True,
            driver=driver.kind,
            sut_cpus=cpusets.format_cpu_list(plan.sut_cpus),
            other_cpus=cpusets.format_cpu_list(plan.other_cpus),
            groups={role: str(path) for role, path in groups.items()},
        )
        if plan.shield:
            self._shield(driver, plan, record)
        return record

    def release_shield(self) -> None:
        """This testbed's shield group, found by name (recorded in the state file or not)."""
        driver = cpusets.detect()
        if driver is None:
            return
        group = (
            driver.root()
            / cgroups.GROUP_PARENT
            / cpusets.group_name(cpusets.SHIELD, self.state_dir)
        )
        if group.exists():
            for failure in cpusets.release_all(driver, group):
                self._notify(f"warning: shield not released: {failure}")

    def _shield(
        self, driver: cpusets.CpusetDriver, plan: cpusets.IsolationPlan, record: IsolationRecord
    ) -> None:
        """Move the machine's other processes onto the others' CPUs (cpusets.sweep_into);
        recorded first, so a crashed run's `down` releases them."""
        try:
            group = driver.group(
                cpusets.group_name(cpusets.SHIELD, self.state_dir), plan.other_cpus
            )
            record.groups[cpusets.SHIELD] = str(group)
            sweep = cpusets.sweep_into(driver, group, cpusets.machine_cpus())
        except (OSError, ValueError) as exc:
            raise StartupError(f"cannot shield the system under test: {exc}") from exc
        record.shielded = sweep.moved
        self._notify(
            f"shield: {sweep.moved} processes moved to {cpusets.describe_cpus(plan.other_cpus)}"
            f" ({sweep.left} kernel threads, pinned or gone left alone)"
        )

    def remove(self, state: TestbedState) -> None:
        record = state.isolation
        if record is None or not record.enabled:
            return
        driver = cpusets.driver_of(record.driver, Path(record.groups[cpusets.SUT]))
        self.release_shield()  # first: the machine's processes get every CPU back
        if cpusets.self_in_group(driver):  # a run's own process: it cannot stay in a gone group
            cpusets.release_self(driver)
        for role in (cpusets.SUT, cpusets.OTHERS):
            for failure in driver.remove(Path(record.groups[role]).name):
                self._notify(f"warning: cpuset group not removed: {failure}")


def placement(state: TestbedState, role: str) -> cpusets.Placement | None:
    """The cpuset group of `role` (cpusets.SUT or OTHERS); None when the testbed is not isolated."""
    record = state.isolation
    if record is None or not record.enabled:
        return None
    return cpusets.Placement((Path(record.groups[role]),))


def preexec(
    state: TestbedState, role: str, group: cgroups.CpuGroup | None = None
) -> Callable[[], None] | None:
    """What the child runs before exec to join `role`'s CPUs and, for a proxy, its CPU-limit
    `group` (on cgroup v2 one and the same: the limit group confined to the SUT's CPUs)."""
    record = state.isolation
    place = placement(state, role)
    if group is None:
        return place.attach_self if place else None
    if record is not None and place is not None and record.driver == "v2":
        driver = cpusets.driver_of("v2", Path(record.groups[cpusets.SUT]))
        place = driver.confine(group.paths[0], cpusets.parse_cpu_list(record.sut_cpus))
    return cpusets.preexec_all(group.attach_self, place.attach_self if place else None)


class CpuGroups:
    """The proxies' CPU cgroups: limited when millicores are given, else only accounted (the
    experiment runner reads every proxy's CPU from them). Falls back to none, with one warning,
    where the machine has no writable cpu controller."""

    def __init__(self, notify: Notify) -> None:
        self._notify = notify
        self._driver: cgroups.CgroupDriver | None = None
        self._checked = False

    def create(self, name: str, millicores: int | None) -> cgroups.CpuGroup | None:
        if not self._checked:
            self._checked = True
            self._driver = cgroups.detect()
            if self._driver is None and millicores is not None:
                self._notify(
                    "warning: no writable cgroup v2 cpu.max or v1 cpu.cfs_quota_us here; "
                    "proxies run without a CPU limit"
                )
        if self._driver is None:
            return None
        try:
            return self._driver.create(name, millicores)
        except OSError as exc:
            if millicores is not None:
                self._notify(f"warning: cannot create a CPU cgroup ({exc}); proxies run unlimited")
            self._driver = None
            return None

    def record(self, group: cgroups.CpuGroup) -> CgroupRecord:
        """The state file's record of `group` (what `remove` needs in another process)."""
        return CgroupRecord(
            driver=self._driver.kind if self._driver else "",
            millicores=group.millicores,
            paths=[str(p) for p in group.paths],
            usage_file=str(group.usage_file),
            usage_unit_ns=group.usage_unit_ns,
        )


def remove_cpu_group(name: str, record: CgroupRecord, notify: Notify) -> None:
    group = cgroups.group_from_paths(
        name, record.millicores, record.paths, record.usage_file, record.usage_unit_ns
    )
    for failure in cgroups.remove_group(group):
        notify(f"warning: cgroup not removed: {failure}")
