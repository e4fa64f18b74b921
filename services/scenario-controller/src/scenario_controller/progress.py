"""Once a second: what the panel shows (and what the metrics say) about pods and the run."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from scenario_controller.history import PastRun
from scenario_controller.hub import ClientHub
from scenario_controller.runner import ScenarioRun

_KEEP = 600  # seconds of history for the live charts


class ProgressTracker:
    def __init__(self, hub: ClientHub) -> None:
        self.hub = hub
        self.series: deque[dict[str, Any]] = deque(maxlen=_KEEP)
        self._previous: tuple[float, int, int, int] | None = None

    def _call_totals(self) -> tuple[int, int]:
        succeeded = failed = 0
        for pod in self.hub.pods.values():
            if pod.stats is not None:
                succeeded += pod.stats.calls_succeeded
                failed += pod.stats.calls_failed
        return succeeded, failed

    def tick(self, run: ScenarioRun | PastRun | None) -> dict[str, Any]:
        now = time.time()
        succeeded, failed = self._call_totals()
        sent = run.sent if run else 0
        if self._previous is not None:
            then, prev_ok, prev_fail, prev_sent = self._previous
            span = max(now - then, 1e-6)
            last = run.seconds[-1].view() if run and run.seconds else {}
            self.series.append(
                {
                    "t": round(now, 3),
                    "sent_per_s": max(0, sent - prev_sent) / span if run else 0.0,
                    "succeeded_per_s": max(0, succeeded - prev_ok) / span,
                    "failed_per_s": max(0, failed - prev_fail) / span,
                    "lag_p50_ms": last.get("lag_p50_ms"),
                    "lag_p99_ms": last.get("lag_p99_ms"),
                }
            )
        self._previous = (now, succeeded, failed, sent)
        return self.snapshot(run)

    def snapshot(self, run: ScenarioRun | PastRun | None) -> dict[str, Any]:
        succeeded, failed = self._call_totals()
        return {
            "type": "progress",
            "at": time.time(),
            "clients": self.hub.views(),
            "connected": self.hub.connected,
            "calls": {"succeeded": succeeded, "failed": failed},
            "run": run.view() if run else None,
            "series": list(self.series)[-120:],
        }
