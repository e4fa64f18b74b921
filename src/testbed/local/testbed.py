"""Local mode: the SIP system as processes on this machine (`testbed up/status/scale/down`).

Each proxy gets its own loopback address (like a pod IP) and, when a CPU limit is given, its
own cgroup. Adding a proxy does what its pod's postStart hook does in Kubernetes (enable at the
sip-controller once healthy); removing one does what preStop does (disable: drain), then stops it.
A supervisor process (supervisor.py) restarts a proxy that dies, as a StatefulSet's would be.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

import api_token
from testbed.config import TestbedSettings
from testbed.local import cgroups, cpusets, processes
from testbed.local.mariadb import LocalMariaDB, new_password
from testbed.local.packet_rules import remove_stale_rules
from testbed.local.state import (
    CgroupRecord,
    Component,
    IsolationRecord,
    StateStore,
    TestbedState,
)

log = logging.getLogger(__name__)

PROXY_KIND = "sip-proxy"
ANALYZER_KIND = "analyzer"
CLIENT_KIND = "sip-client"
SCENARIO_CONTROLLER_KIND = "scenario-controller"
SUPERVISOR_KIND = "supervisor"
# the supervisor process gets the settings of the testbed it watches (not the environment's)
SETTINGS_ENV = "TESTBED_SUPERVISED_SETTINGS"
SCALABLE = (PROXY_KIND,)
# stopped first to last: traffic sources before the SIP system, the database at the end
_STOP_ORDER = (CLIENT_KIND, SCENARIO_CONTROLLER_KIND, "sip-loadb", "sip-controller", "database")


class StartupError(RuntimeError):
    """A component did not come up; the message says which and shows its log."""


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
        self._cgroup_driver: cgroups.CgroupDriver | None = None
        self._cgroup_checked = False
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
                state.isolation = self._isolate(isolation)
                self._notify(f"isolation: {state.isolation.describe()}")
                self.store.save(state)
                self._start_database(state)
                self._start_controller(state)
                self._start_loadbalancer(state)
                self._forget_stale_proxies(state)
                for index in range(proxies):
                    self._start_proxy(state, index)
                if scenario_controller:
                    self._start_scenario_controller(state)
                for pod, phones in clients or []:
                    self._start_client(state, pod, phones)
                self._start_supervisor(state)
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
            self._release_shield()  # even one a run crashed before recording
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
        placement = self._placement(state, cpusets.OTHERS) if state else None
        if placement is None:
            return False
        placement.attach(os.getpid())
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
            (self._run_dir(name) / "kamailio.pid").unlink(missing_ok=True)
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
        if kind == PROXY_KIND:
            self._await_out_of_set(component.name)
            self._start_proxy(state, component.index or 0)
        elif kind == ANALYZER_KIND:
            proxy = state.get(f"{PROXY_KIND}-{component.index}")
            if proxy is None:
                raise StartupError(f"{component.name}: its proxy is gone")
            self._start_analyzer(state, proxy)
        elif kind == "database" and state.database_kind == "mariadb":
            self._start_database(state)
        elif kind == "sip-controller":
            self._start_controller(state)
        elif kind == "sip-loadb":
            self._start_loadbalancer(state)
        elif kind == SCENARIO_CONTROLLER_KIND:
            self._start_scenario_controller(state)
        else:
            raise StartupError(f"{component.name}: a {kind} is not restarted")

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

    # -- isolation ---------------------------------------------------------------------------

    def _isolate(self, plan: cpusets.IsolationPlan | None) -> IsolationRecord:
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

    def _release_shield(self) -> None:
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

    def _placement(self, state: TestbedState, role: str) -> cpusets.Placement | None:
        record = state.isolation
        if record is None or not record.enabled:
            return None
        return cpusets.Placement((Path(record.groups[role]),))

    def _preexec(self, state: TestbedState, role: str) -> Callable[[], None] | None:
        placement = self._placement(state, role)
        return placement.attach_self if placement else None

    def _proxy_preexec(
        self, state: TestbedState, group: cgroups.CpuGroup | None
    ) -> Callable[[], None] | None:
        """A proxy joins its CPU-limit group and the SUT's CPUs (on v2 one and the same)."""
        record = state.isolation
        placement = self._placement(state, cpusets.SUT)
        if record is not None and placement is not None and record.driver == "v2" and group:
            driver = cpusets.driver_of("v2", Path(record.groups[cpusets.SUT]))
            placement = driver.confine(group.paths[0], cpusets.parse_cpu_list(record.sut_cpus))
        return cpusets.preexec_all(
            group.attach_self if group else None, placement.attach_self if placement else None
        )

    def _remove_isolation(self, state: TestbedState) -> None:
        record = state.isolation
        if record is None or not record.enabled:
            return
        driver = cpusets.driver_of(record.driver, Path(record.groups[cpusets.SUT]))
        self._release_shield()  # first: the machine's processes get every CPU back
        if cpusets.self_in_group(driver):  # a run's own process: it cannot stay in a gone group
            cpusets.release_self(driver)
        for role in (cpusets.SUT, cpusets.OTHERS):
            for failure in driver.remove(Path(record.groups[role]).name):
                self._notify(f"warning: cpuset group not removed: {failure}")

    # -- database ----------------------------------------------------------------------------

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
        password = urlsplit(state.database_url).password
        if password is None:
            raise StartupError("the state's MariaDB URL has no password; run `testbed down`")
        return self._mariadb(unquote(password))

    def _start_database(self, state: TestbedState) -> None:
        if state.database_kind != "mariadb":
            state.put(
                Component(
                    name="database", kind="database", endpoints={"url": _redact(state.database_url)}
                )
            )
            self.store.save(state)
            return
        server = self._state_mariadb(state)
        self._notify(f"starting MariaDB on 127.0.0.1:{server.port}")
        server.initialise()
        component = Component(
            name="mariadb",
            kind="database",
            endpoints={"tcp": f"127.0.0.1:{server.port}", "url": _redact(server.url)},
        )
        log_file = self._spawn_recorded(
            state,
            component,
            server.command(),
            dict(os.environ),
            self._preexec(state, cpusets.OTHERS),
        )
        try:
            server.wait_ready(self.settings.startup_timeout_seconds)
        except TimeoutError as exc:
            raise StartupError(f"{exc}\n{processes.tail(log_file)}") from exc
        server.provision()

    # -- sip-controller and load balancer ----------------------------------------------------

    def _start_controller(self, state: TestbedState) -> None:
        s = self.settings
        with self._state_lock:  # the controller reads it on every enable: it must exist
            self._write_registry(state)
        env = {**self._env(state), **self.controller_env(state)}
        component = Component(
            name="sip-controller",
            kind="sip-controller",
            endpoints={"http": f"{s.sip_controller_host}:{s.sip_controller_port}"},
            health_url=f"{s.controller_url}/health",
        )
        self._start_service(state, component, "sip_controller", env)

    # The variables each service gets on top of this process's environment, by the names of
    # its settings (docs/configuration.md; tests/test_service_settings.py checks them).

    def controller_env(self, state: TestbedState) -> dict[str, str]:
        s = self.settings
        return {
            # addresses of the proxies come from what this testbed started, not the request
            "PROXY_ADDRESS_SOURCE": "registry",
            "PROXY_REGISTRY_FILE": str(self.store.registry_path),
            "DATABASE_URL": state.database_url,
            "SIP_DOMAIN": s.sip_domain,
            "LOADBALANCER_RPC_URLS": s.lb_rpc_url,
            "SIP_CONTROLLER_HOST": s.sip_controller_host,
            "SIP_CONTROLLER_PORT": str(s.sip_controller_port),
            "PROXY_SIP_PORT": str(s.proxy_sip_port),
            "PROXY_HTTP_PORT": str(s.proxy_http_port),
        }

    def analyzer_env(self, proxy: Component) -> dict[str, str]:
        s = self.settings
        address = s.proxy_address(proxy.index or 0)
        return {
            "ANALYZER_PROXY_ADDRESS": f"{address}:{s.proxy_sip_port}",
            "ANALYZER_PROXY_NAME": proxy.name,
            "ANALYZER_INTERFACE": "lo",
            "ANALYZER_HTTP_HOST": address,
            "ANALYZER_HTTP_PORT": str(s.analyzer_http_port),
        }

    def scenario_controller_env(self) -> dict[str, str]:
        s = self.settings
        return {
            "SCENARIO_CONTROLLER_HOST": s.scenario_controller_host,
            "SCENARIO_CONTROLLER_PORT": str(s.scenario_controller_port),
            "SCENARIO_DIR": str(self.state_dir / "scenarios"),
            "RUNS_DIR": str(self.state_dir / "runs"),
            "SIP_CONTROLLER_URL": s.controller_url,
        }

    def client_env(self, pod: int, phones: int) -> dict[str, str]:
        s = self.settings
        address = s.client_address(pod)
        ws = f"ws://{s.scenario_controller_host}:{s.scenario_controller_port}/ws/clients"
        return {
            "POD_ID": f"{pod:02d}",
            "PHONES": str(phones),
            "SIP_DOMAIN": s.sip_domain,
            "SIP_CLIENT_ADDRESS": address,
            "SIP_CLIENT_PORT": str(s.client_sip_port),
            "SIP_CLIENT_HTTP_HOST": address,
            "SIP_CLIENT_HTTP_PORT": str(s.client_http_port),
            "OUTBOUND_PROXY": f"{s.lb_address}:{s.lb_sip_port}",
            "SCENARIO_CONTROLLER_URL": ws,
            "LOG_LEVEL": os.environ.get("SIP_CLIENT_LOG_LEVEL", "warning"),
        }

    def _kamailio_env(
        self, state: TestbedState, name: str, address: str, sip_port: int, http_port: int
    ) -> dict[str, str]:
        s = self.settings
        return {
            **self._env(state),
            "SIP_DOMAIN": s.sip_domain,
            "SIP_ADDRESS": address,
            "SIP_PORT": str(sip_port),
            "HTTP_PORT": str(http_port),
            "DMQ_PORT": str(s.dmq_port),
            "DATABASE_URL": state.database_url,
            "KAMAILIO_CHILDREN": os.environ.get("KAMAILIO_CHILDREN", str(s.kamailio_children)),
            "KAMAILIO_RUN_DIR": str(self._run_dir(name)),
        }

    @property
    def _instance(self) -> str:
        """A short name for this testbed, from its state directory."""
        return hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:10]

    def _run_dir(self, name: str) -> Path:
        """Kamailio's pid file and control socket; kept short because a unix socket path may
        not exceed 104 bytes (a results folder deep in /tmp would)."""
        return Path(tempfile.gettempdir()) / f"ims-testbed-{self._instance}" / name

    def _start_loadbalancer(self, state: TestbedState) -> None:
        s = self.settings
        env = self._kamailio_env(state, "sip-loadb", s.lb_address, s.lb_sip_port, s.lb_http_port)
        self._spawn_and_wait(
            state,
            Component(
                name="sip-loadb",
                kind="sip-loadb",
                endpoints={
                    "sip": f"udp:{s.lb_address}:{s.lb_sip_port}",
                    "http": f"{s.lb_address}:{s.lb_http_port}",
                },
                health_url=f"http://{s.lb_address}:{s.lb_http_port}/health",
            ),
            [str(s.kamailio_config_dir / "entrypoint.sh"), "sip-loadb"],
            env,
            preexec=self._preexec(state, cpusets.SUT),
        )

    def _forget_stale_proxies(self, state: TestbedState) -> None:
        """A persistent DB may still list proxies of an earlier run: take them out."""
        response = self._http.get(f"{self.settings.controller_url}/proxies")
        response.raise_for_status()
        for proxy in response.json():
            if proxy["state"] != "disabled":
                self._controller_hook(state, proxy["name"], "disable", params={"grace_seconds": 0})

    # -- proxies -----------------------------------------------------------------------------

    def _cpu_group(self, name: str, millicores: int | None) -> cgroups.CpuGroup | None:
        """A CPU cgroup for a proxy: limited when `millicores` is given, else only accounted
        (the experiment runner reads every proxy's CPU from it)."""
        if not self._cgroup_checked:
            self._cgroup_checked = True
            self._cgroup_driver = cgroups.detect()
            if self._cgroup_driver is None and millicores is not None:
                self._notify(
                    "warning: no writable cgroup v2 cpu.max or v1 cpu.cfs_quota_us here; "
                    "proxies run without a CPU limit"
                )
        if self._cgroup_driver is None:
            return None
        try:
            return self._cgroup_driver.create(name, millicores)
        except OSError as exc:
            if millicores is not None:
                self._notify(f"warning: cannot create a CPU cgroup ({exc}); proxies run unlimited")
            self._cgroup_driver = None
            return None

    def _start_proxy(self, state: TestbedState, index: int) -> Component:
        s = self.settings
        name = f"{PROXY_KIND}-{index}"
        address = s.proxy_address(index)
        peers = [
            p for p in state.of_kind(PROXY_KIND) if p.handle and p.handle.alive() and p.name != name
        ]
        env = self._kamailio_env(state, name, address, s.proxy_sip_port, s.proxy_http_port)
        # a new proxy joins the DMQ bus through a running peer and pulls the location table
        peer_address = peers[0].endpoints["dmq"] if peers else f"sip:{address}:{s.dmq_port}"
        env["DMQ_NOTIFICATION_ADDRESS"] = peer_address
        env["OUTBOUND_PROXY"] = f"sip:{s.lb_address}:{s.lb_sip_port}"
        # named after this testbed too: two testbeds (an experiment and `testbed up`, or the
        # tests) may each run a sip-proxy-0, and must not share or remove each other's group
        group = self._cpu_group(f"{self._instance}-{name}", state.proxy_cpu_millicores)
        component = Component(
            name=name,
            kind=PROXY_KIND,
            index=index,
            endpoints={
                "sip": f"udp:{address}:{s.proxy_sip_port}",
                "dmq": f"sip:{address}:{s.dmq_port}",
                "http": f"{address}:{s.proxy_http_port}",
            },
            health_url=f"http://{address}:{s.proxy_http_port}/health",
            cgroup=(
                CgroupRecord(
                    driver=self._cgroup_driver.kind if self._cgroup_driver else "",
                    millicores=group.millicores,
                    paths=[str(p) for p in group.paths],
                    usage_file=str(group.usage_file),
                    usage_unit_ns=group.usage_unit_ns,
                )
                if group
                else None
            ),
        )
        self._notify(
            f"starting {name} on {address}"
            + (f" limited to {group.millicores}m CPU" if group and group.millicores else "")
        )
        self._spawn_and_wait(
            state,
            component,
            [str(s.kamailio_config_dir / "entrypoint.sh"), PROXY_KIND],
            env,
            preexec=self._proxy_preexec(state, group),
        )
        sidecar = state.get(_analyzer_name(component))
        running = bool(sidecar and sidecar.handle and sidecar.handle.alive())
        if state.analyzers and not running:  # it watches from before the proxy takes traffic
            self._start_analyzer(state, component)
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

    # -- analyzers, scenario controller, client pods ----------------------------------------

    def _start_analyzer(self, state: TestbedState, proxy: Component) -> Component:
        s = self.settings
        address = s.proxy_address(proxy.index or 0)
        component = Component(
            name=_analyzer_name(proxy),
            kind=ANALYZER_KIND,
            index=proxy.index,
            endpoints={
                "http": f"{address}:{s.analyzer_http_port}",
                "watches": f"{address}:{s.proxy_sip_port}",
            },
            health_url=f"http://{address}:{s.analyzer_http_port}/health",
        )
        env = {
            # no API_TOKEN: the analyzer serves only GET routes and calls nothing that needs
            # it, and a process with raw packet capture is better off without the token
            **self._env(state, with_token=False),
            **self.analyzer_env(proxy),
        }
        self._start_service(state, component, "analyzer", env)
        return component

    def _start_scenario_controller(self, state: TestbedState) -> Component:
        s = self.settings
        env = {**self._env(state), **self.scenario_controller_env()}
        component = Component(
            name=SCENARIO_CONTROLLER_KIND,
            kind=SCENARIO_CONTROLLER_KIND,
            endpoints={"http": f"{s.scenario_controller_host}:{s.scenario_controller_port}"},
            health_url=f"{s.scenario_controller_url}/health",
        )
        self._start_service(state, component, "scenario_controller", env)
        return component

    def _start_client(self, state: TestbedState, pod: int, phones: int) -> Component:
        s = self.settings
        address = s.client_address(pod)
        env = {**self._env(state), **self.client_env(pod, phones)}
        component = Component(
            name=f"{CLIENT_KIND}-{pod:02d}",
            kind=CLIENT_KIND,
            index=pod,
            endpoints={
                "sip": f"udp:{address}:{s.client_sip_port}",
                "http": f"{address}:{s.client_http_port}",
            },
            health_url=f"http://{address}:{s.client_http_port}/health",
        )
        self._start_service(state, component, "sip_client", env)
        return component

    def _start_supervisor(self, state: TestbedState) -> None:
        env = {**os.environ, SETTINGS_ENV: self.settings.model_dump_json()}
        argv = [sys.executable, "-m", "testbed.local.supervisor"]
        self._spawn_recorded(
            state,
            Component(name=SUPERVISOR_KIND, kind=SUPERVISOR_KIND),
            argv,
            env,
            self._preexec(state, cpusets.OTHERS),
        )

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

    def _env(self, state: TestbedState, with_token: bool = True) -> dict[str, str]:
        """The environment of a process of this testbed: ours with its API token (never a token
        the caller's environment happens to hold)."""
        env = dict(os.environ)
        env.pop(api_token.ENV_NAME, None)
        if with_token and state.api_token:
            env[api_token.ENV_NAME] = state.api_token
        return env

    def _write_registry(self, state: TestbedState) -> None:
        """The proxy registry (PROXY_REGISTRY_FILE): every proxy this testbed runs, with the
        addresses its enable hook sends. Callers hold the state lock."""
        self.store.save_registry({p.name: _proxy_addresses(p) for p in state.of_kind(PROXY_KIND)})

    # -- processes ---------------------------------------------------------------------------

    def _start_service(
        self, state: TestbedState, component: Component, module: str, env: dict[str, str]
    ) -> None:
        """One of the project's Python services, on the others' CPUs, until healthy."""
        argv = [sys.executable, "-m", module]
        self._spawn_and_wait(state, component, argv, env, self._preexec(state, cpusets.OTHERS))

    def _spawn_recorded(
        self,
        state: TestbedState,
        component: Component,
        argv: list[str],
        env: dict[str, str],
        preexec: Callable[[], None] | None,
    ) -> Path:
        """Start `component`'s process and record it (PID, start time, log) in the saved
        state before an interrupt can stop up(): what is started is always stopped. Returns
        its log file (logs/<name>.log)."""
        log_file = self.state_dir / "logs" / f"{component.name}.log"
        with processes.interrupts_held():
            handle = processes.spawn(argv, env, log_file, preexec=preexec)
            component.pid, component.start_ticks, component.log = (
                handle.pid,
                handle.start_ticks,
                str(log_file),
            )
            with self._state_lock:
                state.put(component)
                self.store.save(state)
        return log_file

    def _spawn_and_wait(
        self,
        state: TestbedState,
        component: Component,
        argv: list[str],
        env: dict[str, str],
        preexec: Callable[[], None] | None = None,
    ) -> None:
        log_file = self._spawn_recorded(state, component, argv, env, preexec)
        handle = component.handle
        assert handle is not None
        assert component.health_url is not None
        deadline = time.monotonic() + self.settings.startup_timeout_seconds
        while True:
            if not handle.alive():
                raise StartupError(
                    f"{component.name} exited during start-up:\n{processes.tail(log_file)}"
                )
            if self._healthy(component.health_url) is None:
                return
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{component.name} not healthy within "
                    f"{self.settings.startup_timeout_seconds:.0f} s:\n" + processes.tail(log_file)
                )
            time.sleep(0.1)

    def _healthy(self, url: str) -> str | None:
        """None when healthy, else the reason."""
        try:
            response = self._http.get(url, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"unreachable ({type(exc).__name__})"
        return None if response.status_code == 200 else f"HTTP {response.status_code}"

    def _stop_component(self, component: Component) -> None:
        handle = component.handle
        if handle is not None:
            gone = processes.stop(handle, timeout=15.0)
            _kill_leftover_group(handle.pid)
            if not gone:
                self._notify(f"warning: {component.name} (PID {handle.pid}) did not stop")
        if component.cgroup is not None:
            group = cgroups.group_from_paths(
                component.name,
                component.cgroup.millicores,
                component.cgroup.paths,
                component.cgroup.usage_file,
                component.cgroup.usage_unit_ns,
            )
            for failure in cgroups.remove_group(group):
                self._notify(f"warning: cgroup not removed: {failure}")

    def _stop_all(self, state: TestbedState) -> list[str]:
        stopped: list[str] = []
        controller = state.get("sip-controller")
        controller_up = bool(controller and controller.handle and controller.handle.alive())
        # the controller this testbed recorded (`testbed down` may run with other settings
        # than the run that started it), briefly: a hung one must not hold every proxy's stop
        address = controller.endpoints.get("http") if controller else None
        base_url = f"http://{address}" if address else None
        # the supervisor first: it would restart what is being stopped
        kinds = (SUPERVISOR_KIND, CLIENT_KIND, SCENARIO_CONTROLLER_KIND)
        for component in [c for kind in kinds for c in state.of_kind(kind)]:
            self._stop_component(component)
            if component.handle is not None:
                stopped.append(component.name)
        for proxy in sorted(state.of_kind(PROXY_KIND), key=lambda c: c.index or 0, reverse=True):
            if controller_up:
                try:
                    self._controller_hook(
                        state,
                        proxy.name,
                        "disable",
                        params={"grace_seconds": 0},
                        base_url=base_url,
                        timeout=10.0,
                    )
                except (StartupError, httpx.HTTPError) as exc:
                    self._notify(f"warning: {proxy.name}: {exc}")
                    controller_up = not isinstance(exc, httpx.TimeoutException)
            self._stop_component(proxy)
            stopped.append(proxy.name)
        for sidecar in state.of_kind(ANALYZER_KIND):
            self._stop_component(sidecar)
            stopped.append(sidecar.name)
        for kind in _STOP_ORDER[2:]:
            for component in state.of_kind(kind):
                self._stop_component(component)
                if component.handle is not None:
                    stopped.append(component.name)
        self._remove_isolation(state)
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
        if c.handle is None:
            health = "healthy" if self._database_reachable(state) else "unreachable"
        elif not c.handle.alive():
            health = "dead"
        elif c.kind == "database":
            health = "healthy" if self._state_mariadb(state).ping() else "not answering"
        else:
            reason = self._healthy(c.health_url) if c.health_url else None
            health = "healthy" if reason is None else reason
        alive = c.handle is not None and c.handle.alive()
        cpus = cpusets.allowed_cpus(c.handle.pid) if c.handle is not None and alive else None
        return ComponentStatus(c.name, c.kind, c.pid, c.endpoints, health, cpu, cpus)

    def _database_reachable(self, state: TestbedState) -> bool:
        if state.database_kind == "sqlite":
            return Path(state.database_url.removeprefix("sqlite:///")).exists()
        controller = state.get("sip-controller")
        return bool(
            controller and controller.health_url and self._healthy(controller.health_url) is None
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
    return f"{ANALYZER_KIND}-{proxy.index}"


def _kill_leftover_group(pgid: int) -> None:
    """Workers of a stopped Kamailio still in its process group (we made it a session leader)."""
    if processes.group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"
