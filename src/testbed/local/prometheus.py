"""A real Prometheus for local runs (Debian's package), the metric path a cluster has: it
scrapes the load balancer, the proxies, their analyzers, the controllers and the clients at the
experiment's scrape interval, with the chart's recording rules, and keeps its TSDB in the
results folder (<results>/prometheus/data) so `testbed prometheus RESULTS` can serve it again.

Targets come from the testbed's state through file_sd (rewritten whenever the pool changes),
labelled as the chart's ServiceMonitors label them. The proxies' CPU is served by a small
/metrics on loopback (the local stand-in for the kubelet's cAdvisor) from their cgroups.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

import prom_answer
from prom_answer import Series, parse_answer, single
from testbed.local import cgroups, processes
from testbed.local.processes import ProcessHandle
from testbed.local.state import Component, TestbedState

PROXY_KIND, ANALYZER_KIND = "sip-proxy", "analyzer"  # as testbed.local.testbed names them
# what every component serves /metrics on (its `http` endpoint) and the container it stands for
SCRAPED_KINDS = (
    "sip-loadb",
    PROXY_KIND,
    ANALYZER_KIND,
    "sip-controller",
    "scenario-controller",
    "sip-client",
)
CADVISOR_JOB = "kubelet"
# blocks are kept as long as anyone wants to look at a run again
RETENTION = "100y"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class PrometheusError(RuntimeError):
    """Prometheus could not be started, or a query failed; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


# -- targets and configuration (sans-I/O) -------------------------------------------------------


def targets(state: TestbedState, namespace: str, cadvisor: str | None) -> list[dict[str, Any]]:
    """file_sd target groups for every /metrics of the testbed, with the labels the chart's
    ServiceMonitors give them: component, pod, container, namespace, service and job (the
    Service's name). An analyzer is its proxy's sidecar: pod and component are the proxy's."""
    proxies = {c.index: c for c in state.of_kind(PROXY_KIND)}
    groups: list[dict[str, Any]] = []
    for kind in SCRAPED_KINDS:
        for component in state.of_kind(kind):
            address = component.endpoints.get("http")
            if address is None:
                continue
            pod, owner = component.name, kind
            if kind == ANALYZER_KIND:
                proxy = proxies.get(component.index)
                if proxy is None:
                    continue  # its proxy is gone; the analyzer goes with it
                pod, owner = proxy.name, PROXY_KIND
            groups.append(
                {
                    "targets": [address],
                    "labels": {
                        "namespace": namespace,
                        "component": owner,
                        "pod": pod,
                        "container": kind,
                        "service": owner,
                        "job": owner,
                    },
                }
            )
    if cadvisor is not None:
        groups.append({"targets": [cadvisor], "labels": {"job": CADVISOR_JOB}})
    return groups


def config(scrape_interval: str, targets_file: Path, rule_files: list[Path]) -> dict[str, Any]:
    """prometheus.yml: one job over the file_sd targets (their labels as given)."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "ims-testbed",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "metrics_path": "/metrics",
                "honor_labels": False,
                "file_sd_configs": [
                    {"files": [str(targets_file)], "refresh_interval": scrape_interval}
                ],
            }
        ],
    }


def command(prometheus: str, config_file: Path, data: Path, address: str) -> list[str]:
    return [
        prometheus,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={address}",
        # no --web.enable-lifecycle: nothing here uses /-/reload or /-/quit, and with it any
        # page in a browser on this machine could stop a run's Prometheus with a plain POST
    ]


# -- the proxies' CPU, as the kubelet's cAdvisor serves it ---------------------------------------


def cpu_seconds(component: Component) -> float | None:
    """CPU seconds the component's cgroup used so far (None without one, or unreadable)."""
    record = component.cgroup
    if record is None:
        return None
    group = cgroups.group_from_paths(
        component.name, record.millicores, record.paths, record.usage_file, record.usage_unit_ns
    )
    try:
        return group.usage_seconds()
    except (OSError, ValueError):
        return None


