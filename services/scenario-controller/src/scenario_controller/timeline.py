"""A scenario as an absolute timeline: when each invite is due, from the start of the run.

Offsets come from the cumulative waits (main format) or from the milliseconds column (the
ten_minute variant), never from sleeping one wait after another, so a run cannot drift.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from scenario_csv import ScenarioFormat, detect_format, read_main, read_ten_minute


@dataclass(frozen=True, slots=True)
class Due:
    seq: int  # row number, 0-based
    offset: float  # seconds after the start (before the speed factor)
    caller: str
    callee: str

    @property
    def pod(self) -> str:
        return self.caller[:2]


def timeline(lines: Iterable[str], source: str | None = None) -> Iterator[Due]:
    """The invites of a scenario file, in order, streaming (bounded memory)."""
    iterator = iter(lines)
    header = next(iterator, "")
    fmt = detect_format(header.rstrip("\r\n"))
    all_lines = itertools.chain([header], iterator)  # the readers check the header themselves
    if fmt is ScenarioFormat.MAIN or fmt is None:
        elapsed_ms = 0
        for seq, row in enumerate(read_main(all_lines, source)):
            yield Due(seq, elapsed_ms / 1000, row.caller, row.callee)
            elapsed_ms += row.wait_before_next_in_ms
    else:
        for seq, ten in enumerate(read_ten_minute(all_lines, source)):
            yield Due(seq, ten.milliseconds / 1000, ten.caller, ten.callee)


def rate_series(lines: Iterable[str], source: str | None = None) -> list[tuple[int, int]]:
    """Invites per second of the scenario: [(second, count)], for the panel's lambda(t) plot."""
    counts: dict[int, int] = {}
    for due in timeline(lines, source):
        second = int(due.offset)
        counts[second] = counts.get(second, 0) + 1
    if not counts:
        return []
    last = max(counts)
    return [(s, counts.get(s, 0)) for s in range(0, last + 1)]
