"""The state file of a local testbed: what `testbed up` started, so status/scale/down find it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from testbed.local.processes import ProcessHandle


class CgroupRecord(BaseModel):
    driver: str
    millicores: int | None  # None: accounted, not limited
    paths: list[str]
    usage_file: str
    usage_unit_ns: int


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


class StateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "state.json"

    def load(self) -> TestbedState | None:
        try:
            data: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return TestbedState.model_validate(data)

    def save(self, state: TestbedState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(state.model_dump_json(indent=2))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One up/scale/down at a time per state directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
