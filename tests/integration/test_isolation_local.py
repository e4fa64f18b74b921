"""Isolation and the noise hog on this machine's real cgroups (hold the machine-wide lock):
placement is read back from /proc/<pid>/status (Cpus_allowed_list), not from the intent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import own_addresses

from testbed.config import TestbedSettings
from testbed.local import cpusets, processes
from testbed.local.noise import NoiseHog
from testbed.local.testbed import PROXY_KIND, LocalTestbed

MACHINE = cpusets.machine_cpus()
DRIVER = cpusets.detect()
pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _isolation_possible() -> None:
    """CI's machine has 2 CPUs and a writable cpuset hierarchy: their absence is a failure
    of the machine's setup, said plainly, not a skipped test."""
    assert len(MACHINE) >= 2, f"isolation needs 2 or more CPUs, this machine has {MACHINE}"
    assert DRIVER is not None, "no writable cpuset hierarchy (v1 cpuset or v2 cpuset.cpus)"


@pytest.fixture
def testbed(tmp_path: Path) -> Iterator[LocalTestbed]:
    # addresses of its own: the session's sip_system testbed may be up at the same time
    settings = TestbedSettings(
        testbed_state_dir=tmp_path / "tb", database_url=None, **own_addresses(60)
    )
    bed = LocalTestbed(settings)
    try:
        yield bed
    finally:
        bed.down()
        bed.close()


def _group(role: str, testbed: LocalTestbed) -> str:
    return cpusets.group_name(role, testbed.state_dir)


def _group_cpus(pid: int) -> set[str]:
    """Cpus_allowed_list of a process and every process in its group (Kamailio's children)."""
    found = {cpusets.allowed_cpus(p) for p in [pid, *processes.group_members(pid)]}
    return {c for c in found if c is not None}


