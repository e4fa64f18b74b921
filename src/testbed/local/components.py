"""What local mode runs, as a table: one `ComponentKind` per kind of component (its name, command,
environment, endpoints, health check, log file, CPU placement, restart policy and place in the
stop order). testbed.py does the orchestration around it: the order of start-up, the
sip-controller's hooks, the proxies' CPU-limit cgroups.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from testbed.config import TestbedSettings
from testbed.local import cpusets, environment
from testbed.local.mariadb import LocalMariaDB
from testbed.local.state import Component, TestbedState

DATABASE_KIND = "database"
CONTROLLER_KIND = "sip-controller"
LOADBALANCER_KIND = "sip-loadb"
PROXY_KIND = "sip-proxy"
ANALYZER_KIND = "analyzer"
SCENARIO_CONTROLLER_KIND = "scenario-controller"
CLIENT_KIND = "sip-client"
SUPERVISOR_KIND = "supervisor"
# the supervisor process gets the settings of the testbed it watches (not the environment's)
SETTINGS_ENV = "TESTBED_SUPERVISED_SETTINGS"


class Restart(Enum):
    """What LocalTestbed.restart does when a component's process dies."""

    NEVER = "never"  # its death is reported, nothing is started
    AGAIN = "again"  # started again under the same name and address
    # a proxy: only once the sip-controller has taken it out of the load balancers' set, then
    # its postStart hook (enable) again
    OUT_OF_SET_FIRST = "out-of-set-first"


@dataclass(frozen=True)
class Launch:
    """What a kind's builders read: this testbed's settings and state, and which one to build
    (`index`: a proxy's or an analyzer's proxy's ordinal, a client pod's id)."""

    settings: TestbedSettings
    state: TestbedState
    state_dir: Path
    registry_file: Path  # the proxy registry the sip-controller trusts (PROXY_REGISTRY_FILE)
    run_root: Path  # Kamailio's pid files and control sockets: <run_root>/<name>
    index: int = 0
    phones: int = 0  # a client pod's
    peer_dmq: str | None = None  # a new proxy's running peer on the DMQ bus

    @property
    def token(self) -> str | None:
        return self.state.api_token

    def address(self, kind: str) -> str:
        """The address the component of `kind` (at `index`) listens on."""
        s = self.settings
        if kind in (PROXY_KIND, ANALYZER_KIND):  # a sidecar shares its pod's address
            return s.proxy_address(self.index)
        if kind == CLIENT_KIND:
            return s.client_address(self.index)
        return {
            LOADBALANCER_KIND: s.lb_address,
            CONTROLLER_KIND: s.sip_controller_host,
            SCENARIO_CONTROLLER_KIND: s.scenario_controller_host,
        }[kind]


@dataclass(frozen=True)
class ComponentKind:
    kind: str
    name: Callable[[int], str]  # from the index
    command: Callable[[Launch], list[str]]
    environment: Callable[[Launch], dict[str, str]]
    endpoints: Callable[[Launch], dict[str, str]]
    health_url: Callable[[Launch], str | None]  # GET, 200 when healthy; None: no HTTP check
    placement: str  # the cpuset group (cpusets.SUT or OTHERS); a proxy also joins its CPU cgroup
    restart: Restart
    stop_rank: int  # `down` stops the lower ranks first

    def record(self, launch: Launch) -> Component:
        """The state file's record of the component, before its process exists."""
        indexed = self.kind in (PROXY_KIND, ANALYZER_KIND, CLIENT_KIND)
        return Component(
            name=self.name(launch.index),
            kind=self.kind,
            index=launch.index if indexed else None,
            endpoints=self.endpoints(launch),
            health_url=self.health_url(launch),
        )


def log_file(state_dir: Path, name: str) -> Path:
    """Every component's output: <state>/logs/<name>.log, kept after `down`."""
    return state_dir / "logs" / f"{name}.log"


def _python(module: str) -> Callable[[Launch], list[str]]:
    return lambda _: [sys.executable, "-m", module]


def _entrypoint(role: str) -> Callable[[Launch], list[str]]:
    return lambda launch: [str(launch.settings.kamailio_config_dir / "entrypoint.sh"), role]


