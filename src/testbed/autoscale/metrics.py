"""What an autoscaler sees: the testbed's per-second samples as a metrics pipeline would serve
them, averaged over a window and refreshed only every scrape interval.

On a cluster the HPA reads metrics that Prometheus scraped up to one scrape interval ago (the
paper: 30 s) and averaged over a rate() window; reading the local samples directly would make
local results rosier than a cluster's. Sans-I/O: samples and times go in, views come out.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

from scaling_policy.view import MetricView
from testbed.sample import Sample

PROXY_PREFIX = "sip-proxy-"

# metric names as an HPA manifest spells them (the same names the chart's adapter serves)
CPU_RESOURCE = "Resource/cpu"
CPU_POD_METRIC = "container_cpu_usage_per_second"  # the paper's A.7 Pods metric, in cores
P99_POD_METRIC = "sip_response_time_p99_seconds"  # per proxy, from its analyzer
INVITE_RATE_METRIC = "sip_invites_per_second"  # at the load balancer (Object or External)


class MetricSource(Protocol):
    """What the control loop reads: samples go in, the latest scrape comes out."""

    def observe(self, now: float, sample: Sample) -> None: ...

    def view(self) -> MetricView | None: ...


def pool_pods(sample: Sample) -> frozenset[str]:
    """The proxies a sample lists (the pool the HPA's selector would match)."""
    return frozenset(p.name for p in sample.per_proxy if p.name.startswith(PROXY_PREFIX))


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


class ScrapedMetrics:
    def __init__(self, scrape_interval_s: float = 30.0, window_s: float = 30.0) -> None:
        if scrape_interval_s < 0 or window_s <= 0:
            raise ValueError("scrape interval must be >= 0 and the window > 0")
        self.scrape_interval_s = scrape_interval_s
        self.window_s = window_s
        self._samples: deque[tuple[float, Sample]] = deque()
        self._view: MetricView | None = None

    def observe(self, now: float, sample: Sample) -> None:
        """A sample taken at `now`; scrapes when the interval has passed."""
        self._samples.append((now, sample))
        while self._samples and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()
        if self._view is None or now - self._view.time >= self.scrape_interval_s:
            self._view = self._scrape(now)

    def view(self) -> MetricView | None:
        return self._view

    def _scrape(self, now: float) -> MetricView:
        latest = self._samples[-1][1]
        pods = pool_pods(latest)
        cpu: dict[str, float | None] = {}
        p99: dict[str, float | None] = {}
        for pod in pods:
            values = [
                v
                for _t, s in self._samples
                for r in s.per_proxy
                if r.name == pod and (v := _number(r.cpu_mcpu)) is not None
            ]
            mean = _mean(values)
            cpu[pod] = None if mean is None else mean / 1000
            reading = next(r for r in latest.per_proxy if r.name == pod)
            p = _number(reading.latency_percentile_ms)
            p99[pod] = None if p is None else p / 1000
        rates = [v for _t, s in self._samples if (v := _number(s.lb_invites_per_s)) is not None]
        p_all = _number(latest.latency_percentile_ms)
        return MetricView(
            time=now,
            cpu_cores=cpu,
            p99_s=p99,
            p99_all_s=None if p_all is None else p_all / 1000,
            invite_rate=_mean(rates),
            pods=pods,
        )
