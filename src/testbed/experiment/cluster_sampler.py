"""The per-second row of an experiment on a cluster, from the cluster's Prometheus.

The same Sample as the local sampler (testbed.experiment.sampler), so the summary, report and
`testbed compare` read both: per proxy the new INVITEs, INVITE and REGISTER requests, 200s,
CPU (the kubelet's resource metrics: what the HPA's Resource metric sees) and the windowed
percentile of the response time, computed from the scraped buckets by the local sampler's own
code; over all proxies the percentile and the load balancer's new-INVITE rate. A proxy
pod `<release>-sip-proxy-3` is column prefix `sip-proxy-3`, as in local mode.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from testbed.experiment import histogram
from testbed.experiment.histogram import Buckets
from testbed.experiment.sampler import HISTOGRAM, MESSAGES, counter_rate, sample_scenario
from testbed.local.prometheus import PromQuery
from testbed.sample import ProxyReading, Sample

_ORDINAL = re.compile(r"-sip-proxy-(\d+)$")
# counter rates over the last two scrapes at most this old
RATE_RANGE = "10s"


def proxy_column(pod: str) -> str | None:
    match = _ORDINAL.search(pod)
    return None if match is None else f"sip-proxy-{match.group(1)}"


class ClusterSampler:
    def __init__(
        self,
        prometheus: PromQuery,
        http: httpx.Client,
        namespace: str,
        window_s: float,
        percentile: float,
        scenario_url: str,
        replicas: Callable[[], int | None],
    ) -> None:
        self.prom = prometheus
        self.http = http
        self.ns = namespace
        self.window_s = window_s
        self._buckets: dict[str, deque[tuple[float, Buckets]]] = {}
        self.q = percentile / 100
        self.scenario_url = scenario_url
        self.replicas = replicas
        self._totals: dict[str, tuple[float, float]] = {}
        self.start = time.monotonic()

    def _sel(self, extra: str = "") -> str:
        return f'namespace="{self.ns}"' + (f",{extra}" if extra else "")

    def _by_pod(self, expr: str) -> dict[str, float]:
        out = {}
        for pod, value in self.prom.by_label(expr, "pod").items():
            column = proxy_column(pod)
            if column is not None and value is not None:  # None: NaN, no value to show
                out[column] = value
        return out

    def _rate(self, key: str, value: float, now: float) -> float | None:
        return counter_rate(self._totals, key, value, now)

    def _get_json(self, url: str) -> Any:
        try:
            response = self.http.get(url, timeout=2.0)
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    def _percentiles(self, now: float, sel: str) -> tuple[dict[str, float], float | None]:
        """As the local sampler: each proxy's cumulative buckets (here as Prometheus scraped
        them) kept over the window, the quantile of their difference; observations before the
        first sample (the registrations) are left out, as locally."""
        current: dict[str, Buckets] = {}
        for series in self.prom.query(f"sum by (pod, le) ({HISTOGRAM}_bucket{{{sel}}})"):
            column = proxy_column(series.labels.get("pod", ""))
            if column is not None and series.value is not None and "le" in series.labels:
                current.setdefault(column, {})[float(series.labels["le"])] = series.value
        window_total: Buckets = {}
        by_pod: dict[str, float] = {}
        for column, buckets in current.items():
            history = self._buckets.setdefault(column, deque())
            if not history:
                # a proxy's first sample is its baseline (a new proxy: what it saw before)
                history.append((now, buckets))
                continue
            history.append((now, buckets))
            while len(history) > 1 and history[1][0] <= now - self.window_s:
                history.popleft()
            window = histogram.difference(buckets, history[0][1])
            window_total = histogram.add(window_total, window)
            value = histogram.quantile(self.q, window)
            if value is not None:
                by_pod[column] = value
        return by_pod, histogram.quantile(self.q, window_total)

    def sample(self) -> Sample:
        now = time.monotonic()
        t_s, at = round(now - self.start, 3), round(time.time(), 3)
        messages = f"{MESSAGES}_total"
        sel = self._sel('component="sip-proxy"')

        def rate(labels: str) -> dict[str, float]:
            return self._by_pod(f"sum by (pod) (irate({messages}{{{sel},{labels}}}[{RATE_RANGE}]))")

        invites = rate('direction="out",method="INVITE",status="407"')
        requests = rate('direction="in",method="INVITE",status=""')
        registers = rate('direction="in",method="REGISTER",status=""')
        ok = rate('direction="out",method="INVITE",status="200"')
        # the kubelet's CPU counters move every 10-15 s (its housekeeping): a 30 s rate
        cpu_sel = self._sel('container="sip-proxy"')
        cpu = self._by_pod(
            f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{cpu_sel}}}[30s]))"
        )
        p_by_pod, overall = self._percentiles(now, sel)
        replicas = self.replicas()
        pods = sorted(set().union(invites, requests, registers, ok, cpu, p_by_pod), key=_ordinal)
        readings = tuple(
            ProxyReading(
                column,
                invites_per_s=invites.get(column),
                invite_requests_per_s=requests.get(column),
                registers_per_s=registers.get(column),
                cpu_mcpu=None if column not in cpu else cpu[column] * 1000,
                ok_per_s=ok.get(column),
                latency_percentile_ms=_ms(p_by_pod.get(column)),
            )
            for column in pods
        )
        lb_sel = self._sel('component="sip-loadb"')
        lb_invites = self.prom.value(
            f"sum(irate(kamailio_script_new_invites{{{lb_sel}}}[{RATE_RANGE}]))"
        )
        scenario, clients = sample_scenario(self._get_json, self._rate, self.scenario_url, now)
        return Sample(
            t_s=t_s,
            time=at,
            proxies=replicas if replicas is not None else len(pods),
            per_proxy=readings,
            percentile=self.q * 100,
            latency_percentile_ms=_ms(overall),
            lb_invites_per_s=lb_invites,
            scenario=scenario,
            clients=clients,
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _ordinal(column: str) -> int:
    return int(column.rsplit("-", 1)[1])
