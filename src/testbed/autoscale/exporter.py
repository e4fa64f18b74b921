"""The autoscaler's Prometheus metrics (names fixed by the design: dashboards use them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class AutoscalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.replicas = Gauge(
            "testbed_replicas", "Replicas running now", ["component"], registry=registry
        )
        self.desired = Gauge(
            "testbed_desired_replicas",
            "Replicas the autoscaler asks for",
            ["component"],
            registry=registry,
        )

    def update(self, component: str, replicas: int, desired: int) -> None:
        self.replicas.labels(component=component).set(replicas)
        self.desired.labels(component=component).set(desired)
