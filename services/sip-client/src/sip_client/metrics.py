"""The pod's Prometheus metrics, in a registry passed in (tests use a fresh one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sip_client.records import CallRecord, RegistrationResult

SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PodMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "sip_client_calls", "Calls finished, by outcome", ["outcome"], registry=registry
        )
        self.setup = Histogram(
            "sip_client_call_setup_seconds",
            "First INVITE sent to 200 OK received",
            buckets=SETUP_BUCKETS,
            registry=registry,
        )
        self.registrations = Counter(
            "sip_client_registrations",
            "REGISTER results, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.malformed = Counter(
            "sip_client_malformed_datagrams", "Datagrams that did not parse", registry=registry
        )
        self.active = Gauge("sip_client_calls_active", "Calls in progress", registry=registry)
        self.registered = Gauge(
            "sip_client_phones_registered", "Phones with a live binding", registry=registry
        )
        # labelled children by outcome: `.labels()` validates and locks on every call, once
        # per finished call at 800 calls/s
        self._calls_by: dict[str, Counter] = {}
        self._registrations_by: dict[str, Counter] = {}

    def call_finished(self, record: CallRecord) -> None:
        child = self._calls_by.get(record.outcome)
        if child is None:
            child = self._calls_by[record.outcome] = self.calls.labels(outcome=record.outcome)
        child.inc()
        if record.setup_ms is not None:
            self.setup.observe(record.setup_ms / 1000)

    def registration(self, result: RegistrationResult) -> None:
        outcome = "ok" if result.ok else "failed"
        child = self._registrations_by.get(outcome)
        if child is None:
            child = self._registrations_by[outcome] = self.registrations.labels(outcome=outcome)
        child.inc()
