"""docker-compose.yml brought up and down as Docker Compose would, with podman where no Docker
engine runs.

With Docker, `docker compose up -d --wait` honours every `depends_on` condition. podman-compose
creates the same containers, networks and volumes, but podman before 4.6 cannot wait for
`service_healthy`, and without systemd podman runs no health check by itself (it schedules them
as systemd timers) and restarts nothing. So here the containers are created by podman-compose and
started by this module in dependency order: a `service_healthy` dependency is met once
`podman healthcheck run` passes (the container's own check, run on demand), a
`service_completed_successfully` one once the container exits 0. What root podman leaves in the
host's network (iptables chains, IP forwarding) is recorded before `up` and put back after
`down` (testbed.containers.hostnet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.containers import hostnet
from testbed.containers.engine import Engine, EngineError

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


class ComposeError(RuntimeError):
    """The compose project could not be brought up (names the service and why)."""


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    state: str  # running, exited (CODE), created, missing, ...
    health: str  # healthy, unhealthy, "-" (no check, or not running)
    ok: bool  # running and not unhealthy; a one-shot: exited 0


def load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ComposeError(f"{path}: no services mapping")
    return data


def active_services(compose: dict[str, Any], profiles: tuple[str, ...] = ()) -> list[str]:
    """Services compose starts: those without profiles, and those in an enabled profile."""
    return [
        name
        for name, spec in compose["services"].items()
        if not spec.get("profiles") or set(spec["profiles"]) & set(profiles)
    ]


def dependencies(spec: dict[str, Any]) -> list[Dependency]:
    raw = spec.get("depends_on") or {}
    if isinstance(raw, list):
        return [Dependency(name, "service_started") for name in raw]
    deps = []
    for name, options in raw.items():
        condition = (options or {}).get("condition", "service_started")
        if condition not in CONDITIONS:
            raise ComposeError(f"service depends on {name} with unknown condition {condition}")
        deps.append(Dependency(name, condition))
    return deps


def start_order(compose: dict[str, Any], services: list[str]) -> list[str]:
    """Topological order of the services (file order among equals); a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ComposeError(f"dependency cycle: {' -> '.join((*path, name))}")
        if name not in compose["services"]:
            raise ComposeError(f"{path[-1]} depends on {name}, which is not a service")
        state[name] = "visiting"
        spec = compose["services"][name]
        for dep in dependencies(spec):
            visit(dep.service, (*path, name))
        network = spec.get("network_mode", "")
        if network.startswith("service:"):
            visit(network.split(":", 1)[1], (*path, name))
        state[name] = "done"
        order.append(name)

    for name in services:
        visit(name, ())
    return order


