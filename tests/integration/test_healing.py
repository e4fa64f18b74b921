"""The local testbed heals like a cluster would: a killed proxy leaves the load balancer's set,
comes back at its address and is enabled again; the database restarting (MariaDB) or locked
(SQLite) is ridden out by the sip-controller and Kamailio.

The integration tests bring up the local testbed (the `sip_system` fixture): run them under
`flock /tmp/ims-testbed-itest.lock`. Each prints what it measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import SipSystem

from testbed.experiment.sampler import Sampler
from testbed.local import processes
from testbed.local.state import Component, TestbedState
from testbed.local.testbed import PROXY_KIND, serving_proxies
from testbed.sipp import SippResult


def _sleeper() -> processes.ProcessHandle:
    return processes.spawn(["sleep", "60"], os.environ, Path(os.devnull))


def test_a_dead_proxy_is_neither_serving_nor_counted_in_a_sample(tmp_path: Path) -> None:
    """proxy-seconds are summed from the rows' `proxies`: a dead proxy must not be in it."""
    alive, dead = _sleeper(), _sleeper()
    processes.stop(dead)
    state = TestbedState(database_url="sqlite:///x", database_kind="sqlite")
    for index, handle in enumerate((alive, dead)):
        state.put(
            Component(
                name=f"{PROXY_KIND}-{index}",
                kind=PROXY_KIND,
                index=index,
                pid=handle.pid,
                start_ticks=handle.start_ticks,
                # nothing listens there: the sampler's reads fail fast
                endpoints={"http": f"127.0.0.1:{9 + index}"},
            )
        )
    try:
        assert [p.name for p in serving_proxies(state)] == ["sip-proxy-0"]
        with httpx.Client() as http:
            sampler = Sampler(http, 10.0, 99.0, "http://127.0.0.1:9")
            try:
                sample = sampler.sample(state)
            finally:
                sampler.close()
        assert (sample.proxies, sample.replicas) == (1, 2)  # a dead proxy serves nothing
    finally:
        processes.stop(alive)


# -- integration ---------------------------------------------------------------------------


def _wait(predicate: Any, within: float, what: str, step: float = 0.02) -> float:
    """Seconds until `predicate()` held."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, f"{what}: not within {within:.0f} s"
        time.sleep(step)
    return time.monotonic() - start


def _listed(sip_system: SipSystem, index: int) -> str | None:
    """The LB's flags for proxy `index` (None: not in the set)."""
    uri = f"sip:{sip_system.proxy_sip(index)}"
    return next((t.flags for t in sip_system.lb_rpc().dispatcher_list() if t.uri == uri), None)


def _proxy(sip_system: SipSystem, name: str) -> Component:
    state = sip_system.testbed.load_state()
    assert state is not None
    component = state.get(name)
    assert component is not None
    return component


