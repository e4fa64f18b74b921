"""Milano CDR input (Barlacchi et al. 2015, Harvard Dataverse, "Telecommunications - SMS,
Call, Internet - MI"): tab-separated, no header, one row per square, 10-minute slot and
country code: square id, interval start (ms since the epoch, UTC), country code, sms-in,
sms-out, call-in, call-out, internet. An empty field means no activity. Rows of the same
square and slot (one per country code) are summed, and so are the chosen squares.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scenario_gen.errors import MilanoError
from scenario_gen.shapes import FloatArray, Interpolation, RateShape

SLOT_MS = 600_000
SLOTS_PER_DAY = 144
DAY_MS = SLOT_MS * SLOTS_PER_DAY
FIELDS = (
    "square id",
    "interval start",
    "country code",
    "sms-in",
    "sms-out",
    "call-in",
    "call-out",
    "internet",
)
_EPOCH = dt.date(1970, 1, 1)


def _fail(source: str, line: int, field: str, message: str) -> MilanoError:
    return MilanoError(f"{source}: line {line}: {field}: {message}")


def _whole(text: str, source: str, line: int, field: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    raise _fail(source, line, field, f"{text!r} is not a whole number")


def _activity(text: str, source: str, line: int, field: str) -> float:
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise _fail(source, line, field, f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _fail(source, line, field, f"{text!r} is not an activity >= 0")
    return value


def add_calls(
    lines: Iterable[str],
    source: str,
    squares: frozenset[int] | None,
    calls: dict[int, float],
) -> int:
    """Add call-in + call-out of the chosen squares per slot start to `calls`; returns the
    number of rows used."""
    used = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) not in (7, 8):  # trailing empty fields are sometimes cut
            raise _fail(
                source,
                number,
                "row",
                f"has {len(fields)} tab-separated fields, not 8 ({', '.join(FIELDS)})",
            )
        square = _whole(fields[0], source, number, "square id")
        if squares is not None and square not in squares:
            continue
        start = _whole(fields[1], source, number, "interval start")
        if start % SLOT_MS:
            raise _fail(
                source,
                number,
                "interval start",
                f"{start} is not the start of a 10-minute slot (ms since the epoch)",
            )
        if fields[2]:
            _whole(fields[2], source, number, "country code")
        value = _activity(fields[5], source, number, "call-in") + _activity(
            fields[6], source, number, "call-out"
        )
        calls[start] = calls.get(start, 0.0) + value
        used += 1
    return used


def load_calls(paths: Iterable[Path], squares: Iterable[int] | None) -> dict[int, float]:
    chosen = frozenset(squares) if squares is not None else None
    calls: dict[int, float] = {}
    used = 0
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                used += add_calls(lines, str(path), chosen, calls)
        except OSError as exc:
            raise MilanoError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not used:
        which = "the chosen squares " + ", ".join(map(str, sorted(chosen))) if chosen else "any"
        raise MilanoError(f"the Milano files have no rows for {which}")
    return calls


def day_series(
    calls: dict[int, float], days: Iterable[dt.date] | None, utc_offset_hours: float
) -> tuple[list[dt.date], FloatArray]:
    """Calls per slot over the chosen local days, in order, 144 slots a day (0 where no row)."""
    offset_ms = round(utc_offset_hours * 3_600_000)
    present = sorted({(start + offset_ms) // DAY_MS for start in calls})
    if days is None:
        chosen = present
    else:
        chosen = [(day - _EPOCH).days for day in days]
        missing = [d for d in chosen if d not in set(present)]
        if missing:
            found = ", ".join(str(_EPOCH + dt.timedelta(days=d)) for d in present)
            wanted = ", ".join(str(_EPOCH + dt.timedelta(days=d)) for d in missing)
            raise MilanoError(f"day {wanted} is not in the Milano files (they hold {found})")
    values = [
        calls.get(day * DAY_MS - offset_ms + slot * SLOT_MS, 0.0)
        for day in chosen
        for slot in range(SLOTS_PER_DAY)
    ]
    return [_EPOCH + dt.timedelta(days=d) for d in chosen], np.asarray(values, dtype=np.float64)


def milano_shape(
    calls_per_slot: FloatArray, peak_rate: float, compress: float, interpolate: Interpolation
) -> RateShape:
    """Scale so the busiest slot is `peak_rate` invites/s; a slot lasts 600/compress s.
    `linear` joins the slot values at the slot centres, `hold` keeps each for its slot."""
    peak = float(calls_per_slot.max()) if len(calls_per_slot) else 0.0
    if peak <= 0:
        raise MilanoError("the chosen squares and days have no calls")
    rates = calls_per_slot * (peak_rate / peak)
    slot_s = SLOT_MS / 1000 / compress
    offset = 0.5 if interpolate == "linear" else 0.0
    times = (np.arange(len(rates)) + offset) * slot_s
    duration = len(rates) * slot_s
    return RateShape.from_points(times.tolist(), rates.tolist(), interpolate, duration, "milano")
