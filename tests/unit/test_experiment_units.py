"""Experiment files, histogram percentiles and the summary metrics on crafted data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from support import ROOT

from testbed.experiment import histogram
from testbed.experiment.benchmark import load_benchmark
from testbed.experiment.spec import CapacityPlan, ExperimentError, load
from testbed.experiment.summary import summarize
from testbed.sample import Sample

METRICS = """\
# TYPE analyzer_sip_response_time_seconds histogram
analyzer_sip_response_time_seconds_bucket{pair="invite_forward",le="0.01"} 90.0
analyzer_sip_response_time_seconds_bucket{pair="invite_forward",le="0.1"} 99.0
analyzer_sip_response_time_seconds_bucket{pair="invite_forward",le="1.0"} 100.0
analyzer_sip_response_time_seconds_bucket{pair="invite_forward",le="+Inf"} 100.0
analyzer_sip_response_time_seconds_count{pair="invite_forward"} 100.0
analyzer_sip_response_time_seconds_bucket{pair="ok_forward",le="0.01"} 100.0
analyzer_sip_response_time_seconds_bucket{pair="ok_forward",le="0.1"} 100.0
analyzer_sip_response_time_seconds_bucket{pair="ok_forward",le="1.0"} 100.0
analyzer_sip_response_time_seconds_bucket{pair="ok_forward",le="+Inf"} 100.0
# TYPE analyzer_sip_messages_total counter
analyzer_sip_messages_total{direction="out",method="INVITE",status="200"} 42.0
analyzer_sip_messages_total{direction="in",method="INVITE",status="200"} 40.0
"""


def test_histogram_is_summed_over_label_sets_and_the_quantile_interpolates():
    buckets = histogram.parse_histogram(METRICS, "analyzer_sip_response_time_seconds")
    assert buckets == {0.01: 190.0, 0.1: 199.0, 1.0: 200.0, math.inf: 200.0}
    # rank 0.99 * 200 = 198 falls in (0.01, 0.1]: 8 of its 9 observations
    assert histogram.quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 8 / 9)
    assert histogram.quantile(0.5, buckets) == pytest.approx(0.01 * 100 / 190)
    assert histogram.quantile(0.99, {}) is None
    assert histogram.quantile(0.99, {1.0: 0.0, math.inf: 0.0}) is None
    # beyond the last finite bound Prometheus answers that bound
    assert histogram.quantile(0.99, {1.0: 1.0, math.inf: 100.0}) == 1.0


def test_window_difference_and_counter():
    old = {0.01: 10.0, math.inf: 10.0}
    new = {0.01: 15.0, math.inf: 30.0}
    assert histogram.difference(new, old) == {0.01: 5.0, math.inf: 20.0}
    assert (
        histogram.parse_counter(
            METRICS, "analyzer_sip_messages", {"direction": "out", "status": "200"}
        )
        == 42.0
    )


def _row(t: float, proxies: int, p99: float | None) -> Sample:
    return Sample(t_s=t, proxies=proxies, latency_percentile_ms=p99)


def test_summary_from_crafted_rows_and_calls():
    rows = [
        _row(0, 2, 10.0),
        _row(1, 2, 1500.0),
        _row(2, 3, None),
        _row(3, 3, 900.0),
        _row(4, 2, 2000.0),
    ]
    calls = [
        {"outcome": "succeeded", "final_status": 200},
        {"outcome": "succeeded", "final_status": 200},
        {"outcome": "failed", "final_status": 302},
        {"outcome": "failed", "final_status": 503},
    ]
    summary = summarize(rows, calls, undeliverable=3, p0_ms=1000, percentile=99)
    assert summary.windows == 4
    assert summary.p99_violation_share == 0.5
    assert summary.worst_p99_ms == 2000.0
    assert (summary.calls_attempted, summary.calls_succeeded, summary.calls_failed) == (4, 2, 2)
    assert summary.ser == pytest.approx(2 / 3)  # the 3xx is left out of the denominator
    assert summary.proxy_seconds == pytest.approx(2 + 2 + 3 + 3)
    assert summary.scaling_actions == 2
    assert summary.max_proxies == 3
    assert summary.calls_undeliverable == 3


def test_a_proxy_that_died_and_came_back_is_no_scaling_action_but_costs_nothing_while_dead():
    rows = [
        Sample(t_s=0, proxies=3, replicas=3, latency_percentile_ms=5.0),
        Sample(t_s=1, proxies=2, replicas=3, latency_percentile_ms=5.0),  # one crashed
        Sample(t_s=3, proxies=3, replicas=3, latency_percentile_ms=5.0),  # restarted
        Sample(t_s=4, proxies=4, replicas=4, latency_percentile_ms=5.0),  # scaled out
        Sample(t_s=5, proxies=4, replicas=4, latency_percentile_ms=5.0),
    ]
    summary = summarize(rows, [], undeliverable=0, p0_ms=1000, percentile=99)
    assert summary.scaling_actions == 1
    assert summary.proxy_seconds == pytest.approx(3 + 2 * 2 + 3 + 4)


def test_capacity_plan_is_the_papers_arithmetic():
    assert CapacityPlan(capacity_per_proxy=10).proxies_for(42) == 5  # 42/10 -> 5 proxies
    assert CapacityPlan(capacity_per_proxy=10).proxies_for(40) == 4
    assert CapacityPlan(capacity_per_proxy=10, headroom=0.8).proxies_for(40) == 5


def test_shipped_experiments_load(tmp_path: Path):
    folder = ROOT / "experiments"
    files = sorted(folder.glob("*.yaml"))
    assert {f.stem for f in files} >= {"demo"}
    for path in files:
        if path.stem.startswith("benchmark"):
            load_benchmark(path)  # the capacity benchmark's own format
        else:
            load(path)


def test_a_benchmark_takes_one_list_of_rates_or_a_list_per_limit(tmp_path: Path):
    path = tmp_path / "bench.yaml"
    path.write_text("cpu: [10m, 30m]\nrates: [2, 4]\n")
    shared = load_benchmark(path)
    assert shared.rates_for("10m") == shared.rates_for("30m") == [2.0, 4.0]

    path.write_text("cpu: [10m, 30m]\nrates: {10m: [1, 2], 30m: [8, 10, 12]}\n")
    per_limit = load_benchmark(path)
    assert per_limit.rates_for("10m") == [1.0, 2.0]
    assert per_limit.rates_for("30m") == [8.0, 10.0, 12.0]
    # and from the command line, as the docs show it
    overridden = load_benchmark(path, ["cpu=[20m]", "rates={20m: [4, 6]}"])
    assert overridden.rates_for("20m") == [4.0, 6.0]


BAD_BENCHMARKS = [
    ("cpu: [10m, 30m]\nrates: {10m: [1, 2]}\n", "no rates for 30m"),
    ("cpu: [10m]\nrates: {10m: [1], 20m: [4]}\n", "rates for 20m, which is not in cpu"),
    ("cpu: [10m]\nrates: {10m: []}\n", "no rate for 10m"),
    ("cpu: [10m]\nrates: []\n", "no rate for 10m"),
    ("cpu: [10m]\nrates: [2, 0]\n", "rates"),
]
BAD_EXPERIMENTS = [
    ("name: x\nscenario: {speed: 1}\n", "scenario: Value error, give exactly one of"),
    ("name: x\nscenario: {csv: a.csv}\nproxies: {count: 2, cpu: lots}\n", "CPU quantity 'lots'"),
    ("name: x\nscenario: {csv: a.csv}\nqos: {p0_ms: -1}\n", "qos.p0_ms"),
    ("name: x\nscenario: {csv: a.csv}\nsurprise: 1\n", "surprise"),
    ("- just a list\n", "mapping"),
    ("name: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize(
    ("loader", "text", "fragment"),
    [(load, *case) for case in BAD_EXPERIMENTS]
    + [(load_benchmark, *case) for case in BAD_BENCHMARKS],
)
def test_bad_experiment_and_benchmark_files_name_the_field(
    tmp_path: Path, loader: Any, text: str, fragment: str
):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError) as info:
        loader(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_set_overrides_fields_and_names_bad_paths(tmp_path: Path):
    path = tmp_path / "e.yaml"
    path.write_text(
        "name: x\nscenario: {generate: {shape: {kind: step, step_every_s: 300}}}\n"
        "proxies: {count: 2}\n"
    )
    experiment = load(
        path,
        ["scenario.generate.shape.step_every_s=120", "name=x-compressed", "qos.p0_ms=500"],
    )
    shape = experiment.scenario.generate.shape  # type: ignore[union-attr]
    assert shape.step_every_s == 120  # type: ignore[union-attr]
    assert experiment.name == "x-compressed"
    assert experiment.qos.p0_ms == 500
    with pytest.raises(ExperimentError, match="name is not a mapping"):
        load(path, ["name.first=1"])
    with pytest.raises(ExperimentError, match=r"KEY\.PATH=VALUE"):
        load(path, ["qos.p0_ms"])
    with pytest.raises(ExperimentError, match=r"qos\.p0_ms"):
        load(path, ["qos.p0_ms=-1"])


def test_set_reaches_into_the_hpa_file_and_its_lists(tmp_path: Path):
    (tmp_path / "hpa").mkdir()
    (tmp_path / "hpa" / "cpu.yaml").write_text(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n"
        "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: sip-proxy}\n"
        "  minReplicas: 2\n  maxReplicas: 6\n  metrics:\n  - type: Resource\n"
        "    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}\n"
    )
    path = tmp_path / "e.yaml"
    path.write_text(
        "name: x\nscenario: {generate: {shape: {kind: step, step_every_s: 300}}}\n"
        "proxies: {count: 2, cpu: 20m}\nautoscale: {policy: hpa, hpa_file: hpa/cpu.yaml}\n"
    )
    experiment = load(
        path,
        [
            "autoscale.hpa.spec.metrics.0.resource.target.averageUtilization=50",
            "autoscale.hpa.spec.behavior.scaleDown.stabilizationWindowSeconds=60",
        ],
    )
    autoscale = experiment.autoscale
    assert autoscale is not None
    assert autoscale.hpa_file is None  # the file's manifest, inline, with the two changes
    manifest = autoscale.hpa_manifest()
    assert manifest.spec.metrics[0].resource.target.averageUtilization == 50  # type: ignore[union-attr]
    assert manifest.spec.behavior.scaleDown.stabilizationWindowSeconds == 60  # type: ignore[union-attr]
    assert manifest.spec.maxReplicas == 6
    # without such an override the file stays a file
    assert load(path).autoscale.hpa_file == tmp_path / "hpa" / "cpu.yaml"  # type: ignore[union-attr]
    with pytest.raises(ExperimentError, match="is a list of 1: give an index from 0 to 0"):
        load(path, ["autoscale.hpa.spec.metrics.3.type=Pods"])


def test_a_benchmark_steps_through_each_limits_own_rates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The step loop with the runs replaced by folders a fake capacity decides (the real steps
    run in tests/test_run_reliability_e2e.py): each limit gets its own list, stops after two
    failing steps, and the capacity is per limit."""
    from testbed.experiment import benchmark as bench

    capacity = {"10m": 2.0, "30m": 10.0}
    tried: list[tuple[str, float]] = []

    def fake_run(experiment: Any, _csv: Any, root: Path, *_args: Any) -> Path:
        cpu, rate = experiment.proxies.cpu, experiment.scenario.generate.shape.rate
        tried.append((cpu, rate))
        folder = root / f"{cpu}-{rate:g}"
        folder.mkdir(parents=True)
        p99 = 50.0 if rate <= capacity[cpu] else 5000.0
        summary = {"status": "completed", "calls_attempted": 10, "calls_failed": 0}
        (folder / "summary.json").write_text(json.dumps(summary | {"calls_undeliverable": 0}))
        rows = [f"{100 + i},invite_forward,{p99}" for i in range(20)]
        (folder / "response_times.csv").write_text(
            "timestamp,pair,response_time_ms\n" + "\n".join(rows) + "\n"
        )
        return folder

    monkeypatch.setattr(bench, "run_experiment", fake_run)
    spec = bench.BenchmarkSpec(
        cpu=["10m", "30m"], rates={"10m": [1, 2, 3, 4, 5], "30m": [8, 10, 12, 14, 16]}, warmup_s=0
    )
    out = bench.run_benchmark(spec, tmp_path, lambda *_: None, folder_name="b")

    assert tried == [
        ("10m", 1.0), ("10m", 2.0), ("10m", 3.0), ("10m", 4.0),
        ("30m", 8.0), ("30m", 10.0), ("30m", 12.0), ("30m", 14.0),
    ]  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["capacity_calls_per_s"] == capacity

    # interrupted before its first 30m step: 10m keeps its capacity, 30m has none (not 0)
    capacity["30m"] = -1.0

    def interrupted_at_30m(experiment: Any, *args: Any) -> Path:
        if experiment.proxies.cpu == "30m":
            raise KeyboardInterrupt("SIGTERM")
        return fake_run(experiment, *args)

    monkeypatch.setattr(bench, "run_experiment", interrupted_at_30m)
    with pytest.raises(KeyboardInterrupt):
        bench.run_benchmark(spec, tmp_path, lambda *_: None, folder_name="cut")
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["capacity_calls_per_s"] == {"10m": 2.0}
