"""The policy an experiment file asks for."""

from __future__ import annotations

from pydantic import ValidationError

from testbed.autoscale.hpa import HpaManifest
from testbed.autoscale.policies import (
    CapacityPolicy,
    HpaPolicy,
    HybridPolicy,
    QosPolicy,
    QosSettings,
    ScalingPolicy,
)
from testbed.experiment.spec import Experiment


def _hpa(experiment: Experiment) -> HpaPolicy:
    spec = experiment.autoscale
    assert spec is not None
    try:
        manifest = HpaManifest.model_validate(spec.manifest())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"HPA manifest: {problems}") from None
    millicores = experiment.proxies.millicores
    # requests = limits, as in the paper's chart for the proxy container
    return HpaPolicy(
        manifest,
        cpu_request_cores=None if millicores is None else millicores / 1000,
        cpu_window_s=spec.metric_window_s,
    )


def build_policy(experiment: Experiment) -> ScalingPolicy:
    spec = experiment.autoscale
    if spec is None:
        raise ValueError("the experiment has no autoscale section")
    qos = QosPolicy(
        QosSettings(p0_ms=experiment.qos.p0_ms, **spec.qos.model_dump()),
        spec.min_replicas,
        spec.max_replicas,
    )
    if spec.policy == "hpa":
        return _hpa(experiment)
    if spec.policy == "hybrid":
        return HybridPolicy(_hpa(experiment), qos)
    if spec.policy == "qos":
        return qos
    assert spec.capacity is not None
    return CapacityPolicy(
        spec.capacity.capacity_per_proxy,
        spec.capacity.headroom,
        spec.min_replicas,
        spec.max_replicas,
        spec.capacity.scale_down_window_s,
    )
