"""Helpers of the container tests: the images as built, free ports, containers that are
removed afterwards (importable as containers.harness: tests/ is on the path)."""

from __future__ import annotations

import json
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support import ROOT

from testbed.containers.engine import Engine


@dataclass(frozen=True)
class Image:
    name: str  # build.sh's name: kamailio-debug, mariadb, ...
    ref: str  # what build.sh tags: ims-testbed/kamailio:0.1.0-debug
    version: str  # from the service's pyproject.toml (the repo's for Kamailio)


def project_version(pyproject: Path) -> str:
    version: str = tomllib.loads(pyproject.read_text())["project"]["version"]
    return version


def expected_version(name: str) -> str:
    """Independently of build.sh: what each image's version label must say."""
    if name in ("kamailio", "kamailio-debug"):
        return project_version(ROOT / "pyproject.toml")
    if name == "mariadb":
        return "10.11"
    if name == "prometheus":
        return "2.42"
    return project_version(ROOT / "services" / name / "pyproject.toml")


@dataclass
class Containers:
    """Runs containers under unique names and removes every one of them at the end."""

    engine: Engine
    names: list[str] = field(default_factory=list)

    def run(self, image: Image, *args: str, command: tuple[str, ...] = ()) -> str:
        name = f"tbtest-{image.name}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        self.engine.run("run", "-d", "--name", name, *args, image.ref, *command, timeout=120)
        return name

    def logs(self, name: str) -> str:
        result = self.engine.run("logs", "--tail", "40", name, check=False)
        return (result.stdout + result.stderr).strip()

    def healthcheck(self, name: str) -> int:
        """The image's own HEALTHCHECK, run now (podman schedules none without systemd)."""
        return self.engine.run("healthcheck", "run", name, check=False, timeout=60).returncode

    def wait_healthy(self, name: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.healthcheck(name) != 0:
            self.fail_if_exited(name)
            if time.monotonic() > deadline:
                pytest.fail(f"{name}: HEALTHCHECK never passed:\n{self.logs(name)}")
            time.sleep(1.0)

    def wait_http(self, name: str, url: str, timeout: float = 90.0) -> httpx.Response:
        """The first answer from `url` other than a refused connection, or the test fails."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return httpx.get(url, timeout=5.0)
            except httpx.TransportError:
                self.fail_if_exited(name)
                if time.monotonic() > deadline:
                    pytest.fail(f"{name}: {url} never answered:\n{self.logs(name)}")
                time.sleep(0.5)

    def fail_if_exited(self, name: str) -> None:
        state = self.engine.run("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state in ("exited", "stopped"):
            pytest.fail(f"{name} exited:\n{self.logs(name)}")

    def label(self, image: Image, key: str = "org.opencontainers.image.version") -> str:
        out = self.engine.run("image", "inspect", image.ref).stdout
        labels: dict[str, str] = json.loads(out)[0]["Config"].get("Labels") or {}
        return labels.get(key, "")

    def remove_all(self) -> list[str]:
        """Remove every container started here; returns those still there."""
        if self.names:
            self.engine.run("rm", "-f", "-t", "3", *self.names, check=False, timeout=120)
        left = self.engine.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
        return [n for n in self.names if n in left]
