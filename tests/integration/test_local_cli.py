"""`testbed up/status/scale/down` through the installed CLI, on addresses of their own
(127.0.5.x / 127.0.6.x) so they never meet the shared SIP system of the other tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import api_token
from kamailio_rpc import KamailioRpc
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
        assert "already running" in again.stderr  # errors go to stderr

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
    assert "only sip-proxy" in result.stderr


def _lb_set(token: str) -> dict[str, str]:
    """The load balancer's dispatcher set: SIP URI -> flags."""
    rpc = KamailioRpc("http://127.0.5.1:8060/RPC", token=token)
    return {t.uri: t.flags for t in rpc.dispatcher_list()}


def test_a_local_testbed_is_closed_without_its_token(cli_env: dict[str, str]):
    """`up` generates the testbed's token, keeps it in a private state file and hands it to
    every process; a request without it changes nothing, and the sip-controller enables only
    the proxies the testbed started, at the addresses it started them on."""
    cli_env |= {"SCENARIO_CONTROLLER_HOST": "127.0.5.1", "CLIENT_ADDRESS_BASE": "127.0.7.1"}
    state_dir = Path(cli_env["TESTBED_STATE_DIR"])
    run(cli_env, "up", "--proxies", "1", "--clients", "1", "--phones", "2")

    store = StateStore(state_dir)
    state = store.load()
    assert state is not None
    assert state.api_token is not None
    token = api_token.validate(state.api_token)
    assert stat.S_IMODE((state_dir / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) & 0o077 == 0
    assert token not in repr(state)
    assert run(cli_env, "token").stdout == f"{token}\n"
    # the registry the sip-controller checks enables against (PROXY_ADDRESS_SOURCE=registry)
    assert stat.S_IMODE(store.registry_path.stat().st_mode) == 0o600
    proxy_0 = {"sip_address": "127.0.6.1:5060", "http_address": "127.0.6.1:8080"}
    assert json.loads(store.registry_path.read_text()) == {"proxies": {"sip-proxy-0": proxy_0}}
    # the processes got it: the client pod's WebSocket handshake was accepted
    with httpx.Client(base_url="http://127.0.5.1:8001", timeout=30) as scenario:
        assert scenario.get("/health").json()["pods"] == 1

    controller = httpx.Client(base_url="http://127.0.5.1:8000", timeout=60)
    with controller, httpx.Client(base_url="http://127.0.5.1:8001", timeout=30) as scenario:
        before = _lb_set(token)
        assert before == {"sip:127.0.6.1:5060": "AX"}
        wrong = api_token.bearer(api_token.generate())
        for headers, status in (({}, 401), (wrong, 403)):
            for path, params in (
                ("/proxies/sip-proxy-0/disable", {"grace_seconds": 0}),
                ("/proxies/sip-proxy-0/enable", None),
            ):
                refused = controller.post(path, params=params, headers=headers)
                assert refused.status_code == status, (path, refused.text)
            for method, path in (
                ("POST", "/register"),
                ("POST", "/runs"),
                ("DELETE", "/scenarios/x"),
            ):
                refused = scenario.request(method, path, headers=headers)
                assert refused.status_code == status, (path, refused.text)
        lb_rpc = httpx.post(
            "http://127.0.5.1:8060/RPC", json={"jsonrpc": "2.0", "method": "core.version", "id": 1}
        )
        assert lb_rpc.status_code == 401, lb_rpc.text
        assert _lb_set(token) == before
        assert controller.get("/proxies/sip-proxy-0").json()["state"] == "enabled"

        # with the token, but an address or a name that is not one of this testbed's proxies;
        # a listener on the foreign address records whether the controller reached out to it
        with socket.socket() as listener:
            listener.bind(("127.0.6.99", 8080))
            listener.listen()
            listener.setblocking(False)
            auth = api_token.bearer(token)
            for name, body in (
                (
                    "sip-proxy-0",
                    {"sip_address": "127.0.6.99:5060", "http_address": "127.0.6.99:8080"},
                ),
                (
                    "sip-proxy-0",
                    {"sip_address": "127.0.6.1:5060", "http_address": "127.0.6.99:8080"},
                ),
                (
                    "sip-proxy-7",
                    {"sip_address": "127.0.6.99:5060", "http_address": "127.0.6.99:8080"},
                ),
                ("sip-proxy-7", None),
            ):
                refused = controller.post(f"/proxies/{name}/enable", json=body, headers=auth)
                assert refused.status_code == 403, (name, body, refused.text)
            with pytest.raises(BlockingIOError):
                listener.accept()
        assert _lb_set(token) == before
        names = [p["name"] for p in controller.get("/proxies").json()]
        assert "sip-proxy-7" not in names

    # the registry follows the proxies the testbed runs
    run(cli_env, "scale", "sip-proxy", "2")
    assert set(json.loads(store.registry_path.read_text())["proxies"]) == {
        "sip-proxy-0",
        "sip-proxy-1",
    }
    run(cli_env, "scale", "sip-proxy", "1")
    assert json.loads(store.registry_path.read_text()) == {"proxies": {"sip-proxy-0": proxy_0}}
    run(cli_env, "down")
    assert not (state_dir / "state.json").exists()
    assert not store.registry_path.exists()
    assert run(cli_env, "token", check=False).returncode == 1
