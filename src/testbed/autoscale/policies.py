"""Scaling policies behind one interface: Kubernetes' HPA, and the policies the paper's summary
asks for (capacity-based, QoS-aware, and CPU combined with QoS).

Every policy gets the time, the replica count the scaler is working towards (what Kubernetes
calls spec.replicas), the latest metric view and which proxies are ready, and answers a replica
count with a reason. None of them sleeps or reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from scaling_policy.policy import (
    Readiness,
    Recommendation,
    clamp,
    least_squares_slope,
)
from scaling_policy.view import MetricView
from testbed.autoscale.hpa import (
    HorizontalPodAutoscaler,
    HpaManifest,
    MetricInput,
    PodMetrics,
    ScalarMetric,
    quantity,
)
from testbed.autoscale.metrics import (
    CPU_POD_METRIC,
    CPU_RESOURCE,
    INVITE_RATE_METRIC,
    P99_POD_METRIC,
)

SERVED_METRICS = (
    CPU_RESOURCE,
    f"Pods/{CPU_POD_METRIC}",
    f"Pods/{P99_POD_METRIC}",
    f"Object/{INVITE_RATE_METRIC}",
    f"External/{INVITE_RATE_METRIC}",
)


# -- Kubernetes HPA ----------------------------------------------------------------------------


class HpaPolicy:
    """The HPA algorithm (hpa.py) fed from the local metrics under the names a cluster's metrics
    pipeline would serve them."""

    name = "hpa"

    def __init__(
        self,
        manifest: HpaManifest | dict[str, Any],
        cpu_request_cores: float | None,
        cpu_window_s: float = 30.0,
    ) -> None:
        self.hpa = HorizontalPodAutoscaler(manifest)
        self.cpu_window_s = cpu_window_s
        spec = self.hpa.spec
        self.min_replicas, self.max_replicas = spec.minReplicas, spec.maxReplicas
        self.cpu_request_cores = cpu_request_cores
        for metric in spec.metrics:
            if metric.key not in SERVED_METRICS:
                raise ValueError(
                    f"HPA metric {metric.key} is not served locally; "
                    f"use one of {', '.join(SERVED_METRICS)}"
                )
            target = metric.target
            if target.type == "Utilization":
                if metric.key != CPU_RESOURCE or target.averageUtilization is None:
                    raise ValueError(f"{metric.key}: Utilization needs resource cpu and a value")
                if not cpu_request_cores:
                    raise ValueError("a CPU Utilization target needs a CPU limit on the proxies")
            else:
                quantity(target.value if target.type == "Value" else target.averageValue)

    def metric_inputs(
        self, view: MetricView | None, readiness: Readiness
    ) -> dict[str, MetricInput | None]:
        if view is None:
            return {}
        window = self.cpu_window_s
        # CPU of a pod counts once a whole window has been measured since it became ready
        cpu_ready = frozenset(
            pod for pod, since in readiness.ready_since.items() if view.time - since >= window
        )
        requests = (
            {pod: self.cpu_request_cores for pod in (*view.cpu_cores, *readiness.pending)}
            if self.cpu_request_cores
            else {}
        )
        # pending pods are there without a metric: unready, as a cluster's selector finds them
        cpu_values = {**dict.fromkeys(readiness.pending), **view.cpu_cores}
        p99_values = {**dict.fromkeys(readiness.pending), **view.p99_s}
        cpu = PodMetrics(cpu_values, requests, ready=cpu_ready)
        rate = ScalarMetric(view.invite_rate)
        return {
            CPU_RESOURCE: cpu,
            f"Pods/{CPU_POD_METRIC}": cpu,
            f"Pods/{P99_POD_METRIC}": PodMetrics(p99_values),
            f"Object/{INVITE_RATE_METRIC}": rate,
            f"External/{INVITE_RATE_METRIC}": rate,
        }

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation:
        decision = self.hpa.decide(
            now, current, self.metric_inputs(view, readiness), set(readiness.ready)
        )
        proposals = ", ".join(
            f"{key}={'-' if value is None else value}" for key, value in decision.proposals.items()
        )
        return Recommendation(decision.desired, f"hpa: {proposals}; {decision.reason}")


# -- capacity ----------------------------------------------------------------------------------


class CapacityPolicy:
    """The paper's capacity plan made dynamic: ceil(rate / (capacity per proxy x headroom)).

    Scales up at once; scales down only to the highest count recommended over the last
    `scale_down_window_s`, so a dip between two steps does not cost a proxy.
    """

    name = "capacity"

    def __init__(
        self,
        capacity_per_proxy: float,
        headroom: float = 0.9,
        min_replicas: int = 1,
        max_replicas: int = 20,
        scale_down_window_s: float = 60.0,
    ) -> None:
        if capacity_per_proxy <= 0 or not 0 < headroom <= 1:
            raise ValueError("capacity must be > 0 and headroom in (0, 1]")
        self.capacity = capacity_per_proxy * headroom
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.window = scale_down_window_s
        self._history: deque[tuple[float, int]] = deque()

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation:
        if view is None or view.invite_rate is None:
            return Recommendation(current, "capacity: no rate yet")
        wanted = clamp(
            math.ceil(view.invite_rate / self.capacity - 1e-9), self.min_replicas, self.max_replicas
        )
        self._history.append((now, wanted))
        while self._history and self._history[0][0] < now - self.window:
            self._history.popleft()
        desired = wanted if wanted >= current else max(r for _t, r in self._history)
        return Recommendation(
            desired,
            f"capacity: {view.invite_rate:.1f}/s over {self.capacity:.1f}/s per proxy "
            f"wants {wanted}",
        )


# -- QoS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QosSettings:
    p0_ms: float
    up_fraction: float = 0.6  # scale up when p99 passes this share of P0
    down_fraction: float = 0.25  # scale down only while p99 stays below this share
    lookahead_s: float = 30.0  # scale up when the p99 trend would pass up_fraction this soon
    up_cooldown_s: float = 20.0  # after adding, wait this long before adding again
    down_stable_s: float = 90.0  # p99 must have had headroom this long before removing one
    down_load_fraction: float = 0.7  # after removing one, the rate per proxy must stay below
    #                                  this share of the rate per proxy learned at a breach
    breach_step_fraction: float = 0.5  # p99 above P0: add this share of the current count
    knee_per_proxy: float | None = None  # rate per proxy where p99 breaks out, if known
    settle_s: float = 30.0  # learn about the knee only when every proxy has served this long


class QosPolicy:
    """Keeps the p99 response time under P0 with a margin.

    Up fast: on a breach of the margin, or when the p99 trend over the recent views would cross
    it within `lookahead_s`; a breach of P0 itself adds half the current count at once. Down
    slowly: one proxy at a time, only after the p99 has stayed well under the margin for a while,
    and only if the remaining proxies would each carry less than the rate per proxy at which the
    policy has seen the p99 break out (response time is flat until a proxy saturates, so p99
    headroom alone says nothing about how close the knee is).
    """

    name = "qos"

    def __init__(self, settings: QosSettings, min_replicas: int = 1, max_replicas: int = 20):
        self.s = settings
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        # the rate per proxy at which p99 broke out: a hint (benchmark) or learned at a breach
        self.knee_per_proxy: float | None = settings.knee_per_proxy
        self._p99: deque[tuple[float, float]] = deque()
        self._last_up = -math.inf
        self._calm_since: float | None = None

    def _trend_crosses(self, threshold: float) -> bool:
        """Least-squares slope of the recent p99 values, projected `lookahead_s` ahead."""
        points = list(self._p99)
        slope = least_squares_slope(points)
        return slope > 0 and points[-1][1] + slope * self.s.lookahead_s > threshold

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation:
        s = self.s
        up_ms, down_ms = s.up_fraction * s.p0_ms, s.down_fraction * s.p0_ms
        if view is None or view.p99_all_s is None:
            return Recommendation(current, "qos: no response times yet")
        p99, rate = view.p99_all_s * 1000, view.invite_rate
        if not self._p99 or self._p99[-1][0] != view.time:  # one point per scrape
            self._p99.append((view.time, p99))
            while len(self._p99) > 4:
                self._p99.popleft()
        starting = current > len(readiness.ready)  # proxies asked for are still starting
        cooled = now - self._last_up >= s.up_cooldown_s and not starting
        # what the p99 says about the knee counts only once every proxy has served a while: a
        # proxy that has just started (slowly, under its CPU limit) breaks out at any rate
        settled = not starting and all(
            now - since >= s.settle_s for since in readiness.ready_since.values()
        )
        per_proxy = None if rate is None else rate / max(1, current)
        if settled and per_proxy is not None and p99 < down_ms and self.knee_per_proxy:
            # calm at this rate per proxy: the knee is at least here
            self.knee_per_proxy = max(self.knee_per_proxy, per_proxy)
        if p99 > up_ms:
            self._calm_since = None
            if settled and per_proxy is not None:  # the knee is at most here
                self.knee_per_proxy = min(self.knee_per_proxy or math.inf, per_proxy)
            if not cooled:
                return Recommendation(current, f"qos: p99 {p99:.0f} ms > margin; waiting")
            step = max(1, math.ceil(current * s.breach_step_fraction)) if p99 > s.p0_ms else 1
            return self._up(now, current + step, rate, f"qos: p99 {p99:.0f} ms > {up_ms:.0f} ms")
        if cooled and self._trend_crosses(up_ms):
            return self._up(now, current + 1, rate, f"qos: p99 {p99:.0f} ms rising")
        if cooled and rate is not None and self._for_rate(rate) > current:
            return self._up(
                now,
                current,
                rate,
                f"qos: {rate:.1f}/s nears the knee ({self.knee_per_proxy:.1f}/s per proxy)",
            )
        if p99 >= down_ms:
            self._calm_since = None
            return Recommendation(current, f"qos: p99 {p99:.0f} ms within the margin")
        if starting:  # calm counts once every proxy asked for serves
            self._calm_since = None
            return Recommendation(current, f"qos: p99 {p99:.0f} ms, proxies starting")
        if self._calm_since is None:
            self._calm_since = now
        if now - self._calm_since < s.down_stable_s or current <= self.min_replicas:
            return Recommendation(current, f"qos: p99 {p99:.0f} ms has headroom")
        if rate is not None and self._for_rate(rate) > current - 1:
            return Recommendation(current, "qos: one proxy fewer would near the knee")
        self._calm_since = now  # one at a time, each after a calm period
        desired = clamp(current - 1, self.min_replicas, self.max_replicas)
        return Recommendation(desired, f"qos: p99 {p99:.0f} ms < {down_ms:.0f} ms")

    def _for_rate(self, rate: float) -> int:
        """Proxies the rate needs so that each stays below the safe share of the knee."""
        if not self.knee_per_proxy:
            return 0
        return math.ceil(rate / (self.s.down_load_fraction * self.knee_per_proxy) - 1e-9)

    def _up(self, now: float, desired: int, rate: float | None, reason: str) -> Recommendation:
        if rate is not None:
            desired = max(desired, self._for_rate(rate))
        self._last_up = now
        self._calm_since = None  # a scale down needs a whole calm period after this
        return Recommendation(clamp(desired, self.min_replicas, self.max_replicas), reason)


# -- hybrid ------------------------------------------------------------------------------------


class HybridPolicy:
    """CPU and QoS together, as the paper's summary suggests: the HPA on CPU and the QoS policy
    each recommend; the higher wins, and a proxy is removed only when both would remove it."""

    name = "hybrid"

    def __init__(self, cpu: HpaPolicy, qos: QosPolicy) -> None:
        self.cpu, self.qos = cpu, qos
        self.min_replicas = max(cpu.min_replicas, qos.min_replicas)
        self.max_replicas = min(cpu.max_replicas, qos.max_replicas)

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation:
        by_cpu = self.cpu.recommend(now, current, view, readiness)
        by_qos = self.qos.recommend(now, current, view, readiness)
        # the higher of the two: up when either wants up, down only when both want down
        desired = clamp(max(by_cpu.desired, by_qos.desired), self.min_replicas, self.max_replicas)
        return Recommendation(desired, f"hybrid: cpu {by_cpu.desired}, qos {by_qos.desired}")
