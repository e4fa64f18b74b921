"""Policies, the metric view and the control loop on synthetic metric streams (no testbed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from support import ROOT

from scaling_policy.policy import Readiness
from scaling_policy.view import MetricView
from testbed.autoscale.controller import Autoscaler
from testbed.autoscale.metrics import ScrapedMetrics
from testbed.autoscale.policies import (
    CapacityPolicy,
    HpaPolicy,
    HybridPolicy,
    QosPolicy,
    QosSettings,
)
from testbed.autoscale.scaler import ProxyScaler
from testbed.sample import ProxyReading, Sample


def view(
    t: float,
    p99_ms: float | None = None,
    rate: float | None = None,
    cpu_m: list[float] | None = None,
) -> MetricView:
    cpu = {f"sip-proxy-{i}": c / 1000 for i, c in enumerate(cpu_m or [])}
    return MetricView(
        time=t,
        cpu_cores=dict(cpu),
        p99_s={pod: None for pod in cpu},
        p99_all_s=None if p99_ms is None else p99_ms / 1000,
        invite_rate=rate,
        pods=frozenset(cpu),
    )


def ready(n: int, since: float = -1000.0) -> Readiness:
    return Readiness({f"sip-proxy-{i}": since for i in range(n)})


# -- metric view -------------------------------------------------------------------------------


def row(cpu: dict[int, float], p99: float | None, rate: float) -> Sample:
    proxies = tuple(
        ProxyReading(f"sip-proxy-{i}", cpu_mcpu=c, latency_percentile_ms=p99)
        for i, c in cpu.items()
    )
    return Sample(
        t_s=0.0,
        proxies=len(proxies),
        per_proxy=proxies,
        latency_percentile_ms=p99,
        lb_invites_per_s=rate,
    )


def test_scraped_metrics_hold_between_scrapes_and_average_over_the_window() -> None:
    metrics = ScrapedMetrics(scrape_interval_s=30, window_s=10)
    for t in range(0, 10):
        metrics.observe(float(t), row({0: 4.0, 1: 6.0}, 100.0, 10.0))
    first = metrics.view()
    assert first is not None
    assert first.time == 0.0
    assert first.cpu_cores == {"sip-proxy-0": 0.004, "sip-proxy-1": 0.006}
    for t in range(10, 30):
        metrics.observe(float(t), row({0: 20.0, 1: 20.0}, 900.0, 40.0))
    assert metrics.view() is first  # a cluster would still serve the old scrape
    metrics.observe(30.0, row({0: 20.0, 1: 20.0}, 900.0, 40.0))
    fresh = metrics.view()
    assert fresh is not None
    assert fresh.time == 30.0
    assert fresh.cpu_cores["sip-proxy-0"] == pytest.approx(0.020)  # only the last 10 s
    assert fresh.p99_all_s == pytest.approx(0.9)
    assert fresh.invite_rate == pytest.approx(40.0)


def test_scraped_metrics_skip_missing_values() -> None:
    metrics = ScrapedMetrics(scrape_interval_s=0, window_s=5)
    metrics.observe(0.0, Sample(t_s=0.0, proxies=1, per_proxy=(ProxyReading("sip-proxy-0"),)))
    v = metrics.view()
    assert v is not None
    assert v.cpu_cores == {"sip-proxy-0": None}
    assert v.p99_all_s is None
    assert v.invite_rate is None


# -- capacity ----------------------------------------------------------------------------------


def test_capacity_policy_up_at_once_down_after_the_window() -> None:
    policy = CapacityPolicy(
        10, headroom=1.0, min_replicas=1, max_replicas=8, scale_down_window_s=60
    )
    assert policy.recommend(0, 2, view(0, rate=35), ready(2)).desired == 4
    assert policy.recommend(15, 4, view(15, rate=12), ready(4)).desired == 4  # dip: held
    assert policy.recommend(45, 4, view(45, rate=12), ready(4)).desired == 4
    assert policy.recommend(61, 4, view(61, rate=12), ready(4)).desired == 2
    assert policy.recommend(70, 2, view(70, rate=500), ready(2)).desired == 8  # max
    assert policy.recommend(80, 2, None, ready(2)).desired == 2  # no data: hold


def test_capacity_policy_headroom() -> None:
    policy = CapacityPolicy(10, headroom=0.8)
    assert policy.recommend(0, 1, view(0, rate=16.5), ready(1)).desired == 3  # 16.5 / 8


# -- qos ---------------------------------------------------------------------------------------


def test_qos_scales_up_on_a_breach_and_fast_on_a_p0_breach() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000, up_cooldown_s=20), max_replicas=20)
    # under the margin (600 ms): nothing
    assert policy.recommend(0, 2, view(0, p99_ms=300, rate=20), ready(2)).desired == 2
    # past the margin: one more
    assert policy.recommend(15, 2, view(15, p99_ms=700, rate=22), ready(2)).desired == 3
    # still high 5 s later, while the third is starting: wait
    assert policy.recommend(20, 3, view(20, p99_ms=800, rate=22), ready(2)).desired == 3
    # above P0 itself: half as many again at once, and at least what the learned knee needs
    decision = policy.recommend(45, 4, view(45, p99_ms=1500, rate=24), ready(4))
    assert policy.knee_per_proxy == pytest.approx(6.0)  # min(22/2, 24/4)
    assert decision.desired == 6  # max(4 + 2, ceil(24 / (0.7 * 6)))


def test_qos_reacts_to_a_rising_trend_before_the_margin() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000, lookahead_s=30))
    readiness = ready(2)
    assert policy.recommend(0, 2, view(0, p99_ms=100, rate=10), readiness).desired == 2
    assert policy.recommend(15, 2, view(15, p99_ms=200, rate=10), readiness).desired == 2
    # 100 -> 200 -> 400 ms: the fit projects past 600 ms within 30 s
    decision = policy.recommend(30, 2, view(30, p99_ms=400, rate=10), readiness)
    assert decision.desired == 3
    assert "rising" in decision.reason


def test_qos_scales_down_slowly_and_not_past_the_knee() -> None:
    settings = QosSettings(p0_ms=1000, down_stable_s=60, knee_per_proxy=10.0)
    policy = QosPolicy(settings, min_replicas=1)
    t = 0.0
    current = 6
    changes = []
    # 21 invites/s with 6 proxies and a 10/s knee: 0.7 x 10 = 7 per proxy is safe -> 3 proxies
    while t < 600:
        new = policy.recommend(t, current, view(t, p99_ms=20, rate=21), ready(current)).desired
        if new != current:
            changes.append((t, new))
        current = new
        t += 15
    assert [c for _t, c in changes] == [5, 4, 3]
    gaps = [b[0] - a[0] for a, b in zip([(0.0, 6), *changes], changes, strict=False)]
    assert all(g >= 60 for g in gaps)  # one at a time, each after a calm minute


def test_qos_learns_the_knee_only_from_a_settled_pool_and_raises_it_when_calm() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000, settle_s=30))
    fresh = Readiness({"sip-proxy-0": 0.0, "sip-proxy-1": 95.0})  # the second started 5 s ago
    policy.recommend(100, 2, view(100, p99_ms=900, rate=4), fresh)
    assert policy.knee_per_proxy is None  # a breach while a proxy warms up says nothing
    policy.recommend(200, 2, view(200, p99_ms=900, rate=12), ready(2))
    assert policy.knee_per_proxy == pytest.approx(6.0)
    # later, calm (p99 under the down threshold) at 8 per proxy: the knee is at least 8
    policy.recommend(300, 3, view(300, p99_ms=20, rate=24), ready(3))
    assert policy.knee_per_proxy == pytest.approx(8.0)


def test_qos_holds_without_response_times() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000))
    assert policy.recommend(0, 3, None, ready(3)).desired == 3
    assert policy.recommend(15, 3, view(15), ready(3)).desired == 3


def test_qos_scales_up_when_the_rate_nears_the_learned_knee() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000, knee_per_proxy=10.0, up_cooldown_s=0))
    # p99 is fine, but 30/s on 3 proxies is past 0.7 x 10 each: ceil(30 / 7) = 5
    decision = policy.recommend(0, 3, view(0, p99_ms=50, rate=30), ready(3))
    assert decision.desired == 5
    assert "knee" in decision.reason


# -- hpa and hybrid ----------------------------------------------------------------------------

PAPER_HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "sip-proxy-hpa"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "sip-proxy"},
        "minReplicas": 2,
        "maxReplicas": 50,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "container_cpu_usage_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "10m"},
                },
            }
        ],
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 30,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
            },
        },
    },
}


def test_hpa_policy_reads_the_local_cpu_and_ignores_fresh_pods() -> None:
    policy = HpaPolicy(PAPER_HPA, cpu_request_cores=0.03, cpu_window_s=30)
    # three pods, the third ready only 10 s ago: its CPU is not counted yet and, scaling up,
    # it counts as 0: [20m, 20m, 0] -> 13.3m average -> ceil(1.33 * 3) = 4
    readiness = Readiness({"sip-proxy-0": 0.0, "sip-proxy-1": 0.0, "sip-proxy-2": 90.0})
    decision = policy.recommend(100, 3, view(100, cpu_m=[20, 20, 25]), readiness)
    assert decision.desired == 4
    # a proxy asked for and still pending counts as unready too
    policy = HpaPolicy(PAPER_HPA, cpu_request_cores=0.03)
    pending = Readiness({"sip-proxy-0": 0.0, "sip-proxy-1": 0.0}, frozenset({"sip-proxy-2"}))
    assert policy.recommend(100, 3, view(100, cpu_m=[20, 20]), pending).desired == 4


def test_hpa_policy_rejects_metrics_it_cannot_serve() -> None:
    bad = {
        **PAPER_HPA,
        "spec": {
            **PAPER_HPA["spec"],  # type: ignore[dict-item]
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "memory_bytes"},
                        "target": {"type": "AverageValue", "averageValue": "1k"},
                    },
                }
            ],
        },
    }
    with pytest.raises(ValueError, match="memory_bytes"):
        HpaPolicy(bad, cpu_request_cores=0.03)


def test_hybrid_goes_up_with_either_and_down_only_with_both() -> None:
    cpu = HpaPolicy(PAPER_HPA, cpu_request_cores=0.03)
    qos = QosPolicy(QosSettings(p0_ms=1000, knee_per_proxy=100.0, down_stable_s=0))
    hybrid = HybridPolicy(cpu, qos)
    # CPU calm (5m against 10m: wants fewer), p99 past the margin (wants more): up
    up = hybrid.recommend(0, 4, view(0, p99_ms=700, rate=10, cpu_m=[5] * 4), ready(4))
    # the breach at 2.5/s per proxy becomes the knee: 10/s needs ceil(10 / (0.7 x 2.5)) = 6
    assert qos.knee_per_proxy == pytest.approx(2.5)
    assert up.desired == 6
    # CPU high, p99 low: up on CPU (1 per 120 s)
    hybrid = HybridPolicy(
        HpaPolicy(PAPER_HPA, cpu_request_cores=0.03),
        QosPolicy(QosSettings(p0_ms=1000, knee_per_proxy=100.0, down_stable_s=0)),
    )
    assert hybrid.recommend(0, 4, view(0, p99_ms=5, rate=10, cpu_m=[30] * 4), ready(4)).desired == 5


def test_hybrid_scale_down_needs_both() -> None:
    cpu = HpaPolicy(PAPER_HPA, cpu_request_cores=0.03)
    qos = QosPolicy(QosSettings(p0_ms=1000, knee_per_proxy=100.0, down_stable_s=0))
    hybrid = HybridPolicy(cpu, qos)
    # CPU low, p99 inside the margin but not under the down threshold: qos holds -> hold
    for t in (0.0, 40.0, 80.0):
        decision = hybrid.recommend(t, 4, view(t, p99_ms=400, rate=5, cpu_m=[2] * 4), ready(4))
        assert decision.desired == 4
    # now p99 has headroom as well: one fewer (the HPA's down window of 30 s has passed)
    decision = hybrid.recommend(120.0, 4, view(120, p99_ms=10, rate=5, cpu_m=[2] * 4), ready(4))
    assert decision.desired == 3


# -- the control loop and the scaler -----------------------------------------------------------


def test_autoscaler_syncs_once_per_period() -> None:
    policy = CapacityPolicy(10, headroom=1.0, max_replicas=10)
    scaler = Autoscaler(policy, ScrapedMetrics(scrape_interval_s=0, window_s=1), 1, 15.0)
    events = []
    for t in range(0, 46):
        scaler.observe(float(t), Sample(t_s=float(t), proxies=1, lb_invites_per_s=35.0))
        event = scaler.sync(float(t), ready(scaler.target))
        if event is not None:
            events.append(event)
    assert [e.time for e in events] == [0.0, 15.0, 30.0, 45.0]
    assert events[0].current == 1
    assert events[0].desired == 4
    assert scaler.target == 4


def test_proxy_scaler_ordered_one_at_a_time_and_parallel_at_once() -> None:
    for mode, expected in (("ordered", [2, 3, 4, 3, 2]), ("parallel", [4, 2])):
        calls: list[int] = []
        done = threading.Event()

        def scale(n: int, calls: list[int] = calls, done: threading.Event = done) -> None:
            calls.append(n)
            if n == 2 and len(calls) > 1:
                done.set()

        scaler = ProxyScaler(scale, 1, mode=mode, startup_delay_s=0.0)  # type: ignore[arg-type]
        scaler.start()
        scaler.set_target(4)
        deadline = time.monotonic() + 5
        while scaler.replicas != 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert set(scaler.readiness().ready) == {f"sip-proxy-{i}" for i in range(4)}
        scaler.set_target(2)
        assert done.wait(5)
        scaler.stop()
        assert calls == expected, mode
        assert scaler.replicas == 2


def test_proxy_scaler_reports_pending_pods_and_survives_a_failed_scale() -> None:
    gate = threading.Event()
    errors: list[BaseException] = []

    def scale(n: int) -> None:
        gate.wait(5)
        if n == 3:
            raise RuntimeError("no room")

    scaler = ProxyScaler(scale, 1, mode="ordered", startup_delay_s=0.0, on_error=errors.append)
    scaler.start()
    scaler.set_target(3)
    deadline = time.monotonic() + 5
    while not scaler.readiness().pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scaler.readiness().pending == frozenset({"sip-proxy-1", "sip-proxy-2"})
    gate.set()
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    scaler.stop()
    assert [str(e) for e in errors] == ["no room"]
    assert scaler.replicas == 2  # the failed step left the count where it was


# -- experiment wiring -------------------------------------------------------------------------


def test_reaction_times_per_rise() -> None:
    from testbed.experiment.summary import reaction_times

    rows = [
        Sample(t_s=float(t), proxies=1 if t < 70 else (2 if t < 250 else 3)) for t in range(400)
    ]
    # rises at 60 (added at 70: 10 s), 180 (nothing before 300), 300 (already 3 at 250: none)
    assert reaction_times(rows, [60.0, 180.0, 240.0]) == (10.0, None, 10.0)


def test_autoscale_section_errors_name_the_field(tmp_path: Any) -> None:
    from pathlib import Path

    from testbed.experiment.spec import ExperimentError, load

    base = "name: x\nscenario: {generate: {shape: {kind: step}}}\nproxies: {count: 2}\n"
    cases = {
        "autoscale: {policy: hpa}\n": "needs exactly one of hpa and hpa_file",
        "autoscale: {policy: capacity}\n": "capacity_per_proxy",
        "autoscale: {policy: qos, qos: {up_fraction: 0.2, down_fraction: 0.3}}\n": "down_fraction",
        "autoscale: {policy: qos, min_replicas: 5, max_replicas: 2}\n": "min_replicas",
        "autoscale: {policy: hpa, hpa: {spec: {maxReplicas: 3}}}\n": "scaleTargetRef",
        "autoscale: {policy: hpa, hpa_file: nowhere.yaml}\n": "nowhere.yaml",
    }
    for extra, fragment in cases.items():
        path = Path(tmp_path) / "e.yaml"
        path.write_text(base + extra)
        with pytest.raises(ExperimentError, match=fragment):
            load(path)


def test_shipped_hpa_file_builds_the_papers_policy(tmp_path: Any) -> None:
    from pathlib import Path

    from testbed.autoscale.factory import build_policy
    from testbed.experiment.spec import load

    root = ROOT
    path = Path(tmp_path) / "e.yaml"
    path.write_text(
        "name: x\nscenario: {generate: {shape: {kind: step}}}\n"
        "proxies: {count: 2, cpu: 10m}\n"
        f"autoscale: {{policy: hpa, hpa_file: {root / 'experiments/hpa/paper-a7.yaml'}}}\n"
    )
    experiment = load(path)
    assert experiment.autoscale is not None
    policy = build_policy(experiment.autoscale, experiment.qos.p0_ms, experiment.proxies.millicores)
    assert isinstance(policy, HpaPolicy)
    assert (policy.min_replicas, policy.max_replicas) == (2, 50)
    assert policy.hpa.up.policies is not None
    assert policy.hpa.up.policies[0].periodSeconds == 120


def test_autoscaler_gauges_on_a_fresh_registry() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from testbed.autoscale.exporter import AutoscalerMetrics

    registry = CollectorRegistry()
    AutoscalerMetrics(registry).update("sip-proxy", 3, 5)
    text = generate_latest(registry).decode()
    assert 'testbed_replicas{component="sip-proxy"} 3.0' in text
    assert 'testbed_desired_replicas{component="sip-proxy"} 5.0' in text


def test_qos_never_scales_down_right_after_scaling_up() -> None:
    policy = QosPolicy(QosSettings(p0_ms=1000, down_stable_s=15, up_cooldown_s=0))
    assert policy.recommend(0, 2, view(0, p99_ms=50, rate=8), ready(2)).desired == 2
    # a rising trend adds one at 10 s
    policy.recommend(5, 2, view(5, p99_ms=150, rate=8), ready(2))
    up = policy.recommend(10, 2, view(10, p99_ms=450, rate=8), ready(2))
    assert up.desired == 3
    # calm again at once, while the third is starting, and for less than down_stable_s after
    assert policy.recommend(15, 3, view(15, p99_ms=5, rate=8), ready(2)).desired == 3
    assert policy.recommend(20, 3, view(20, p99_ms=5, rate=8), ready(3)).desired == 3
    assert policy.recommend(30, 3, view(30, p99_ms=5, rate=8), ready(3)).desired == 3
    assert policy.recommend(36, 3, view(36, p99_ms=5, rate=8), ready(3)).desired == 2


def test_proxy_scaler_retries_a_failed_step_until_it_succeeds() -> None:
    """The autoscaler says its target once; a step that fails (a proxy that did not come up)
    must be tried again, not forgotten with the target reset to what exists."""
    calls: list[int] = []
    errors: list[BaseException] = []

    def scale(n: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("sip-proxy-1 exited during start-up")

    scaler = ProxyScaler(
        scale, 1, mode="ordered", startup_delay_s=0.0, on_error=errors.append, retry_delay_s=0.2
    )
    scaler.start()
    scaler.set_target(2)
    deadline = time.monotonic() + 5
    while scaler.replicas != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    scaler.stop()
    assert [str(e) for e in errors] == ["sip-proxy-1 exited during start-up"]
    assert calls == [2, 2]
    assert scaler.replicas == 2
    assert set(scaler.readiness().ready) == {"sip-proxy-0", "sip-proxy-1"}
