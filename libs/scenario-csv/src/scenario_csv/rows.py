"""Typed rows of the two formats."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScenarioRow:
    """One invite of the main format."""

    caller: str
    callee: str
    wait_before_next_in_ms: int
    seconds_since_start: int
    arrival_rate_in_s: float


@dataclass(frozen=True, slots=True)
class TenMinuteRow:
    """One invite of the paper's Milano-derived format."""

    ten_minute: int
    milliseconds: int
    calls_in_ten_minutes: int
    caller: str
    callee: str
