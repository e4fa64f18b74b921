"""Once a second: what every proxy, the load balancer, the controller and the clients did.

Rates come from counter differences between two samples. The percentile of the response time
is the run's Prometheus's answer to the chart's recording-rule expressions (histogram_quantile
over rate() of the analyzers' histograms over qos.window_s; testbed.local.rules), the figure a
cluster's Prometheus gives; without one (unit tests) it is computed from the analyzers'
histograms the same way.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from kamailio_rpc import KamailioRpc, RpcError, RpcTransportError
from testbed.experiment import histogram
from testbed.experiment.histogram import Buckets
from testbed.experiment.host_cpu import HostCpuError, HostCpuTracker
from testbed.local.prometheus import PrometheusError, PromQuery, cpu_seconds
from testbed.local.state import Component, TestbedState
from testbed.local.testbed import ANALYZER_KIND, PROXY_KIND, serving_proxies
from testbed.sample import Clients, HostCpu, ProxyReading, Sample, ScenarioRun

# the analyzer's response-time histogram and message counter (tests/unit/test_metric_names.py
# checks that the analyzer registers them)
HISTOGRAM = "analyzer_sip_response_time_seconds"
MESSAGES = "analyzer_sip_messages"
# a counter difference over less than this is noise, not a rate (the first sample of a run
# follows the baseline within milliseconds)
MIN_SPAN_S = 0.5


@dataclass
class _ProxyHistory:
    counters: dict[str, float] = field(default_factory=dict)
    at: float = 0.0
    buckets: deque[tuple[float, Buckets]] = field(default_factory=deque)


@dataclass(frozen=True)
class PromQuantiles:
    """Where the p99 columns come from: two PromQL expressions (over all proxies, and by
    `pod`) asked of the run's Prometheus at each sample's time."""

    client: PromQuery
    overall: str
    by_pod: str

    def read(self, at: float) -> tuple[float | None, dict[str, float | None]]:
        return self.client.value(self.overall, at), self.client.by_label(self.by_pod, "pod", at)


PROMETHEUS = "prometheus"  # the source name in sampler.failures


def counter_rate(
    totals: dict[str, tuple[float, float]], key: str, value: float, now: float
) -> float | None:
    """The rate of a running total since its last reading (kept in `totals`, key -> (time,
    total)); None for the first reading and over spans under MIN_SPAN_S."""
    previous = totals.get(key)
    if previous is not None and now - previous[0] < MIN_SPAN_S:
        return None  # keep the older total: the next sample measures over a longer span
    totals[key] = (now, value)
    if previous is None:
        return None
    return max(0.0, value - previous[1]) / (now - previous[0])


class Sampler:
    def __init__(
        self,
        http: httpx.Client,
        window_s: float,
        percentile: float,
        scenario_url: str,
        lb_rpc_url: str | None = None,
        quantiles: PromQuantiles | None = None,
        host_stat: Callable[[], str] | None = None,
        *,
        token: str | None = None,
    ) -> None:
        self.http = http
        self.token = token  # the testbed's API_TOKEN: Kamailio's /RPC requires it
        # /proc/stat's text, for the machine's busy and stolen CPU (testbed.experiment.host_cpu)
        self.host_stat = host_stat
        self._host = HostCpuTracker()
        self.quantiles = quantiles
        self.lb_rpc_url = lb_rpc_url
        self.window_s = window_s
        self.q = percentile / 100
        self.scenario_url = scenario_url
        self._proxies: dict[str, _ProxyHistory] = {}
        self._totals: dict[str, tuple[float, float]] = {}  # key -> (time, total)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sampler")
        self.start = time.monotonic()
        self.run_id: str | None = None  # once set, the run is asked for by its id
        # samples in which a source did not answer, and the latest reason (for the summary
        # and the deadline's explanation); proxies are read from pool threads
        self.failures: Counter[str] = Counter()
        self.problems: dict[str, str] = {}
        self._failures_lock = threading.Lock()

    def _failed(self, source: str, problem: str) -> None:
        with self._failures_lock:
            self.failures[source] += 1
            self.problems[source] = problem

    def _rate(self, key: str, value: float, now: float) -> float | None:
        return counter_rate(self._totals, key, value, now)

    def sample(self, state: TestbedState) -> Sample:
        now = time.monotonic()
        t_s, at = round(now - self.start, 3), round(time.time(), 3)
        proxies = state.of_kind(PROXY_KIND)
        analyzers = {c.index: c for c in state.of_kind(ANALYZER_KIND)}
        window_total: Buckets = {}
        # the load balancer and the scenario controller alongside the proxies: a hung one
        # costs its timeout once per row, not one after the other
        lb = self._pool.submit(self._lb_new_invites, now)
        scenario_read = self._pool.submit(self._scenario, now)
        promql = (
            None if self.quantiles is None else self._pool.submit(self._promql, self.quantiles, at)
        )
        # every proxy at once: a CPU-starved proxy or a busy analyzer must not stall the row
        fetched = list(
            self._pool.map(
                lambda proxy: self._read_proxy(proxy, analyzers.get(proxy.index)), proxies
            )
        )
        readings: list[ProxyReading] = []
        for proxy, (counters, buckets) in zip(proxies, fetched, strict=True):
            history = self._proxies.setdefault(proxy.name, _ProxyHistory())
            rates: dict[str, float | None] = {}
            proxy_span = now - history.at if history.at else None
            for key, value in counters.items():
                old = history.counters.get(key)
                rates[key] = (
                    None
                    if old is None
                    or proxy_span is None
                    or proxy_span < MIN_SPAN_S
                    or math.isnan(value)
                    else max(0.0, value - old) / proxy_span
                )
            if proxy_span is None or proxy_span >= MIN_SPAN_S:
                history.counters, history.at = counters, now
            p_value = None
            if buckets and promql is None:
                history.buckets.append((now, buckets))
                while len(history.buckets) > 1 and history.buckets[1][0] <= now - self.window_s:
                    history.buckets.popleft()
                oldest = history.buckets[0][1] if len(history.buckets) > 1 else {}
                window = histogram.difference(buckets, oldest)
                window_total = histogram.add(window_total, window)
                p_value = histogram.quantile(self.q, window)
            cpu = rates.get("cpu_s")
            readings.append(
                ProxyReading(
                    proxy.name,
                    invites_per_s=rates.get("challenged"),
                    invite_requests_per_s=rates.get("invites"),
                    registers_per_s=rates.get("registers"),
                    cpu_mcpu=None if cpu is None else cpu * 1000,
                    ok_per_s=rates.get("ok_out"),
                    latency_percentile_ms=_ms(p_value),
                )
            )
        overall = histogram.quantile(self.q, window_total)
        if promql is not None:
            overall, by_pod = promql.result()
            readings = [replace(r, latency_percentile_ms=_ms(by_pod.get(r.name))) for r in readings]
        scenario, clients = scenario_read.result()
        return Sample(
            t_s=t_s,
            time=at,
            proxies=len(serving_proxies(state)),  # a dead proxy serves nothing
            # the pool's size (a StatefulSet's replicas): a crash and restart is no scaling
            replicas=len(proxies),
            per_proxy=tuple(readings),
            percentile=self.q * 100,
            latency_percentile_ms=_ms(overall),
            lb_invites_per_s=lb.result(),  # new INVITEs (call attempts) arriving at the LB
            host=self._host_cpu(),
            scenario=scenario,
            clients=clients,
        )

    def _host_cpu(self) -> HostCpu | None:
        if self.host_stat is None:
            return None
        try:
            shares = self._host.update(self.host_stat())
        except (OSError, HostCpuError) as exc:
            self._failed("host-cpu", str(exc))
            return HostCpu(None, None)
        if shares is None:
            return HostCpu(None, None)
        return HostCpu(round(shares.busy_pct, 2), round(shares.steal_pct, 2))

    def _read_proxy(
        self, proxy: Component, analyzer: Component | None
    ) -> tuple[dict[str, float], Buckets]:
        """Counters and response-time buckets of one proxy: from its analyzer when it has one
        (outside the proxy's CPU limit, so it answers even when the proxy is starved), else
        from Kamailio's statistics; CPU from its cgroup."""
        buckets: Buckets = {}
        text = (
            self._get_text(f"http://{analyzer.endpoints['http']}/metrics", analyzer.name)
            if analyzer is not None
            else ""
        )
        if text:
            buckets = histogram.parse_histogram(text, HISTOGRAM)
            counters = {
                name: histogram.parse_counter(
                    text,
                    MESSAGES,
                    {"direction": direction, "method": method, "status": status},
                )
                for name, direction, method, status in (
                    ("invites", "in", "INVITE", ""),
                    ("registers", "in", "REGISTER", ""),
                    ("ok_out", "out", "INVITE", "200"),
                    # every new call's first INVITE is challenged once: new INVITEs here
                    ("challenged", "out", "INVITE", "407"),
                )
            }
        else:
            counters = self._kamailio(proxy)
        counters["cpu_s"] = cpu_seconds(proxy) or math.nan
        return counters, buckets

    def _promql(
        self, quantiles: PromQuantiles, at: float
    ) -> tuple[float | None, dict[str, float | None]]:
        """The p99s from Prometheus; a failed query leaves them empty, counted as unanswered."""
        try:
            return quantiles.read(at)
        except PrometheusError as exc:
            self._failed(PROMETHEUS, str(exc))
            return None, {}

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _kamailio(self, proxy: Component) -> dict[str, float]:
        rpc = KamailioRpc(
            f"http://{proxy.endpoints['http']}/RPC", self.http, timeout=2.0, token=self.token
        )
        try:
            stats = rpc.statistics("core:")
        except (RpcError, RpcTransportError) as exc:
            self._failed(proxy.name, _problem(exc))
            return {"invites": math.nan, "registers": math.nan}
        return {
            "invites": float(stats.get("core:rcv_requests_invite", 0)),
            "registers": float(stats.get("core:rcv_requests_register", 0)),
        }

    def _lb_new_invites(self, now: float) -> float | None:
        if self.lb_rpc_url is None:
            return None
        rpc = KamailioRpc(self.lb_rpc_url, self.http, timeout=2.0, token=self.token)
        try:
            stats = rpc.statistics("script:")
        except (RpcError, RpcTransportError) as exc:
            self._failed("sip-loadb", _problem(exc))
            return None
        return self._rate("lb_new_invites", float(stats.get("script:new_invites", 0)), now)

    def _get_text(self, url: str, source: str) -> str:
        try:
            response = self.http.get(url, timeout=0.9)
        except httpx.HTTPError as exc:
            self._failed(source, _problem(exc))
            return ""
        if response.status_code != 200:
            self._failed(source, f"HTTP {response.status_code}")
            return ""
        return response.text

    def _get_json(self, url: str, source: str = "scenario-controller") -> Any:
        try:
            response = self.http.get(url, timeout=2.0)
            if response.status_code == 200:
                return response.json()
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = _problem(exc)
        except ValueError:
            problem = "answer is not JSON"
        self._failed(source, problem)
        return None

    def _scenario(self, now: float) -> tuple[ScenarioRun | None, Clients | None]:
        with self._failures_lock:
            self.problems.pop("scenario-controller", None)
        return sample_scenario(self._get_json, self._rate, self.scenario_url, now, self.run_id)


def _problem(exc: Exception) -> str:
    return f"unreachable ({type(exc).__name__})"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def sample_scenario(
    get_json: Callable[[str], Any],
    rate: Callable[[str, float, float], float | None],
    scenario_url: str,
    now: float,
    run_id: str | None = None,
) -> tuple[ScenarioRun | None, Clients | None]:
    """The scenario controller's view of the run (`run_id`, else its current one) and of the
    client pods (shared by the local and the cluster samplers). An answer of the wrong shape
    is None: the row goes without those columns."""
    run = get_json(f"{scenario_url}/runs/{run_id or 'current'}")
    clients = get_json(f"{scenario_url}/clients")
    scenario: ScenarioRun | None = None
    pods: Clients | None = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        if run:
            sent, undeliverable = float(run["sent"]), float(run["undeliverable"])
            scheduled = run["scheduled"]
            scenario = ScenarioRun(
                scheduled=scheduled,
                sent_per_s=rate("sent", sent, now),
                undeliverable_per_s=rate("undeliverable", undeliverable, now),
                run_state=str(run["state"]),
            )
    with contextlib.suppress(KeyError, TypeError, ValueError):
        if clients:
            found = clients["pods"]
            ok = sum(int(p["calls_succeeded"]) for p in found)
            failed = sum(int(p["calls_failed"]) for p in found)
            registered = sum(int(p["registered"]) for p in found)
            pods = Clients(
                calls_succeeded_per_s=rate("calls_ok", ok, now),
                calls_failed_per_s=rate("calls_failed", failed, now),
                registered=registered,
            )
    return scenario, pods
