"""An experiment file's autoscale section: the scaling policy, its knobs and how the local
autoscaler runs it (docs/autoscaling.md). The experiment file (testbed.experiment.spec) holds
one; nothing here reads the rest of the experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from testbed.autoscale.hpa import HpaManifest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapacityPolicySpec(_Strict):
    capacity_per_proxy: float = Field(gt=0, description="invites/s one proxy serves within QoS")
    headroom: float = Field(0.9, gt=0, le=1)
    scale_down_window_s: float = Field(60.0, ge=0)


class QosPolicySpec(_Strict):
    """The QoS policy's knobs (P0 comes from qos.p0_ms); see docs/autoscaling.md."""

    up_fraction: float = Field(0.6, gt=0, le=1)
    down_fraction: float = Field(0.25, gt=0, lt=1)
    lookahead_s: float = Field(30.0, ge=0)
    up_cooldown_s: float = Field(20.0, ge=0)
    down_stable_s: float = Field(90.0, ge=0)
    down_load_fraction: float = Field(0.7, gt=0, le=1)
    breach_step_fraction: float = Field(0.5, gt=0, le=4)
    knee_per_proxy: float | None = Field(None, gt=0)
    settle_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> QosPolicySpec:
        if self.down_fraction >= self.up_fraction:
            raise ValueError("down_fraction must be below up_fraction")
        return self


class PredictivePolicySpec(_Strict):
    """The predictive policy's knobs (P0 from qos.p0_ms; the lead time is computed from the
    autoscaler's settings below); see docs/autoscaling.md."""

    knee_per_proxy: float = Field(
        gt=0, description="invites/s one proxy serves within P0 (the benchmark's capacity)"
    )
    target_share: float = Field(0.8, gt=0, le=1)
    calm_fraction: float = Field(0.3, gt=0, lt=1)
    breach_fraction: float = Field(0.6, gt=0, le=1)
    knee_raise: float = Field(0.05, ge=0, le=1)
    knee_cut: float = Field(0.9, gt=0, le=1)
    knee_max_factor: float = Field(1.5, ge=1)
    knee_min_factor: float = Field(0.5, gt=0, le=1)
    cpu_trust_max: float = Field(
        1.1, ge=1, description="calm lifts the CPU's knee at most this many times"
    )
    calm_load_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="calm raises the knee only while proxies carry this share of their "
        "planned load (target_share of the knee)",
    )
    settle_s: float = Field(30.0, ge=0)
    trend_points: int = Field(4, ge=3, le=100)
    scale_in_lead_times: float = Field(2.0, ge=1)
    cpu_knee: bool = Field(
        True, description="also measure the knee from CPU per invite (proxies with a CPU limit)"
    )
    cpu_ceiling: float = Field(0.9, gt=0, le=1, description="of the CPU limit, at the knee")
    ready_delay_s: float = Field(
        1.0, ge=0, description="from a pod's start-up to serving (a local proxy: about 1 s)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> PredictivePolicySpec:
        if self.calm_fraction >= self.breach_fraction:
            raise ValueError("calm_fraction must be below breach_fraction")
        return self


class AutoscaleSpec(_Strict):
    """A scaling policy and how the local autoscaler runs it."""

    policy: Literal["hpa", "capacity", "qos", "hybrid", "predictive"]
    hpa: dict[str, Any] | None = Field(None, description="an autoscaling/v2 HPA manifest")
    hpa_file: Path | None = Field(None, description="the same, from a YAML file")
    capacity: CapacityPolicySpec | None = None
    qos: QosPolicySpec = QosPolicySpec()
    predictive: PredictivePolicySpec | None = None
    min_replicas: int = Field(1, ge=1, description="capacity and qos (hpa: the manifest's)")
    max_replicas: int = Field(10, ge=1, le=100)
    sync_period_s: float = Field(15.0, gt=0, description="the HPA controller's sync period")
    scrape_interval_s: float = Field(30.0, ge=0, description="how stale the metrics may be")
    metric_window_s: float = Field(30.0, gt=0, description="CPU and rate averaging window")
    pod_management: Literal["ordered", "parallel"] = Field(
        "ordered", description="ordered: a StatefulSet (OrderedReady); parallel: a Deployment"
    )
    startup_delay_s: float = Field(
        5.0, ge=0, le=600, description="how long a new pod takes on a cluster before it serves"
    )

    @model_validator(mode="after")
    def _complete(self) -> AutoscaleSpec:
        if self.policy in ("hpa", "hybrid") and (self.hpa is None) == (self.hpa_file is None):
            raise ValueError(f"policy {self.policy} needs exactly one of hpa and hpa_file")
        if self.policy == "capacity" and self.capacity is None:
            raise ValueError("policy capacity needs capacity.capacity_per_proxy")
        if self.policy == "predictive" and self.predictive is None:
            raise ValueError("policy predictive needs predictive.knee_per_proxy")
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self

    def manifest(self) -> dict[str, Any]:
        if self.hpa is not None:
            return self.hpa
        assert self.hpa_file is not None
        data = yaml.safe_load(self.hpa_file.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self.hpa_file}: not an HPA manifest")
        return data

    def hpa_manifest(self) -> HpaManifest:
        """The HPA manifest (hpa or hpa_file) validated; a ValueError names what is wrong."""
        try:
            return HpaManifest.model_validate(self.manifest())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"HPA manifest: {problems}") from None
