"""Replays one scenario: invites go out on an absolute timeline (start + offset / speed), with
pauses shifting the timeline, never by sleeping each wait in turn. Every invite is written to
the run log with its scheduled and actual send time, row by row (a crash keeps what was sent),
and the run's record (`<id>.json` beside the log) is written atomically when it starts and ends,
so a restarted controller can list it again (history.py)."""

from __future__ import annotations

import asyncio
import csv
import enum
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from scenario_controller.files import write_atomic
from scenario_controller.hub import ClientHub
from scenario_controller.metrics import ControllerMetrics
from scenario_controller.timeline import Due, timeline
from testbed_messages import Invite, encode

LOG_FIELDS = (
    "seq",
    "caller",
    "callee",
    "pod",
    "offset_s",
    "scheduled_at",
    "sent_at",
    "lag_ms",
    "status",
)
_MAX_SLEEP = 0.25  # wake at least this often to notice pause and stop
_SERIES_SECONDS = 3600


class RunState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"
    # the controller stopped while the run was active (found so after a restart)
    INTERRUPTED = "interrupted"


ACTIVE = (RunState.RUNNING, RunState.PAUSED)


class RunRecord(BaseModel):
    """What is kept of a run beside its log (`<id>.json`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    scenario: str
    state: RunState
    speed: float
    hold_ms: int = 0
    rows: int = 0
    duration_s: float = 0.0
    started_at: float
    ended_at: float | None = None
    scheduled: int = 0
    sent: int = 0
    undeliverable: int = 0
    error: str | None = None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class SecondStats:
    second: int
    scheduled: int = 0
    sent: int = 0
    undeliverable: int = 0
    lags_ms: list[float] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "second": self.second,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "undeliverable": self.undeliverable,
            "lag_p50_ms": percentile(self.lags_ms, 50),
            "lag_p99_ms": percentile(self.lags_ms, 99),
        }


class ScenarioRun:
    def __init__(
        self,
        run_id: str,
        scenario: str,
        lines: Iterator[str],
        hub: ClientHub,
        metrics: ControllerMetrics,
        log_path: Path,
        speed: float = 1.0,
        hold_ms: int = 0,
        rows: int = 0,
        duration_s: float = 0.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.run_id = run_id
        self.scenario = scenario
        self.hub = hub
        self.metrics = metrics
        self.speed = speed
        self.hold_ms = hold_ms
        self.rows = rows
        self.duration_s = duration_s / speed
        self.log_path = log_path
        self.state = RunState.RUNNING
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.error: str | None = None
        self.scheduled = self.sent = self.undeliverable = 0
        self.seconds: deque[SecondStats] = deque(maxlen=_SERIES_SECONDS)
        self._lines = lines
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._paused_total = 0.0
        self._paused_at: float | None = None
        self._wake = asyncio.Event()
        self._stop = False
        self._log_file: IO[str] = log_path.open("w", newline="")
        self._log = csv.writer(self._log_file)
        self._log.writerow(LOG_FIELDS)
        self._pending = 0  # queued to a pod, not yet written
        self.save_record()
        self.task = asyncio.create_task(self._run())

    # -- control ---------------------------------------------------------------------------

    def pause(self) -> None:
        if self.state is RunState.RUNNING:
            self.state = RunState.PAUSED
            self._paused_at = self._loop.time()

    def resume(self) -> None:
        if self.state is RunState.PAUSED and self._paused_at is not None:
            self._paused_total += self._loop.time() - self._paused_at
            self._paused_at = None
            self.state = RunState.RUNNING
            self._wake.set()

    def stop(self) -> None:
        if self.state in ACTIVE:
            self._stop = True
            self._wake.set()

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def record_path(self) -> Path:
        return self.log_path.with_suffix(".json")

    def record(self) -> RunRecord:
        return RunRecord(
            id=self.run_id,
            scenario=self.scenario,
            state=self.state,
            speed=self.speed,
            hold_ms=self.hold_ms,
            rows=self.rows,
            duration_s=self.duration_s,
            started_at=self.started_at,
            ended_at=self.ended_at,
            scheduled=self.scheduled,
            sent=self.sent,
            undeliverable=self.undeliverable,
            error=self.error,
        )

    def save_record(self) -> None:
        write_atomic(self.record_path, self.record().model_dump_json(indent=1))

    def elapsed(self) -> float:
        now = self._paused_at if self._paused_at is not None else self._loop.time()
        return max(0.0, now - self._start - self._paused_total)

    # -- the schedule ----------------------------------------------------------------------

    def _target(self, due: Due) -> float:
        return self._start + self._paused_total + due.offset / self.speed

    async def _wait_until_due(self, due: Due) -> bool:
        """Sleep until `due` is due; False if the run was stopped meanwhile."""
        while True:
            if self._stop:
                return False
            if self.state is RunState.PAUSED:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._target(due) - self._loop.time()
            if delay <= 0:
                return True
            # a plain sleep is cheaper and more punctual than waiting on the event with a
            # timeout; pause and stop are noticed within _MAX_SLEEP
            await asyncio.sleep(min(delay, _MAX_SLEEP))

    def _second(self, offset: float) -> SecondStats:
        second = int(offset)
        if not self.seconds or self.seconds[-1].second < second:
            self.seconds.append(SecondStats(second))
        return self.seconds[-1]

    async def _run(self) -> None:
        try:
            for due in timeline(self._lines, self.scenario):
                if not await self._wait_until_due(due):
                    break
                self._dispatch(due)
            await self._drain()
            self.state = RunState.STOPPED if self._stop else RunState.FINISHED
        except Exception as exc:  # a file that changed under us: keep what was logged
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = RunState.STOPPED
        finally:
            self.ended_at = time.time()
            self._log_file.close()
            try:
                self.save_record()
            except OSError as exc:  # the log is complete; only the record is missing
                self.error = self.error or f"run record not written: {exc}"

    def _dispatch(self, due: Due) -> None:
        target = self._target(due)
        stats = self._second(target - self._start - self._paused_total)
        stats.scheduled += 1
        self.scheduled += 1
        invite = encode(
            Invite(caller=due.caller, callee=due.callee, hold_ms=self.hold_ms, seq=due.seq)
        )

        def written(at: float | None) -> None:
            self._pending -= 1
            if at is None:  # queued, but the pod disconnected before it went out
                self._undeliverable(due, target, stats)
            else:
                self._record(due, target, at, "sent", stats)

        if self.hub.send(due.pod, invite, written):
            self._pending += 1
        else:
            self._undeliverable(due, target, stats)

    def _undeliverable(self, due: Due, target: float, stats: SecondStats) -> None:
        self.undeliverable += 1
        stats.undeliverable += 1
        self.metrics.undeliverable.inc()
        self._record(due, target, None, "undeliverable", stats)

    def _record(
        self, due: Due, target: float, sent: float | None, status: str, stats: SecondStats
    ) -> None:
        wall = self.started_at - self._start  # monotonic -> Unix seconds
        lag_ms = None if sent is None else (sent - target) * 1000
        if sent is not None and lag_ms is not None:
            self.sent += 1
            stats.sent += 1
            stats.lags_ms.append(lag_ms)
            self.metrics.sent.inc()
            self.metrics.lag.observe(max(lag_ms, 0.0) / 1000)
        if self._log_file.closed:  # written after the run ended (its drain timed out)
            return
        self._log.writerow(
            (
                due.seq,
                due.caller,
                due.callee,
                due.pod,
                f"{due.offset:.3f}",
                f"{target + wall:.6f}",
                "" if sent is None else f"{sent + wall:.6f}",
                "" if lag_ms is None else f"{lag_ms:.3f}",
                status,
            )
        )
        self._log_file.flush()  # row by row: a crash of the controller keeps what was sent

    async def _drain(self) -> None:
        """Let the pods' queues write what is still pending (bounded wait)."""
        for _ in range(100):
            if self._pending <= 0:
                return
            await asyncio.sleep(0.05)

    def view(self) -> dict[str, Any]:
        last = self.seconds[-1].view() if self.seconds else None
        return {
            "id": self.run_id,
            "scenario": self.scenario,
            "state": self.state.value,
            "speed": self.speed,
            "rows": self.rows,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed(), 3),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "undeliverable": self.undeliverable,
            "error": self.error,
            "last_second": last,
        }
