"""The run's Prometheus without the SIP testbed: Debian's real Prometheus scraping a loopback
/metrics through file_sd, the chart's rules loaded, PromQL answers as the runner reads them,
a target added while it runs, and a stopped Prometheus counted as an unanswered source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from support import ROOT

from testbed.autoscale.prom_metrics import PrometheusMetrics
from testbed.experiment.sampler import PROMETHEUS, PromQuantiles, Sampler
from testbed.local.prometheus import (
    CpuExporter,
    LocalPrometheus,
    PrometheusError,
    PromQuery,
    free_port,
    kept_run,
    serve,
    targets,
)
from testbed.local.rules import LOCAL_NAMESPACE, P99_BY_POD_RULE, P99_RULE, chart_queries
from testbed.local.state import CgroupRecord, Component, TestbedState
from testbed.sample import ProxyReading, Sample

CHART = ROOT / "helm" / "ims-testbed"
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


class Analyzer:
    """A stand-in analyzer: the response-time histogram on a loopback /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "analyzer_sip_response_time_seconds",
            "test",
            ["pair"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.port = free_port()
        self.server, _thread = start_http_server(self.port, "127.0.0.1", self.registry)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _group(address: str, pod: str) -> dict[str, object]:
    labels = {"namespace": "local", "component": "sip-proxy", "pod": pod, "container": "analyzer"}
    return {"targets": [address], "labels": labels}


def _until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


@pytest.fixture
def analyzers() -> Iterator[list[Analyzer]]:
    made = [Analyzer(), Analyzer()]
    yield made
    for analyzer in made:
        analyzer.close()


def test_a_real_prometheus_answers_the_runners_queries(
    tmp_path: Path, analyzers: list[Analyzer]
) -> None:
    queries = chart_queries(CHART, 4)
    http = httpx.Client()
    prometheus = LocalPrometheus(tmp_path / "prometheus")
    prometheus.write_config("1s", queries.rules_text)
    prometheus.set_targets([_group(f"127.0.0.1:{analyzers[0].port}", "sip-proxy-0")])
    try:
        prometheus.start(http)
        client = PromQuery(prometheus.url, http)
        quantiles = PromQuantiles(
            client, queries.recorded[P99_RULE], queries.recorded[P99_BY_POD_RULE]
        )
        _until("the target is scraped", lambda: bool(client.query('up{pod="sip-proxy-0"} == 1')))
        # a second proxy joins: targets.json is rewritten, and it is scraped too
        assert prometheus.set_targets(
            [
                _group(f"127.0.0.1:{analyzers[0].port}", "sip-proxy-0"),
                _group(f"127.0.0.1:{analyzers[1].port}", "sip-proxy-1"),
            ]
        )
        assert not prometheus.set_targets(
            [
                _group(f"127.0.0.1:{analyzers[0].port}", "sip-proxy-0"),
                _group(f"127.0.0.1:{analyzers[1].port}", "sip-proxy-1"),
            ]
        )  # unchanged: not rewritten
        _until(
            "the new target is scraped", lambda: bool(client.query('up{pod="sip-proxy-1"} == 1'))
        )
        # proxy 0 answers in 1-2 ms, proxy 1 in 20-50 ms, steadily for a few seconds
        for _ in range(12):
            for i in range(100):
                analyzers[0].histogram.labels(pair="invite_challenge").observe(0.0015)
                analyzers[1].histogram.labels(pair="invite_forward").observe(0.03 + i * 1e-4)
            time.sleep(0.5)
        overall, by_pod = quantiles.read(time.time())
        # as histogram_quantile interpolates inside the bucket holding the rank
        assert by_pod["sip-proxy-0"] == pytest.approx(0.00199, abs=1e-5)
        assert by_pod["sip-proxy-1"] == pytest.approx(0.0497, abs=1e-4)
        assert overall is not None
        assert 0.02 < overall <= 0.05
        ran_at = time.time()
        # the recording rules are evaluated by the same Prometheus
        _until("the recording rule has a value", lambda: client.value(P99_RULE) is not None)
    finally:
        assert prometheus.stop()
    # stopped: the sampler counts it as a source that did not answer and leaves the cells empty
    sampler = Sampler(httpx.Client(), 4, 99, "http://127.0.0.1:1")
    assert sampler._promql(quantiles, time.time()) == (None, {})
    assert sampler.failures[PROMETHEUS] == 1
    assert "unreachable" in sampler.problems[PROMETHEUS]
    sampler.close()
    with pytest.raises(PrometheusError, match="unreachable"):
        client.query("up")
    http.close()

    # the kept TSDB, served again, still knows the run
    with httpx.Client() as again:
        served = serve(kept_run(tmp_path), free_port(), again)
        try:
            found = PromQuery(served.url, again).query('up{namespace="local"}', ran_at)
            assert {s.labels["pod"] for s in found} == {"sip-proxy-0", "sip-proxy-1"}
        finally:
            assert served.stop()


def test_a_prometheus_that_cannot_start_is_reported(tmp_path: Path) -> None:
    prometheus = LocalPrometheus(tmp_path / "prometheus", binary=str(tmp_path / "no-such"))
    prometheus.write_config("1s", None)
    with httpx.Client() as http, pytest.raises(PrometheusError, match="cannot start"):
        prometheus.start(http)


def _own_cpuacct_usage() -> Path:
    """The cpuacct.usage (cgroup v1) or cpu.stat (v2) of the group this test runs in."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return Path("/sys/fs/cgroup/cpuacct") / path.lstrip("/") / "cpuacct.usage"
        if controllers == "" and Path("/sys/fs/cgroup/cpu.stat").exists():
            return Path("/sys/fs/cgroup") / path.lstrip("/") / "cpu.stat"
    raise AssertionError("no CPU accounting cgroup for this process")


def test_the_autoscalers_inputs_come_from_the_adapters_queries(tmp_path: Path) -> None:
    usage = _own_cpuacct_usage()
    unit_ns = 1000 if usage.name == "cpu.stat" else 1
    lb_registry = CollectorRegistry()
    # Kamailio's xhttp_prom names its counters without _total, as a gauge here gives it
    invites = Gauge("kamailio_script_new_invites", "new INVITEs", registry=lb_registry)
    lb_port = free_port()
    lb_server, _thread = start_http_server(lb_port, "127.0.0.1", lb_registry)
    state = TestbedState(
        database_url="sqlite:///x",
        database_kind="sqlite",
        components=[
            Component(
                name="sip-loadb", kind="sip-loadb", endpoints={"http": f"127.0.0.1:{lb_port}"}
            ),
            # a proxy whose cgroup is this test's: its CPU grows while the test spins
            Component(
                name="sip-proxy-0",
                kind="sip-proxy",
                index=0,
                cgroup=CgroupRecord(
                    driver="v1",
                    millicores=None,
                    paths=[str(usage.parent)],
                    usage_file=str(usage),
                    usage_unit_ns=unit_ns,
                ),
            ),
        ],
    )
    exporter = CpuExporter(lambda: state, LOCAL_NAMESPACE)
    exporter.start()
    http = httpx.Client()
    prometheus = LocalPrometheus(tmp_path / "prometheus")
    prometheus.write_config("1s", None)
    prometheus.set_targets(targets(state, LOCAL_NAMESPACE, exporter.address))
    try:
        prometheus.start(http)
        client = PromQuery(prometheus.url, http)
        _until("both targets scraped", lambda: len(client.query("up == 1")) == 2)
        # 20 new INVITEs/s at the LB, and CPU burnt in this cgroup, for 6 s
        end = time.monotonic() + 6
        while time.monotonic() < end:
            invites.inc(2)
            spin = time.monotonic() + 0.05
            while time.monotonic() < spin:
                pass
            time.sleep(0.05)
        messages: list[str] = []
        metrics = PrometheusMetrics(client, chart_queries(CHART, 4), 30, messages.append)
        metrics.observe(1000.0, _sample())
        view = metrics.view()
        assert view is not None
        assert messages == []
        assert view.source == "prometheus"
        assert view.pods == {"sip-proxy-0"}
        assert view.invite_rate == pytest.approx(20, rel=0.25)
        cores = view.cpu_cores["sip-proxy-0"]
        assert cores is not None
        assert cores > 0.05  # at least the spinning half of every 0.1 s, less what else ran
        assert view.p99_all_s is None  # no response-time histogram was served
        # not due again before the scrape interval (30 s): the same view
        metrics.observe(1010.0, _sample())
        assert metrics.view() is view
    finally:
        assert prometheus.stop()
        exporter.stop()
        lb_server.shutdown()
        lb_server.server_close()
    # Prometheus gone: the view stays, the failure is reported
    metrics.observe(1100.0, _sample())
    assert metrics.view() is view
    assert metrics.failures == 1
    assert "Prometheus did not answer" in messages[0]
    http.close()


def _sample() -> Sample:
    """A sample now, with one proxy in the pool."""
    reading = ProxyReading("sip-proxy-0", cpu_mcpu=1.0)
    return Sample(t_s=0.0, proxies=1, time=time.time(), per_proxy=(reading,))
