"""The state file of a local testbed: what `testbed up` started, so status/scale/down find it;
and the register of testbeds that runs started in results folders of their own."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from testbed.local.cpusets import IsolationPlan, parse_cpu_list
from testbed.local.processes import ProcessHandle

log = logging.getLogger(__name__)


class CgroupRecord(BaseModel):
    driver: str
    millicores: int | None  # None: accounted, not limited
    paths: list[str]
    usage_file: str
    usage_unit_ns: int


class IsolationRecord(BaseModel):
    """The CPU split `up` applied (cpusets.py): what `status` shows and `down` removes."""

    enabled: bool
    driver: str = ""  # v1 or v2 when enabled
    sut_cpus: str = ""  # kernel list format, "1"
    other_cpus: str = ""
    # sut/others (and shield, when on) -> the group's directory
    groups: dict[str, str] = Field(default_factory=dict)
    reason: str = ""  # why it is off
    shielded: int | None = None  # outside processes the shield moved (None: no shield)

    def describe(self) -> str:
        if not self.enabled:
            return f"off ({self.reason})" if self.reason else "off"
        text = IsolationPlan(
            enabled=True,
            sut_cpus=parse_cpu_list(self.sut_cpus),
            other_cpus=parse_cpu_list(self.other_cpus),
        ).describe()
        if self.shielded is not None:
            text += f"; shield: {self.shielded} outside processes moved to the latter"
        return text


class Component(BaseModel):
    name: str
    # database, sip-controller, sip-loadb, sip-proxy, analyzer, scenario-controller, sip-client
    kind: str
    pid: int | None = None
    start_ticks: int | None = None
    index: int | None = None
    endpoints: dict[str, str] = Field(default_factory=dict)
    health_url: str | None = None
    log: str | None = None
    cgroup: CgroupRecord | None = None

    @property
    def handle(self) -> ProcessHandle | None:
        if self.pid is None or self.start_ticks is None:
            return None
        return ProcessHandle(self.pid, self.start_ticks)


class TestbedState(BaseModel):
    __test__ = False  # not a pytest class

    database_url: str
    database_kind: str
    proxy_cpu_millicores: int | None = None
    analyzers: bool = False
    isolation: IsolationRecord | None = None
    # the bearer token of this testbed's services (API_TOKEN); None in a state file written
    # before there was one. Kept out of repr: a logged or printed state must not show it.
    api_token: str | None = Field(default=None, repr=False)
    components: list[Component] = Field(default_factory=list)

    def get(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def of_kind(self, kind: str) -> list[Component]:
        found = [c for c in self.components if c.kind == kind]
        return sorted(found, key=lambda c: (c.index if c.index is not None else -1, c.name))

    def put(self, component: Component) -> None:
        self.components = [c for c in self.components if c.name != component.name] + [component]

    def remove(self, name: str) -> None:
        self.components = [c for c in self.components if c.name != name]


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically by a file only its owner may read (0600): it is created with
    that mode, so the content is never readable by others, not even for a moment."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            os.fchmod(out.fileno(), 0o600)  # a leftover tmp file would keep its own mode
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_private_dir(directory: Path) -> None:
    """Create `directory` (0700) or take group and others' access away from an existing one:
    it holds the API token (state.json) and the proxy registry."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        directory.chmod(mode & 0o700)


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"
        # the proxies the sip-controller may enable (PROXY_ADDRESS_SOURCE=registry)
        self.registry_path = directory / "proxies.json"

    def load(self) -> TestbedState | None:
        try:
            data: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return TestbedState.model_validate(data)

    def save(self, state: TestbedState) -> None:
        make_private_dir(self.directory)
        write_private(self.path, state.model_dump_json(indent=2))

    def save_registry(self, proxies: dict[str, dict[str, str]]) -> None:
        """The proxy registry file: name -> {"sip_address", "http_address"}."""
        make_private_dir(self.directory)
        write_private(self.registry_path, json.dumps({"proxies": proxies}, indent=2))

    def clear(self) -> None:
        for path in (self.path, self.registry_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One up/scale/down at a time per state directory."""
        make_private_dir(self.directory)
        with (self.directory / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class RunTestbed(BaseModel):
    """A testbed a run started: its state directory and the run's process (PID + start time)."""

    state_dir: Path
    owner_pid: int
    owner_start_ticks: int
    results: Path | None = None

    @property
    def owner(self) -> ProcessHandle:
        return ProcessHandle(self.owner_pid, self.owner_start_ticks)


class RunRegistry:
    """`testbed run` keeps its testbed in the results folder; it records it here (one file per
    testbed, under the default state directory) until it has stopped it, so that
    `testbed down` finds what a killed run left behind."""

    def __init__(self, root: Path) -> None:
        self.directory = root / "run-testbeds"

    def _path(self, state_dir: Path) -> Path:
        key = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:16]
        return self.directory / f"{key}.json"

    def add(self, state_dir: Path, owner: ProcessHandle, results: Path | None = None) -> None:
        entry = RunTestbed(
            state_dir=state_dir.resolve(),
            owner_pid=owner.pid,
            owner_start_ticks=owner.start_ticks,
            results=results,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(state_dir)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(entry.model_dump_json(indent=2))
        os.replace(tmp, path)

    def remove(self, state_dir: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(state_dir).unlink()

    def entries(self) -> list[RunTestbed]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(RunTestbed.model_validate_json(path.read_text()))
            except (OSError, ValidationError) as exc:
                log.warning("skipping unreadable run testbed record %s: %s", path, exc)
        return found
