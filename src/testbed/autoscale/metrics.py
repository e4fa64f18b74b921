"""What an autoscaler sees: the testbed's per-second samples as a metrics pipeline would serve
them, averaged over a window and refreshed only every scrape interval.

On a cluster the HPA reads metrics that Prometheus scraped up to one scrape interval ago (the
paper: 30 s) and averaged over a rate() window; reading the local samples directly would make
local results rosier than a cluster's. Sans-I/O: rows and times go in, views come out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

PROXY_PREFIX = "sip-proxy-"

# metric names as an HPA manifest spells them (the same names the chart's adapter serves)
CPU_RESOURCE = "Resource/cpu"
CPU_POD_METRIC = "container_cpu_usage_per_second"  # the paper's A.7 Pods metric, in cores
P99_POD_METRIC = "sip_response_time_p99_seconds"  # per proxy, from its analyzer
INVITE_RATE_METRIC = "sip_invites_per_second"  # at the load balancer (Object or External)


@dataclass(frozen=True)
class MetricView:
    """One scrape: per-proxy averages over the window and totals, as of `time`."""

    time: float
    cpu_cores: dict[str, float | None]  # per proxy, average cores used over the window
    p99_s: dict[str, float | None]  # per proxy, windowed p99 response time
    p99_all_s: float | None  # over all proxies (what the QoS target is about)
    invite_rate: float | None  # INVITEs/s handed out by the load balancer, averaged
    pods: frozenset[str] = field(default_factory=frozenset)
    source: str = "samples"  # samples (ScrapedMetrics) or prometheus (PrometheusMetrics)
    at: float | None = None  # Unix time the values are of, when queried


class MetricSource(Protocol):
    """What the control loop reads: rows go in, the latest scrape comes out."""

    def observe(self, now: float, row: dict[str, Any]) -> None: ...

    def view(self) -> MetricView | None: ...


def pool_pods(row: dict[str, Any]) -> frozenset[str]:
    """The proxies a sampler row lists (the pool the HPA's selector would match)."""
    return frozenset(
        key.split(".")[0]
        for key in row
        if key.startswith(PROXY_PREFIX) and key.endswith(".cpu_mcpu")
    )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not math.isnan(value):
        return float(value)
    return None


class ScrapedMetrics:
    def __init__(self, scrape_interval_s: float = 30.0, window_s: float = 30.0) -> None:
        if scrape_interval_s < 0 or window_s <= 0:
            raise ValueError("scrape interval must be >= 0 and the window > 0")
        self.scrape_interval_s = scrape_interval_s
        self.window_s = window_s
        self._rows: deque[tuple[float, dict[str, Any]]] = deque()
        self._view: MetricView | None = None

    def observe(self, now: float, row: dict[str, Any]) -> None:
        """A sampler row taken at `now`; scrapes when the interval has passed."""
        self._rows.append((now, row))
        while self._rows and self._rows[0][0] < now - self.window_s:
            self._rows.popleft()
        if self._view is None or now - self._view.time >= self.scrape_interval_s:
            self._view = self._scrape(now)

    def view(self) -> MetricView | None:
        return self._view

    def _scrape(self, now: float) -> MetricView:
        latest = self._rows[-1][1]
        pods = pool_pods(latest)
        cpu: dict[str, float | None] = {}
        p99: dict[str, float | None] = {}
        for pod in pods:
            values = [
                v for _t, r in self._rows if (v := _number(r.get(f"{pod}.cpu_mcpu"))) is not None
            ]
            cpu[pod] = sum(values) / len(values) / 1000 if values else None
            p = _number(latest.get(f"{pod}.p99_ms"))
            p99[pod] = None if p is None else p / 1000
        rates = [v for _t, r in self._rows if (v := _number(r.get("lb_invites_per_s"))) is not None]
        p_all = _number(latest.get("p99_ms"))
        return MetricView(
            time=now,
            cpu_cores=cpu,
            p99_s=p99,
            p99_all_s=None if p_all is None else p_all / 1000,
            invite_rate=sum(rates) / len(rates) if rates else None,
            pods=pods,
        )
