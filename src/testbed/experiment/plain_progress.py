"""The progress of a run as plain lines, for output that is not a terminal (tee, CI, a pipe),
where rich's Live view shows nothing until the end: the phases as they come, and every few
seconds of run time a line such as

    t=35s/150s rate=12.0/s proxies=3 p99=230ms (P0 1000ms) calls ok=410 failed=0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from testbed.experiment.spec import Experiment

DEFAULT_EVERY_S = 5.0

# per-second rates of the rows -> the running totals the line shows
_TOTALS = {"ok": "calls_succeeded_per_s", "failed": "calls_failed_per_s"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


class PlainProgress:
    """A run's progress callback (phase, row) that writes lines: each phase message, and a
    status line for the first row and then whenever `every_s` of run time have passed."""

    def __init__(
        self,
        experiment: Experiment,
        write: Callable[[str], None],
        every_s: float = DEFAULT_EVERY_S,
    ) -> None:
        self.experiment = experiment
        self.write = write
        self.every_s = every_s
        self.totals = dict.fromkeys(_TOTALS, 0.0)
        self._since: dict[str, float] = {}  # total -> t_s of the reading its next rate covers
        self._last_line_t: float | None = None

    def __call__(self, phase: str, row: dict[str, Any] | None) -> None:
        if row is None:
            self.write(phase)
            return
        t = _number(row.get("t_s")) or 0.0
        self._count(row, t)
        if self._last_line_t is None or t - self._last_line_t >= self.every_s - 1e-6:
            self._last_line_t = t
            self.write(self.line(row))

    def _count(self, row: dict[str, Any], t: float) -> None:
        """The calls so far from the rows' per-second rates: each rate covers the span since
        the last reading that gave one (a missed reading makes the next span longer), so
        rate x span adds up to the pods' counters exactly."""
        for total, key in _TOTALS.items():
            if key not in row:
                continue  # the scenario controller did not answer this time
            rate = _number(row[key])
            since = self._since.get(total)
            if rate is None:
                if since is None:
                    self._since[total] = t  # the first reading: rates start from here
                continue
            if since is not None:
                self.totals[total] += rate * (t - since)
            self._since[total] = t

    def line(self, row: dict[str, Any]) -> str:
        qos = self.experiment.qos
        t = _number(row.get("t_s")) or 0.0
        duration = _number(row.get("duration_s"))
        parts = [f"t={t:.0f}s" + ("" if duration is None else f"/{duration:.0f}s")]
        rate = _number(row.get("lb_invites_per_s"))
        parts.append("rate=-" if rate is None else f"rate={rate:.1f}/s")
        proxies = row.get("proxies")
        parts.append(f"proxies={'-' if proxies is None else proxies}")
        p99 = _number(row.get("p99_ms"))
        over = p99 is not None and p99 > qos.p0_ms
        value = "-" if p99 is None else f"{p99:.{0 if p99 >= 10 else 1}f}ms"  # 0.9, not 1
        parts.append(f"p{qos.percentile:g}={value} ({'> ' if over else ''}P0 {qos.p0_ms:g}ms)")
        ok, failed = (round(self.totals[k]) for k in ("ok", "failed"))
        parts.append(f"calls ok={ok} failed={failed}")
        return " ".join(parts)
