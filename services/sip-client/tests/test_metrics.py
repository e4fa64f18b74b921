"""PodMetrics keeps each outcome's labelled child; counts must still add up per outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sip_client.metrics import PodMetrics
from sip_client.records import CallRecord, RegistrationResult


def test_outcomes_are_counted_per_label_across_repeated_events():
    registry = CollectorRegistry()
    metrics = PodMetrics(registry)
    for outcome in ("succeeded", "succeeded", "failed", "succeeded"):
        record = CallRecord("c", "0000", "0001", 0, invite_at=1.0, ok_at=1.02)
        record.outcome = outcome
        metrics.call_finished(record)
    for ok in (True, False, True):
        metrics.registration(RegistrationResult("0000", ok, "", 0.0, 1.0))

    def value(name: str, outcome: str) -> float | None:
        return registry.get_sample_value(name, {"outcome": outcome})

    assert value("sip_client_calls_total", "succeeded") == 3
    assert value("sip_client_calls_total", "failed") == 1
    assert value("sip_client_registrations_total", "ok") == 2
    assert value("sip_client_registrations_total", "failed") == 1
    assert registry.get_sample_value("sip_client_call_setup_seconds_count") == 4
