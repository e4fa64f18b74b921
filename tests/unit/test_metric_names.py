"""Metric names say which service they come from, and every query reads a name that exists.

Each service's metrics start with its prefix (walked from a fresh registry of its metric
classes, from its app's registry, and from every metric its source code defines); every name
the chart's recording rules, prometheus-adapter rules, KEDA triggers and Grafana dashboard, the
samplers and the local autoscaler query is one a service, Kamailio or the cluster exports."""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from metric_catalog import (
    HTTP_METRICS,
    ROOT,
    SERVICES,
    Service,
    exported_metrics,
    families,
    promql_metric_names,
)
from prometheus_client import CollectorRegistry

CHART = ROOT / "helm" / "ims-testbed"
METRIC_TYPES = {
    "Counter",
    "Gauge",
    "Histogram",
    "Summary",
    "Info",
    "Enum",
    "CounterMetricFamily",
    "GaugeMetricFamily",
    "HistogramMetricFamily",
    "SummaryMetricFamily",
    "InfoMetricFamily",
}


def _ids(service: Service) -> str:
    return service.name


@pytest.mark.parametrize("service", SERVICES, ids=_ids)
def test_every_metric_a_service_registers_starts_with_its_prefix(service: Service) -> None:
    names = set(families(service.register))
    assert names, f"{service.name} registers no metric"
    assert not {n for n in names if not n.startswith(service.prefix)}, sorted(names)


@pytest.mark.parametrize("service", SERVICES, ids=_ids)
def test_a_services_app_registers_only_its_own_and_the_http_metrics(service: Service) -> None:
    """The app as it is served (default settings, a fresh registry, not started)."""
    package = service.name.replace("-", "_")
    module = importlib.import_module(f"{package}.main")
    registry = CollectorRegistry()
    # the defaults alone, whatever the environment holds (the policy controller's required
    # settings are unset), as the OpenAPI documents are made
    settings = importlib.import_module(f"{package}.config").Settings.model_construct()
    module.create_app(settings, registry=registry)
    names = {f.name for f in registry.collect()}
    assert names, f"{service.name}'s app registers no metric"
    strangers = {n for n in names if not n.startswith(service.prefix) and n not in HTTP_METRICS}
    assert not strangers, f"{service.name}: {sorted(strangers)}"


def _defined_metric_names(source: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of every prometheus_client metric a module defines with a literal name."""
    for node in ast.walk(ast.parse(source.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if (
            called in METRIC_TYPES
            and isinstance(first, ast.Constant)
            and isinstance(first.value, str)
        ):
            yield node.lineno, first.value


@pytest.mark.parametrize("service", SERVICES, ids=_ids)
def test_every_metric_in_a_services_code_has_its_prefix(service: Service) -> None:
    """Also the metrics no catalogued class registers: a new one anywhere in the service."""
    src = ROOT / "services" / service.name / "src"
    found = {
        f"{path.relative_to(ROOT)}:{line}": name
        for path in sorted(src.rglob("*.py"))
        for line, name in _defined_metric_names(path)
    }
    assert found, f"no metric found in {src}"
    wrong = {where: n for where, n in found.items() if not n.startswith(service.prefix)}
    assert not wrong, wrong
    registered = set(families(service.register))
    missing = {w: n for w, n in found.items() if n.removesuffix("_total") not in registered}
    assert not missing, f"defined but not in metric_catalog's registry: {missing}"


def test_the_prefixes_tell_the_services_apart() -> None:
    """No prefix starts another (sip_client_ vs sip_controller_ ...), so a name has one owner."""
    prefixes = [s.prefix for s in SERVICES]
    assert len(set(prefixes)) == len(prefixes)
    for a in prefixes:
        assert [b for b in prefixes if b.startswith(a)] == [a]


def test_promql_names_are_the_selected_series_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, pod) (rate(a_seconds_bucket{pod=~"x|y", le!=""}'
        "[$window]))) / ignoring(pod) group_left sum(b_total offset 5m) * 1000 > bool "
        'vector($p0) or on() ims:c_seconds:p99 unless count without (job) (d{job="by"})'
    )
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total", "ims:c_seconds:p99", "d"}


# -- every query of the chart, the dashboard and the code ----------------------------------------


def _dashboard_queries() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            yield from (t["expr"] for t in panel.get("targets", []) if t.get("expr"))

    return list(walk(json.loads((CHART / "dashboards" / "ims-testbed.json").read_text())["panels"]))


def _cluster_sampler_queries() -> list[str]:
    """The queries the cluster sampler asks its Prometheus (here answering empty vectors)."""
    from testbed.experiment.cluster_sampler import ClusterSampler
    from testbed.local.prometheus import PromQuery

    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/query":
            return httpx.Response(404)  # the scenario controller: not running here
        asked.append(request.url.params["query"])
        data = {"resultType": "vector", "result": []}
        return httpx.Response(200, json={"status": "success", "data": data})

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        sampler = ClusterSampler(
            PromQuery("http://prometheus:9090", http),
            http,
            "lab",
            window_s=10,
            percentile=99,
            scenario_url="http://127.0.0.1:9",
            replicas=lambda: 1,
        )
        sampler.sample()
    return asked


def _queries() -> dict[str, list[str]]:
    """Every PromQL expression the testbed ships, by where it is."""
    from testbed.autoscale.prom_metrics import PrometheusMetrics
    from testbed.local.rules import chart_queries

    chart = chart_queries(CHART, 30.0, "lab")
    adapter = [*chart.custom.values(), *chart.external.values()]
    autoscaler = PrometheusMetrics(None, chart, 15.0, print)  # type: ignore[arg-type]
    return {
        "recording rules": list(chart.recorded.values()),
        "prometheus-adapter seriesQuery": [r.series for r in adapter],
        "prometheus-adapter metricsQuery": [
            r.expand(['namespace="lab"', 'pod="sip-proxy-0"'], ["pod"]) for r in adapter
        ],
        "KEDA triggers": chart.keda,
        "Grafana dashboard": _dashboard_queries(),
        "local autoscaler": list(autoscaler.expressions(frozenset({"sip-proxy-0"})).values()),
        "cluster sampler": _cluster_sampler_queries(),
    }


def test_every_query_reads_a_metric_that_is_exported() -> None:
    known = exported_metrics()
    used: dict[str, str] = {}
    for where, exprs in _queries().items():
        assert exprs, f"no {where} found"
        for expr in exprs:
            used |= dict.fromkeys(promql_metric_names(expr), where)
    unknown = {name: where for name, where in used.items() if name not in known}
    assert not unknown, f"queried, but nothing exports them: {unknown}"
    # the figures the experiments are about are among them
    assert {
        "analyzer_sip_response_time_seconds_bucket",
        "analyzer_sip_messages_total",
        "kamailio_script_new_invites",
        "container_cpu_usage_seconds_total",
    } <= set(used)


def test_the_samplers_parse_the_analyzers_names() -> None:
    """The local sampler reads the analyzer's /metrics text by family name."""
    from testbed.experiment.sampler import HISTOGRAM, MESSAGES
    from testbed.local.rules import P99_BY_POD_RULE, P99_RULE, chart_queries

    analyzer = families(SERVICES[0].register)
    assert HISTOGRAM in analyzer
    assert MESSAGES in analyzer
    # the runner reads the p99 through these recording rules
    recorded = chart_queries(CHART, 30.0).recorded
    assert {P99_RULE, P99_BY_POD_RULE} <= set(recorded)
    assert all(f"{HISTOGRAM}_bucket" in recorded[r] for r in (P99_RULE, P99_BY_POD_RULE))
