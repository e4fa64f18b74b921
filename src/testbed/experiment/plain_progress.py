"""The progress of a run as plain lines, for output that is not a terminal (tee, CI, a pipe),
where rich's Live view shows nothing until the end: the phases as they come, and every few
seconds of run time a line such as

    t=35s/150s rate=12.0/s proxies=3 p99=230ms (P0 1000ms) calls ok=410 failed=0
"""

from __future__ import annotations

import math
from collections.abc import Callable

from testbed.experiment.loop import Running
from testbed.experiment.spec import Experiment
from testbed.sample import Sample

DEFAULT_EVERY_S = 5.0


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class PlainProgress:
    """A run's progress callback (phase, running) that writes lines: each phase message, and a
    status line for the first sample and then whenever `every_s` of run time have passed."""

    def __init__(
        self,
        experiment: Experiment,
        write: Callable[[str], None],
        every_s: float = DEFAULT_EVERY_S,
    ) -> None:
        self.experiment = experiment
        self.write = write
        self.every_s = every_s
        self.totals = {"ok": 0.0, "failed": 0.0}
        self._since: dict[str, float] = {}  # total -> t_s of the reading its next rate covers
        self._last_line_t: float | None = None

    def __call__(self, phase: str, running: Running | None) -> None:
        if running is None:
            self.write(phase)
            return
        t = running.sample.t_s
        self._count(running.sample, t)
        if self._last_line_t is None or t - self._last_line_t >= self.every_s - 1e-6:
            self._last_line_t = t
            self.write(self.line(running))

    def _count(self, sample: Sample, t: float) -> None:
        """The calls so far from the samples' per-second rates: each rate covers the span since
        the last reading that gave one (a missed reading makes the next span longer), so
        rate x span adds up to the pods' counters exactly."""
        clients = sample.clients
        if clients is None:
            return  # the scenario controller did not answer this time
        for total, value in (
            ("ok", clients.calls_succeeded_per_s),
            ("failed", clients.calls_failed_per_s),
        ):
            rate = _number(value)
            since = self._since.get(total)
            if rate is None:
                if since is None:
                    self._since[total] = t  # the first reading: rates start from here
                continue
            if since is not None:
                self.totals[total] += rate * (t - since)
            self._since[total] = t

    def line(self, running: Running) -> str:
        qos = self.experiment.qos
        sample = running.sample
        t, duration = sample.t_s, running.duration_s
        parts = [f"t={t:.0f}s/{duration:.0f}s"]
        rate = _number(sample.lb_invites_per_s)
        parts.append("rate=-" if rate is None else f"rate={rate:.1f}/s")
        parts.append(f"proxies={sample.proxies}")
        p99 = _number(sample.latency_percentile_ms)
        over = p99 is not None and p99 > qos.p0_ms
        value = "-" if p99 is None else f"{p99:.{0 if p99 >= 10 else 1}f}ms"  # 0.9, not 1
        parts.append(f"p{qos.percentile:g}={value} ({'> ' if over else ''}P0 {qos.p0_ms:g}ms)")
        ok, failed = (round(self.totals[k]) for k in ("ok", "failed"))
        parts.append(f"calls ok={ok} failed={failed}")
        return " ".join(parts)
