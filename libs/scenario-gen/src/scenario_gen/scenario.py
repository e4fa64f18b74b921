"""A scenario request turned into a shape, a phone plan and a stream of CSV text: the one
implementation behind the library calls, the CLI and the service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from scenario_csv import ScenarioFormat, ScenarioRow
from scenario_gen.assignment import HoldTimeGuard, PhonePlan
from scenario_gen.errors import ShapeError
from scenario_gen.milano import day_series, load_calls, milano_shape
from scenario_gen.render import MainRenderer, TenMinuteRenderer
from scenario_gen.schedule import ScheduleChunk, schedule
from scenario_gen.shapes import RateShape
from scenario_gen.spec import (
    ConstantShape,
    GenerateRequest,
    MilanoShape,
    RampShape,
    Shape,
    StepShape,
    TableShape,
)

Resolve = Callable[[str], Path]


def build_shape(spec: Shape, resolve: Resolve = Path) -> RateShape:
    """The rate shape of a spec; `resolve` turns a Milano file name into a path."""
    match spec:
        case ConstantShape():
            return RateShape.from_points([0], [spec.rate], "hold", spec.duration_s, "constant")
        case StepShape():
            times = [i * spec.step_every_s for i in range(spec.steps)]
            rates = [spec.start_rate + i * spec.step_rate for i in range(spec.steps)]
            duration = spec.steps * spec.step_every_s
            return RateShape.from_points(times, rates, "hold", duration, "step")
        case RampShape():
            return RateShape.from_points(
                [0, spec.duration_s],
                [spec.from_rate, spec.to_rate],
                "linear",
                spec.duration_s,
                "ramp",
            )
        case TableShape():
            times = [t for t, _ in spec.points]
            rates = [r for _, r in spec.points]
            return RateShape.from_points(times, rates, spec.interpolate, spec.end_s, "table")
        case MilanoShape():
            calls = load_calls([resolve(f) for f in spec.files], spec.squares)
            _, series = day_series(calls, spec.days, spec.utc_offset_hours)
            return milano_shape(series, spec.peak_rate, spec.compress, spec.interpolate)
    raise ShapeError(f"unknown shape {spec!r}")


class Scenario:
    """Checks what can be checked up front (shape, pods against the peak rate), then streams."""

    def __init__(self, request: GenerateRequest, resolve: Resolve = Path) -> None:
        self.request = request
        self.shape = build_shape(request.shape, resolve)
        if self.shape.total <= 0:
            raise ShapeError("the shape's rate is 0 throughout: no invites")
        self.plan = PhonePlan(request.pods, request.phones_per_pod, request.first_pod)
        self.plan.check_peak(self.shape.peak, request.hold_time_s)
        self.hold_ms = round(request.hold_time_s * 1000)

    @property
    def expected_rows(self) -> float:
        return self.shape.total

    def schedule(self) -> Iterator[ScheduleChunk]:
        """Raises CapacityError at the first invite that would call a phone still in a call."""
        guard = HoldTimeGuard(self.plan, self.hold_ms) if self.hold_ms > 0 else None
        return schedule(self.shape, self.request.arrivals, self.request.seed, guard)

    def check_capacity(self) -> None:
        """Run the schedule once without writing (only needed with a hold time), so that a
        Poisson burst beyond the pods is refused before any output."""
        if self.hold_ms > 0:
            for _ in self.schedule():
                pass

    def text(self) -> Iterator[str]:
        """The file in the requested format, header first, a chunk of rows at a time."""
        pairs = self.plan.pairs()
        if self.request.format is ScenarioFormat.MAIN:
            main = MainRenderer(self.shape, pairs)
            yield main.header()
            for chunk in self.schedule():
                yield main.render(chunk)
            return
        ten = TenMinuteRenderer(pairs)
        yield ten.header()
        for chunk in self.schedule():
            yield ten.render(chunk)
        yield ten.finish()

    def rows(self) -> Iterator[ScenarioRow]:
        """Main-format rows as objects (slow; the text path is the fast one)."""
        main = MainRenderer(self.shape, self.plan.pairs())
        for chunk in self.schedule():
            yield from main.rows(chunk)