def _fixed(name: str) -> Callable[[int], str]:
    return lambda _: name


def _http(kind: str, port: Callable[[TestbedSettings], int]) -> Callable[[Launch], str]:
    return lambda launch: f"http://{launch.address(kind)}:{port(launch.settings)}/health"


def _run_dir(launch: Launch, kind: str) -> Path:
    return launch.run_root / KINDS[kind].name(launch.index)


def _controller_environment(launch: Launch) -> dict[str, str]:
    settings = environment.controller_settings(
        launch.settings, launch.state.database_url, launch.registry_file, launch.token
    )
    return environment.service_environment(settings)


def _loadbalancer_environment(launch: Launch) -> dict[str, str]:
    settings = environment.loadbalancer_settings(
        launch.settings,
        launch.state.database_url,
        _run_dir(launch, LOADBALANCER_KIND),
        launch.token,
    )
    return environment.kamailio_environment(settings)


def _proxy_environment(launch: Launch) -> dict[str, str]:
    settings = environment.proxy_settings(
        launch.settings,
        launch.index,
        launch.state.database_url,
        _run_dir(launch, PROXY_KIND),
        launch.token,
        launch.peer_dmq,
    )
    return environment.kamailio_environment(settings)


def _analyzer_environment(launch: Launch) -> dict[str, str]:
    proxy = KINDS[PROXY_KIND].name(launch.index)
    settings = environment.analyzer_settings(launch.settings, launch.index, proxy)
    return environment.service_environment(settings)


def _scenario_controller_environment(launch: Launch) -> dict[str, str]:
    settings = environment.scenario_controller_settings(
        launch.settings, launch.state_dir, launch.token
    )
    return environment.service_environment(settings)


def _client_environment(launch: Launch) -> dict[str, str]:
    settings = environment.client_settings(
        launch.settings,
        launch.index,
        launch.phones,
        launch.token,
        environment.client_log_level(),
    )
    return environment.service_environment(settings)


def _supervisor_environment(launch: Launch) -> dict[str, str]:
    """The caller's whole environment: the supervisor is the testbed itself, later (what it
    restarts gets the service settings `testbed up` was given), with the testbed's settings."""
    return {**os.environ, SETTINGS_ENV: launch.settings.model_dump_json()}


def _none(_: Launch) -> None:
    return None


def _no_endpoints(_: Launch) -> dict[str, str]:
    return {}


def _base_environment(_: Launch) -> dict[str, str]:
    return environment.base_environment()


def mariadb_server(settings: TestbedSettings, state_dir: Path, database_url: str) -> LocalMariaDB:
    """The testbed's MariaDB server, with the password `up` chose (in its database_url)."""
    password = urlsplit(database_url).password
    if password is None:
        raise ValueError("the state's MariaDB URL has no password; run `testbed down`")
    return LocalMariaDB(state_dir / "mariadb", settings.mariadb_port, unquote(password))


def _mariadb(launch: Launch) -> LocalMariaDB:
    return mariadb_server(launch.settings, launch.state_dir, launch.state.database_url)


