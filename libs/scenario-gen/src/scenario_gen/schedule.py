"""The invite schedule, chunk by chunk: times (ms), waits to the next invite, and which caller.

Times are floored to whole milliseconds, so an invite's second is that of its exact time and
the waits add up exactly to the times. The last invite waits until the end of the shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from scenario_gen.arrivals import CHUNK, Arrivals, unit_points
from scenario_gen.assignment import HoldTimeGuard, IntArray
from scenario_gen.shapes import RateShape


@dataclass(frozen=True, slots=True)
class ScheduleChunk:
    first_index: int  # invite number of the first row (the caller pair is index % callers)
    at_ms: IntArray
    wait_ms: IntArray


def invite_times_ms(
    shape: RateShape, arrivals: Arrivals, seed: int = 0, chunk: int = CHUNK
) -> Iterator[IntArray]:
    end_ms = round(shape.duration_s * 1000)
    for points in unit_points(arrivals, shape.total, seed, chunk):
        at_ms = np.floor(shape.inverse(points) * 1000).astype(np.int64)
        yield np.clip(at_ms, 0, end_ms - 1)


def schedule(
    shape: RateShape,
    arrivals: Arrivals,
    seed: int = 0,
    guard: HoldTimeGuard | None = None,
    chunk: int = CHUNK,
) -> Iterator[ScheduleChunk]:
    """Chunks of the schedule; a chunk is held back until the next one gives its last wait."""
    end_ms = round(shape.duration_s * 1000)
    first_index = 0
    pending: IntArray | None = None
    for at_ms in invite_times_ms(shape, arrivals, seed, chunk):
        if guard is not None:
            guard.check(at_ms)
        if pending is not None:
            yield _chunk(first_index, pending, int(at_ms[0]))
            first_index += len(pending)
        pending = at_ms
    if pending is not None:
        yield _chunk(first_index, pending, end_ms)


def _chunk(first_index: int, at_ms: IntArray, next_ms: int) -> ScheduleChunk:
    waits = np.empty_like(at_ms)
    waits[:-1] = np.diff(at_ms)
    waits[-1] = next_ms - at_ms[-1]
    return ScheduleChunk(first_index, at_ms, waits)
