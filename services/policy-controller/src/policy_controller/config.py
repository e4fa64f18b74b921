"""Settings of the controller, read from the environment (POLICY_CONTROLLER_HOST, ...: each
field's name in capitals, docs/configuration.md). The chart sets them (templates/
policy-controller.yaml): the Prometheus, the target, the replica bounds, the four queries
rendered from its own rules, their window and scrape interval; the policy's knobs come from
its `policyController.env`."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from scaling_policy.predictive import PredictiveSettings, lead_time
from service_kit import ServiceSettings

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# the library's share of the CPU limit above which a proxy's CPU per invite is read (the
# ceiling may not be below it)
CPU_MIN_SHARE = PredictiveSettings(p0_ms=1, knee_per_proxy=1, lead_time_s=0).cpu_min_share
# a StatefulSet's or Deployment's name: an RFC 1123 DNS label (its pods' names add to it)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class TargetKind(StrEnum):
    """The resource of apps/v1 whose scale subresource is set."""

    statefulsets = "statefulsets"
    deployments = "deployments"


class SettingsProblem(ValueError):
    """A setting that is well-formed but unusable here (a file it names is missing); str() is
    `VARIABLE: problem`."""


class Settings(ServiceSettings):
    listen_fields = ("policy_controller_host", "policy_controller_port")

    policy_controller_host: str = "127.0.0.1"
    policy_controller_port: int = Field(8095, gt=0, lt=65536)
    policy_controller_log_level: str = "info"

    # Prometheus and the four instant queries (the chart renders them from its own rules)
    policy_controller_prometheus_url: str = Field(
        description="the Prometheus to query, e.g. http://tb-prometheus:9090"
    )
    policy_controller_query_cpu: str = Field(
        min_length=1, description="cores used per proxy pod, `by (pod)`"
    )
    policy_controller_query_p99_by_pod: str = Field(
        min_length=1, description="the p99 response time per proxy pod, seconds, `by (pod)`"
    )
    policy_controller_query_p99: str = Field(
        min_length=1, description="the pool's p99 response time, one value, seconds"
    )
    policy_controller_query_invite_rate: str = Field(
        min_length=1, description="INVITEs/s at the load balancer, one value"
    )
    policy_controller_prometheus_timeout_s: float = Field(
        5.0, gt=0, description="a query's timeout"
    )

    # the Kubernetes API and the target's scale subresource
    policy_controller_kube_api: str = Field(
        "https://kubernetes.default.svc", description="the API server (https: the CA file's)"
    )
    policy_controller_kube_token_file: Path = Field(
        SERVICE_ACCOUNT_DIR / "token", description="bearer token, re-read when it changes"
    )
    policy_controller_kube_ca_file: Path = Field(
        SERVICE_ACCOUNT_DIR / "ca.crt", description="the API server's CA (an https API)"
    )
    policy_controller_namespace: str = Field(
        "", description="the target's namespace; empty: the service account's"
    )
    policy_controller_target_kind: TargetKind = Field(
        TargetKind.statefulsets, description="the target's resource in apps/v1"
    )
    policy_controller_target_name: str = Field(
        description="the proxies' StatefulSet (or Deployment)"
    )
    policy_controller_kube_timeout_s: float = Field(5.0, gt=0, description="a request's timeout")

    # the control loop
    policy_controller_min_replicas: int = Field(1, ge=1, le=1000, description="fewest proxies")
    policy_controller_max_replicas: int = Field(10, ge=1, le=1000, description="most proxies")
    policy_controller_sync_period_s: float = Field(
        15.0, gt=0, le=3600, description="one decision per period"
    )
    policy_controller_scrape_interval_s: float = Field(
        5.0, ge=0, le=600, description="Prometheus' scrape interval (for the lead time)"
    )
    policy_controller_metric_window_s: float = Field(
        30.0, gt=0, le=3600, description="the queries' rate window (for the lead time)"
    )
    policy_controller_startup_delay_s: float = Field(
        15.0, ge=0, le=600, description="a new proxy pod's start-up until it serves"
    )
    policy_controller_ready_delay_s: float = Field(
        0.0, ge=0, le=600, description="from start-up to taking traffic (for the lead time)"
    )
    policy_controller_dry_run: bool = Field(False, description="decide and export, never patch")

    # the predictive policy (scaling_policy.predictive.PredictiveSettings; docs/autoscaling.md)
    policy_controller_p0_ms: float = Field(500.0, gt=0, description="the p99 QoS target")
    policy_controller_knee_per_proxy: float = Field(
        gt=0, description="invites/s one proxy serves within P0 (the benchmark's): the hint"
    )
    policy_controller_target_share: float = Field(
        0.8, gt=0, le=1, description="of the knee each proxy is planned to carry"
    )
    policy_controller_calm_fraction: float = Field(
        0.3, gt=0, lt=1, description="p99 below this share of P0: calm (the knee may rise)"
    )
    policy_controller_breach_fraction: float = Field(
        0.6, gt=0, le=1, description="p99 above this share of P0: the knee is lower"
    )
    policy_controller_knee_raise: float = Field(
        0.05, ge=0, le=1, description="per calm sync near the target, the knee grows by this"
    )
    policy_controller_knee_cut: float = Field(
        0.9, gt=0, le=1, description="on a breach the knee becomes the rate per proxy times this"
    )
    policy_controller_knee_max_factor: float = Field(
        1.5, ge=1, description="the knee never grows past this many times the hint"
    )
    policy_controller_knee_min_factor: float = Field(
        0.5, gt=0, le=1, description="nor falls below this many times it"
    )
    policy_controller_cpu_trust_max: float = Field(
        1.1, ge=1, description="calm lifts the CPU's knee at most this many times"
    )
    policy_controller_calm_load_share: float = Field(
        0.8,
        gt=0,
        le=1,
        description="calm raises the knee only while proxies carry this share of their planned "
        "load (target_share of the knee)",
    )
    policy_controller_settle_s: float = Field(
        30.0, ge=0, description="a proxy's p99 counts this long after it was first seen"
    )
    policy_controller_trend_points: int = Field(
        4, ge=3, le=100, description="the rate's trend is fitted over this many syncs' scrapes"
    )
    policy_controller_scale_in_lead_times: float = Field(
        2.0, ge=1, description="scale-in looks back this many lead times"
    )
    # the knee measured from the CPU per invite (the chart sets the proxies' CPU limit)
    policy_controller_cpu_limit_cores: float | None = Field(
        None, gt=0, description="each proxy's CPU limit in cores; unset: no measured knee"
    )
    policy_controller_cpu_knee: bool = Field(
        True, description="also measure the knee from the CPU per invite (with the CPU limit)"
    )
    policy_controller_cpu_ceiling: float = Field(
        0.9, gt=0, le=1, description="of the CPU limit a proxy may use at the knee"
    )

    @field_validator("policy_controller_prometheus_url", "policy_controller_kube_api")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("give an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("policy_controller_target_name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("not a StatefulSet or Deployment name (a DNS label: a-z, 0-9, -)")
        return value

    @field_validator("policy_controller_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if value and not _NAME.fullmatch(value):
            raise ValueError("not a namespace name (a DNS label: a-z, 0-9, -)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.policy_controller_min_replicas > self.policy_controller_max_replicas:
            raise ValueError(
                "POLICY_CONTROLLER_MIN_REPLICAS must not exceed POLICY_CONTROLLER_MAX_REPLICAS"
            )
        if self.policy_controller_calm_fraction >= self.policy_controller_breach_fraction:
            raise ValueError(
                "POLICY_CONTROLLER_CALM_FRACTION must be below POLICY_CONTROLLER_BREACH_FRACTION"
            )
        if self.policy_controller_cpu_ceiling < CPU_MIN_SHARE:
            raise ValueError(
                f"POLICY_CONTROLLER_CPU_CEILING: must be at least {CPU_MIN_SHARE} (the share of "
                "the limit above which the policy reads a proxy's CPU per invite)"
            )
        return self

    @property
    def lead_time_s(self) -> float:
        """How far ahead the policy looks (scaling_policy.predictive.lead_time)."""
        return lead_time(
            self.policy_controller_startup_delay_s,
            self.policy_controller_ready_delay_s,
            self.policy_controller_scrape_interval_s,
            self.policy_controller_metric_window_s,
            self.policy_controller_sync_period_s,
        )

    def predictive(self) -> PredictiveSettings:
        return PredictiveSettings(
            p0_ms=self.policy_controller_p0_ms,
            knee_per_proxy=self.policy_controller_knee_per_proxy,
            lead_time_s=self.lead_time_s,
            target_share=self.policy_controller_target_share,
            calm_fraction=self.policy_controller_calm_fraction,
            breach_fraction=self.policy_controller_breach_fraction,
            knee_raise=self.policy_controller_knee_raise,
            knee_cut=self.policy_controller_knee_cut,
            knee_max_factor=self.policy_controller_knee_max_factor,
            knee_min_factor=self.policy_controller_knee_min_factor,
            cpu_trust_max=self.policy_controller_cpu_trust_max,
            calm_load_share=self.policy_controller_calm_load_share,
            settle_s=self.policy_controller_settle_s,
            trend_points=self.policy_controller_trend_points,
            scale_in_lead_times=self.policy_controller_scale_in_lead_times,
            # the queries' window: the rate climbs while it fills, which is no trend
            trend_after_s=self.policy_controller_metric_window_s,
            cpu_limit_cores=self.policy_controller_cpu_limit_cores
            if self.policy_controller_cpu_knee
            else None,
            cpu_ceiling=self.policy_controller_cpu_ceiling,
        )

    def namespace(self) -> str:
        """POLICY_CONTROLLER_NAMESPACE, or the service account's namespace file."""
        if self.policy_controller_namespace:
            return self.policy_controller_namespace
        path = SERVICE_ACCOUNT_DIR / "namespace"
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise SettingsProblem(
                f"POLICY_CONTROLLER_NAMESPACE: not set, and {path} cannot be read "
                f"({exc.strerror or exc}): give the target's namespace"
            ) from None
        if not _NAME.fullmatch(text):
            raise SettingsProblem(
                f"POLICY_CONTROLLER_NAMESPACE: not set, and {path} holds no namespace name"
            )
        return text

    def ca_file(self) -> Path | None:
        """The CA an https API is verified with (None: a plain-http API, a test's)."""
        if not self.policy_controller_kube_api.startswith("https://"):
            return None
        ca = self.policy_controller_kube_ca_file
        if not ca.is_file():
            raise SettingsProblem(
                f"POLICY_CONTROLLER_KUBE_CA_FILE: {ca} does not exist "
                f"(the API {self.policy_controller_kube_api} is https)"
            )
        return ca

    def check(self) -> list[str]:
        """What the settings name but the machine does not hold, one line each."""
        problems = []
        for check in (self.namespace, self.ca_file):
            try:
                check()
            except SettingsProblem as exc:
                problems.append(str(exc))
        return problems
