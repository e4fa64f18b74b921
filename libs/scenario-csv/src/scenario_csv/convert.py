"""Conversions between the two formats, streaming (the ten_minute side buffers one slot).

main -> ten_minute: the first invite is placed at the start of its second (the main format
knows no finer), later ones by the cumulative waits; calls_in_ten_minutes is the number of
invites in the slot.
ten_minute -> main: waits are the differences of milliseconds, the last wait is 0 (no next
invite), and arrival_rate_in_s is the slot's mean rate, calls_in_ten_minutes / 600.
So ten_minute -> main -> ten_minute gives the same rows when the first invite starts a whole
second and the counts are right; main -> ten_minute -> main keeps callers, callees, seconds
and every wait but the last, and the per-second rates become the slot means.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from scenario_csv.formats import TEN_MINUTES_MS
from scenario_csv.rows import ScenarioRow, TenMinuteRow


def main_to_ten_minute(rows: Iterable[ScenarioRow]) -> Iterator[TenMinuteRow]:
    slot_rows: list[tuple[int, str, str]] = []
    slot = -1
    at_ms: int | None = None
    for row in rows:
        if at_ms is None:
            at_ms = row.seconds_since_start * 1000
        this_slot = at_ms // TEN_MINUTES_MS
        if this_slot != slot and slot_rows:
            yield from _slot(slot, slot_rows)
            slot_rows = []
        slot = this_slot
        slot_rows.append((at_ms, row.caller, row.callee))
        at_ms += row.wait_before_next_in_ms
    if slot_rows:
        yield from _slot(slot, slot_rows)


def _slot(slot: int, rows: list[tuple[int, str, str]]) -> Iterator[TenMinuteRow]:
    for at_ms, caller, callee in rows:
        yield TenMinuteRow(slot, at_ms, len(rows), caller, callee)


def ten_minute_to_main(rows: Iterable[TenMinuteRow]) -> Iterator[ScenarioRow]:
    previous: TenMinuteRow | None = None
    for row in rows:
        if previous is not None:
            if row.milliseconds < previous.milliseconds:
                raise ValueError(
                    f"milliseconds go back from {previous.milliseconds} to {row.milliseconds}"
                )
            yield _main_row(previous, row.milliseconds - previous.milliseconds)
        previous = row
    if previous is not None:
        yield _main_row(previous, 0)


def _main_row(row: TenMinuteRow, wait_ms: int) -> ScenarioRow:
    return ScenarioRow(
        caller=row.caller,
        callee=row.callee,
        wait_before_next_in_ms=wait_ms,
        seconds_since_start=row.milliseconds // 1000,
        arrival_rate_in_s=row.calls_in_ten_minutes / (TEN_MINUTES_MS / 1000),
    )
