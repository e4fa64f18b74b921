"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2) algorithm, sans-I/O.

It reads the same manifest the Helm chart renders and follows the documented behaviour:

- per metric: desired = ceil(current * metric / target) (for AverageValue and Utilization over
  the ready pods; Value for Object; AverageValue for External: total / target); a ratio within
  the tolerance (0.1) keeps the current count; the largest proposal over the metrics wins, and
  if a metric could not be read the HPA may scale up but never down;
- pods without a metric, and pods not yet ready, are assumed to use 0 of the target when
  scaling up and 100% when scaling down, and the proposal is dropped if that reverses it;
- behavior: a stabilization window (scale down: the highest recommendation of the window; scale
  up: the lowest), rate policies (Pods / Percent per periodSeconds, selectPolicy Max / Min /
  Disabled) counted against the replicas at the start of each period, the defaults when
  behavior is absent, then min/max replicas.

Time comes in as `now` (seconds); nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from testbed.quantity import parse_quantity

TOLERANCE = 0.1

# -- the manifest (the parts the algorithm reads) ---------------------------------------------

# the chart's proxy container: what a ContainerResource metric may name in local mode
PROXY_CONTAINER = "sip-proxy"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class MetricTarget(_Spec):
    type: Literal["Utilization", "Value", "AverageValue"]
    averageUtilization: int | None = None
    value: str | float | None = None
    averageValue: str | float | None = None


class MetricIdentifier(_Spec):
    name: str


class ResourceMetric(_Spec):
    name: str
    target: MetricTarget


class ContainerResourceMetric(_Spec):
    name: str
    container: str
    target: MetricTarget


class PodsMetric(_Spec):
    metric: MetricIdentifier
    target: MetricTarget


class ObjectMetric(_Spec):
    metric: MetricIdentifier
    target: MetricTarget
    describedObject: dict[str, Any] = Field(default_factory=dict)


class ExternalMetric(_Spec):
    metric: MetricIdentifier
    target: MetricTarget


class MetricSpec(_Spec):
    type: Literal["Resource", "Pods", "Object", "External", "ContainerResource"]
    resource: ResourceMetric | None = None
    pods: PodsMetric | None = None
    object: ObjectMetric | None = None
    external: ExternalMetric | None = None
    containerResource: ContainerResourceMetric | None = None

    @model_validator(mode="after")
    def _local_container(self) -> MetricSpec:
        block = self.containerResource
        if block is not None and block.container != PROXY_CONTAINER:
            raise ValueError(
                f"containerResource.container: {block.container!r}; local mode measures "
                f"the {PROXY_CONTAINER!r} container (a proxy's cgroup)"
            )
        return self

    @property
    def key(self) -> str:
        """How metric values are looked up: 'Resource/cpu', 'Pods/<name>', ...; the proxy
        container's resource is what local mode measures for Resource: a proxy's cgroup."""
        if self.resource is not None:
            return f"Resource/{self.resource.name}"
        if self.containerResource is not None:
            return f"Resource/{self.containerResource.name}"
        inner = self.pods or self.object or self.external
        assert inner is not None, f"{self.type} metric without its block"
        return f"{self.type}/{inner.metric.name}"

    @property
    def target(self) -> MetricTarget:
        inner = self.resource or self.containerResource or self.pods or self.object or self.external
        assert inner is not None
        return inner.target


class HpaRatePolicy(_Spec):
    """One entry of behavior.scaleUp/scaleDown.policies (Kubernetes' HPAScalingPolicy): at most
    `value` pods or percent of change per `periodSeconds`. Not a testbed scaling policy
    (testbed.autoscale.policies.ScalingPolicy)."""

    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    periodSeconds: int = Field(gt=0, le=1800)


class HpaScalingRules(_Spec):
    """behavior.scaleUp or scaleDown (Kubernetes' HPAScalingRules): the stabilization window
    and the rate policies."""

    stabilizationWindowSeconds: int | None = Field(None, ge=0, le=3600)
    selectPolicy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[HpaRatePolicy] | None = None


class Behavior(_Spec):
    scaleUp: HpaScalingRules | None = None
    scaleDown: HpaScalingRules | None = None


class ScaleTargetRef(_Spec):
    apiVersion: str = "apps/v1"
    kind: str
    name: str


class HpaSpec(_Spec):
    scaleTargetRef: ScaleTargetRef
    minReplicas: int = Field(1, ge=1)
    maxReplicas: int = Field(ge=1)
    metrics: list[MetricSpec] = Field(default_factory=list)
    behavior: Behavior | None = None


class HpaManifest(_Spec):
    apiVersion: str = "autoscaling/v2"
    kind: Literal["HorizontalPodAutoscaler"] = "HorizontalPodAutoscaler"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: HpaSpec


