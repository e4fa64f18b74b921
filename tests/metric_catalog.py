"""Every metric name the testbed's queries may read, from the code that exports it: each service's
metric classes in a fresh registry, the local autoscaler's gauges, Kamailio's xhttp_prom names
of the statistics the configs use, and what the cluster's own exporters serve. Shared by
tests/test_metric_names.py and the chart's dashboard and adapter tests (test_deploy_helm.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

ROOT = Path(__file__).resolve().parents[1]

# the standard HTTP metrics prometheus-fastapi-instrumentator adds to every service: their
# conventional names stay unprefixed (the `handler` label and the scrape's job tell them apart)
HTTP_METRICS = {
    "http_requests",
    "http_request_size_bytes",
    "http_response_size_bytes",
    "http_request_duration_seconds",
    "http_request_duration_highr_seconds",
}

# Kamailio core statistics the queries read, as xhttp_prom names them (kamailio_<group>_<name>,
# seen on Kamailio 5.6.3); the script's own counters come from the configs (kamailio_script)
KAMAILIO_CORE_METRICS = {
    "kamailio_core_rcv_requests_invite",
    "kamailio_core_rcv_requests_register",
}
# exported by the cluster's own exporters: cAdvisor (kubelet; local mode's stand-in is
# testbed.local.prometheus.CgroupCpuCollector) and kube-state-metrics
CLUSTER_METRICS = {
    "container_cpu_usage_seconds_total",
    "kube_pod_container_resource_limits",
    "kube_statefulset_status_replicas_ready",
    "kube_horizontalpodautoscaler_status_desired_replicas",
}
_SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


@dataclass(frozen=True)
class Service:
    name: str
    prefix: str
    register: Callable[[CollectorRegistry], None]  # its metric classes, into a fresh registry


def _analyzer(registry: CollectorRegistry) -> None:
    from analyzer.analysis import Analyzer
    from analyzer.capture import CaptureStats
    from analyzer.metrics import AnalyzerCollector, ResponseTimes
    from analyzer.samples import SampleStore

    store = SampleStore(10)
    times = ResponseTimes(registry, [0.1, 1.0])
    analyzer = Analyzer(("127.0.1.1", 5060), 32.0, store, times.observe)
    # a live capture that knows every figure, so every family is collected
    stats = CaptureStats("fast", "lo", True, 1, 2, 0, 0.001, False)
    registry.register(AnalyzerCollector(analyzer, store, lambda: stats))


def _sip_client(registry: CollectorRegistry) -> None:
    from sip_client.controller_link import LinkMetrics
    from sip_client.metrics import PodMetrics

    PodMetrics(registry)
    LinkMetrics(registry)


def _scenario_controller(registry: CollectorRegistry) -> None:
    from scenario_controller.metrics import ControllerMetrics

    ControllerMetrics(registry)


def _sip_controller(registry: CollectorRegistry) -> None:
    from sip_controller.metrics import ControllerMetrics

    ControllerMetrics(registry)


def _csvgen(registry: CollectorRegistry) -> None:
    from csvgen.metrics import CsvgenMetrics

    CsvgenMetrics(registry)


def _policy_controller(registry: CollectorRegistry) -> None:
    from policy_controller.metrics import PolicyControllerMetrics

    PolicyControllerMetrics(registry)


SERVICES = [
    Service("analyzer", "analyzer_", _analyzer),
    Service("sip-client", "sip_client_", _sip_client),
    Service("scenario-controller", "scenario_controller_", _scenario_controller),
    Service("sip-controller", "sip_controller_", _sip_controller),
    Service("csvgen", "csvgen_", _csvgen),
    Service("policy-controller", "policy_controller_", _policy_controller),
]


def families(register: Callable[[CollectorRegistry], None]) -> dict[str, set[str]]:
    """Metric family name -> the series names it exposes, from a fresh registry."""
    registry = CollectorRegistry()
    register(registry)
    found: dict[str, set[str]] = {}
    for family in registry.collect():
        series = {family.name + s for s in _SERIES_SUFFIXES.get(family.type, ("",))}
        found[family.name] = series | {s.name for s in family.samples}
    return found


def _autoscaler(registry: CollectorRegistry) -> None:
    from testbed.autoscale.exporter import AutoscalerMetrics

    AutoscalerMetrics(registry)


def _local_cadvisor(registry: CollectorRegistry) -> None:
    from testbed.local.prometheus import CgroupCpuCollector

    collector: Collector = CgroupCpuCollector(lambda: None, "local")
    registry.register(collector)


def kamailio_script_metrics() -> set[str]:
    """The counters the Kamailio configs declare (statistics module), as xhttp_prom names them."""
    names = set()
    for cfg in (ROOT / "kamailio").glob("*.cfg"):
        for variable in re.findall(
            r'modparam\("statistics",\s*"variable",\s*"([a-z0-9_]+)"\)', cfg.read_text()
        ):
            names.add(f"kamailio_script_{variable}")
    return names


def exported_metrics() -> set[str]:
    """Every series name the testbed exports and a query may read."""
    names: set[str] = set()
    for register in [*(s.register for s in SERVICES), _autoscaler, _local_cadvisor]:
        for series in families(register).values():
            names |= series
    return names | KAMAILIO_CORE_METRICS | kamailio_script_metrics() | CLUSTER_METRICS


# -- PromQL: the metric names an expression reads ----------------------------------------------

_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names a PromQL expression selects: identifiers that
    are neither functions, keywords, label names (in matchers or by/without lists) nor
    Grafana variables. Enough for the testbed's queries, not a PromQL parser."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range and subquery durations
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\$\{?\w+\}?", "", bare)  # Grafana's $window, $__rate_interval, $p0
    bare = re.sub(r"(?<![\w:])\d[\w.]*", "", bare)  # numbers and durations (offset 5m)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = match.group(0)
        rest = bare[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function, an aggregation or a keyword
        names.add(word)
    return names
