"""The run's real Prometheus (Debian's), on the real local testbed: the PromQL p99 agrees with
the p99 of the raw response-time samples of the same window, the kept TSDB is served again by
`testbed prometheus`, and an autoscaler reads its inputs from Prometheus. Hold the machine's
testbed lock (flock /tmp/ims-testbed-itest.lock)."""

from __future__ import annotations

import bisect
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import own_addresses

from testbed.config import TestbedSettings
from testbed.experiment.runner import run_experiment
from testbed.experiment.sampler import HISTOGRAM
from testbed.experiment.spec import Experiment
from testbed.local.prometheus import LocalPrometheus, PromQuery, free_port, kept_run, serve

pytestmark = pytest.mark.integration

WINDOW_S = 10.0
CONSTANT = {
    "name": "prom-e2e",
    "scenario": {
        "generate": {
            "shape": {"kind": "constant", "rate": 15, "duration_s": 40},
            "pods": 2,
            "phones_per_pod": 10,
        },
        "hold_ms": 100,
    },
    "proxies": {"count": 2, "cpu": "100m"},
    "qos": {"p0_ms": 1000, "window_s": WINDOW_S},
    "metrics": {"scrape_interval_s": 2},
    "drain_s": 2,
}
AUTOSCALED = {
    "name": "prom-autoscale",
    "scenario": {
        "generate": {
            "shape": {"kind": "constant", "rate": 12, "duration_s": 35},
            "pods": 2,
            "phones_per_pod": 10,
        },
        "hold_ms": 0,
    },
    "proxies": {"count": 1, "cpu": "200m"},
    "autoscale": {
        "policy": "capacity",
        "capacity": {"capacity_per_proxy": 5, "headroom": 1.0},
        "min_replicas": 1,
        "max_replicas": 3,
        "sync_period_s": 4,
        "scrape_interval_s": 4,
        "metric_window_s": 8,
        "startup_delay_s": 0,
    },
    "qos": {"p0_ms": 1000, "window_s": 8},
    "metrics": {"scrape_interval_s": 2},
    "drain_s": 2,
}


def _settings() -> TestbedSettings:
    return TestbedSettings(**own_addresses(50))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prom")
    experiment = Experiment.model_validate(CONSTANT)
    return run_experiment(experiment, None, out, lambda _p, _r: None, _settings())


@pytest.fixture
def served(constant_run: Path) -> Iterator[tuple[PromQuery, LocalPrometheus]]:
    """The constant run's kept TSDB, served again as `testbed prometheus` serves it (one
    Prometheus at a time: it locks the TSDB)."""
    http = httpx.Client()
    server = serve(kept_run(constant_run), free_port(), http)
    try:
        yield PromQuery(server.url, http, timeout=10), server
    finally:
        assert server.stop()
        http.close()


def _bucket(bounds: list[float], value: float) -> int:
    """Index of the histogram bucket (le) holding `value`."""
    return bisect.bisect_left(bounds, value - 1e-12)


def _raw_p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def test_promql_p99_agrees_with_the_raw_samples_of_the_same_window(
    constant_run: Path, served: tuple[PromQuery, LocalPrometheus]
) -> None:
    client, _server = served
    summary = json.loads((constant_run / "summary.json").read_text())
    queries = {q["for"]: q["expr"] for q in summary["prometheus"]["queries"]}
    overall = queries["p99_ms"]
    assert "histogram_quantile(0.99" in overall
    assert f"[{WINDOW_S:.0f}s]" in overall
    # every response-time sample: when it was observed (the answer's time), where, how long
    samples = [
        (
            float(r["timestamp"]) + float(r["response_time_ms"]) / 1000,
            (r["proxy"], r["pair"]),
            float(r["response_time_ms"]),
        )
        for r in _rows(constant_run / "response_times.csv")
    ]
    series = _rows(constant_run / "timeseries.csv")
    checked = same = 0
    for row in series[int(WINDOW_S) + 2 :: 5]:
        if not row["p99_ms"] or row.get("run_state") not in ("running", "finished"):
            continue
        at = float(row["time"])
        # the run's column is Prometheus's answer at the row's time, asked live; asked again
        # now it can differ when a scrape begun before the row was stored after the live query
        # (Prometheus stamps samples with their scrape's start), so most rows, not all, agree
        again = client.value(overall, at)
        assert again is not None
        live = float(row["p99_ms"]) / 1000
        same += live == pytest.approx(again, rel=1e-9)
        # the scrapes rate() used: per analyzer and pair (one series each), the first and last
        # sample in the range
        scrapes = client.http.get(
            f"{client.url}/api/v1/query",
            params={
                "query": f'{HISTOGRAM}_count{{namespace="local"}}[{WINDOW_S:.0f}s]',
                "time": f"{at:.3f}",
            },
        ).json()["data"]["result"]
        assert {s["metric"]["pod"] for s in scrapes} == {"sip-proxy-0", "sip-proxy-1"}
        assert len(scrapes) > 2  # several pairs per proxy
        window: list[float] = []
        for found in scrapes:
            points = found["values"]
            first, last = float(points[0][0]), float(points[-1][0])
            counted = float(points[-1][1]) - float(points[0][1])
            series_of = (found["metric"]["pod"], found["metric"]["pair"])
            raw = [ms for t, where, ms in samples if where == series_of and first < t <= last]
            # the same samples: the histogram's count and the raw ones between the scrapes
            assert abs(len(raw) - counted) <= max(3, 0.05 * counted), (len(raw), counted)
            window += raw
        bounds = sorted(
            {
                float(s.labels["le"])
                for s in client.query(
                    'analyzer_sip_response_time_seconds_bucket{namespace="local"}', at
                )
            }
        )
        raw_p99 = _raw_p99(window) / 1000
        assert abs(_bucket(bounds, again) - _bucket(bounds, raw_p99)) <= 1, (
            f"t={row['t_s']}: PromQL {again * 1000:.2f} ms, raw {raw_p99 * 1000:.2f} ms "
            f"of {len(window)} samples"
        )
        checked += 1
    assert checked >= 4
    assert same >= checked / 2, f"{same} of {checked} rows are the re-asked answer"


