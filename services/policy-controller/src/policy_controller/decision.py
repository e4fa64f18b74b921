"""The controller's logic, sans-I/O: what Prometheus answered becomes a MetricView of the
target's pods, the target's scale and the pods seen so far become a Readiness, and the
predictive policy's recommendation becomes a decision. Times are given (Unix seconds of the
sync); nothing here waits, reads a clock or talks to a server (controller.py does).

Readiness is derived without reading pods (the controller may only get and patch its target's
scale): a StatefulSet's pod `<name>-<ordinal>` below spec.replicas is ready once its CPU series
is in Prometheus, since the time the controller first saw that series, and pending until then.
A Deployment's pods (`<name>-<hash>-<suffix>`) have no ordinals: the ones seen are ready (the
longest-seen first, up to spec.replicas), the rest of spec.replicas pending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from scaling_policy.policy import Readiness, clamp
from scaling_policy.predictive import PredictivePolicy
from scaling_policy.view import MetricView

Action = Literal["up", "down", "hold"]
ACTIONS: tuple[Action, ...] = ("up", "down", "hold")


@dataclass(frozen=True)
class Answers:
    """The four queries' answers: per pod (the `pod` label) and single values."""

    cpu_cores: dict[str, float | None]
    p99_s: dict[str, float | None]
    p99_all_s: float | None
    invite_rate: float | None


@dataclass(frozen=True)
class Decision:
    """One sync's outcome: the replicas found and wanted, and what the policy based it on."""

    time: float
    current: int  # the scale's spec.replicas
    desired: int
    action: Action
    reason: str
    patch: bool  # the scale is to be set to `desired` (False: the same, or a dry run)
    lead_time_s: float
    knee_invites_per_second: float  # the knee decisions use
    cpu_knee_invites_per_second: float | None  # the CPU per invite's, when measured
    invite_rate: float | None
    predicted_invite_rate: float | None
    settled_p99_s: float | None
    ready: int  # pods the readiness counted as serving
    pending: int  # pods asked for and not serving yet


class PodNames:
    """Which pods belong to the target: a StatefulSet's `<name>-<ordinal>`, a Deployment's
    `<name>-<pod-template-hash>-<suffix>`."""

    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        self.ordered = kind == "statefulsets"
        escaped = re.escape(name)
        suffix = r"(0|[1-9][0-9]*)" if self.ordered else r"[a-z0-9]+-[a-z0-9]+"
        self._pattern = re.compile(rf"{escaped}-{suffix}")

    def matches(self, pod: str) -> bool:
        return self._pattern.fullmatch(pod) is not None

    def ordinal(self, pod: str) -> int | None:
        match = self._pattern.fullmatch(pod)
        return int(match.group(1)) if match is not None and self.ordered else None

    def pod(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}"


class DecisionCore:
    """Fed with answers and scales, returns decisions. One per controller: it remembers when
    each pod's series was first seen, the last view, and the policy's own history."""

    def __init__(self, policy: PredictivePolicy, names: PodNames, *, dry_run: bool = False) -> None:
        self.policy = policy
        self.names = names
        self.dry_run = dry_run
        self.first_seen: dict[str, float] = {}
        self.view: MetricView | None = None

    def observe(self, now: float, answers: Answers, at: float | None = None) -> MetricView:
        """A fresh scrape at `now`: the view of the target's pods (others' are dropped), and
        the pods whose CPU series appeared or went away."""
        pods = frozenset(p for p in answers.cpu_cores if self.names.matches(p))
        self.first_seen = {p: self.first_seen.get(p, now) for p in pods}
        ours = pods | {p for p in answers.p99_s if self.names.matches(p)}
        self.view = MetricView(
            time=now,
            cpu_cores={p: answers.cpu_cores.get(p) for p in ours},
            p99_s={p: answers.p99_s.get(p) for p in ours},
            p99_all_s=answers.p99_all_s,
            invite_rate=answers.invite_rate,
            pods=pods,
            source="prometheus",
            at=at,
        )
        return self.view

    def readiness(self, spec_replicas: int) -> Readiness:
        """The target's pods serving (since when) and asked for but not serving yet."""
        seen = self.first_seen
        if self.names.ordered:
            wanted = [self.names.pod(i) for i in range(spec_replicas)]
            return Readiness(
                ready_since={p: seen[p] for p in wanted if p in seen},
                pending=frozenset(p for p in wanted if p not in seen),
            )
        serving = sorted(seen, key=lambda p: (seen[p], p))[:spec_replicas]
        missing = spec_replicas - len(serving)
        return Readiness(
            ready_since={p: seen[p] for p in serving},
            pending=frozenset(f"{self.names.name}-pending-{i}" for i in range(missing)),
        )

    def decide(self, now: float, spec_replicas: int) -> Decision:
        """The policy's answer for a target whose scale asks for `spec_replicas`, with the last
        view (a failed scrape leaves the previous one: the policy sees nothing new)."""
        policy = self.policy
        readiness = self.readiness(spec_replicas)
        # the view keeps every pod of the target: one past spec.replicas (being removed) is
        # not ready, so the policy reads the p99 of the settled ready ones instead of the pool's
        recommendation = policy.recommend(now, spec_replicas, self.view, readiness)
        # within the bounds whatever the scale was set to (as the local autoscaler's target)
        desired = clamp(recommendation.desired, policy.min_replicas, policy.max_replicas)
        reason = recommendation.reason
        action: Action = (
            "up" if desired > spec_replicas else "down" if desired < spec_replicas else "hold"
        )
        p99_ms = policy.p99_ms
        return Decision(
            time=now,
            current=spec_replicas,
            desired=desired,
            action=action,
            reason=reason,
            patch=action != "hold" and not self.dry_run,
            lead_time_s=policy.s.lead_time_s,
            knee_invites_per_second=policy.effective_knee,
            cpu_knee_invites_per_second=policy.cpu_knee,
            invite_rate=None if self.view is None else self.view.invite_rate,
            predicted_invite_rate=policy.predicted_rate,
            settled_p99_s=None if p99_ms is None else p99_ms / 1000,
            ready=len(readiness.ready),
            pending=len(readiness.pending),
        )
