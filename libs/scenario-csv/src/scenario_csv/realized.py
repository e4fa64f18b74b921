"""Realized per-second rate against the declared arrival_rate_in_s (main format).

The validator hands over one closed second at a time (bounded memory). Two modes:

- statistical (default, right for Poisson and deterministic files): invites are summed over
  windows of consecutive seconds (closed once their declared rates add up to WINDOW_EXPECTED
  invites or they span WINDOW_SECONDS) and over the whole file; a window is a defect when
  its count is more than `z_limit` standard deviations of a Poisson count away from the sum
  of the declared rates. Rates are only declared in seconds that have rows: a run of empty
  seconds is given the lower of the rates around it, unless that rate would have put
  ZERO_SECTION invites into it (a Poisson gap that long essentially never happens), in which
  case the rate was 0 there (a zero-rate section of the shape).
- deterministic (the paper's wait = 1000/lambda): additionally every second's count must be
  within 2 of its declared rate (floor/ceil of lambda, plus one invite a millisecond
  rounding may move over a second's edge) and every wait must fit 1000/rate for the rates
  of its second and the neighbouring seconds, within DETERMINISTIC_WAIT_TOLERANCE + 1 ms.
  This assumes lambda changes little within a second (steps are fine, steep ramps are not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scenario_csv.errors import Defect

RateCheck = Literal["statistical", "deterministic", "off"]

WINDOW_EXPECTED = 1000.0
WINDOW_SECONDS = 3600
ZERO_SECTION = 20.0
DETERMINISTIC_COUNT_TOLERANCE = 2.0
DETERMINISTIC_WAIT_TOLERANCE = 0.02
# a declared rate is written with 3 decimals (or 3 significant digits below 0.1)
ROUNDING_PER_SECOND = 0.0005
FIELD = "arrival_rate_in_s"


@dataclass(slots=True)
class SecondWaits:
    """Waits of one second's rows: min/max (with their lines) of all but the last row's, and
    the last row's, which reaches into a later second."""

    low: int = -1
    low_line: int = 0
    high: int = -1
    high_line: int = 0
    last: int = -1
    last_line: int = 0


@dataclass(slots=True)
class _Window:
    first_line: int = 0
    first_second: int = -1
    last_second: int = -1
    expected: float = 0.0
    count: int = 0
    slack: float = 0.0


