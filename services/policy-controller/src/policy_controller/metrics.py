"""The controller's own metrics, registered in a registry passed in (tests use a fresh one):
what it decided and on what, for the dashboard next to the HPA's."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge

from policy_controller.decision import ACTIONS, Decision

SOURCES = ("prometheus", "kubernetes")


def _value(value: float | None) -> float:
    return math.nan if value is None else value


class PolicyControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.desired_replicas = Gauge(
            "policy_controller_desired_replicas", "Replicas the policy wants", registry=registry
        )
        self.current_replicas = Gauge(
            "policy_controller_current_replicas",
            "The target scale's spec.replicas",
            registry=registry,
        )
        self.invite_rate = Gauge(
            "policy_controller_invite_rate",
            "INVITEs/s at the load balancer, as read",
            registry=registry,
        )
        self.predicted_invite_rate = Gauge(
            "policy_controller_predicted_invite_rate",
            "INVITEs/s the policy expects one lead time ahead",
            registry=registry,
        )
        self.knee = Gauge(
            "policy_controller_knee_invites_per_second",
            "INVITEs/s one proxy serves within P0, as the decisions use it",
            registry=registry,
        )
        self.settled_p99 = Gauge(
            "policy_controller_settled_p99_seconds",
            "The p99 response time of the proxies that have settled",
            registry=registry,
        )
        self.lead_time = Gauge(
            "policy_controller_lead_time_seconds",
            "How far ahead the policy looks",
            registry=registry,
        )
        self.last_sync = Gauge(
            "policy_controller_last_sync_timestamp_seconds",
            "Unix time of the last sync that made a decision",
            registry=registry,
        )
        self.decisions = Counter(
            "policy_controller_decisions",
            "Decisions by action (up and down: the scale was or, in a dry run, would be set)",
            ["action"],
            registry=registry,
        )
        self.errors = Counter(
            "policy_controller_errors",
            "Failed requests by where they went",
            ["source"],
            registry=registry,
        )
        for action in ACTIONS:
            self.decisions.labels(action=action)
        for source in SOURCES:
            self.errors.labels(source=source)

    def record(self, decision: Decision) -> None:
        self.desired_replicas.set(decision.desired)
        self.current_replicas.set(decision.current)
        self.invite_rate.set(_value(decision.invite_rate))
        self.predicted_invite_rate.set(_value(decision.predicted_invite_rate))
        self.knee.set(decision.knee_invites_per_second)
        self.settled_p99.set(_value(decision.settled_p99_s))
        self.lead_time.set(decision.lead_time_s)
        self.last_sync.set(decision.time)
        self.decisions.labels(action=decision.action).inc()
