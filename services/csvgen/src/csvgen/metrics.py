"""The service's own metrics, registered in a registry passed in (tests use a fresh one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class CsvgenMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows_generated = Counter(
            "csvgen_rows_generated",
            "Scenario rows streamed by POST /generate",
            registry=registry,
        )
        self.files_validated = Counter(
            "csvgen_files_validated",
            "Files checked by POST /validate, by result",
            ["result"],
            registry=registry,
        )