class RealizedRateCheck:
    def __init__(self, mode: RateCheck = "statistical", z_limit: float = 6.0) -> None:
        self.mode = mode
        self.z_limit = z_limit
        self._window = _Window()
        self._total = _Window()
        self._previous: tuple[int, float] | None = None  # (second, rate) closed last
        self._windows = 0

    def close_second(
        self,
        second: int,
        count: int,
        rate: float,
        first_line: int,
        waits: SecondWaits | None,
        following: tuple[int, float] | None,
        covered: float = 1.0,
    ) -> list[Defect]:
        """Account for a closed second; `following` is the next second with rows and its rate,
        `covered` the part of the second before the scenario's end (the last one may be cut)."""
        if self.mode == "off":
            return []
        defects: list[Defect] = []
        expected = rate * covered
        self._add(self._window, second, count, expected, first_line, 1)
        self._add(self._total, second, count, expected, first_line, 1)
        if self.mode == "deterministic":
            if abs(count - expected) > DETERMINISTIC_COUNT_TOLERANCE:
                defects.append(
                    Defect(
                        first_line,
                        FIELD,
                        f"second {second} has {count} invites but declares {rate:g}/s"
                        + (f" for {covered:.3g} s" if covered < 1 else "")
                        + " (deterministic spacing keeps the count within 2 of the rate)",
                    )
                )
            if waits is not None:
                defects.extend(self._check_waits(second, rate, waits, following))
        if following is not None and following[0] > second + 1:
            gap = following[0] - second - 1
            gap_rate = min(rate, following[1])
            if gap_rate * gap < ZERO_SECTION:
                self._add(self._window, second + gap, 0, gap_rate * gap, first_line, gap)
                self._add(self._total, second + gap, 0, gap_rate * gap, first_line, gap)
                if self.mode == "deterministic" and gap_rate > DETERMINISTIC_COUNT_TOLERANCE:
                    defects.append(
                        Defect(
                            first_line,
                            FIELD,
                            f"seconds {second + 1}-{second + gap} have no invites although "
                            f"the seconds around them declare at least {gap_rate:g}/s",
                        )
                    )
            else:
                defects.extend(self._close_window())
        window = self._window
        if (
            window.expected >= WINDOW_EXPECTED
            or window.last_second - window.first_second + 1 >= WINDOW_SECONDS
        ):
            defects.extend(self._close_window())
        self._previous = (second, rate)
        return defects

    def finish(self) -> list[Defect]:
        """Test the open window and the whole file."""
        if self.mode == "off":
            return []
        defects = self._close_window()
        total = self._total
        if self._windows > 1:  # with one window it is the whole file, tested already
            defect = self._test(total, "the whole file")
            if defect is not None:
                defects.append(defect)
        return defects

    @staticmethod
    def _add(
        window: _Window, second: int, count: int, expected: float, line: int, seconds: int
    ) -> None:
        if window.first_second < 0:
            window.first_second = second
            window.first_line = line
        window.last_second = second
        window.count += count
        window.expected += expected
        window.slack += ROUNDING_PER_SECOND * seconds

    def _close_window(self) -> list[Defect]:
        window, self._window = self._window, _Window()
        if window.first_second < 0:
            return []
        self._windows += 1
        defect = self._test(window, f"seconds {window.first_second}-{window.last_second}")
        return [] if defect is None else [defect]

    def _test(self, window: _Window, what: str) -> Defect | None:
        allowed = self.z_limit * math.sqrt(window.expected) + 2 + window.slack
        if abs(window.count - window.expected) <= allowed:
            return None
        return Defect(
            window.first_line,
            FIELD,
            f"{what} have {window.count} invites, but their declared rates add up to "
            f"{window.expected:.1f} (more than {self.z_limit:g} standard deviations of a "
            "Poisson count apart)",
        )

    def _check_waits(
        self, second: int, rate: float, waits: SecondWaits, following: tuple[int, float] | None
    ) -> list[Defect]:
        rates = [rate]
        # the rate of the last second with rows held until this one (over seconds without
        # rows it may still be in force here: a step up within this second makes its average
        # higher than the rate its first rows were placed at)
        if self._previous is not None:
            rates.append(self._previous[1])
        adjacent = following is not None and following[0] == second + 1
        if following is not None and adjacent:
            rates.append(following[1])
        defects: list[Defect] = []
        # waits from one row of this second to the next row in it
        shortest, longest = _wait_bounds(rates)
        allowed = _allowed(shortest, longest)
        if 0 <= waits.low < shortest:
            defects.append(_wait_defect(waits.low_line, waits.low, rates, second, allowed))
        if waits.high > longest:
            defects.append(_wait_defect(waits.high_line, waits.high, rates, second, allowed))
        # the last row's wait reaches into the next second with rows (none after the last
        # row of the file: its wait runs to the scenario's end)
        if waits.last < 0 or following is None:
            return defects
        if not adjacent:
            # over seconds without rows: lambda in between lies around the rates at both
            # ends, and a rate of 0 there makes any longer wait right
            rates = [*rates, following[1]]
        shortest, longest = _wait_bounds(rates)
        if not adjacent:
            longest = math.inf
        if not shortest <= waits.last <= longest:
            allowed = _allowed(shortest, longest)
            defects.append(_wait_defect(waits.last_line, waits.last, rates, second, allowed))
        return defects


def _wait_bounds(rates: list[float]) -> tuple[float, float]:
    fastest, slowest = max(rates), min(rates)
    if fastest <= 0:
        return -math.inf, math.inf
    shortest = 1000 / fastest * (1 - DETERMINISTIC_WAIT_TOLERANCE) - 1
    longest = 1000 / slowest * (1 + DETERMINISTIC_WAIT_TOLERANCE) + 1 if slowest > 0 else math.inf
    return shortest, longest


def _allowed(shortest: float, longest: float) -> str:
    return f"1000/rate allows {max(shortest, 0):.0f}-{longest:.0f} ms"


def _wait_defect(line: int, wait: int, rates: list[float], second: int, allowed: str) -> Defect:
    slowest, fastest = min(rates), max(rates)
    span = f"{slowest:g}/s" if slowest == fastest else f"{slowest:g}-{fastest:g}/s"
    return Defect(
        line, "wait_before_next_in_ms", f"{wait} ms at {span} around second {second}: {allowed}"
    )