def redact(url: str) -> str:
    """A database URL without its password, for status and the state's endpoints."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"


KINDS: dict[str, ComponentKind] = {
    k.kind: k
    for k in (
        # --db mariadb; ready when it answers a ping (LocalMariaDB.wait_ready), then provisioned.
        # SQLite or an external DB has no process: a record named "database" (testbed.py)
        ComponentKind(
            kind=DATABASE_KIND,
            name=_fixed("mariadb"),
            command=lambda launch: _mariadb(launch).command(),
            environment=_base_environment,
            endpoints=lambda launch: {
                "tcp": f"127.0.0.1:{launch.settings.mariadb_port}",
                "url": redact(_mariadb(launch).url),
            },
            health_url=_none,
            placement=cpusets.OTHERS,
            restart=Restart.AGAIN,
            stop_rank=7,
        ),
        ComponentKind(
            kind=CONTROLLER_KIND,
            name=_fixed(CONTROLLER_KIND),
            command=_python("sip_controller"),
            environment=_controller_environment,
            endpoints=lambda launch: {
                "http": f"{launch.settings.sip_controller_host}:"
                f"{launch.settings.sip_controller_port}"
            },
            health_url=lambda launch: f"{launch.settings.controller_url}/health",
            placement=cpusets.OTHERS,
            restart=Restart.AGAIN,
            stop_rank=6,
        ),
        ComponentKind(
            kind=LOADBALANCER_KIND,
            name=_fixed(LOADBALANCER_KIND),
            command=_entrypoint(LOADBALANCER_KIND),
            environment=_loadbalancer_environment,
            endpoints=lambda launch: {
                "sip": f"udp:{launch.settings.lb_address}:{launch.settings.lb_sip_port}",
                "http": f"{launch.settings.lb_address}:{launch.settings.lb_http_port}",
            },
            health_url=_http(LOADBALANCER_KIND, lambda s: s.lb_http_port),
            placement=cpusets.SUT,
            restart=Restart.AGAIN,
            stop_rank=5,
        ),
        ComponentKind(
            kind=PROXY_KIND,
            name=lambda index: f"{PROXY_KIND}-{index}",
            command=_entrypoint(PROXY_KIND),
            environment=_proxy_environment,
            endpoints=lambda launch: {
                "sip": f"udp:{launch.address(PROXY_KIND)}:{launch.settings.proxy_sip_port}",
                "dmq": f"sip:{launch.address(PROXY_KIND)}:{launch.settings.dmq_port}",
                "http": f"{launch.address(PROXY_KIND)}:{launch.settings.proxy_http_port}",
            },
            health_url=_http(PROXY_KIND, lambda s: s.proxy_http_port),
            placement=cpusets.SUT,
            restart=Restart.OUT_OF_SET_FIRST,
            stop_rank=3,
        ),
        ComponentKind(
            kind=ANALYZER_KIND,
            name=lambda index: f"{ANALYZER_KIND}-{index}",
            command=_python("analyzer"),
            environment=_analyzer_environment,
            endpoints=lambda launch: {
                "http": f"{launch.address(ANALYZER_KIND)}:{launch.settings.analyzer_http_port}",
                "watches": f"{launch.address(PROXY_KIND)}:{launch.settings.proxy_sip_port}",
            },
            health_url=_http(ANALYZER_KIND, lambda s: s.analyzer_http_port),
            placement=cpusets.OTHERS,
            restart=Restart.AGAIN,
            stop_rank=4,
        ),
        ComponentKind(
            kind=SCENARIO_CONTROLLER_KIND,
            name=_fixed(SCENARIO_CONTROLLER_KIND),
            command=_python("scenario_controller"),
            environment=_scenario_controller_environment,
            endpoints=lambda launch: {
                "http": f"{launch.settings.scenario_controller_host}:"
                f"{launch.settings.scenario_controller_port}"
            },
            health_url=lambda launch: f"{launch.settings.scenario_controller_url}/health",
            placement=cpusets.OTHERS,
            restart=Restart.AGAIN,
            stop_rank=2,
        ),
        ComponentKind(
            kind=CLIENT_KIND,
            name=lambda pod: f"{CLIENT_KIND}-{pod:02d}",
            command=_python("sip_client"),
            environment=_client_environment,
            endpoints=lambda launch: {
                "sip": f"udp:{launch.address(CLIENT_KIND)}:{launch.settings.client_sip_port}",
                "http": f"{launch.address(CLIENT_KIND)}:{launch.settings.client_http_port}",
            },
            health_url=_http(CLIENT_KIND, lambda s: s.client_http_port),
            placement=cpusets.OTHERS,
            restart=Restart.NEVER,
            stop_rank=1,
        ),
        # restarts the others; first to stop, or it would start again what `down` stops
        ComponentKind(
            kind=SUPERVISOR_KIND,
            name=_fixed(SUPERVISOR_KIND),
            command=_python("testbed.local.supervisor"),
            environment=_supervisor_environment,
            endpoints=_no_endpoints,
            health_url=_none,
            placement=cpusets.OTHERS,
            restart=Restart.NEVER,
            stop_rank=0,
        ),
    )
}

# `testbed scale` takes these
SCALABLE = (PROXY_KIND,)
# stopped first to last
STOP_ORDER = tuple(sorted(KINDS, key=lambda kind: KINDS[kind].stop_rank))