class CgroupCpuCollector(Collector):
    """container_cpu_usage_seconds_total{namespace,pod,container="sip-proxy"} from each
    proxy's cgroup, read at scrape time (the series the adapter's CPU rule reads)."""

    def __init__(self, state: Callable[[], TestbedState | None], namespace: str) -> None:
        self.state = state
        self.namespace = namespace

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "container_cpu_usage_seconds_total",
            "Cumulative CPU time of the container (its cgroup), in seconds",
            labels=["namespace", "pod", "container"],
        )
        state = self.state()
        for proxy in [] if state is None else state.of_kind(PROXY_KIND):
            used = cpu_seconds(proxy)
            if used is not None and math.isfinite(used):
                family.add_metric([self.namespace, proxy.name, PROXY_KIND], used)
        yield family


class CpuExporter:
    """The collector above on 127.0.0.1:<free port>, stopped with `stop`."""

    def __init__(self, state: Callable[[], TestbedState | None], namespace: str) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(CgroupCpuCollector(state, namespace))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        self._server, _thread = start_http_server(self.port, "127.0.0.1", self.registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# -- the query client ---------------------------------------------------------------------------


class PromQuery:
    """A thin client of /api/v1/query (instant vectors and scalars); the answers are read by
    the `prom_answer` library, as the in-cluster policy controller reads them."""

    def __init__(self, url: str, http: httpx.Client, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.http = http
        self.timeout = timeout

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        """The instant vector of `expr` (a value None: NaN or infinite)."""
        params = {"query": expr} | ({} if at is None else {"time": f"{at:.3f}"})
        try:
            response = self.http.get(
                f"{self.url}/api/v1/query", params=params, timeout=self.timeout
            )
            body = response.json()
        except httpx.HTTPError as exc:
            raise PrometheusError(f"unreachable ({type(exc).__name__})") from exc
        except ValueError:
            raise PrometheusError(f"HTTP {response.status_code}, answer is not JSON") from None
        with _naming(expr):
            return parse_answer(response.status_code, body)

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of `expr` (None: no series, or NaN as for no observations)."""
        series = self.query(expr, at)
        with _naming(expr):
            return single(series)

    def by_label(self, expr: str, label: str, at: float | None = None) -> dict[str, float | None]:
        return prom_answer.by_label(self.query(expr, at), label)

    def ready(self) -> bool:
        """Whether the server answers ready (/-/ready), as after replaying its WAL."""
        try:
            return self.http.get(f"{self.url}/-/ready", timeout=self.timeout).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def _naming(expr: str) -> Iterator[None]:
    """The library's error about an answer, as this module's error naming the query."""
    try:
        yield
    except prom_answer.PrometheusError as exc:
        raise PrometheusError(f"{expr}: {exc}") from None


def graph_link(url: str, expr: str, start: float, end: float) -> str:
    """Prometheus's graph page for `expr` over [start, end] (Unix seconds)."""
    span = max(1, math.ceil(end - start))
    end_input = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(math.ceil(end)))
    query = httpx.QueryParams(
        {
            "g0.expr": expr,
            "g0.tab": "0",
            "g0.range_input": f"{span}s",
            "g0.end_input": end_input,
        }
    )
    return f"{url.rstrip('/')}/graph?{query}"


# -- the process --------------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it dies, so a runner or
    `testbed prometheus` killed outright (SIGKILL, a wrapper that does not pass signals on)
    leaves no Prometheus behind."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalPrometheus:
    """Prometheus for one results folder: `<folder>/prometheus/` holds prometheus.yml, the
    targets, the rule file, its log and the TSDB (data/). Started with `start`, stopped by
    its PID with `stop` (always, by the runner's cleanup)."""

    def __init__(self, folder: Path, binary: str = "prometheus", port: int | None = None) -> None:
        self.folder = folder
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_file = folder / "prometheus.yml"
        self.targets_file = folder / "targets.json"
        self.rules_file = folder / "recording-rules.yaml"
        self.data = folder / "data"
        self.log = folder / "prometheus.log"
        self.handle: ProcessHandle | None = None
        self._targets_text: str | None = None

    def write_config(self, scrape_interval: str, rules_text: str | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        rules: list[Path] = []
        if rules_text is not None:
            self.rules_file.write_text(rules_text)
            rules.append(self.rules_file)
        if not self.targets_file.exists():
            self.set_targets([])
        text = yaml.safe_dump(config(scrape_interval, self.targets_file, rules), sort_keys=False)
        self.config_file.write_text(text)

    def set_targets(self, groups: list[dict[str, Any]]) -> bool:
        """Rewrite targets.json (atomically, as file_sd wants) when it changed."""
        text = json.dumps(groups, indent=1, sort_keys=True)
        if text == self._targets_text:
            return False
        partial = self.targets_file.with_suffix(".json.tmp")
        partial.write_text(text)
        os.replace(partial, self.targets_file)
        self._targets_text = text
        return True

    def start(self, http: httpx.Client) -> None:
        """Start it and wait until it answers ready; PrometheusError if it does not."""
        argv = command(self.binary, self.config_file, self.data, f"127.0.0.1:{self.port}")
        try:
            with processes.interrupts_held():  # stop() must find what was started
                self.handle = processes.spawn(
                    argv, os.environ, self.log, preexec=_die_with_parent, cwd=self.folder
                )
        except OSError as exc:
            raise PrometheusError(f"cannot start {self.binary}: {exc}") from None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.handle.alive():
                raise PrometheusError(
                    f"{self.binary} exited: {processes.tail(self.log, 5)} (log: {self.log})"
                )
            try:
                if http.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise PrometheusError(f"{self.binary} not ready within {READY_TIMEOUT_S:.0f} s")

    def stop(self) -> bool:
        """SIGTERM (Prometheus closes its head block cleanly), then SIGKILL."""
        if self.handle is None:
            return True
        stopped = processes.stop(self.handle, STOP_TIMEOUT_S)
        if stopped:
            self.handle = None
        return stopped


# -- serving a run's TSDB again -----------------------------------------------------------------


@dataclass(frozen=True)
class KeptRun:
    """A results folder's Prometheus: its TSDB and what summary.json says of the run."""

    folder: Path
    data: Path
    start: float | None
    end: float | None
    queries: list[dict[str, str]]


def kept_run(results: Path) -> KeptRun:
    """The TSDB a run kept; PrometheusError naming the folder when there is none."""
    data = results / "prometheus" / "data"
    if not results.is_dir():
        raise PrometheusError(f"{results}: no such results folder")
    if not data.is_dir():
        raise PrometheusError(
            f"{results}: no Prometheus TSDB (prometheus/data); only local runs keep one"
        )
    start = end = None
    queries: list[dict[str, str]] = []
    try:
        summary = json.loads((results / "summary.json").read_text())
        kept = summary.get("prometheus") or {}
        start, end = kept.get("start"), kept.get("end")
        queries = [q for q in kept.get("queries", []) if isinstance(q, dict)]
    except (OSError, ValueError, AttributeError):
        pass  # a run that died before its summary: the TSDB alone
    return KeptRun(results, data, start, end, queries)


def serve(
    run: KeptRun, port: int, http: httpx.Client, binary: str = "prometheus"
) -> LocalPrometheus:
    """Prometheus on 127.0.0.1:`port` over the run's TSDB, scraping nothing and evaluating no
    rules, so the data stay as the run left them; its configuration lives in a folder of its
    own beside the TSDB (prometheus/serve/)."""
    prometheus = LocalPrometheus(run.folder / "prometheus" / "serve", binary, port)
    prometheus.data = run.data
    prometheus.log = run.folder / "prometheus" / "serve.log"
    prometheus.folder.mkdir(parents=True, exist_ok=True)
    prometheus.config_file.write_text(
        yaml.safe_dump({"global": {"evaluation_interval": "1m"}, "scrape_configs": []})
    )
    prometheus.start(http)
    return prometheus
