"""The controller's own metrics, registered in a registry passed in (tests use a fresh one)."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Gauge

from testbed_db import ProxyState


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.proxies = Gauge(
            "sip_controller_proxies",
            "Proxies known to the controller, by state",
            ["state"],
            registry=registry,
        )
        self.set_counts(Counter())

    def set_counts(self, counts: Counter[ProxyState]) -> None:
        for state in ProxyState:
            self.proxies.labels(state=state.value).set(counts.get(state, 0))
