"""The `faults:` list of an experiment file: what to break, when, and for how long.

Targets are the local testbed's component names: `sip-proxy-<i>`, `analyzer-<i>`,
`sip-client-<pp>`, `sip-loadb`, `sip-controller`, `scenario-controller`, `database`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["kill", "stop", "restart", "drop_websocket", "netem"]

_TARGET = re.compile(
    r"^(?:(?P<indexed>sip-proxy|analyzer)-(?P<index>\d{1,3})"
    r"|sip-client-(?P<pod>\d{2})"
    r"|(?P<single>sip-loadb|sip-controller|scenario-controller|database))$"
)
# components the fault injector can start again itself (a proxy is restarted by the testbed's
# own supervision, as a StatefulSet would; a client pod would lose its call records)
RESTARTABLE = ("database", "sip-loadb", "sip-controller", "scenario-controller", "analyzer")


def target_kind(target: str) -> str:
    """The component kind a target names (sip-proxy, analyzer, sip-client, sip-loadb, ...)."""
    match = _TARGET.match(target)
    if match is None:
        raise ValueError(
            f"target {target!r} is not a component: use sip-proxy-<i>, analyzer-<i>, "
            "sip-client-<pp>, sip-loadb, sip-controller, scenario-controller or database"
        )
    return match["indexed"] or match["single"] or "sip-client"


def target_index(target: str) -> int | None:
    match = _TARGET.match(target)
    if match is None:
        return None
    if match["index"] is not None:
        return int(match["index"])
    return int(match["pod"]) if match["pod"] is not None else None


class FaultSpec(BaseModel):
    """One fault. `at_s` is run time (seconds after sampling starts, as in timeseries.csv)."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    target: str = Field(description="component name, e.g. sip-proxy-1, database, sip-client-00")
    at_s: float = Field(ge=0, description="when, in run seconds")
    duration_s: float | None = Field(
        None, gt=0, le=86400, description="stop, netem: how long; restart: how long it stays down"
    )
    restart_after_s: float | None = Field(
        None, ge=0, le=86400, description="kill: start the component again after this long"
    )
    loss_percent: float = Field(0.0, ge=0, le=100, description="netem: share of packets dropped")
    delay_ms: float = Field(0.0, ge=0, le=60000, description="netem: added one-way delay")
    jitter_ms: float = Field(0.0, ge=0, le=60000, description="netem: +- uniform around delay")
    name: str | None = Field(None, max_length=80, description="a label for tables and figures")

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        what = f"{self.action} {self.target}"
        kind = target_kind(self.target)
        if self.action == "netem":
            if kind != "sip-proxy":
                raise ValueError(f"{what}: netem applies to a proxy's address (sip-proxy-<i>)")
            if self.duration_s is None:
                raise ValueError(f"{what}: duration_s is required for netem")
            if self.loss_percent == 0 and self.delay_ms == 0:
                raise ValueError(f"{what}: give loss_percent or delay_ms (or both)")
            if self.jitter_ms > self.delay_ms:
                raise ValueError(f"{what}: jitter_ms must not exceed delay_ms")
        elif self.loss_percent or self.delay_ms or self.jitter_ms:
            raise ValueError(f"{what}: loss_percent, delay_ms and jitter_ms are for netem only")
        if self.action == "drop_websocket" and kind != "sip-client":
            raise ValueError(f"{what}: drop_websocket applies to a client pod (sip-client-<pp>)")
        if self.action == "stop" and self.duration_s is None:
            raise ValueError(f"{what}: duration_s is required for stop (SIGCONT at its end)")
        if self.action in ("kill", "drop_websocket") and self.duration_s is not None:
            raise ValueError(
                f"{what}: duration_s does not apply to {self.action}"
                + (" (restart_after_s does)" if self.action == "kill" else "")
            )
        if self.action == "restart" and kind not in RESTARTABLE:
            raise ValueError(
                f"{what}: restart applies to {', '.join(RESTARTABLE)}; "
                "kill a proxy and the testbed restarts it"
            )
        if self.restart_after_s is not None:
            if self.action != "kill":
                raise ValueError(f"{what}: restart_after_s is for kill only")
            if kind not in RESTARTABLE:
                raise ValueError(
                    f"{what}: restart_after_s applies to {', '.join(RESTARTABLE)} "
                    "(the testbed restarts a killed proxy itself)"
                )
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.action} {self.target}"

    @property
    def lifted_after_s(self) -> float | None:
        """When the injector undoes it, after `at_s` (None: it does not; kill, drop)."""
        if self.action in ("stop", "netem"):
            return self.duration_s
        if self.action == "restart":
            return self.duration_s or 0.0
        return self.restart_after_s


def check_against(
    faults: list[FaultSpec], db: str, proxies: int | None, pods: list[int] | None = None
) -> list[str]:
    """Problems of the faults with this experiment (named `faults.<i>.<field>`): targets that
    cannot exist, a database with no process, two faults on one target at once."""
    problems: list[str] = []
    for i, fault in enumerate(faults):
        where = f"faults.{i}"
        kind, index = target_kind(fault.target), target_index(fault.target)
        if kind == "database" and db == "sqlite" and fault.action != "stop":
            problems.append(
                f"{where}.action: {fault.action} database needs db: mariadb (SQLite has no "
                "server process; stop locks the SQLite file instead)"
            )
        in_pool = proxies is None or index is None or index < proxies
        if kind in ("sip-proxy", "analyzer") and not in_pool:
            problems.append(
                f"{where}.target: {fault.target} does not exist (the pool starts with "
                f"{proxies} proxies: 0..{(proxies or 1) - 1})"
            )
        if kind == "sip-client" and pods is not None and index not in pods:
            problems.append(
                f"{where}.target: {fault.target} is not a client pod of this scenario "
                f"(pods {', '.join(f'{p:02d}' for p in pods) or 'none'})"
            )
    for i, a in enumerate(faults):
        for j in range(i + 1, len(faults)):
            b = faults[j]
            if a.target == b.target and _overlap(a, b):
                problems.append(
                    f"faults.{j}.at_s: {b.label} starts while faults.{i} ({a.label}) "
                    "is still on the same target"
                )
    return problems


def _overlap(a: FaultSpec, b: FaultSpec) -> bool:
    a_end = a.at_s + (a.lifted_after_s or 0.0)
    b_end = b.at_s + (b.lifted_after_s or 0.0)
    return a.at_s <= b_end and b.at_s <= a_end