# the defaults the documentation gives when behavior (or one direction of it) is absent
DEFAULT_SCALE_UP = HpaScalingRules(
    stabilizationWindowSeconds=0,
    selectPolicy="Max",
    policies=[
        HpaRatePolicy(type="Percent", value=100, periodSeconds=15),
        HpaRatePolicy(type="Pods", value=4, periodSeconds=15),
    ],
)
DEFAULT_SCALE_DOWN = HpaScalingRules(
    stabilizationWindowSeconds=300,
    selectPolicy="Max",
    policies=[HpaRatePolicy(type="Percent", value=100, periodSeconds=15)],
)


def quantity(value: str | float | None) -> float:
    """A metric target's Kubernetes quantity as a number ('10m' -> 0.01, '1k' -> 1000)."""
    if value is None:
        raise ValueError("a target needs a value")
    return parse_quantity(value)


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodMetrics:
    """Per-pod values of one Resource or Pods metric (None: no value for that pod yet), and
    for Resource Utilization the pods' requests."""

    values: dict[str, float | None]
    requests: dict[str, float] = field(default_factory=dict)
    # the pods counted as ready for this metric, when it differs from the HPA-wide set (CPU:
    # not before one metric window has passed since the pod became ready)
    ready: frozenset[str] | None = None


@dataclass(frozen=True)
class ScalarMetric:
    """An Object or External metric: one value."""

    value: float | None


MetricInput = PodMetrics | ScalarMetric


@dataclass(frozen=True)
class Decision:
    desired: int  # what the HPA sets
    raw: int  # the metrics' proposal before behavior and limits
    proposals: dict[str, int | None]  # per metric (None: unavailable)
    reason: str


