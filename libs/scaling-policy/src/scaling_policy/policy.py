"""A policy's interface: which proxies are ready, the replica count it answers, and the
least-squares trend the policies share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from scaling_policy.view import MetricView


@dataclass(frozen=True)
class Readiness:
    """Which proxies take traffic, and since when (for the HPA's CPU initialization rule), and
    which were asked for but are not serving yet (pending pods, in Kubernetes' words)."""

    ready_since: dict[str, float]
    pending: frozenset[str] = frozenset()

    @property
    def ready(self) -> frozenset[str]:
        return frozenset(self.ready_since)


@dataclass(frozen=True)
class Recommendation:
    desired: int
    reason: str


class ScalingPolicy(Protocol):
    """A testbed autoscaling policy (hpa, capacity, qos, hybrid, predictive): a replica count
    and a reason per sync. The HPA manifest's rate limits are hpa.HpaRatePolicy, a different
    thing."""

    name: str
    min_replicas: int
    max_replicas: int

    def recommend(
        self, now: float, current: int, view: MetricView | None, readiness: Readiness
    ) -> Recommendation: ...


def clamp(value: int, low: int, high: int) -> int:
    return min(max(value, low), high)


def least_squares_slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (time, value) points; 0 with fewer than three or no spread in
    time (two points make a trend of any noise)."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var
