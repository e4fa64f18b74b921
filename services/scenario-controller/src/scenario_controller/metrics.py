"""The controller's metrics, in a registry passed in (tests use a fresh one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter(
            "scenario_controller_invites_sent",
            "Invite commands written to a pod",
            registry=registry,
        )
        self.undeliverable = Counter(
            "scenario_controller_invites_undeliverable",
            "Invites whose caller pod was not connected",
            registry=registry,
        )
        self.lag = Histogram(
            "scenario_controller_schedule_lag_seconds",
            "Send time minus scheduled time",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.malformed = Counter(
            "scenario_controller_client_messages_malformed",
            "Messages from pods that were not valid (bad JSON, unknown type, wrong field, too "
            "large, or failed while handled); each is ignored and the link goes on",
            registry=registry,
        )
        self.disconnects = Counter(
            "scenario_controller_client_disconnects",
            "Pod connections that ended",
            registry=registry,
        )
        self.clients = Gauge(
            "scenario_controller_clients_connected", "Connected sip-client pods", registry=registry
        )
