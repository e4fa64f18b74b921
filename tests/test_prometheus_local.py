"""The run's Prometheus without the SIP testbed: Debian's real Prometheus scraping a loopback
/metrics through file_sd, the chart's rules loaded, PromQL answers as the runner reads them,
a target added while it runs, and a stopped Prometheus counted as an unanswered source."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from testbed.experiment.sampler import PROMETHEUS, PromQuantiles, Sampler
from testbed.local.prometheus import (
    LocalPrometheus,
    PrometheusError,
    PromQuery,
    free_port,
    kept_run,
    serve,
)
from testbed.local.rules import P99_BY_POD_RULE, P99_RULE, chart_queries

CHART = Path(__file__).resolve().parents[1] / "helm" / "ims-testbed"
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


class Analyzer:
    """A stand-in analyzer: the response-time histogram on a loopback /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "sip_response_time_seconds", "test", ["pair"], buckets=BUCKETS, registry=self.registry
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
