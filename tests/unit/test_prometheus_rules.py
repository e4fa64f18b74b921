"""Local mode's PromQL: the chart's rule text rendered and expanded as helm and
prometheus-adapter do, the run's Prometheus configuration and targets, the spec's check that
every window holds two scrapes. No sockets (the real Prometheus is in test_prometheus_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import ROOT

from testbed.experiment.spec import Experiment, ExperimentError, load
from testbed.local.prometheus import PrometheusError, config, kept_run, targets
from testbed.local.rules import (
    CPU_POD_METRIC,
    INVITE_RATE_METRIC,
    P99_BY_POD_RULE,
    P99_POD_METRIC,
    P99_RULE,
    RuleError,
    chart_queries,
    prometheus_duration,
    render,
    with_quantile,
)
from testbed.local.state import Component, TestbedState

CHART = ROOT / "helm" / "ims-testbed"


def exact_increase(selector: str, window: str) -> str:
    """Each bucket's increase over the window as the chart writes it (no rate() extrapolation;
    tests/integration/test_p99_rule_exact.py shows why, with promtool)."""
    return f"(last_over_time({selector}[{window}]) - min_over_time({selector}[{window}]))"


def test_recording_rules_render_with_the_window_and_namespace() -> None:
    queries = chart_queries(CHART, 12, "lab")
    assert queries.window == "12s"
    buckets = exact_increase('analyzer_sip_response_time_seconds_bucket{namespace="lab"}', "12s")
    assert queries.recorded[P99_RULE] == f"histogram_quantile(0.99, sum by (le) {buckets})"
    assert queries.recorded[P99_BY_POD_RULE] == (
        f"histogram_quantile(0.99, sum by (le, pod) {buckets})"
    )
    # the file Prometheus loads is the chart's file with the two actions replaced
    source = (CHART / "files" / "recording-rules.yaml").read_text()
    expected = source.replace("{{ .Release.Namespace }}", "lab").replace(
        "{{ .Values.metrics.window }}", "12s"
    )
    assert queries.rules_text == expected
    assert "{{" not in queries.rules_text


def test_adapter_placeholders_expand_as_the_adapter_expands_them() -> None:
    queries = chart_queries(CHART, 10, "local")
    pods = exact_increase(
        'analyzer_sip_response_time_seconds_bucket{namespace="local",pod=~"sip-proxy-0|sip-proxy-1"}',
        "10s",
    )
    assert queries.pods_query(P99_POD_METRIC, ["sip-proxy-1", "sip-proxy-0"]) == (
        f"histogram_quantile(0.99, sum({pods}) by (le, pod))"
    )
    assert queries.pods_query(CPU_POD_METRIC, ["sip-proxy-0"]) == (
        "sum(rate(container_cpu_usage_seconds_total"
        '{namespace="local",pod="sip-proxy-0",container="sip-proxy"}[10s])) by (pod)'
    )
    assert queries.external_query(INVITE_RATE_METRIC, {"component": "sip-loadb"}) == (
        'sum(rate(kamailio_script_new_invites{component="sip-loadb",namespace="local"}[10s])) by ()'
    )
    every = exact_increase('analyzer_sip_response_time_seconds_bucket{namespace="local"}', "10s")
    assert queries.keda_query("analyzer_sip_response_time_seconds_bucket") == (
        f"histogram_quantile(0.99, sum by (le) {every})"
    )


def test_windows_and_quantiles() -> None:
    assert prometheus_duration(30) == "30s"
    assert prometheus_duration(1.5) == "1500ms"
    with pytest.raises(ValueError, match="positive duration"):
        prometheus_duration(0)
    assert with_quantile("histogram_quantile(0.99, sum(x))", 0.95) == (
        "histogram_quantile(0.95, sum(x))"
    )
    with pytest.raises(RuleError):
        with_quantile("sum(x)", 0.95)


def test_an_action_local_mode_cannot_render_is_named() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml: local mode cannot render .*\.Values\.x"):
        render("rate(x[{{ .Values.x }}])", "5s", "local", "rules.yaml")
    assert render("rate(x[{{- .Values.metrics.window -}}])", "5s", "n", "f") == "rate(x[5s])"


def _component(name: str, kind: str, index: int | None, http: str) -> Component:
    return Component(name=name, kind=kind, index=index, endpoints={"http": http})


def test_targets_carry_the_service_monitors_labels() -> None:
    state = TestbedState(
        database_url="sqlite:///x",
        database_kind="sqlite",
        components=[
            _component("sip-loadb", "sip-loadb", None, "127.0.0.1:8060"),
            _component("sip-proxy-0", "sip-proxy", 0, "127.0.1.1:8080"),
            _component("analyzer-0", "analyzer", 0, "127.0.1.1:9101"),
            # an analyzer whose proxy has gone is not scraped
            _component("analyzer-1", "analyzer", 1, "127.0.1.2:9101"),
            _component("sip-client-00", "sip-client", 0, "127.0.2.1:8090"),
            Component(name="database", kind="database"),
        ],
    )
    groups = targets(state, "local", "127.0.0.1:9999")
    by_target = {g["targets"][0]: g["labels"] for g in groups}
    assert by_target["127.0.1.1:9101"] == {
        "namespace": "local",
        "component": "sip-proxy",
        "pod": "sip-proxy-0",
        "container": "analyzer",
        "service": "sip-proxy",
        "job": "sip-proxy",
    }
    assert by_target["127.0.0.1:8060"]["service"] == "sip-loadb"
    assert by_target["127.0.2.1:8090"]["pod"] == "sip-client-00"
    assert by_target["127.0.0.1:9999"] == {"job": "kubelet"}
    assert "127.0.1.2:9101" not in by_target
    assert len(groups) == 5


def test_prometheus_yml() -> None:
    data = config("5s", Path("/r/targets.json"), [Path("/r/rules.yaml")])
    assert data["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    assert data["rule_files"] == ["/r/rules.yaml"]
    job = data["scrape_configs"][0]
    assert job["file_sd_configs"] == [{"files": ["/r/targets.json"], "refresh_interval": "5s"}]
    yaml.safe_dump(data)  # serialisable as is


SCENARIO = {"generate": {"shape": {"kind": "constant", "rate": 1, "duration_s": 10}}}


def test_every_window_must_hold_two_scrapes(tmp_path: Path) -> None:
    assert (
        Experiment.model_validate({"name": "x", "scenario": SCENARIO}).metrics.scrape_interval_s
        == 5
    )
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "scenario": SCENARIO, "qos": {"window_s": 8}}))
    with pytest.raises(
        ExperimentError, match=r"e\.yaml: .*qos\.window_s \(8 s\) must hold at least two"
    ):
        load(path)
    assert load(path, ["metrics.scrape_interval_s=4"]).qos.window_s == 8
    autoscaled = {
        "name": "x",
        "scenario": SCENARIO,
        "autoscale": {
            "policy": "capacity",
            "capacity": {"capacity_per_proxy": 5},
            "metric_window_s": 6,
        },
    }
    path.write_text(yaml.safe_dump(autoscaled))
    with pytest.raises(ExperimentError, match=r"autoscale\.metric_window_s \(6 s\)"):
        load(path)
    with pytest.raises(ExperimentError, match="scrape_interval_s"):
        load(path, ["metrics.scrape_interval_s=0"])


def test_a_folder_without_a_tsdb_is_named(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match="no such results folder"):
        kept_run(tmp_path / "missing")
    with pytest.raises(PrometheusError, match=r"no Prometheus TSDB \(prometheus/data\)"):
        kept_run(tmp_path)