class ComposeProject:
    """One compose project (containers named PROJECT_SERVICE_1, as podman-compose names them)."""

    def __init__(
        self,
        engine: Engine,
        file: Path,
        project: str,
        profiles: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.file = file
        self.project = project
        self.profiles = profiles
        self.env = {**engine.env, **(env or {})}
        self.compose = load(file)
        # what the last `down` did to the host's network (None: nothing recorded)
        self.restored: hostnet.Restored | None = None

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"

    # -- up -------------------------------------------------------------------------------

    def up(self, timeout: float = 300.0, log: Any = None) -> None:
        say = log or (lambda message: None)
        if self.engine.name == "docker":
            self._compose_cli(
                "up", "-d", "--no-build", "--wait", "--wait-timeout", str(int(timeout))
            )
            return
        deadline = time.monotonic() + timeout
        self._snapshot_host_network()
        # --no-deps: no --requires links between the containers (podman would restart a completed
        # one-shot dependency, or refuse to start); the order is kept here instead
        self._podman_compose("up", "--no-start", "--no-build", "--no-deps")
        services = active_services(self.compose, self.profiles)
        met: set[str] = set()
        for service in start_order(self.compose, services):
            for dep in dependencies(self.compose["services"][service]):
                key = f"{dep.service}:{dep.condition}"
                if key not in met:
                    self._wait(dep, deadline, say)
                    met.add(key)
            self.engine.run("start", self.container(service))
            say(f"started {service}")
        # like `docker compose up --wait`: every service running and healthy (those with a
        # check), every one-shot service (an explicit restart: "no") completed
        for service in services:
            if self._one_shot(service):
                condition = "service_completed_successfully"
            elif self._has_healthcheck(service):
                condition = "service_healthy"
            else:
                condition = "service_started"
            key = f"{service}:{condition}"
            if key not in met:
                self._wait(Dependency(service, condition), deadline, say)
                met.add(key)

    def _one_shot(self, service: str) -> bool:
        spec = self.compose["services"][service]
        return "restart" in spec and spec["restart"] in ("no", False)

    def _has_healthcheck(self, service: str) -> bool:
        check = self.compose["services"][service].get("healthcheck")
        if check is not None:
            return not check.get("disable", False)
        result = self.engine.run(
            "inspect", "--format", "{{.Config.Healthcheck}}", self.container(service)
        )
        return result.stdout.strip() not in ("", "<nil>", "{[] 0s 0s 0s 0}")

    def _wait(self, dep: Dependency, deadline: float, say: Any) -> None:
        name = self.container(dep.service)
        while True:
            state = self._state(name)
            if dep.condition == "service_completed_successfully":
                if state["Status"] in ("exited", "stopped"):
                    if state["ExitCode"] != 0:
                        raise ComposeError(
                            f"{dep.service} exited {state['ExitCode']}:\n{self.logs(dep.service)}"
                        )
                    say(f"{dep.service} completed")
                    return
            elif state["Status"] in ("exited", "stopped"):
                raise ComposeError(
                    f"{dep.service} stopped (exit {state['ExitCode']}) before it was "
                    f"{dep.condition.removeprefix('service_')}:\n{self.logs(dep.service)}"
                )
            elif dep.condition == "service_started":
                return
            else:  # service_healthy: the container's own check, run now
                check = self.engine.run("healthcheck", "run", name, check=False, timeout=30)
                if check.returncode == 0:
                    say(f"{dep.service} healthy")
                    return
            if time.monotonic() > deadline:
                raise ComposeError(
                    f"{dep.service} not {dep.condition.removeprefix('service_')} in time:\n"
                    f"{self.logs(dep.service)}"
                )
            time.sleep(1.0)

    def _state(self, name: str) -> dict[str, Any]:
        result = self.engine.run(
            "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name
        )
        status, code = result.stdout.split()
        return {"Status": status, "ExitCode": int(code)}

    # -- inspect and down -----------------------------------------------------------------

    def logs(self, service: str, tail: int = 40) -> str:
        result = self.engine.run("logs", "--tail", str(tail), self.container(service), check=False)
        return (result.stdout + result.stderr).strip()

    def healthy(self, service: str) -> bool:
        if self.engine.name == "docker":
            result = self.engine.run(
                "inspect", "--format", "{{.State.Health.Status}}", self.container(service)
            )
            return result.stdout.strip() == "healthy"
        check = self.engine.run(
            "healthcheck", "run", self.container(service), check=False, timeout=30
        )
        return check.returncode == 0

    def status(self) -> list[ServiceStatus]:
        """Every service compose would start, in start order, with its state and health."""
        rows = []
        services = active_services(self.compose, self.profiles)
        for service in start_order(self.compose, services):
            result = self.engine.run(
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                self.container(service),
                check=False,
            )
            if result.returncode != 0:
                rows.append(ServiceStatus(service, "missing", "-", False))
                continue
            status, code = result.stdout.split()
            state = f"exited ({code})" if status in ("exited", "stopped") else status
            health = "-"
            if status == "running" and self._has_healthcheck(service):
                health = "healthy" if self.healthy(service) else "unhealthy"
            if self._one_shot(service):
                ok = state == "exited (0)"
            else:
                ok = status == "running" and health != "unhealthy"
            rows.append(ServiceStatus(service, state, health, ok))
        return rows

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project that still exist."""
        label = f"label=io.podman.compose.project={self.project}"
        if self.engine.name == "docker":
            label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, args in {
            "containers": ("ps", "-a", "--format", "{{.Names}}", "--filter", label),
            "networks": ("network", "ls", "--format", "{{.Name}}", "--filter", label),
            "volumes": ("volume", "ls", "--format", "{{.Name}}", "--filter", label),
        }.items():
            out = self.engine.run(*args).stdout.split()
            found[kind] = sorted(out)
        return found

    def down(self) -> dict[str, list[str]]:
        """Stop and remove everything the project made, volumes included; returns what
        could not be removed (empty lists when nothing is left)."""
        if self.engine.name == "docker":
            self._compose_cli("down", "-v", "--remove-orphans", "-t", "10")
            return self.leftovers()
        owned = self._ownership()  # before the networks go
        self._podman_compose("down", "-v", "-t", "10")
        left = self.leftovers()
        # podman-compose leaves what it does not know of (profiles not enabled, failed
        # creates): remove by label, so `down` always ends clean
        if left["containers"]:
            self.engine.run("rm", "-f", "-t", "5", *left["containers"], check=False)
        if left["volumes"]:
            self.engine.run("volume", "rm", "-f", *left["volumes"], check=False)
        if left["networks"]:
            self.engine.run("network", "rm", "-f", *left["networks"], check=False)
        self._restore_host_network(owned)
        return self.leftovers()

    # -- the host's network (podman as root) ----------------------------------------------

    @property
    def hostnet_file(self) -> Path:
        run_dir = self.env.get("TESTBED_CONTAINERS_RUN_DIR", "/run/ims-testbed-containers")
        return Path(run_dir) / f"hostnet-{self.project}.json"

    def _snapshot_host_network(self) -> None:
        # rootless podman does not touch the host's iptables; a second `up` keeps the first
        # record, the state from before the project existed
        if os.geteuid() != 0 or self.hostnet_file.exists():
            return
        hostnet.snapshot().save(self.hostnet_file)

    def _ownership(self) -> hostnet.Ownership:
        label = f"label=io.podman.compose.project={self.project}"
        names = self.engine.run("network", "ls", "--format", "{{.Name}}", "--filter", label)
        if not names.stdout.split():
            return hostnet.Ownership()
        found = json.loads(self.engine.run("network", "inspect", *names.stdout.split()).stdout)
        return hostnet.Ownership(
            networks=tuple(n["name"] for n in found),
            subnets=tuple(s["subnet"] for n in found for s in n.get("subnets") or []),
            bridges=tuple(n["network_interface"] for n in found if n.get("network_interface")),
        )

    def _restore_host_network(self, owned: hostnet.Ownership) -> None:
        self.restored = None
        if not self.hostnet_file.exists():
            return
        before = hostnet.Snapshot.load(self.hostnet_file)
        others = bool(self.engine.run("ps", "--quiet").stdout.split())
        self.restored = hostnet.restore(before, owned, others_running=others)
        if not others:
            self.hostnet_file.unlink()

    # -- the compose tools ----------------------------------------------------------------

    def _profile_args(self) -> list[str]:
        return [arg for p in self.profiles for arg in ("--profile", p)]

    def _compose_cli(self, *args: str) -> None:
        command = ["docker", "compose", "-p", self.project, "-f", str(self.file)]
        self._run([*command, *self._profile_args(), *args])

    def _podman_compose(self, *args: str) -> None:
        command = [sys.executable, "-m", "podman_compose", "-p", self.project]
        command += ["-f", str(self.file), *self._profile_args(), *args]
        self._run(command)

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(
            command,
            env=self.env,
            cwd=self.file.parent,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        if result.returncode != 0:
            raise EngineError(
                f"{' '.join(command[2:6])} ... exited {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()[-3000:]}"
            )
