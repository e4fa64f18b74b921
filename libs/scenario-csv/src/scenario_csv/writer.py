"""Streaming writers for rows (csvgen's generator writes the same layout through its own
vectorised renderer; both take headers, separator and number formats from here)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from scenario_csv.formats import HEADERS, SEPARATOR, ScenarioFormat, format_rate
from scenario_csv.rows import ScenarioRow, TenMinuteRow


def main_line(row: ScenarioRow) -> str:
    return SEPARATOR.join(
        (
            row.caller,
            row.callee,
            str(row.wait_before_next_in_ms),
            str(row.seconds_since_start),
            format_rate(row.arrival_rate_in_s),
        )
    )


def ten_minute_line(row: TenMinuteRow) -> str:
    return SEPARATOR.join(
        (
            str(row.ten_minute),
            str(row.milliseconds),
            str(row.calls_in_ten_minutes),
            row.caller,
            row.callee,
        )
    )


def write_main(rows: Iterable[ScenarioRow], out: TextIO) -> int:
    """Header and rows; returns the number of rows written."""
    out.write(HEADERS[ScenarioFormat.MAIN] + "\n")
    count = 0
    for row in rows:
        out.write(main_line(row) + "\n")
        count += 1
    return count


def write_ten_minute(rows: Iterable[TenMinuteRow], out: TextIO) -> int:
    out.write(HEADERS[ScenarioFormat.TEN_MINUTE] + "\n")
    count = 0
    for row in rows:
        out.write(ten_minute_line(row) + "\n")
        count += 1
    return count
