"""The autoscaler's control loop, sans-I/O: samples go in as they are taken, and once per sync
period the policy's answer comes out as the new target replica count."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling_policy.policy import Readiness, ScalingPolicy
from testbed.autoscale.metrics import MetricSource
from testbed.sample import Sample


@dataclass(frozen=True)
class ScalingEvent:
    time: float
    current: int  # the target before this sync
    desired: int  # the target after it
    reason: str


class Autoscaler:
    def __init__(
        self,
        policy: ScalingPolicy,
        metrics: MetricSource,
        initial_replicas: int,
        sync_period_s: float = 15.0,
    ) -> None:
        if sync_period_s <= 0:
            raise ValueError("the sync period must be > 0")
        self.policy = policy
        self.metrics = metrics
        self.sync_period_s = sync_period_s
        self.target = min(max(initial_replicas, policy.min_replicas), policy.max_replicas)
        self._next_sync = -math.inf

    def observe(self, now: float, sample: Sample) -> None:
        self.metrics.observe(now, sample)

    def sync(self, now: float, readiness: Readiness) -> ScalingEvent | None:
        """The policy's decision when a sync period is due (None otherwise)."""
        if now < self._next_sync:
            return None
        self._next_sync = now + self.sync_period_s
        recommendation = self.policy.recommend(now, self.target, self.metrics.view(), readiness)
        desired = min(
            max(recommendation.desired, self.policy.min_replicas), self.policy.max_replicas
        )
        event = ScalingEvent(now, self.target, desired, recommendation.reason)
        self.target = desired
        return event
