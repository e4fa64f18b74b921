"""The HPA algorithm against the behaviour the Kubernetes documentation describes
(kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/); time is driven by hand."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from testbed.autoscale.hpa import (
    HorizontalPodAutoscaler,
    PodMetrics,
    ScalarMetric,
    quantity,
)

CPU = "Pods/container_cpu_usage_per_second"
P99 = "Pods/sip_response_time_p99_seconds"
RATE = "External/sip_invites_per_second"


def manifest(
    metrics: list[dict[str, Any]] | None = None,
    behavior: dict[str, Any] | None = None,
    min_replicas: int = 1,
    max_replicas: int = 10,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "sip-proxy"},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": metrics
        or [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "container_cpu_usage_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "10m"},
                },
            }
        ],
    }
    if behavior is not None:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": spec}


def pods(*values: float | None) -> PodMetrics:
    return PodMetrics({f"sip-proxy-{i}": v for i, v in enumerate(values)})


NO_WINDOWS = {
    "scaleUp": {"stabilizationWindowSeconds": 0},
    "scaleDown": {"stabilizationWindowSeconds": 0},
}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # desired = ceil(current * current metric / target)
        ((0.020,), 2),  # the documentation's 200m against 100m: double
        ((0.010, 0.030), 4),  # average 20m over 2 pods
        ((0.012, 0.013, 0.014), 4),  # ratio 1.3 -> ceil(3.9)
        ((0.0105, 0.0105), 2),  # ratio 1.05: inside the 0.1 tolerance, no change
        ((0.0091, 0.0091), 2),  # ratio 0.91: inside the tolerance
        ((0.0112, 0.0112), 3),  # ratio 1.12: outside, ceil(2.24)
        ((0.005, 0.005, 0.005, 0.005), 2),  # halve
        ((0.0, 0.0), 1),  # nothing used: down to minReplicas
    ],
)
def test_ratio_and_tolerance(values: tuple[float, ...], expected: int) -> None:
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    decision = hpa.decide(0.0, len(values), {CPU: pods(*values)})
    assert decision.desired == expected


def test_largest_proposal_over_several_metrics_wins() -> None:
    metrics = [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "container_cpu_usage_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10m"},
            },
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "sip_response_time_p99_seconds"},
                "target": {"type": "AverageValue", "averageValue": "500m"},
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {"name": "sip_invites_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10"},
            },
        },
    ]
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    decision = hpa.decide(
        0.0,
        2,
        {CPU: pods(0.010, 0.010), P99: pods(1.5, 1.5), RATE: ScalarMetric(45.0)},
    )
    assert decision.proposals == {CPU: 2, P99: 6, RATE: 5}
    assert decision.desired == 6


def test_missing_metric_allows_scale_up_but_never_down() -> None:
    metrics = [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "container_cpu_usage_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10m"},
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {"name": "sip_invites_per_second"},
                "target": {"type": "AverageValue", "averageValue": "10"},
            },
        },
    ]
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    up = hpa.decide(0.0, 2, {CPU: pods(0.03, 0.03), RATE: ScalarMetric(None)})
    assert up.desired == 6
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    down = hpa.decide(0.0, 4, {CPU: pods(0.001, 0.001, 0.001, 0.001), RATE: None})
    assert down.desired == 4
    assert "missing" in down.reason
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    assert hpa.decide(0.0, 3, {}).desired == 3


def test_pods_without_a_metric_count_as_zero_up_and_as_the_target_down() -> None:
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    # up: two pods at 2x the target, one without a value -> [20m, 20m, 0] averages 13.3m
    decision = hpa.decide(0.0, 3, {CPU: pods(0.020, 0.020, None)})
    assert decision.desired == 4
    # down: two pods at 2m, one missing counted at the target -> [2m, 2m, 10m] -> ceil(1.4*3)
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    decision = hpa.decide(0.0, 3, {CPU: pods(0.002, 0.002, None)})
    assert decision.desired == 2
    # the filled-in value cancels a small scale up: [12m, 12m, 0] is below the target
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    assert hpa.decide(0.0, 3, {CPU: pods(0.012, 0.012, None)}).desired == 3


def test_unready_pods_count_as_zero_when_scaling_up_and_are_ignored_down() -> None:
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    metric = PodMetrics(
        {"sip-proxy-0": 0.030, "sip-proxy-1": 0.030, "sip-proxy-2": None},
        ready=frozenset({"sip-proxy-0", "sip-proxy-1"}),
    )
    # [30m, 30m] would ask for 6; with the starting pod at 0: 20m average over 3 -> 6
    assert hpa.decide(0.0, 3, {CPU: metric}).desired == 6
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS))
    metric = PodMetrics(
        {"sip-proxy-0": 0.002, "sip-proxy-1": 0.002, "sip-proxy-2": 0.050},
        ready=frozenset({"sip-proxy-0", "sip-proxy-1"}),
    )
    # scaling down: the unready pod's (high) value is left out
    assert hpa.decide(0.0, 3, {CPU: metric}).desired == 1


def test_default_scale_down_window_keeps_the_highest_recommendation_for_300_s() -> None:
    hpa = HorizontalPodAutoscaler(manifest())  # no behavior: the documented defaults
    low = {CPU: pods(0.002, 0.002, 0.002, 0.002)}
    # the controller starts the window with the current count: no scale down for 300 s
    assert hpa.decide(0.0, 4, low).desired == 4
    for t in range(15, 300, 15):
        assert hpa.decide(float(t), 4, low).desired == 4, t
    assert hpa.decide(300.0, 4, low).desired == 1


def test_stabilization_picks_the_highest_recommendation_in_the_window() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "policies": [{"type": "Pods", "value": 10, "periodSeconds": 15}],
        }
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=behavior))
    current = 6
    seen = []
    # raw recommendations every 15 s from t=15: 5, 3, 4, 2, 2 ... after the seed (6 at t=15)
    for t, value in enumerate((0.0083, 0.005, 0.0066, 0.0033, 0.0033, 0.0033, 0.0033, 0.0033)):
        current = hpa.decide(15.0 * (t + 1), current, {CPU: pods(*[value] * current)}).desired
        seen.append(current)
    # t=60: the seed 6 is still inside (15, 60]; t=75: the highest of 3, 4, 2, 2 is 4;
    # t=105: only 2s are left
    assert seen == [6, 6, 6, 6, 4, 4, 2, 2]


def test_scale_up_defaults_double_or_add_four_per_15_s() -> None:
    hpa = HorizontalPodAutoscaler(manifest(max_replicas=50))
    # from 1 wanting 20: max(1 + 4, 1 * 2) = 5
    assert hpa.decide(0.0, 1, {CPU: pods(0.200)}).desired == 5
    # 10 s later the period still starts at 1: no more
    assert hpa.decide(10.0, 5, {CPU: pods(*[0.040] * 5)}).desired == 5
    # 15 s after the first change: from 5, max(5 + 4, 10) = 10
    assert hpa.decide(15.0, 5, {CPU: pods(*[0.040] * 5)}).desired == 10


def test_paper_policy_one_proxy_per_120_s() -> None:
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
            "selectPolicy": "Max",
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 30,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
            "selectPolicy": "Max",
        },
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=behavior, min_replicas=2, max_replicas=50))
    high = {CPU: pods(0.030, 0.030)}
    # scale up window 30 s: the lowest recommendation of the last 30 s (the seed, 2) holds
    assert hpa.decide(0.0, 2, high).desired == 2
    assert hpa.decide(15.0, 2, high).desired == 2
    assert hpa.decide(30.0, 2, high).desired == 3  # the seed left the window: one pod
    current = 3
    times = []
    for t in range(45, 600, 15):
        new = hpa.decide(float(t), current, {CPU: pods(*[0.030] * current)}).desired
        if new != current:
            times.append(t)
        current = new
    assert times[:3] == [150, 270, 390]  # one more every 120 s
    assert all(b - a == 120 for a, b in itertools.pairwise(times))


def test_select_policy_min_and_disabled() -> None:
    policies = [
        {"type": "Pods", "value": 1, "periodSeconds": 60},
        {"type": "Percent", "value": 100, "periodSeconds": 60},
    ]
    up_min = {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": policies, "selectPolicy": "Min"}
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=up_min))
    assert hpa.decide(0.0, 4, {CPU: pods(*[0.050] * 4)}).desired == 5  # min(4+1, 8)
    up_max = {
        "scaleUp": {"stabilizationWindowSeconds": 0, "policies": policies, "selectPolicy": "Max"}
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=up_max))
    assert hpa.decide(0.0, 4, {CPU: pods(*[0.050] * 4)}).desired == 8  # max(4+1, 8)
    disabled = {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": 0, "selectPolicy": "Disabled"},
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=disabled))
    assert hpa.decide(0.0, 4, {CPU: pods(*[0.001] * 4)}).desired == 4
    # up still works, under the default scale-up policies: max(4 + 4, 4 * 2)
    assert hpa.decide(1.0, 4, {CPU: pods(*[0.050] * 4)}).desired == 8


def test_scale_down_percent_policy_counts_from_the_period_start() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
        }
    }
    hpa = HorizontalPodAutoscaler(manifest(behavior=behavior))
    assert hpa.decide(0.0, 8, {CPU: pods(*[0.001] * 8)}).desired == 4
    # within the same 60 s the start is still 8: 8 * 0.5 = 4, no further
    assert hpa.decide(30.0, 4, {CPU: pods(*[0.001] * 4)}).desired == 4
    assert hpa.decide(61.0, 4, {CPU: pods(*[0.001] * 4)}).desired == 2


def test_min_and_max_clamp() -> None:
    hpa = HorizontalPodAutoscaler(manifest(behavior=NO_WINDOWS, min_replicas=2, max_replicas=5))
    assert hpa.decide(0.0, 3, {CPU: pods(*[0.100] * 3)}).desired == 5
    assert hpa.decide(1.0, 3, {CPU: pods(*[0.0] * 3)}).desired == 2
    # a count outside the range is brought inside whatever the metrics say
    assert hpa.decide(2.0, 9, {CPU: pods(*[0.100] * 9)}).desired == 5
    assert hpa.decide(3.0, 1, {}).desired == 2


def test_utilization_is_a_share_of_the_request() -> None:
    metrics = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    usage = PodMetrics(
        {"sip-proxy-0": 0.009, "sip-proxy-1": 0.009}, {"sip-proxy-0": 0.01, "sip-proxy-1": 0.01}
    )
    # 90% of the request against 50% -> ceil(1.8 * 2)
    assert hpa.decide(0.0, 2, {"Resource/cpu": usage}).desired == 4
    with pytest.raises(ValueError, match="request"):
        hpa.decide(1.0, 2, {"Resource/cpu": PodMetrics({"sip-proxy-0": 0.01})})


def test_the_proxy_containers_cpu_is_what_local_mode_measures() -> None:
    def container_cpu(container: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "ContainerResource",
                "containerResource": {
                    "name": "cpu",
                    "container": container,
                    "target": {"type": "AverageValue", "averageValue": "10m"},
                },
            }
        ]

    hpa = HorizontalPodAutoscaler(manifest(container_cpu("sip-proxy"), NO_WINDOWS))
    # idle proxies at 2m each against 10m: in to one (the pods' 7m with the sidecar would not)
    assert hpa.decide(0.0, 3, {"Resource/cpu": pods(0.002, 0.002, 0.002)}).desired == 1
    assert hpa.decide(1.0, 1, {"Resource/cpu": pods(0.025)}).desired == 3
    with pytest.raises(ValueError, match=r"containerResource\.container: 'analyzer'"):
        HorizontalPodAutoscaler(manifest(container_cpu("analyzer"), NO_WINDOWS))


def test_object_value_target() -> None:
    metrics = [
        {
            "type": "Object",
            "object": {
                "metric": {"name": "sip_invites_per_second"},
                "describedObject": {"kind": "Service", "name": "sip-loadb"},
                "target": {"type": "Value", "value": "20"},
            },
        }
    ]
    hpa = HorizontalPodAutoscaler(manifest(metrics, NO_WINDOWS))
    # Value: ratio of the object's value to the target times the current count
    assert hpa.decide(0.0, 2, {"Object/sip_invites_per_second": ScalarMetric(50.0)}).desired == 5


def test_manifest_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="minReplicas"):
        HorizontalPodAutoscaler(manifest(min_replicas=5, max_replicas=2))
    with pytest.raises(ValueError, match="periodSeconds"):
        HorizontalPodAutoscaler(
            manifest(
                behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 1}]}},
            )
        )


@pytest.mark.parametrize(
    ("text", "value"),
    [("10m", 0.01), ("1500m", 1.5), ("2", 2.0), ("1k", 1000.0), ("250u", 0.00025), (3, 3.0)],
)
def test_quantities(text: str | int, value: float) -> None:
    assert quantity(text) == pytest.approx(value)