def test_the_run_keeps_prometheus_and_its_queries(constant_run: Path) -> None:
    summary = json.loads((constant_run / "summary.json").read_text())
    kept = summary["prometheus"]
    assert kept["tsdb"] == "prometheus/data"
    assert kept["end"] - kept["start"] >= 40
    for query in kept["queries"]:
        assert query["graph"].startswith("http://127.0.0.1:9090/graph?g0.expr=")
    assert "Prometheus queries" in (constant_run / "report.html").read_text()
    # p99 columns filled once a window holds two scrapes; the first row's window is from before
    # the scenario, after the registrations had left it: no response times at all
    series = _rows(constant_run / "timeseries.csv")
    assert series[0]["p99_ms"] == ""
    assert sum(1 for r in series if r["p99_ms"] and r["sip-proxy-0.p99_ms"]) >= 25
    assert "prometheus" not in summary.get("unanswered_requests", {})
    # the run stopped its Prometheus: the TSDB is closed (no lock file left behind)
    assert not (constant_run / "prometheus" / "data" / "lock").exists()


def test_the_kept_tsdb_answers_rules_and_cpu(
    constant_run: Path, served: tuple[PromQuery, LocalPrometheus]
) -> None:
    client, _server = served
    kept = json.loads((constant_run / "summary.json").read_text())["prometheus"]
    middle = (kept["start"] + kept["end"]) / 2
    # every target was up, labelled as the ServiceMonitors label them
    up = client.query('up{namespace="local"}', middle)
    components = {(s.labels["component"], s.labels["container"]) for s in up}
    assert ("sip-proxy", "analyzer") in components
    assert ("sip-loadb", "sip-loadb") in components
    assert all(s.value == 1 for s in up)
    # the recording rules were evaluated; the CPU and the LB's rate are there
    assert client.value("ims_testbed:analyzer_sip_response_time_seconds:p99", middle) is not None
    rate = client.value("ims_testbed:sip_new_invites:rate", middle)
    assert rate == pytest.approx(15, rel=0.3)
    cpu = client.by_label("ims_testbed:sip_proxy_cpu_cores:rate_by_pod", "pod", middle)
    assert set(cpu) == {"sip-proxy-0", "sip-proxy-1"}
    assert all(v is not None and 0 < v < 0.2 for v in cpu.values())


def test_testbed_prometheus_serves_the_kept_tsdb(constant_run: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", "prometheus", str(constant_run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(lines)
        assert f"on http://127.0.0.1:{port}" in text, text
        assert "the run: " in text
        assert "p99_ms: histogram_quantile(0.99" in text
        kept = json.loads((constant_run / "summary.json").read_text())["prometheus"]
        with httpx.Client() as http:
            client = PromQuery(f"http://127.0.0.1:{port}", http, timeout=10)
            found = client.value(kept["queries"][0]["expr"], kept["end"] - 5)
            assert found is not None
            assert found > 0
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(30) == 0
        # it stopped its Prometheus: the port is free again
        with httpx.Client() as http, pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/-/ready", timeout=2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_testbed_prometheus_names_a_bad_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "prometheus", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no Prometheus TSDB (prometheus/data)" in done.stderr


def test_an_autoscaler_reads_its_inputs_from_prometheus(tmp_path: Path) -> None:
    experiment = Experiment.model_validate(AUTOSCALED)
    folder = run_experiment(experiment, None, tmp_path, lambda _p, _r: None, _settings())
    log = _rows(folder / "autoscaler.csv")
    read = [r for r in log if r["metrics_source"] == "prometheus" and r["invite_rate"]]
    assert len(read) >= 3, log
    assert max(int(r["target_after"]) for r in log) >= 2  # 12/s over 5/s per proxy
    summary = json.loads((folder / "summary.json").read_text())
    queries = {q["for"]: q["expr"] for q in summary["prometheus"]["queries"]}
    rate_query = queries["autoscaler invite_rate"]
    assert rate_query == (
        'sum(rate(kamailio_script_new_invites{component="sip-loadb",namespace="local"}[8s])) by ()'
    )
    # each input is what the kept TSDB answers to the adapter's query at that time
    with httpx.Client() as http:
        server = serve(kept_run(folder), free_port(), http)
        try:
            client = PromQuery(server.url, http, timeout=10)
            for row in read:
                at = float(row["metrics_time"])
                assert float(row["invite_rate"]) == pytest.approx(client.value(rate_query, at))
                pods: dict[str, Any] = json.loads(row["cpu_cores"])
                cpu_query = queries["autoscaler cpu_cores"].replace(
                    'pod="<pod>"', f'pod=~"{"|".join(sorted(pods))}"'
                )
                answered = client.by_label(cpu_query, "pod", at)
                for pod, value in pods.items():
                    assert value == pytest.approx(answered.get(pod)), (pod, row)
        finally:
            assert server.stop()
