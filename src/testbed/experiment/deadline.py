"""When a run's sampling loop ends, and why (sans-I/O: times and observations are passed in).

The loop normally ends `drain` seconds after the scenario controller reports the run over. It
must also end when the controller never says so (it died, restarted without the run, or stopped
answering): at the deadline, the scenario's duration plus the drain plus a margin for the
controller's lag, extended by the time the run was paused.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVE = ("running", "paused")
# statuses in summary.json
COMPLETED = "completed"
DEADLINE = "deadline"
INTERRUPTED = "interrupted"
FAILED = "failed"


def deadline_margin(duration_s: float) -> float:
    """Slack for the scenario controller's lag: 30 s plus 5% of the scenario's duration."""
    return 30.0 + 0.05 * duration_s


@dataclass(frozen=True)
class RunEnd:
    status: str  # COMPLETED, DEADLINE, INTERRUPTED or FAILED
    reason: str  # one sentence for summary.json and the terminal


class EndWatch:
    """Fed once per sample with the run's state at the scenario controller (None: no answer)
    and, when there was no answer, why; says when the loop is over."""

    def __init__(
        self, started: float, duration_s: float, drain_s: float, margin_s: float, origin: float
    ) -> None:
        self.started = started
        self.duration_s = duration_s
        self.drain_s = drain_s
        self.margin_s = margin_s
        self.origin = origin  # t_s = 0 of the time series, for the times in reasons
        self.paused_s = 0.0
        self._paused_since: float | None = None
        self._over_since: float | None = None
        self._over_state = ""
        self.last_state: str | None = None
        self.last_answer: float | None = None
        self.silent_since: float | None = None
        self.problem: str | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.duration_s + self.drain_s + self.margin_s + self.paused_s

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def _t(self, at: float) -> str:
        return f"t={at - self.origin:.0f} s"

    def observe(self, now: float, state: str | None, problem: str | None = None) -> RunEnd | None:
        if state is None:
            if self.silent_since is None:
                self.silent_since = now
            self.problem = problem or self.problem
        else:
            self.silent_since, self.last_answer, self.last_state = None, now, state
        self._track_pause(now, state)
        if state is not None and state not in ACTIVE:
            if self._over_since is None:
                self._over_since, self._over_state = now, state
            if now - self._over_since >= self.drain_s:
                return self._over()
        if now >= self.deadline:
            return RunEnd(DEADLINE, self._why_deadline(now))
        return None

    def _track_pause(self, now: float, state: str | None) -> None:
        # a pause (from the panel or the API) moves the deadline by its length; silence does
        # not: a controller that dies while paused must not hold the run forever
        if self._paused_since is not None:
            self.paused_s += now - self._paused_since
            self._paused_since = None
        if state == "paused":
            self._paused_since = now

    def _over(self) -> RunEnd:
        assert self._over_since is not None
        at = self._t(self._over_since)
        if self._over_state == "finished":
            return RunEnd(
                COMPLETED,
                f"the scenario controller reported the run finished at {at}; sampled "
                f"{self.drain_s:g} s more",
            )
        if self._over_state == "interrupted":
            return RunEnd(
                INTERRUPTED,
                f"the scenario controller lost the run: it restarted and reported it "
                f"interrupted at {at}",
            )
        return RunEnd(
            INTERRUPTED,
            f"the scenario controller reported the run {self._over_state} at {at}"
            + (
                " (stopped from its API or panel, not by this run)"
                if self._over_state == "stopped"
                else ""
            ),
        )

    def _why_deadline(self, now: float) -> str:
        bound = (
            f"ended at the deadline {self._t(now)} (scenario {self.duration_s:g} s + drain "
            f"{self.drain_s:g} s + margin {self.margin_s:g} s"
            + (f" + paused {self.paused_s:.0f} s" if self.paused_s >= 0.5 else "")
            + ")"
        )
        if self.silent_since is not None:
            cause = f" ({self.problem})" if self.problem else ""
            since = (
                f"since {self._t(self.silent_since)}"
                if self.last_answer is not None
                else "at any time"
            )
            return (
                f"the scenario controller did not answer for the run{cause} {since}"
                f" (last state: {self.last_state or 'none'}); {bound}"
            )
        return f"the scenario controller still reported the run {self.last_state}; {bound}"
