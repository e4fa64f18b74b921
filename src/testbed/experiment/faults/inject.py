"""Carries out an experiment's faults on the local testbed and writes `faults.csv`.

`tick()` is called once per sample from the run loop and never blocks it: the schedule decides
what is due, a single worker thread does it (a database restart takes seconds), and every event
is appended to faults.csv at once. `close()` (the run's teardown) lifts whatever is still in
force: SIGCONT to stopped processes, the packet rules deleted, the SQLite lock released.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from testbed.experiment.faults.impair import Impairment
from testbed.experiment.faults.schedule import FaultSchedule, Step
from testbed.experiment.faults.spec import FaultSpec, target_kind
from testbed.local import processes
from testbed.local.packet_rules import owner_tag
from testbed.local.state import Component, TestbedState
from testbed.local.testbed import PROXY_KIND, LocalTestbed
from testbed.sample import SERVING_COLUMN as SERVING_COLUMN
from testbed.sample import Sample, Serving

COLUMNS = ("index", "fault", "action", "target", "phase", "t_s", "time", "detail")
# phases in faults.csv: apply, lift (the injector undid it), back (the component is running or
# connected again on its own: a proxy restarted by the testbed, a pod reconnected), error


@dataclass
class _Watch:
    """A fault whose end the injector waits to observe."""

    index: int
    fault: FaultSpec
    old_pid: int | None = None  # kill: running again under another PID
    connections: int | None = None  # drop_websocket: the pod's connection count grew


class FaultInjector:
    def __init__(
        self,
        testbed: LocalTestbed,
        faults: Sequence[FaultSpec],
        out: Path,
        clock: Callable[[], float],
        notify: Callable[[str], None] = lambda _m: None,
        seed: int = 0,
    ) -> None:
        self.testbed = testbed
        self.faults = list(faults)
        self.schedule = FaultSchedule(self.faults)
        self.path = out / "faults.csv"
        self.clock = clock  # run seconds, the time base of timeseries.csv
        self.notify = notify
        self.seed = seed
        self._http = httpx.Client(timeout=0.5)  # a frozen controller must not stall a sample
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faults")
        self._lock = threading.Lock()
        self._stopped: dict[int, Component] = {}  # fault index -> SIGSTOPped component
        self._impairments: dict[int, Impairment] = {}
        self._sqlite_locks: dict[int, sqlite3.Connection] = {}
        self._watches: list[_Watch] = []
        self._down: dict[int, tuple[str, int]] = {}  # fault index -> (component, its old PID)
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerow(COLUMNS)

    # -- the run loop's hook -------------------------------------------------------------

    def tick(self, sample: Sample | None = None) -> Sample | None:
        """Start what is due (in the worker), note components that came back; the sample with
        the number of serving proxies (as given when the testbed's state is gone)."""
        for step in self.schedule.due(self.clock()):
            self._worker.submit(self._guarded, step)
        state = self.testbed.load_state()
        if state is None:
            return sample
        enabled = self._enabled()
        self._observe(state, enabled)
        if sample is None:
            return None
        serving = None if enabled is None else sum(1 for c in _running(state) if c.name in enabled)
        return replace(sample, serving=Serving(serving))

    def wait_idle(self) -> None:
        """Until every action handed to the worker so far is done."""
        self._worker.submit(lambda: None).result()

    def close(self) -> list[str]:
        """Lift everything still in force; returns the problems (each also in faults.csv)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        problems: list[str] = []
        for step in self.schedule.unlifted():
            if step.fault.action in ("stop", "netem"):
                problems += self._guarded(step, teardown=True)
        # whatever a failed lift left behind
        for index, component in list(self._stopped.items()):
            self._signal(component, signal.SIGCONT)
            del self._stopped[index]
        for index, impairment in list(self._impairments.items()):
            try:
                impairment.lift()
            except Exception as exc:
                problems.append(f"faults.{index}: {exc}")
            del self._impairments[index]
        for index, conn in list(self._sqlite_locks.items()):
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
                conn.close()
            del self._sqlite_locks[index]
        self._http.close()
        return problems

    # -- bookkeeping -----------------------------------------------------------------------

    def _record(
        self, index: int, phase: str, detail: str = "", at: tuple[float, float] | None = None
    ) -> None:
        """One event; `at` (run time, Unix time) defaults to now."""
        fault = self.faults[index]
        t_s, wall = at or (self.clock(), time.time())
        with self._lock, self.path.open("a", newline="") as f:
            csv.writer(f).writerow(
                (index, fault.label, fault.action, fault.target, phase,
                 round(t_s, 3), round(wall, 3), detail)
            )  # fmt: skip
        self.notify(f"fault {fault.label}: {phase}" + (f" ({detail})" if detail else ""))

    def _guarded(self, step: Step, teardown: bool = False) -> list[str]:
        # a fault starts when its action begins (a restart's SIGTERM), and ends when its lift
        # is done (the component answers again)
        began = (self.clock(), time.time())
        try:
            detail = (self._apply if step.phase == "apply" else self._lift)(step)
        except Exception as exc:
            problem = f"{step.phase} failed: {type(exc).__name__}: {exc}"
            self._record(step.index, "error", problem)
            return [f"faults.{step.index} ({step.fault.label}): {problem}"]
        detail += " at teardown" if teardown else ""
        self._record(step.index, step.phase, detail, began if step.phase == "apply" else None)
        return []

    def _observe(self, state: TestbedState, enabled: set[str] | None) -> None:
        for watch in list(self._watches):
            if watch.old_pid is not None:
                component = _find(state, watch.fault.target)
                handle = component.handle if component else None
                if handle is None or handle.pid == watch.old_pid or not handle.alive():
                    continue
                if component and component.kind == PROXY_KIND:
                    if enabled is None or component.name not in enabled:
                        continue  # back when the load balancers send it calls again
                    detail = f"running again as PID {handle.pid}, enabled"
                else:
                    detail = f"running again as PID {handle.pid}"
                self._watches.remove(watch)
                self._record(watch.index, "back", detail)
            elif watch.connections is not None:
                pod = self._pod_view(watch.fault.target)
                if pod and pod.get("connected") and int(pod["connections"]) > watch.connections:
                    self._watches.remove(watch)
                    self._record(watch.index, "back", "connected again")

    def _enabled(self) -> set[str] | None:
        """Proxies enabled at the sip-controller (None: it did not answer)."""
        url = f"{self.testbed.settings.controller_url}/proxies"
        try:
            rows = self._http.get(url).json()
            return {str(r["name"]) for r in rows if r.get("state") == "enabled"}
        except (httpx.HTTPError, ValueError, TypeError, KeyError):
            return None

    # -- the faults ------------------------------------------------------------------------

    def _component(self, target: str) -> Component:
        state = self.testbed.load_state()
        component = _find(state, target) if state else None
        if component is None:
            raise LookupError(f"{target} is not running in this testbed")
        return component

    def _apply(self, step: Step) -> str:
        fault, kind = step.fault, target_kind(step.fault.target)
        if fault.action == "netem":
            component = self._component(fault.target)
            address = component.endpoints["sip"].split(":")[1]
            impairment = Impairment(
                address, fault.loss_percent, fault.delay_ms, fault.jitter_ms,
                seed=self.seed + step.index, tag=f"{fault.target} {owner_tag(os.getpid())}",
            )  # fmt: skip
            impairment.apply()
            self._impairments[step.index] = impairment
            return f"UDP of {address}: loss {fault.loss_percent:g}%, delay {fault.delay_ms:g} ms"
        if fault.action == "drop_websocket":
            component = self._component(fault.target)
            pod = self._pod_view(fault.target)
            reset = self._reset_websockets(component)
            self._watches.append(
                _Watch(step.index, fault, connections=int(pod["connections"]) if pod else 0)
            )
            return f"reset {reset} connection(s)"
        if kind == "database" and self._is_sqlite():
            # SQLite has no server: a stopped database is a file nobody else can lock
            conn = sqlite3.connect(self._sqlite_path(), timeout=30, check_same_thread=False)
            conn.isolation_level = None
            conn.execute("BEGIN EXCLUSIVE")
            self._sqlite_locks[step.index] = conn
            return "SQLite file locked (BEGIN EXCLUSIVE)"
        component = self._component(fault.target)
        handle = component.handle
        if handle is None or not handle.alive():
            raise LookupError(f"{fault.target} has no running process")
        if fault.action == "kill":
            self._signal(component, signal.SIGKILL)
            if fault.restart_after_s is None:
                self._watches.append(_Watch(step.index, fault, old_pid=handle.pid))
            else:
                self._down[step.index] = (component.name, handle.pid)
            return f"SIGKILL to process group {handle.pid}"
        if fault.action == "stop":
            self._signal(component, signal.SIGSTOP)
            self._stopped[step.index] = component
            return f"SIGSTOP to process group {handle.pid}"
        # restart: stopped the way `testbed down` stops it, started again when lifted
        processes.stop(handle, timeout=30.0)
        self._down[step.index] = (component.name, handle.pid)
        return f"stopped PID {handle.pid} (SIGTERM)"

    def _lift(self, step: Step) -> str:
        fault = step.fault
        if fault.action == "netem":
            impairment = self._impairments.pop(step.index)
            impairment.lift()
            s = impairment.stats
            return f"{s.packets} packets: {s.dropped} dropped, {s.delayed} delayed"
        if fault.action == "stop" and step.index in self._sqlite_locks:
            conn = self._sqlite_locks.pop(step.index)
            conn.rollback()
            conn.close()
            return "SQLite lock released"
        if fault.action == "stop":
            component = self._stopped.pop(step.index)
            alive = self._signal(component, signal.SIGCONT)
            return "SIGCONT" if alive else "SIGCONT not sent: the process was replaced"
        # restart, or kill with restart_after_s: started again at the same address, as the
        # kubelet restarts a container
        name, old_pid = self._down.pop(step.index)
        if not self.testbed.restart(name, old_pid):
            return f"{name} was not started again: it was running, replaced or removed"
        state = self.testbed.load_state()
        again = state.get(name) if state else None
        return f"started again as PID {again.pid if again else '?'}"

    def _signal(self, component: Component, sig: signal.Signals) -> bool:
        """Signal the component's process group, only if it is still the process recorded."""
        handle = component.handle
        if handle is None or not handle.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle.pid, sig)  # spawned as a session leader: its group is its PID
        return True

    def _is_sqlite(self) -> bool:
        state = self.testbed.load_state()
        return state is not None and state.database_kind == "sqlite"

    def _sqlite_path(self) -> str:
        state = self.testbed.load_state()
        assert state is not None
        return state.database_url.removeprefix("sqlite:///")

    # -- client pods' WebSockets -----------------------------------------------------------

    def _pod_view(self, target: str) -> dict[str, Any] | None:
        url = f"{self.testbed.settings.scenario_controller_url}/clients"
        try:
            pods = self._http.get(url).json().get("pods", [])
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        pod_id = target.removeprefix("sip-client-")
        return next((p for p in pods if p.get("pod") == pod_id), None)

    def _reset_websockets(self, component: Component) -> int:
        """Abort the pod's TCP connections to the scenario controller (`ss -K`: the kernel
        resets both ends, as a broken link would be noticed), found from the process's own
        sockets so only this pod's link is cut."""
        if component.pid is None:
            raise LookupError(f"{component.name} has no process")
        port = self.testbed.settings.scenario_controller_port
        links = [link for link in _tcp_links(component.pid) if link[1][1] == port]
        for (laddr, lport), (raddr, rport) in links:
            result = subprocess.run(
                ["ss", "-K", "-t", "src", f"{laddr}:{lport}", "dst", f"{raddr}:{rport}"],
                capture_output=True, text=True, check=False, timeout=10,
            )  # fmt: skip
            if result.returncode != 0:
                raise RuntimeError(f"ss -K: {result.stderr.strip()}")
        if not links:
            raise LookupError(f"{component.name} has no connection to port {port}")
        return len(links)


def _running(state: TestbedState) -> list[Component]:
    return [c for c in state.of_kind(PROXY_KIND) if c.handle is not None and c.handle.alive()]


def _find(state: TestbedState, target: str) -> Component | None:
    """The component a target names; `database` is the database, whatever its name."""
    if target == "database":
        return next(iter(state.of_kind("database")), None)
    return state.get(target)


def _tcp_links(pid: int) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """(local, remote) IPv4 addresses of the established TCP sockets `pid` holds."""
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    links = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
            links.append((_address(fields[1]), _address(fields[2])))
    return links


def _address(text: str) -> tuple[str, int]:
    """/proc/net/tcp's `0100007F:1F41` (little-endian IPv4 in hex) as ('127.0.0.1', 8001)."""
    host, port = text.split(":")
    octets = bytes.fromhex(host)[::-1]
    return ".".join(str(b) for b in octets), int(port, 16)