def _in_background(run: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = run()
        except BaseException as exc:  # the test thread re-raises it
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def _result(thread: threading.Thread, box: dict[str, Any]) -> Any:
    thread.join(300)
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.integration
@pytest.mark.parametrize("sip_system", ["sqlite"], indirect=True)
def test_a_killed_proxy_leaves_the_set_comes_back_at_its_address_and_serves(
    sip_system: SipSystem,
) -> None:
    before = _proxy(sip_system, "sip-proxy-1")
    assert before.pid is not None
    assert _listed(sip_system, 1) == "AX"
    calls, rate = 720, 40.0  # 18 s of calls, the kill 4 s in
    traffic = _in_background(
        lambda: sip_system.sipp.calls(
            sip_system.pairs(calls), sip_system.lb, "127.0.0.1:5096", rate=rate, tag="kill-traffic"
        )
    )
    try:
        time.sleep(4.0)
        assert sip_system.invites_received(1) > 0  # it took its share before
        os.kill(before.pid, signal.SIGKILL)  # the main process only, as an OOM kill would
        out = _wait(lambda: _listed(sip_system, 1) is None, 5, "out of the LB set")

        def restarted() -> bool:
            now = _proxy(sip_system, "sip-proxy-1")
            return bool(now.pid != before.pid and now.handle and now.handle.alive())

        back = _wait(restarted, 20, "restarted")
        enabled = _wait(lambda: _listed(sip_system, 1) == "AX", 20, "enabled again") + back
        result: SippResult = _result(*traffic)
    finally:
        traffic[0].join(300)
    after = _proxy(sip_system, "sip-proxy-1")
    print(
        f"\nkill -> out of the LB set {out:.2f} s, restarted {out + back:.2f} s, "
        f"enabled {out + enabled:.2f} s; calls {result.successful} ok, {result.failed} failed "
        f"of {calls} at {rate:g}/s"
    )
    assert out < 2.0, f"{out:.2f} s to leave the set"
    assert after.endpoints == before.endpoints  # same name, same address
    assert after.index == before.index
    assert result.successful + result.failed == calls
    # only calls caught on the dead proxy may fail, never the bulk of its share
    assert result.failed <= rate * out, result.errors
    # after recovery it serves again: a fresh batch all succeeds and reaches it
    invites = sip_system.invites_received(1)
    again = sip_system.sipp.calls(
        sip_system.pairs(100), sip_system.lb, "127.0.0.1:5096", rate=50, tag="after-restart"
    )
    assert (again.successful, again.failed) == (100, 0), again.errors
    assert sip_system.invites_received(1) > invites
    supervisor_log = Path(sip_system.testbed.state_dir / "logs" / "supervisor.log").read_text()
    assert f"sip-proxy-1 (PID {before.pid}) died" in supervisor_log
    assert f"sip-proxy-1 is back as PID {after.pid}" in supervisor_log


def _controller_log(sip_system: SipSystem) -> str:
    return Path(sip_system.testbed.state_dir / "logs" / "sip-controller.log").read_text()


def _register(sip_system: SipSystem, users: list[str], tag: str) -> SippResult:
    return sip_system.sipp.register(
        users, "127.0.0.1:5097", sip_system.lb, "127.0.0.1:5097", tag=tag
    )


def _disable(sip_system: SipSystem, name: str) -> httpx.Response:
    return sip_system.http.post(
        f"{sip_system.controller}/proxies/{name}/disable",
        params={"grace_seconds": 0},
        headers=sip_system.auth,
        timeout=120,
    )


def _enable_proxy_1(sip_system: SipSystem) -> None:
    response = sip_system.http.post(
        f"{sip_system.controller}/proxies/sip-proxy-1/enable",
        json={"sip_address": sip_system.proxy_sip(1), "http_address": "127.0.1.2:8080"},
        headers=sip_system.auth,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["loadbalancers"][0]["flags"] == "AX"


@pytest.mark.integration
@pytest.mark.parametrize("sip_system", ["mariadb"], indirect=True)
def test_the_controller_and_kamailio_ride_out_a_mariadb_restart(sip_system: SipSystem) -> None:
    testbed = sip_system.testbed
    database = _proxy(sip_system, "mariadb")
    assert database.handle is not None
    assert processes.stop(database.handle, timeout=30.0)
    stopped = time.monotonic()
    # a hook while the DB is down: it waits for the DB instead of failing
    hook = _in_background(lambda: _disable(sip_system, "sip-proxy-1"))
    time.sleep(3.0)
    health = sip_system.http.get(f"{sip_system.controller}/health")
    assert health.status_code == 503
    assert "database" in health.json()["reason"]
    assert testbed.restart("mariadb", database.pid)
    outage = time.monotonic() - stopped
    disabled = _result(*hook)
    answered = time.monotonic() - stopped
    try:
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["state"] == "disabled"
        assert _listed(sip_system, 1) is None
    finally:
        _enable_proxy_1(sip_system)  # the LB reloads from the restarted DB
    log = _controller_log(sip_system)
    assert "database unavailable (" in log
    assert "database reachable again after" in log
    # Kamailio's DB connections: credentials are read from the restarted server
    registered = _register(sip_system, [f"07{n:02d}" for n in range(20)], "after-mariadb")
    assert registered.successful == 20, registered.errors
    call = sip_system.sipp.calls(
        sip_system.pairs(20), sip_system.lb, "127.0.0.1:5096", rate=20, tag="after-mariadb"
    )
    assert (call.successful, call.failed) == (20, 0), call.errors
    print(
        f"\nMariaDB down {outage:.1f} s; the disable hook sent during it answered 200 after "
        f"{answered:.1f} s; 20/20 registrations and 20/20 calls after it"
    )


@pytest.mark.integration
@pytest.mark.parametrize("sip_system", ["sqlite"], indirect=True)
def test_the_controller_and_kamailio_ride_out_a_locked_sqlite_file(sip_system: SipSystem) -> None:
    """Another process holds the write lock longer than the driver's busy timeout (30 s)."""
    state = sip_system.testbed.load_state()
    assert state is not None
    path = state.database_url.removeprefix("sqlite:///")
    # held by another process, as a backup or an sqlite3 shell would
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({path!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(36)\n"
            "c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        locked = time.monotonic()
        hook = _in_background(lambda: _disable(sip_system, "sip-proxy-1"))
        # Kamailio only reads (WAL): registrations and calls go on during the lock
        during = _register(sip_system, [f"08{n:02d}" for n in range(10)], "during-lock")
        assert during.successful == 10, during.errors
        disabled = _result(*hook)
        answered = time.monotonic() - locked
    finally:
        holder.wait(60)
    try:
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["state"] == "disabled"
    finally:
        _enable_proxy_1(sip_system)
    log = _controller_log(sip_system)
    assert "database unavailable (write sip-proxy-1: database is locked)" in log
    assert "database reachable again after" in log
    call = sip_system.sipp.calls(
        sip_system.pairs(20), sip_system.lb, "127.0.0.1:5096", rate=20, tag="after-lock"
    )
    assert (call.successful, call.failed) == (20, 0), call.errors
    print(
        f"\nSQLite locked 36 s; the disable hook sent during it answered 200 after {answered:.1f} s"
    )
