"""Arrival processes as points of a unit-rate process, mapped through Lambda^-1 of a shape.

Deterministic: points 0, 1, 2, ... so invite k is at Lambda^-1(k); for a constant rate that is
the paper's wait = 1000/lambda ms, and for any shape the count in [0, t) is ceil(Lambda(t)).
Poisson: points 0, E1, E1+E2, ... with Ei ~ Exp(1) from a seeded generator; by the
time-rescaling theorem the images are a Poisson process with rate lambda(t) (with an invite
at the start, like the deterministic process).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np

from scenario_gen.shapes import FloatArray

Arrivals = Literal["deterministic", "poisson"]
CHUNK = 1 << 16


def unit_points(
    arrivals: Arrivals, total: float, seed: int = 0, chunk: int = CHUNK
) -> Iterator[FloatArray]:
    """The points below `total`, in increasing order, a chunk at a time."""
    if arrivals == "deterministic":
        count = math.ceil(total)
        for first in range(0, count, chunk):
            yield np.arange(first, min(first + chunk, count), dtype=np.float64)
        return
    rng = np.random.default_rng(seed)
    start = 0.0
    gaps = rng.standard_exponential(chunk)
    gaps[0] = 0.0
    while True:
        points = start + np.cumsum(gaps)
        if points[-1] >= total:
            below = points[points < total]
            if len(below):
                yield below
            return
        yield points
        start = float(points[-1])
        gaps = rng.standard_exponential(chunk)
