"""Local mode: the SIP system as processes on this machine (`testbed up/status/scale/down`).

What runs is the table of components.py (each kind's command, environment, endpoints, health
check, placement, restart policy); this module is the orchestration around it. Each proxy gets
its own loopback address (like a pod IP) and, when a CPU limit is given, its own cgroup. Adding a
proxy does what its pod's postStart hook does in Kubernetes (enable at the sip-controller once
healthy); removing one does what preStop does (disable: drain), then stops it. A supervisor
process (supervisor.py) restarts a proxy that dies, as a StatefulSet's would be.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

import api_token
from testbed.config import TestbedSettings
from testbed.local import cgroups, cpusets, processes
from testbed.local.components import (
    ANALYZER_KIND,
    CLIENT_KIND,
    CONTROLLER_KIND,
    DATABASE_KIND,
    KINDS,
    LOADBALANCER_KIND,
    PROXY_KIND,
    SCALABLE,
    SCENARIO_CONTROLLER_KIND,
    SETTINGS_ENV,
    STOP_ORDER,
    SUPERVISOR_KIND,
    Launch,
    Restart,
    log_file,
    mariadb_server,
    redact,
)
from testbed.local.health import StartupError, health_problem, status_word, wait_healthy
from testbed.local.isolation import CpuGroups, Isolation, placement, preexec, remove_cpu_group
from testbed.local.mariadb import LocalMariaDB, new_password
from testbed.local.packet_rules import remove_stale_rules
from testbed.local.state import Component, IsolationRecord, StateStore, TestbedState

# the names other modules import from here
__all__ = [
    "ANALYZER_KIND",
    "CLIENT_KIND",
    "PROXY_KIND",
    "SCALABLE",
    "SCENARIO_CONTROLLER_KIND",
    "SETTINGS_ENV",
    "SUPERVISOR_KIND",
    "ComponentStatus",
    "LocalTestbed",
    "StartupError",
    "serving_proxies",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: str
    pid: int | None
    endpoints: dict[str, str]
    health: str
    cpu_limit: str | None
    cpus: str | None = None  # where it may run: its Cpus_allowed_list, read back


class LocalTestbed:
    def __init__(
        self, settings: TestbedSettings | None = None, notify: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings or TestbedSettings()
        self.state_dir = self.settings.testbed_state_dir.resolve()
        self.store = StateStore(self.state_dir)
        self._notify = notify or (lambda message: log.info("%s", message))
        self._http = httpx.Client(timeout=10.0)
        self._isolation = Isolation(self.state_dir, self._notify)
        self._cpu_groups = CpuGroups(self._notify)
        # proxies may start or stop in parallel threads: one state change and save at a time
        self._state_lock = threading.RLock()

    # -- public operations -------------------------------------------------------------------

    def up(
        self,
        proxies: int,
        proxy_cpu_millicores: int | None = None,
        db: str = "sqlite",
        *,
        analyzers: bool = False,
        scenario_controller: bool = False,
        clients: list[tuple[int, int]] | None = None,
        isolation: cpusets.IsolationPlan | None = None,
    ) -> list[ComponentStatus]:
        """Start the SIP system; optionally an analyzer beside each proxy, the scenario
        controller and client pods given as (pod id, phones). `isolation`: the CPU split
        (cpusets.py; None: the default, on with 2 or more CPUs)."""
        if proxies < 0:
            raise ValueError("--proxies must be >= 0")
        if clients and not scenario_controller:
            raise ValueError("client pods need the scenario controller")
        with self.store.locked():
            previous = self.store.load()
            if previous is not None:
                if any(c.handle and c.handle.alive() for c in previous.components):
                    raise StartupError(
                        f"a testbed is already running from {self.state_dir}; "
                        "run `testbed down` first"
                    )
                self._stop_all(previous)  # leftovers of a crashed run: cgroups, stale state
                self.store.clear()
            remove_stale_rules()  # and the packet rules of a netem fault whose run was killed
            state = self._new_state(db, proxy_cpu_millicores)
            state.analyzers = analyzers
            self.store.save(state)
            try:
                state.isolation = self._isolation.isolate(isolation)
                self._notify(f"isolation: {state.isolation.describe()}")
                self.store.save(state)
                self._start_database(state)
                self._start_controller(state)
                self._start(state, LOADBALANCER_KIND)
                self._forget_stale_proxies(state)
                for index in range(proxies):
                    self._start_proxy(state, index)
                if scenario_controller:
                    self._start(state, SCENARIO_CONTROLLER_KIND)
                for pod, phones in clients or []:
                    self._start(state, CLIENT_KIND, pod, phones=phones)
                self._spawn_recorded(state, SUPERVISOR_KIND, self._launch(state))
            except BaseException:
                self._notify("start-up failed; stopping what was started")
                self._stop_all(state)
                self.store.clear()
                raise
        return self.status()

    def scale(self, kind: str, replicas: int, parallel: bool = False) -> list[ComponentStatus]:
        """Ordinals 0..n-1 as in a StatefulSet; one at a time (the highest leaves first), or
        with `parallel` all at once, as a Deployment's pods come and go."""
        if kind not in SCALABLE:
            raise ValueError(f"cannot scale '{kind}': only {', '.join(SCALABLE)} can be scaled")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        with self.store.locked():
            state = self._require_state()
            current = state.of_kind(PROXY_KIND)
            used = {c.index for c in current}
            starting = [i for i in range(replicas) if i not in used]
            leaving = [
                c
                for c in sorted(current, key=lambda c: c.index or 0, reverse=True)
                if c.index is not None and c.index >= replicas
            ]
            if parallel and len(starting) + len(leaving) > 1:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    futures: list[Future[object]] = [
                        pool.submit(self._start_proxy, state, i) for i in starting
                    ]
                    futures += [pool.submit(self._stop_proxy, state, c, True) for c in leaving]
                    for future in futures:
                        future.result()  # the first failure is raised, after all finished
            else:
                for index in starting:
                    self._start_proxy(state, index)
                for component in leaving:
                    self._stop_proxy(state, component, drain=True)
        return self.status()

    def down(self) -> list[str]:
        with self.store.locked():
            remove_stale_rules()
            self._isolation.release_shield()  # even one a run crashed before recording
            state = self.store.load()
            if state is None:
                return []
            stopped = self._stop_all(state)
            self.store.clear()
            return stopped

    def status(self) -> list[ComponentStatus]:
        state = self.store.load()
        if state is None:
            return []
        return [self._component_status(state, c) for c in state.components]

    def load_state(self) -> TestbedState | None:
        return self.store.load()

    def api_token(self) -> str | None:
        """The running testbed's API token (None: not running, or started without one)."""
        state = self.store.load()
        return state.api_token if state else None

    def isolation(self) -> IsolationRecord | None:
        """The CPU split of the running testbed (None: not running)."""
        state = self.store.load()
        return state.isolation if state else None

    def join_others(self) -> bool:
        """Move this process (the runner with its sampler threads) onto the other processes'
        CPUs, off the system under test's. False when the testbed is not isolated."""
        state = self.store.load()
        place = placement(state, cpusets.OTHERS) if state else None
        if place is None:
            return False
        place.attach(os.getpid())
        return True

    def leave_isolation(self) -> None:
        """Back to all the machine's CPUs (the end of a run)."""
        state = self.store.load()
        record = state.isolation if state else None
        if record is not None and record.enabled:
            cpusets.release_self(cpusets.driver_of(record.driver, Path(record.groups[cpusets.SUT])))

    def restart(self, name: str, pid: int | None) -> bool:
        """Start a component whose process (`pid`) died again, as the kubelet restarts a
        container: same name, address and cgroup, and a proxy runs its postStart hook (enable)
        again once the controller has taken it out of the load balancers' set. False when there
        is nothing to do (scaled away, stopped, or restarted meanwhile)."""
        with self.store.locked():
            state = self.store.load()
            component = state.get(name) if state else None
            if state is None or component is None or component.pid != pid:
                return False
            handle = component.handle
            if handle is not None and handle.alive():
                return False
            if handle is not None:  # the container's other processes die with its PID 1
                processes.stop(handle, timeout=1.0)  # dead: only reaped if it is our child
                _kill_leftover_group(handle.pid)
            # Kamailio refuses to start while its pid file names a process; an unreaped
            # zombie (the parent that started it may not be us) still counts
            (self._run_root / name / "kamailio.pid").unlink(missing_ok=True)
            try:
                self._start_again(state, component)
            except BaseException:
                # like a failed postStart hook: the container is killed, and tried again later
                fresh = state.get(name)
                if fresh is not None and fresh.handle is not None and fresh.pid != pid:
                    processes.stop(fresh.handle, timeout=5.0)
                    _kill_leftover_group(fresh.handle.pid)
                raise
            return True

    def _start_again(self, state: TestbedState, component: Component) -> None:
        kind = component.kind
        spec = KINDS.get(kind)
        if (
            spec is None
            or spec.restart is Restart.NEVER
            or (kind == DATABASE_KIND and state.database_kind != "mariadb")
        ):
            raise StartupError(f"{component.name}: a {kind} is not restarted")
        if spec.restart is Restart.OUT_OF_SET_FIRST:
            self._await_out_of_set(component.name)
        index = component.index or 0
        if kind == PROXY_KIND:
            self._start_proxy(state, index)
        elif kind == ANALYZER_KIND:
            if state.get(KINDS[PROXY_KIND].name(index)) is None:
                raise StartupError(f"{component.name}: its proxy is gone")
            self._start(state, ANALYZER_KIND, index)
        elif kind == DATABASE_KIND:
            self._start_database(state)
        elif kind == CONTROLLER_KIND:
            self._start_controller(state)
        else:
            self._start(state, kind, index)

    def _await_out_of_set(self, name: str, within: float = 5.0) -> None:
        """Restart only once the controller's reconciler has seen the proxy down and taken it
        out: a proxy back before then would take calls with an empty location table."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            try:
                response = self._http.get(f"{self.settings.controller_url}/proxies/{name}")
                if response.status_code != 200 or response.json().get("state") != "enabled":
                    self._notify(
                        f"{name}: out of the load balancers' set "
                        f"{time.monotonic() - start:.2f} s after its death was noticed"
                    )
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        self._notify(f"warning: {name}: still enabled at the controller after {within:.0f} s")

    def close(self) -> None:
        self._http.close()

    # -- database, sip-controller ------------------------------------------------------------

    def _new_state(self, db: str, proxy_cpu_millicores: int | None) -> TestbedState:
        if self.settings.database_url:
            kind, url = "external", self.settings.database_url
        elif db == "sqlite":
            kind, url = "sqlite", f"sqlite:///{self.state_dir / 'testbed.sqlite'}"
        elif db == "mariadb":
            kind, url = "mariadb", self._mariadb(new_password()).url
        else:
            raise ValueError(f"--db must be sqlite or mariadb, got '{db}'")
        return TestbedState(
            database_url=url,
            database_kind=kind,
            proxy_cpu_millicores=proxy_cpu_millicores,
            api_token=api_token.generate(),  # one per testbed, in its state file only
        )

    def _mariadb(self, password: str) -> LocalMariaDB:
        return LocalMariaDB(self.state_dir / "mariadb", self.settings.mariadb_port, password)

    def _state_mariadb(self, state: TestbedState) -> LocalMariaDB:
        """The testbed's server, with the password `up` chose (in its database_url)."""
        try:
            return mariadb_server(self.settings, self.state_dir, state.database_url)
        except ValueError as exc:
            raise StartupError(str(exc)) from None

    def _start_database(self, state: TestbedState) -> None:
        if state.database_kind != "mariadb":  # a file or an external server: a record alone
            with self._state_lock:
                state.put(
                    Component(
                        name="database",
                        kind=DATABASE_KIND,
                        endpoints={"url": redact(state.database_url)},
                    )
                )
                self.store.save(state)
            return
        server = self._state_mariadb(state)
        self._notify(f"starting MariaDB on 127.0.0.1:{server.port}")
        server.initialise()
        _, log = self._spawn_recorded(state, DATABASE_KIND, self._launch(state))
        try:
            server.wait_ready(self.settings.startup_timeout_seconds)
        except TimeoutError as exc:
            raise StartupError(f"{exc}\n{processes.tail(log)}") from exc
        server.provision()

    def _start_controller(self, state: TestbedState) -> None:
        with self._state_lock:  # the controller reads it on every enable: it must exist
            self._write_registry(state)
        self._start(state, CONTROLLER_KIND)

    def _forget_stale_proxies(self, state: TestbedState) -> None:
        """A persistent DB may still list proxies of an earlier run: take them out."""
        response = self._http.get(f"{self.settings.controller_url}/proxies")
        response.raise_for_status()
        for proxy in response.json():
            if proxy["state"] != "disabled":
                self._controller_hook(state, proxy["name"], "disable", params={"grace_seconds": 0})

    # -- proxies and their analyzers ---------------------------------------------------------

    def _start_proxy(self, state: TestbedState, index: int) -> Component:
        s = self.settings
        name = KINDS[PROXY_KIND].name(index)
        peers = [
            p for p in state.of_kind(PROXY_KIND) if p.handle and p.handle.alive() and p.name != name
        ]
        # a new proxy joins the DMQ bus through a running peer and pulls the location table
        launch = self._launch(state, index, peer_dmq=peers[0].endpoints["dmq"] if peers else None)
        # named after this testbed too: two testbeds (an experiment and `testbed up`, or the
        # tests) may each run a sip-proxy-0, and must not share or remove each other's group
        group = self._cpu_groups.create(f"{self._instance}-{name}", state.proxy_cpu_millicores)
        self._notify(
            f"starting {name} on {s.proxy_address(index)}"
            + (f" limited to {group.millicores}m CPU" if group and group.millicores else "")
        )
        component = self._start(
            state,
            PROXY_KIND,
            index,
            launch=launch,
            cgroup=group,
        )
        sidecar = state.get(KINDS[ANALYZER_KIND].name(index))
        running = bool(sidecar and sidecar.handle and sidecar.handle.alive())
        if state.analyzers and not running:  # it watches from before the proxy takes traffic
            self._start(state, ANALYZER_KIND, index)
        with self._state_lock:  # the controller checks the addresses against this file
            self._write_registry(state)
        # what the pod's postStart hook does
        self._controller_hook(state, name, "enable", json=_proxy_addresses(component))
        return component

    def _stop_proxy(self, state: TestbedState, component: Component, drain: bool) -> None:
        # what the pod's preStop hook does: leave the LBs, wait for open transactions
        params: dict[str, float] | None = None if drain else {"grace_seconds": 0.0}
        self._notify(f"disabling {component.name}" + (" (draining)" if drain else ""))
        try:
            self._controller_hook(state, component.name, "disable", params=params)
        except (StartupError, httpx.HTTPError) as exc:
            self._notify(f"warning: {component.name}: disable hook failed ({exc}); stopping anyway")
        self._stop_component(component)
        sidecar = state.get(_analyzer_name(component))
        if sidecar is not None:
            self._stop_component(sidecar)
        with self._state_lock:
            state.remove(component.name)
            if sidecar is not None:
                state.remove(sidecar.name)
            self.store.save(state)
            self._write_registry(state)

    def _controller_hook(
        self,
        state: TestbedState,
        name: str,
        action: str,
        json: object = None,
        params: dict[str, float] | None = None,
        base_url: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        url = f"{base_url or self.settings.controller_url}/proxies/{name}/{action}"
        response = self._http.post(
            url, json=json, params=params, headers=_auth(state), timeout=timeout
        )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise StartupError(
                f"sip-controller refused to {action} {name}: HTTP {response.status_code}: {detail}"
            )

    def _write_registry(self, state: TestbedState) -> None:
        """The proxy registry (PROXY_REGISTRY_FILE): every proxy this testbed runs, with the
        addresses its enable hook sends. Callers hold the state lock."""
        self.store.save_registry({p.name: _proxy_addresses(p) for p in state.of_kind(PROXY_KIND)})

    # -- processes ---------------------------------------------------------------------------

    @property
    def _instance(self) -> str:
        """A short name for this testbed, from its state directory."""
        return hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:10]

    @property
    def _run_root(self) -> Path:
        """Kamailio's pid files and control sockets, <root>/<name>; kept short because a unix
        socket path may not exceed 104 bytes (a results folder deep in /tmp would)."""
        return Path(tempfile.gettempdir()) / f"ims-testbed-{self._instance}"

    def _launch(
        self, state: TestbedState, index: int = 0, phones: int = 0, peer_dmq: str | None = None
    ) -> Launch:
        return Launch(
            settings=self.settings,
            state=state,
            state_dir=self.state_dir,
            registry_file=self.store.registry_path,
            run_root=self._run_root,
            index=index,
            phones=phones,
            peer_dmq=peer_dmq,
        )

    def _start(
        self,
        state: TestbedState,
        kind: str,
        index: int = 0,
        *,
        phones: int = 0,
        launch: Launch | None = None,
        cgroup: cgroups.CpuGroup | None = None,
    ) -> Component:
        """Start a component of `kind` (components.KINDS) and wait until it is healthy."""
        launch = launch or self._launch(state, index, phones=phones)
        component, log = self._spawn_recorded(state, kind, launch, cgroup)
        handle, url = component.handle, component.health_url
        assert handle is not None
        assert url is not None
        wait_healthy(
            self._http, component.name, url, handle, log, self.settings.startup_timeout_seconds
        )
        return component

    def _spawn_recorded(
        self,
        state: TestbedState,
        kind: str,
        launch: Launch,
        cgroup: cgroups.CpuGroup | None = None,
    ) -> tuple[Component, Path]:
        """Start a component of `kind` and record it (PID, start time, log) in the saved state
        before an interrupt can stop up(): what is started is always stopped. Returns it and
        its log file."""
        spec = KINDS[kind]
        component = spec.record(launch)
        if cgroup is not None:
            component.cgroup = self._cpu_groups.record(cgroup)
        # built before anything starts: a bad setting is refused with no process to stop
        argv, env = spec.command(launch), spec.environment(launch)
        log = log_file(self.state_dir, component.name)
        with processes.interrupts_held():
            handle = processes.spawn(argv, env, log, preexec=preexec(state, spec.placement, cgroup))
            component.pid, component.start_ticks, component.log = (
                handle.pid,
                handle.start_ticks,
                str(log),
            )
            with self._state_lock:
                state.put(component)
                self.store.save(state)
        return component, log

    def _stop_component(self, component: Component) -> None:
        handle = component.handle
        if handle is not None:
            gone = processes.stop(handle, timeout=15.0)
            _kill_leftover_group(handle.pid)
            if not gone:
                self._notify(f"warning: {component.name} (PID {handle.pid}) did not stop")
        if component.cgroup is not None:
            remove_cpu_group(component.name, component.cgroup, self._notify)

    def _stop_all(self, state: TestbedState) -> list[str]:
        """Everything `state` records, in STOP_ORDER: the supervisor first (it would restart
        what is being stopped), traffic sources before the SIP system, the database last; each
        proxy leaves the load balancers first, briefly (a hung controller must not hold every
        proxy's stop)."""
        stopped: list[str] = []
        controller = state.get(CONTROLLER_KIND)
        controller_up = bool(controller and controller.handle and controller.handle.alive())
        # the controller this testbed recorded (`testbed down` may run with other settings
        # than the run that started it)
        address = controller.endpoints.get("http") if controller else None
        base_url = f"http://{address}" if address else None
        for kind in STOP_ORDER:
            components = state.of_kind(kind)
            if kind == PROXY_KIND:
                components = sorted(components, key=lambda c: c.index or 0, reverse=True)
            for component in components:
                if kind == PROXY_KIND and controller_up:
                    try:
                        self._controller_hook(
                            state,
                            component.name,
                            "disable",
                            params={"grace_seconds": 0},
                            base_url=base_url,
                            timeout=10.0,
                        )
                    except (StartupError, httpx.HTTPError) as exc:
                        self._notify(f"warning: {component.name}: {exc}")
                        controller_up = not isinstance(exc, httpx.TimeoutException)
                self._stop_component(component)
                if component.handle is not None or kind in (PROXY_KIND, ANALYZER_KIND):
                    stopped.append(component.name)
        self._isolation.remove(state)
        return stopped

    def _require_state(self) -> TestbedState:
        state = self.store.load()
        if state is None:
            raise StartupError(
                f"no testbed is running from {self.state_dir}; run `testbed up` first"
            )
        return state

    def _component_status(self, state: TestbedState, c: Component) -> ComponentStatus:
        cpu = None
        if c.cgroup is not None:
            limit = f"{c.cgroup.millicores}m" if c.cgroup.millicores else "unlimited"
            cpu = f"{limit} ({c.cgroup.driver})"
        alive = c.handle.alive() if c.handle is not None else None

        def problem() -> str | None:
            if c.kind == DATABASE_KIND:
                return None if self._state_mariadb(state).ping() else "not answering"
            return health_problem(self._http, c.health_url) if c.health_url else None

        health = status_word(alive, problem, lambda: self._database_reachable(state))
        cpus = cpusets.allowed_cpus(c.handle.pid) if c.handle is not None and alive else None
        return ComponentStatus(c.name, c.kind, c.pid, c.endpoints, health, cpu, cpus)

    def _database_reachable(self, state: TestbedState) -> bool:
        if state.database_kind == "sqlite":
            return Path(state.database_url.removeprefix("sqlite:///")).exists()
        controller = state.get(CONTROLLER_KIND)
        return bool(
            controller
            and controller.health_url
            and health_problem(self._http, controller.health_url) is None
        )


def serving_proxies(state: TestbedState) -> list[Component]:
    """Proxies whose process runs: a dead one (until it is restarted) serves no call and costs
    nothing, so it counts neither as serving nor in proxy-seconds."""
    return [p for p in state.of_kind(PROXY_KIND) if p.handle is not None and p.handle.alive()]


def _proxy_addresses(proxy: Component) -> dict[str, str]:
    """A proxy's addresses as its enable hook sends them and the registry lists them."""
    return {
        "sip_address": proxy.endpoints["sip"].removeprefix("udp:"),
        "http_address": proxy.endpoints["http"],
    }


def _auth(state: TestbedState) -> dict[str, str]:
    """The bearer header of `state`'s testbed (none for one started without a token)."""
    return api_token.bearer(state.api_token) if state.api_token else {}


def _analyzer_name(proxy: Component) -> str:
    return KINDS[ANALYZER_KIND].name(proxy.index or 0)


def _kill_leftover_group(pgid: int) -> None:
    """Workers of a stopped Kamailio still in its process group (we made it a session leader)."""
    if processes.group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