def test_sut_and_others_on_their_cpus_also_scaled_and_restarted_proxies(testbed: LocalTestbed):
    assert DRIVER is not None
    plan = cpusets.default_split(MACHINE)
    sut, others = (cpusets.format_cpu_list(c) for c in (plan.sut_cpus, plan.other_cpus))
    # a killed run's stale group, on the wrong CPUs, must not break `up`
    DRIVER.group(_group(cpusets.SUT, testbed), plan.other_cpus)
    testbed.up(1, 10, analyzers=True, scenario_controller=True, clients=[(0, 2)])
    state = testbed.load_state()
    assert state is not None
    assert state.isolation is not None
    assert state.isolation.enabled
    assert state.isolation.sut_cpus == sut
    assert state.isolation.other_cpus == others
    rows = {row.name: row for row in testbed.status()}
    placed = {c.name: _group_cpus(c.pid) for c in state.components if c.pid is not None}
    for name in ("sip-loadb", "sip-proxy-0"):
        assert placed[name] == {sut}, name
        assert rows[name].cpus == sut
    for name in ("sip-controller", "analyzer-0", "scenario-controller", "sip-client-00"):
        assert placed[name] == {others}, name
        assert rows[name].cpus == others
    assert placed["supervisor"] == {others}
    status = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "status"],
        env={**os.environ, "TESTBED_STATE_DIR": str(testbed.state_dir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert f"isolation: {plan.describe()}" in status.stdout, status.stdout + status.stderr
    assert "CPUs" in status.stdout

    testbed.scale(PROXY_KIND, 2)
    new = testbed.load_state().get("sip-proxy-1")  # type: ignore[union-attr]
    assert new is not None
    assert new.pid is not None
    assert _group_cpus(new.pid) == {sut}

    # the supervisor (on the others' CPUs) restarts a dead proxy on the SUT's
    old_pid = new.pid
    os.killpg(old_pid, 9)
    deadline = time.monotonic() + 60
    restarted = None
    while time.monotonic() < deadline:
        restarted = testbed.load_state().get("sip-proxy-1")  # type: ignore[union-attr]
        if restarted and restarted.pid != old_pid and restarted.handle.alive():  # type: ignore[union-attr]
            break
        time.sleep(0.5)
    assert restarted is not None
    assert restarted.pid not in (None, old_pid)
    assert _group_cpus(restarted.pid) == {sut}

    # the runner's own process moves to the others' CPUs and back
    assert testbed.join_others()
    assert cpusets.allowed_cpus(os.getpid()) == others
    testbed.down()
    assert cpusets.allowed_cpus(os.getpid()) == cpusets.format_cpu_list(MACHINE)
    for role in (cpusets.SUT, cpusets.OTHERS):
        assert not (DRIVER.root() / "ims-testbed" / _group(role, testbed)).exists()


def test_isolation_off_applies_no_cpuset(testbed: LocalTestbed):
    testbed.up(1, isolation=cpusets.IsolationPlan(enabled=False, reason="turned off"))
    state = testbed.load_state()
    assert state is not None
    assert state.isolation is not None
    assert not state.isolation.enabled
    assert state.isolation.describe() == "off (turned off)"
    everything = cpusets.format_cpu_list(MACHINE)
    for component in state.components:
        if component.pid is not None:
            assert _group_cpus(component.pid) == {everything}, component.name
    assert DRIVER is not None
    assert not (DRIVER.root() / "ims-testbed" / _group(cpusets.SUT, testbed)).exists()


@pytest.mark.parametrize("share", [0.3, 1.0])
def test_noise_hog_uses_its_share_and_is_gone_after(tmp_path: Path, share: float):
    hog = NoiseHog(share, MACHINE, tmp_path / "noise.log")
    hog.start()
    try:
        assert hog.handle is not None
        time.sleep(0.2)
        assert cpusets.allowed_cpus(hog.handle.pid) == cpusets.format_cpu_list(MACHINE)
        time.sleep(4.0)
    finally:
        record = hog.stop()
    assert hog.handle is not None
    assert not hog.handle.alive()
    assert not processes.group_members(hog.handle.pid)
    # the quota caps it; a busy shared machine may give it somewhat less
    assert share * 0.6 <= record["cores_used"] <= share * 1.08, record
    assert hog.group is not None
    assert not any(p.exists() for p in hog.group.paths)


def test_the_shield_moves_outside_processes_off_the_sut_and_back(
    testbed: LocalTestbed, tmp_path: Path
):
    assert DRIVER is not None
    everything = cpusets.format_cpu_list(MACHINE)
    plan = cpusets.resolve(True, None, None, MACHINE, shield=True)
    others, sut = (cpusets.format_cpu_list(c) for c in (plan.other_cpus, plan.sut_cpus))
    # an unrelated process, one pinned by its owner to the SUT's CPU, and a noise hog that
    # inherits its place as an unrelated process would, all started before the testbed
    outside = subprocess.Popen(["sleep", "300"])
    pinned = subprocess.Popen(
        ["sleep", "300"], preexec_fn=lambda: os.sched_setaffinity(0, set(plan.sut_cpus))
    )
    hog = NoiseHog(0.2, None, tmp_path / "noise.log")
    hog.start()
    try:
        assert hog.handle is not None
        assert cpusets.allowed_cpus(outside.pid) == everything
        assert cpusets.allowed_cpus(hog.handle.pid) == everything
        testbed.up(1, isolation=plan)
        record = testbed.isolation()
        assert record is not None
        assert record.shielded is not None
        assert record.shielded >= 3  # at least these two and this test's own process
        assert "shield" in record.describe()
        assert cpusets.allowed_cpus(outside.pid) == others
        assert cpusets.allowed_cpus(hog.handle.pid) == others
        assert cpusets.allowed_cpus(pinned.pid) == sut  # its owner's choice is kept
        # released by a `down` that only has the state file, as after a crashed run
        again = LocalTestbed(testbed.settings)
        try:
            again.down()
        finally:
            again.close()
        assert cpusets.allowed_cpus(outside.pid) == everything
        assert cpusets.allowed_cpus(hog.handle.pid) == everything
        assert cpusets.allowed_cpus(os.getpid()) == everything
        assert not (DRIVER.root() / "ims-testbed" / _group(cpusets.SHIELD, testbed)).exists()
    finally:
        hog.stop()
        for process in (outside, pinned):
            process.kill()
            process.wait()


def test_the_shield_needs_isolation():
    with pytest.raises(ValueError, match="shield: needs isolation on"):
        cpusets.resolve(False, None, None, MACHINE, shield=True)