class HorizontalPodAutoscaler:
    def __init__(self, manifest: HpaManifest | dict[str, Any]) -> None:
        self.manifest = (
            manifest if isinstance(manifest, HpaManifest) else HpaManifest.model_validate(manifest)
        )
        spec = self.manifest.spec
        if spec.minReplicas > spec.maxReplicas:
            raise ValueError(f"minReplicas {spec.minReplicas} > maxReplicas {spec.maxReplicas}")
        behavior = spec.behavior or Behavior()
        self.up = _merge(behavior.scaleUp, DEFAULT_SCALE_UP)
        self.down = _merge(behavior.scaleDown, DEFAULT_SCALE_DOWN)
        self._recommendations: deque[tuple[float, int]] = deque()
        self._events: deque[tuple[float, int]] = deque()  # (time, change) of past scalings
        self._seeded = False
        self._last_desired: int | None = None

    @property
    def spec(self) -> HpaSpec:
        return self.manifest.spec

    # -- metrics -----------------------------------------------------------------------------

    def _proposal(
        self, metric: MetricSpec, current: int, ready: set[str], data: MetricInput | None
    ) -> int | None:
        target = metric.target
        if isinstance(data, ScalarMetric) or metric.type in ("Object", "External"):
            if not isinstance(data, ScalarMetric) or data.value is None:
                return None
            if target.type == "AverageValue":  # External/Object per pod: total / target
                wanted = quantity(target.averageValue)
                ratio = data.value / (wanted * current) if current else math.inf
                return current if abs(ratio - 1) <= TOLERANCE else math.ceil(data.value / wanted)
            ratio = data.value / quantity(target.value)
            return current if abs(ratio - 1) <= TOLERANCE else math.ceil(ratio * current)
        if not isinstance(data, PodMetrics):
            return None
        usage_target = self._usage_target(metric, data)
        known = {pod: v for pod, v in data.values.items() if v is not None and pod in ready}
        if not known:
            return None
        usage = {pod: self._usage(metric, data, pod, v) for pod, v in known.items()}
        ratio = (sum(usage.values()) / len(usage)) / usage_target
        missing = [p for p, v in data.values.items() if v is None and p in ready]
        unready = [p for p in data.values if p not in ready]
        if not missing and not unready:
            return current if abs(ratio - 1) <= TOLERANCE else math.ceil(ratio * len(usage))
        if abs(ratio - 1) <= TOLERANCE and not missing:
            return current
        # the pods without a metric count as using nothing when scaling up and all of the
        # target when scaling down; not-ready pods count as nothing when scaling up
        fill = 0.0 if ratio > 1 else usage_target
        values = list(usage.values()) + [fill] * len(missing)
        if ratio > 1:
            values += [0.0] * len(unready)
        new_ratio = (sum(values) / len(values)) / usage_target
        if abs(new_ratio - 1) <= TOLERANCE or (new_ratio > 1) != (ratio > 1):
            return current
        proposal = math.ceil(new_ratio * len(values))
        # the filled-in pods must not turn the direction round
        if (new_ratio < 1 and proposal > current) or (new_ratio > 1 and proposal < current):
            return current
        return proposal

    @staticmethod
    def _usage_target(metric: MetricSpec, data: PodMetrics) -> float:
        target = metric.target
        if target.type == "Utilization":
            assert target.averageUtilization is not None
            return float(target.averageUtilization)
        return quantity(target.averageValue if target.type == "AverageValue" else target.value)

    @staticmethod
    def _usage(metric: MetricSpec, data: PodMetrics, pod: str, value: float) -> float:
        if metric.target.type == "Utilization":
            request = data.requests.get(pod)
            if not request:
                raise ValueError(f"{pod}: Utilization needs the pod's resource request")
            return 100 * value / request
        return value

    # -- behavior ----------------------------------------------------------------------------

    def _limit(self, rules: HpaScalingRules, current: int, now: float, up: bool) -> int:
        """How far the policies let the count go now (Kubernetes' calculateScale{Up,Down}Limit):
        each policy counts from the replicas at the start of its period."""
        if rules.selectPolicy == "Disabled":
            return current
        limits = []
        for policy in rules.policies or []:
            start = current - sum(c for t, c in self._events if t > now - policy.periodSeconds)
            if policy.type == "Pods":
                limit = start + policy.value if up else start - policy.value
            elif up:
                limit = math.ceil(start * (1 + policy.value / 100))
            else:
                limit = int(start * (1 - policy.value / 100))
            limits.append(limit)
        if not limits:
            return current
        # Max picks the policy allowing the largest change: the highest limit up, lowest down
        pick = max if (rules.selectPolicy == "Max") == up else min
        return pick(limits)

    def decide(
        self,
        now: float,
        current: int,
        metrics: Mapping[str, MetricInput | None],
        ready: set[str] | None = None,
    ) -> Decision:
        """One sync period: the replica count to set (may equal `current`)."""
        spec = self.spec
        # someone else changed the count since the last decision (a combined policy overruled
        # this one): the rate policies count that change too
        if self._last_desired is not None and current != self._last_desired:
            self._record_event(now, current - self._last_desired)
        proposals: dict[str, int | None] = {}
        for metric in spec.metrics:
            data = metrics.get(metric.key)
            if isinstance(data, PodMetrics) and data.ready is not None:
                ready_pods: set[str] = set(data.ready)
            elif ready is not None:
                ready_pods = ready
            else:
                ready_pods = set(data.values) if isinstance(data, PodMetrics) else set()
            proposals[metric.key] = self._proposal(metric, current, ready_pods, data)
        known = [p for p in proposals.values() if p is not None]
        # like the controller: current outside [min, max] is brought inside before any metric
        if current > spec.maxReplicas or current < spec.minReplicas:
            desired = min(max(current, spec.minReplicas), spec.maxReplicas)
            self._record_event(now, desired - current, desired)
            return Decision(desired, desired, proposals, "current count outside min/max")
        # all metrics invalid, or some invalid while the others would scale down: the
        # controller reports an error and changes nothing (and records no recommendation)
        if not known:
            self._last_desired = current
            return Decision(current, current, proposals, "no metric available")
        raw = max(known)
        if len(known) < len(proposals) and raw < current:
            self._last_desired = current
            return Decision(current, raw, proposals, "a metric is missing: no scale down")
        reason = "metrics"
        if not self._seeded:  # the controller starts the window with the current count
            self._recommendations.append((now, current))
            self._seeded = True
        # stabilization: the lowest recommendation of the scale-up window and the highest of
        # the scale-down window (this one included) bound the count
        up_cutoff = now - (self.up.stabilizationWindowSeconds or 0)
        down_cutoff = now - (self.down.stabilizationWindowSeconds or 0)
        up_rec = min([raw, *(r for t, r in self._recommendations if t > up_cutoff)])
        down_rec = max([raw, *(r for t, r in self._recommendations if t > down_cutoff)])
        self._recommendations.append((now, raw))
        while self._recommendations and self._recommendations[0][0] <= min(up_cutoff, down_cutoff):
            self._recommendations.popleft()
        desired = current
        if desired < up_rec:
            desired = up_rec
        if desired > down_rec:
            desired = down_rec
        # rate policies and min/max
        if desired > current:
            limit = max(self._limit(self.up, current, now, up=True), current)
            desired = min(desired, spec.maxReplicas, limit)
            reason += "; scale up" if desired > current else "; scale up held by policy"
        elif desired < current:
            limit = min(self._limit(self.down, current, now, up=False), current)
            desired = max(desired, spec.minReplicas, limit)
            reason += "; scale down" if desired < current else "; scale down held by policy"
        elif raw != current:
            reason += "; held by the stabilization window"
        self._record_event(now, desired - current, desired)
        return Decision(desired, raw, proposals, reason)

    def _record_event(self, now: float, change: int, decided: int | None = None) -> None:
        self._last_desired = decided
        if change:
            self._events.append((now, change))
        while self._events and self._events[0][0] < now - 1800:
            self._events.popleft()


def _merge(given: HpaScalingRules | None, default: HpaScalingRules) -> HpaScalingRules:
    if given is None:
        return default
    return HpaScalingRules(
        stabilizationWindowSeconds=(
            given.stabilizationWindowSeconds
            if given.stabilizationWindowSeconds is not None
            else default.stabilizationWindowSeconds
        ),
        selectPolicy=given.selectPolicy,
        policies=given.policies if given.policies is not None else default.policies,
    )
