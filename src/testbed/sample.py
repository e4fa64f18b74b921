"""One sample of a run (a row of timeseries.csv), typed: what the samplers read each second
(testbed.experiment.sampler locally, cluster_sampler on a cluster), what the autoscaler and
the fault injector add, and one conversion to the row timeseries.csv and the panel take.

Neutral ground: the experiment writes samples and the autoscaler reads them, and neither
package imports the other for it. Groups a source did not answer are None and leave their
columns out of the row (as the dict rows did: a column appears once some row has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the CSV column of the configured percentile (whatever qos.percentile is: the name stayed)
LATENCY_COLUMN = "p99_ms"
SERVING_COLUMN = "proxies_serving"  # faults/analysis.py reads it back


@dataclass(frozen=True)
class ProxyReading:
    """One proxy's rates, CPU and windowed response-time percentile (None: not measured)."""

    name: str  # sip-proxy-<n>: the column prefix
    invites_per_s: float | None = None  # new INVITEs (challenged once each)
    invite_requests_per_s: float | None = None
    registers_per_s: float | None = None
    cpu_mcpu: float | None = None
    ok_per_s: float | None = None
    latency_percentile_ms: float | None = None

    def cells(self) -> dict[str, Any]:
        p = self.name
        return {
            f"{p}.invites_per_s": self.invites_per_s,
            f"{p}.invite_requests_per_s": self.invite_requests_per_s,
            f"{p}.registers_per_s": self.registers_per_s,
            f"{p}.cpu_mcpu": self.cpu_mcpu,
            f"{p}.ok_per_s": self.ok_per_s,
            f"{p}.{LATENCY_COLUMN}": self.latency_percentile_ms,
        }


@dataclass(frozen=True)
class HostCpu:
    """The machine's busy and stolen CPU share over the last second (testbed.experiment.host_cpu);
    None: /proc/stat could not be read this time."""

    busy_pct: float | None
    steal_pct: float | None


@dataclass(frozen=True)
class ScenarioRun:
    """The scenario controller's view of the run."""

    scheduled: int
    sent_per_s: float | None
    undeliverable_per_s: float | None
    run_state: str


@dataclass(frozen=True)
class Clients:
    """The client pods' calls and registrations."""

    calls_succeeded_per_s: float | None
    calls_failed_per_s: float | None
    registered: int


@dataclass(frozen=True)
class Scaling:
    """What the local autoscaler added: its target and the proxies ready."""

    desired_proxies: int
    ready_proxies: int


@dataclass(frozen=True)
class Serving:
    """What the fault injector added: proxies running and enabled (None: not known)."""

    proxies_serving: int | None


@dataclass(frozen=True)
class Sample:
    t_s: float  # run seconds since the sampler started
    proxies: int  # serving (a dead proxy serves nothing)
    time: float = 0.0  # Unix time
    replicas: int | None = None  # the pool's size (local runs)
    per_proxy: tuple[ProxyReading, ...] = ()
    percentile: float = 99.0  # which percentile latency_percentile_ms is (qos.percentile)
    latency_percentile_ms: float | None = None  # over all proxies, windowed
    lb_invites_per_s: float | None = None  # new INVITEs arriving at the load balancer
    host: HostCpu | None = None
    scenario: ScenarioRun | None = None
    clients: Clients | None = None
    scaling: Scaling | None = None
    serving: Serving | None = None

    @property
    def run_state(self) -> str | None:
        return None if self.scenario is None else self.scenario.run_state

    @property
    def host_steal_pct(self) -> float | None:
        return None if self.host is None else self.host.steal_pct

    def row(self) -> dict[str, Any]:
        """The row of timeseries.csv (and of the panel's feed), columns in their order."""
        row: dict[str, Any] = {"t_s": self.t_s, "time": self.time, "proxies": self.proxies}
        if self.replicas is not None:
            row["replicas"] = self.replicas
        for proxy in self.per_proxy:
            row.update(proxy.cells())
        row[LATENCY_COLUMN] = self.latency_percentile_ms
        row["lb_invites_per_s"] = self.lb_invites_per_s
        if self.host is not None:
            row["host_busy_pct"] = self.host.busy_pct
            row["host_steal_pct"] = self.host.steal_pct
        if self.scenario is not None:
            row["scheduled"] = self.scenario.scheduled
            row["sent_per_s"] = self.scenario.sent_per_s
            row["undeliverable_per_s"] = self.scenario.undeliverable_per_s
            row["run_state"] = self.scenario.run_state
        if self.clients is not None:
            row["calls_succeeded_per_s"] = self.clients.calls_succeeded_per_s
            row["calls_failed_per_s"] = self.clients.calls_failed_per_s
            row["registered"] = self.clients.registered
        if self.scaling is not None:
            row["desired_proxies"] = self.scaling.desired_proxies
            row["ready_proxies"] = self.scaling.ready_proxies
        if self.serving is not None:
            row[SERVING_COLUMN] = self.serving.proxies_serving
        return row
