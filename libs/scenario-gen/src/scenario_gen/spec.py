"""What to generate: the JSON body of POST /generate, also built by the CLI from its options
(one set of rules and error messages for both)."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenario_csv import ScenarioFormat
from scenario_gen.arrivals import Arrivals
from scenario_gen.shapes import Interpolation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstantShape(_Strict):
    kind: Literal["constant"] = "constant"
    rate: float = Field(gt=0, description="invites per second")
    duration_s: float = Field(gt=0)


class StepShape(_Strict):
    """The paper's scenario by default: 12 invites/s, +6 every 5 minutes, 6 steps (30 min)."""

    kind: Literal["step"] = "step"
    start_rate: float = Field(12.0, ge=0)
    step_rate: float = Field(6.0, description="added at every step (may be negative)")
    step_every_s: float = Field(300.0, gt=0)
    steps: int = Field(6, ge=1, le=100_000)

    @model_validator(mode="after")
    def _rates_stay_positive(self) -> Self:
        last = self.start_rate + self.step_rate * (self.steps - 1)
        if last < 0:
            raise ValueError(f"the last step's rate would be {last:g} invites/s; rates are >= 0")
        return self


class RampShape(_Strict):
    kind: Literal["ramp"] = "ramp"
    from_rate: float = Field(ge=0)
    to_rate: float = Field(ge=0)
    duration_s: float = Field(gt=0)


class TableShape(_Strict):
    """(seconds, rate) points; `hold` keeps a rate until the next point, `linear` joins them.
    Without duration_s the last point's time is the end."""

    kind: Literal["table"] = "table"
    points: list[tuple[float, float]] = Field(min_length=1)
    interpolate: Interpolation = "hold"
    duration_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _points_in_order(self) -> Self:
        times = [t for t, _ in self.points]
        if any(t < 0 for t in times) or any(b <= a for a, b in pairwise(times)):
            raise ValueError("point times must be >= 0 and increasing")
        if any(r < 0 for _, r in self.points):
            raise ValueError("rates must be >= 0")
        if self.end_s <= 0:
            raise ValueError("give duration_s, or a last point later than 0 s")
        return self

    @property
    def end_s(self) -> float:
        return self.duration_s if self.duration_s is not None else self.points[-1][0]


class MilanoShape(_Strict):
    """From Milano CDR files (Barlacchi et al. 2015): call-in + call-out per 10-minute slot of
    the chosen squares, chosen days in a row, scaled so the peak is peak_rate, each slot
    lasting 600 / compress seconds (compress 8: a day in 3 hours, as in the paper)."""

    kind: Literal["milano"] = "milano"
    files: list[str] = Field(min_length=1, description="CDR files (service: names in its data dir)")
    squares: list[int] | None = Field(None, description="square ids; null: all squares")
    days: list[dt.date] | None = Field(None, description="local dates; null: every day found")
    peak_rate: float = Field(42.0, gt=0, description="invites/s at the busiest slot")
    compress: float = Field(1.0, gt=0, le=600, description="time compression factor")
    interpolate: Interpolation = "linear"
    utc_offset_hours: float = Field(1.0, ge=-12, le=14, description="Milan in Nov/Dec: +1")


Shape = Annotated[
    ConstantShape | StepShape | RampShape | TableShape | MilanoShape, Field(discriminator="kind")
]


class GenerateRequest(_Strict):
    shape: Shape
    arrivals: Arrivals = "deterministic"
    seed: int = Field(0, ge=0, description="Poisson arrivals: the same seed, the same file")
    pods: int = Field(2, ge=2, le=100, description="client pods; even ones call odd ones")
    phones_per_pod: int = Field(100, ge=1, le=100)
    first_pod: int = Field(0, ge=0, le=98)
    hold_time_s: float = Field(
        0.0, ge=0, description="call duration: a phone is not called again within it (0: off)"
    )
    format: ScenarioFormat = ScenarioFormat.MAIN

    @model_validator(mode="after")
    def _pods_fit(self) -> Self:
        if self.first_pod % 2:
            raise ValueError(f"first_pod {self.first_pod} is odd; callers sit in even pods")
        if self.first_pod + self.pods > 100:
            raise ValueError(
                f"pods {self.first_pod}..{self.first_pod + self.pods - 1}: IDs allow pods 0-99"
            )
        return self


class ShapeRequest(_Strict):
    """The body of POST /plot: only the shape."""

    shape: Shape
