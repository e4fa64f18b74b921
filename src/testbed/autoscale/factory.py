"""The policy an experiment's autoscale section asks for."""

from __future__ import annotations

from scaling_policy.policy import ScalingPolicy
from scaling_policy.predictive import PredictivePolicy, PredictiveSettings, lead_time
from testbed.autoscale.policies import (
    CapacityPolicy,
    HpaPolicy,
    HybridPolicy,
    QosPolicy,
    QosSettings,
)
from testbed.autoscale.spec import AutoscaleSpec


def _hpa(spec: AutoscaleSpec, proxy_millicores: int | None) -> HpaPolicy:
    # requests = limits, as in the paper's chart for the proxy container
    return HpaPolicy(
        spec.hpa_manifest(),
        cpu_request_cores=None if proxy_millicores is None else proxy_millicores / 1000,
        cpu_window_s=spec.metric_window_s,
    )


def build_policy(spec: AutoscaleSpec, p0_ms: float, proxy_millicores: int | None) -> ScalingPolicy:
    """`p0_ms`: the QoS target (qos.p0_ms); `proxy_millicores`: each proxy's CPU limit, which
    is its request for a CPU Utilization target (None: unlimited)."""
    qos = QosPolicy(
        QosSettings(p0_ms=p0_ms, **spec.qos.model_dump()),
        spec.min_replicas,
        spec.max_replicas,
    )
    if spec.policy == "hpa":
        return _hpa(spec, proxy_millicores)
    if spec.policy == "hybrid":
        return HybridPolicy(_hpa(spec, proxy_millicores), qos)
    if spec.policy == "qos":
        return qos
    if spec.policy == "predictive":
        return _predictive(spec, p0_ms, proxy_millicores)
    assert spec.capacity is not None
    return CapacityPolicy(
        spec.capacity.capacity_per_proxy,
        spec.capacity.headroom,
        spec.min_replicas,
        spec.max_replicas,
        spec.capacity.scale_down_window_s,
    )


def _predictive(
    spec: AutoscaleSpec, p0_ms: float, proxy_millicores: int | None
) -> PredictivePolicy:
    assert spec.predictive is not None
    knobs = spec.predictive.model_dump()
    ready_delay_s = knobs.pop("ready_delay_s")
    # the measured knee needs the limit the CPU is a share of
    measured = knobs.pop("cpu_knee") and proxy_millicores is not None
    knobs["cpu_limit_cores"] = proxy_millicores / 1000 if measured and proxy_millicores else None
    lead = lead_time(
        spec.startup_delay_s,
        ready_delay_s,
        spec.scrape_interval_s,
        spec.metric_window_s,
        spec.sync_period_s,
    )
    return PredictivePolicy(
        PredictiveSettings(
            p0_ms=p0_ms, lead_time_s=lead, trend_after_s=spec.metric_window_s, **knobs
        ),
        spec.min_replicas,
        spec.max_replicas,
    )
