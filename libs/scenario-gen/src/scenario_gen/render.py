"""Schedule chunks to CSV text. The hot path of generation: per row it only picks
precomputed strings (caller;callee; / wait / ;second;rate) and joins them once per chunk."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from scenario_csv import (
    HEADERS,
    SEPARATOR,
    TEN_MINUTES_MS,
    ScenarioFormat,
    ScenarioRow,
    format_rate,
)
from scenario_gen.assignment import IntArray
from scenario_gen.schedule import ScheduleChunk
from scenario_gen.shapes import RateShape

_WAIT_TEXTS = [str(w) for w in range(10_000)]


def _rotated(items: list[str], first_index: int, count: int) -> list[str]:
    """items[(first_index + i) % len(items)] for i < count, at C speed."""
    start = first_index % len(items)
    rotated = items[start:] + items[:start]
    repeats = count // len(rotated) + 1
    return (rotated * repeats)[:count]


def _texts(values: IntArray) -> list[str]:
    as_list: list[int] = values.tolist()
    if len(values) and int(values.max()) < len(_WAIT_TEXTS):
        return [_WAIT_TEXTS[v] for v in as_list]
    return [str(v) for v in as_list]


def _runs(values: IntArray) -> tuple[IntArray, IntArray]:
    """Start index and length of each run of equal values in a sorted array."""
    edges = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=np.int64), edges))
    lengths = np.diff(np.append(starts, len(values)))
    return starts, lengths


class MainRenderer:
    def __init__(self, shape: RateShape, pairs: list[tuple[str, str]]) -> None:
        self.shape = shape
        self._pair_list = pairs
        self._pairs = [f"{caller}{SEPARATOR}{callee}{SEPARATOR}" for caller, callee in pairs]
        self._rate_texts: dict[float, str] = {}

    def header(self) -> str:
        return HEADERS[ScenarioFormat.MAIN] + "\n"

    def _rate_text(self, rate: float) -> str:
        text = self._rate_texts.get(rate)
        if text is None:
            if len(self._rate_texts) > 4096:  # smooth shapes: rates rarely repeat
                self._rate_texts.clear()
            text = self._rate_texts[rate] = format_rate(rate)
        return text

    def render(self, chunk: ScheduleChunk) -> str:
        n = len(chunk.at_ms)
        seconds = chunk.at_ms // 1000
        starts, lengths = _runs(seconds)
        run_seconds: list[int] = seconds[starts].tolist()
        rates: list[float] = self.shape.second_rates(seconds[starts]).tolist()
        tails: list[str] = []
        for second, rate, length in zip(run_seconds, rates, lengths.tolist(), strict=True):
            tails += [f"{SEPARATOR}{second}{SEPARATOR}{self._rate_text(rate)}\n"] * length
        parts = [""] * (3 * n)
        parts[0::3] = _rotated(self._pairs, chunk.first_index, n)
        parts[1::3] = _texts(chunk.wait_ms)
        parts[2::3] = tails
        return "".join(parts)

    def rows(self, chunk: ScheduleChunk) -> Iterator[ScenarioRow]:
        """The same rows as objects (slow; for library users and tests)."""
        pairs = self._pair_list
        seconds = chunk.at_ms // 1000
        rates = self.shape.second_rates(seconds)
        for i, (at_ms, wait, rate) in enumerate(
            zip(chunk.at_ms.tolist(), chunk.wait_ms.tolist(), rates.tolist(), strict=True)
        ):
            caller, callee = pairs[(chunk.first_index + i) % len(pairs)]
            yield ScenarioRow(caller, callee, wait, at_ms // 1000, float(format_rate(rate)))


class TenMinuteRenderer:
    """Rows of a slot are written once the slot is complete (calls_in_ten_minutes is their
    count), so memory holds one slot's times: rate x 600 integers."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = [f"{SEPARATOR}{caller}{SEPARATOR}{callee}\n" for caller, callee in pairs]
        self._slot = -1
        self._pending: list[tuple[int, IntArray]] = []  # (first invite index, times)

    def header(self) -> str:
        return HEADERS[ScenarioFormat.TEN_MINUTE] + "\n"

    def render(self, chunk: ScheduleChunk) -> str:
        slots = chunk.at_ms // TEN_MINUTES_MS
        starts, lengths = _runs(slots)
        out: list[str] = []
        for start, length, slot in zip(
            starts.tolist(), lengths.tolist(), slots[starts].tolist(), strict=True
        ):
            if slot != self._slot:
                out.append(self._flush())
                self._slot = slot
            piece = chunk.at_ms[start : start + length]
            self._pending.append((chunk.first_index + start, piece))
        return "".join(out)

    def finish(self) -> str:
        return self._flush()

    def _flush(self) -> str:
        if not self._pending:
            return ""
        count = sum(len(times) for _, times in self._pending)
        prefix = f"{self._slot}{SEPARATOR}"
        middle = f"{SEPARATOR}{count}"
        out: list[str] = []
        for first_index, times in self._pending:
            n = len(times)
            parts = [""] * (4 * n)
            parts[0::4] = [prefix] * n
            parts[1::4] = [str(t) for t in times.tolist()]
            parts[2::4] = [middle] * n
            parts[3::4] = _rotated(self._pairs, first_index, n)
            out.append("".join(parts))
        self._pending = []
        return "".join(out)
