"""`testbed up/status/scale/down` through the installed CLI, on addresses of their own
(127.0.5.x / 127.0.6.x) so they never meet the shared SIP system of the other tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.local.processes import ProcessHandle, group_members
from testbed.local.state import StateStore

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "testbed.cli"]


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "TESTBED_STATE_DIR": str(tmp_path / "state"),
        "LB_ADDRESS": "127.0.5.1",
        "SIP_CONTROLLER_HOST": "127.0.5.1",
        "PROXY_ADDRESS_BASE": "127.0.6.1",
        "COLUMNS": "200",
    }
    env.pop("DATABASE_URL", None)
    yield env
    subprocess.run([*CLI, "down"], env=env, capture_output=True, check=False, timeout=120)


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def _pids_of_group(pgid: int) -> set[int]:
    return set(group_members(pgid))


def test_up_status_scale_down_with_cpu_limits(cli_env: dict[str, str]):
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        up = run(cli_env, "up", "--proxies", "2", "--proxy-cpu", "30m")
        assert "sip-proxy-1" in up.stdout

        store = StateStore(Path(cli_env["TESTBED_STATE_DIR"]))
        state = store.load()
        assert state is not None
        names = [c.name for c in state.components]
        assert names == [
            "database",
            "sip-controller",
            "sip-loadb",
            "sip-proxy-0",
            "sip-proxy-1",
            "supervisor",  # restarts a proxy that dies, as the kubelet would
        ]

        status = run(cli_env, "status")
        for component in state.components:
            assert component.name in status.stdout
            if component.pid:
                assert str(component.pid) in status.stdout
        assert status.stdout.count("healthy") == 6
        assert "udp:127.0.5.1:5060" in status.stdout
        assert "30m (v" in status.stdout

        # every Kamailio process of a proxy is inside its CPU cgroup, limited to 30m
        for proxy in state.of_kind("sip-proxy"):
            assert proxy.cgroup is not None
            assert proxy.pid is not None
            cpu_dir = Path(proxy.cgroup.paths[0])
            members = {int(p) for p in (cpu_dir / "cgroup.procs").read_text().split()}
            assert _pids_of_group(proxy.pid) <= members
            assert len(members) > 5
            if (cpu_dir / "cpu.max").exists():
                assert (cpu_dir / "cpu.max").read_text().split() == ["3000", "100000"]
            else:
                assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "3000"
                assert (cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"

        again = run(cli_env, "up", "--proxies", "1", check=False)
        assert again.returncode == 1
        assert "already running" in again.stdout

        scaled = run(cli_env, "scale", "sip-proxy", "3")
        assert "sip-proxy-2" in scaled.stdout
        assert "udp:127.0.6.3:5060" in scaled.stdout
        run(cli_env, "scale", "sip-proxy", "1")
        state = store.load()
        assert state is not None
        assert [c.name for c in state.of_kind("sip-proxy")] == ["sip-proxy-0"]

        handles = [c for c in state.components if c.handle]
        cgroup_dirs = [Path(p) for c in state.components if c.cgroup for p in c.cgroup.paths]
        down = run(cli_env, "down")
        assert "sip-proxy-0" in down.stdout
        for component in handles:
            handle = component.handle
            assert isinstance(handle, ProcessHandle)
            assert not handle.alive(), f"{component.name} (PID {handle.pid}) still running"
            assert not _pids_of_group(handle.pid), f"{component.name} left workers behind"
        assert not any(d.exists() for d in cgroup_dirs)
        assert bystander.poll() is None, "testbed down stopped a process it did not start"
        assert "not running" in run(cli_env, "status").stdout
    finally:
        bystander.send_signal(signal.SIGTERM)
        bystander.wait()


def test_bad_cpu_quantity_is_refused_before_anything_starts(cli_env: dict[str, str]):
    result = run(cli_env, "up", "--proxy-cpu", "thirty", check=False)
    assert result.returncode == 2
    assert "thirty" in result.stdout + result.stderr
    assert not (Path(cli_env["TESTBED_STATE_DIR"]) / "state.json").exists()


def test_scale_of_something_else_is_refused(cli_env: dict[str, str]):
    run(cli_env, "up", "--proxies", "0")
    result = run(cli_env, "scale", "sip-loadb", "2", check=False)
    assert result.returncode == 1
    assert "only sip-proxy" in result.stdout
