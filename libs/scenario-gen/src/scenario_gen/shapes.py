"""Arrival-rate shapes lambda(t): every shape is a piecewise-linear rate, so one integral
Lambda(t) and one inverse serve them all (the arrival processes map unit-rate points through
Lambda^-1, see arrivals.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from scenario_gen.errors import ShapeError

FloatArray = npt.NDArray[np.float64]
Interpolation = Literal["hold", "linear"]


@dataclass(frozen=True, eq=False)
class RateShape:
    """lambda(t) = rates[i] + slopes[i] * (t - starts[i]) on [starts[i], starts[i+1]), in
    invites per second, for 0 <= t < duration_s."""

    starts: FloatArray
    rates: FloatArray
    slopes: FloatArray
    duration_s: float
    name: str = "shape"
    ends: FloatArray = field(init=False, repr=False)
    # Lambda at each start, then at the end: len(starts) + 1 values
    cumulative_at: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.duration_s <= 0 or not np.isfinite(self.duration_s):
            raise ShapeError(f"duration must be > 0 seconds, not {self.duration_s}")
        if len(self.starts) == 0 or self.starts[0] != 0:
            raise ShapeError("a shape starts at t = 0")
        if np.any(np.diff(self.starts) <= 0):
            raise ShapeError("segment starts must increase")
        ends = np.append(self.starts[1:], self.duration_s)
        end_rates = self.rates + self.slopes * (ends - self.starts)
        if np.any(self.rates < 0) or np.any(end_rates < -1e-9):
            raise ShapeError("rates must be >= 0 everywhere")
        lengths = ends - self.starts
        areas = self.rates * lengths + self.slopes * lengths**2 / 2
        object.__setattr__(self, "ends", ends)
        object.__setattr__(self, "cumulative_at", np.concatenate(([0.0], np.cumsum(areas))))

    @classmethod
    def from_points(
        cls,
        times: Sequence[float],
        rates: Sequence[float],
        interpolate: Interpolation,
        duration_s: float,
        name: str = "table",
    ) -> RateShape:
        """Through (time, rate) points: `hold` keeps each rate until the next point, `linear`
        joins them; before the first and after the last point the rate is held."""
        if not duration_s > 0:
            raise ShapeError(f"duration must be > 0 seconds, not {duration_s}")
        t = np.asarray(times, dtype=np.float64)
        r = np.asarray(rates, dtype=np.float64)
        if len(t) == 0 or len(t) != len(r):
            raise ShapeError("a table needs (time, rate) points")
        if interpolate == "linear" and len(t) > 1:
            slopes = np.append(np.diff(r) / np.diff(t), 0.0)  # towards the next point
        else:
            slopes = np.zeros_like(r)
        keep = t < duration_s
        t, r, slopes = t[keep], r[keep], slopes[keep]
        if len(t) == 0:
            raise ShapeError(f"no point before the end of the shape at {duration_s:g} s")
        if t[0] > 0:  # the first rate holds from 0
            t = np.concatenate(([0.0], t))
            r = np.concatenate(([r[0]], r))
            slopes = np.concatenate(([0.0], slopes))
        return cls(t, r, slopes, duration_s, name)

    @property
    def total(self) -> float:
        """Lambda(duration): the expected number of invites."""
        return float(self.cumulative_at[-1])

    @property
    def peak(self) -> float:
        end_rates = self.rates + self.slopes * (self.ends - self.starts)
        return float(max(self.rates.max(), end_rates.max()))

    def _segment(self, t: FloatArray) -> npt.NDArray[np.intp]:
        index = np.searchsorted(self.starts, t, side="right") - 1
        return np.clip(index, 0, len(self.starts) - 1)

    def rate(self, t: npt.ArrayLike) -> FloatArray:
        """lambda(t), 0 outside [0, duration)."""
        t = np.asarray(t, dtype=np.float64)
        i = self._segment(t)
        value = self.rates[i] + self.slopes[i] * (t - self.starts[i])
        inside = (t >= 0) & (t < self.duration_s)
        return np.where(inside, np.maximum(value, 0.0), 0.0)

    def cumulative(self, t: npt.ArrayLike) -> FloatArray:
        """Lambda(t) = integral of lambda from 0 to t (t is clipped to [0, duration])."""
        t = np.clip(np.asarray(t, dtype=np.float64), 0.0, self.duration_s)
        i = self._segment(t)
        tau = t - self.starts[i]
        cumulative = self.cumulative_at
        return cumulative[i] + self.rates[i] * tau + self.slopes[i] * tau**2 / 2

    def inverse(self, u: FloatArray) -> FloatArray:
        """The t with Lambda(t) = u, for 0 <= u < total; where lambda is 0 for a while (Lambda
        flat), the t at which the rate picks up again."""
        cumulative = self.cumulative_at
        # the segment whose integral range holds u; segments with nothing in them are skipped
        i = np.clip(np.searchsorted(cumulative, u, side="right") - 1, 0, len(self.starts) - 1)
        d = u - cumulative[i]
        a, b = self.rates[i], self.slopes[i]
        # b/2 tau^2 + a tau - d = 0, in the form that is stable for b -> 0
        root = np.sqrt(np.maximum(a * a + 2 * b * d, 0.0))
        denominator = a + root
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            tau = np.where(b == 0, d / a, 2 * d / denominator)
        tau = np.where(np.isfinite(tau), tau, 0.0)  # nothing to integrate: stay at the start
        # with vanishing rates (subnormal floats) rounding can step past the end: clamp
        result: FloatArray = np.clip(self.starts[i] + tau, 0.0, self.duration_s)
        return result

    def second_rates(self, seconds: npt.ArrayLike) -> FloatArray:
        """Mean rate over each whole second (the declared arrival_rate_in_s); the last,
        partial second of a shape is averaged over its covered part."""
        start = np.asarray(seconds, dtype=np.float64)
        end = np.minimum(start + 1, self.duration_s)
        width = np.maximum(end - start, 1e-12)
        result: FloatArray = (self.cumulative(end) - self.cumulative(start)) / width
        return result
