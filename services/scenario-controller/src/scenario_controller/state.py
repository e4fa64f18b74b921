"""Everything the routes share, created in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import WebSocket

from scenario_controller.config import Settings
from scenario_controller.experiment import ExperimentFeed, load_replay
from scenario_controller.history import PastRun, load_runs
from scenario_controller.hub import ClientHub
from scenario_controller.metrics import ControllerMetrics
from scenario_controller.progress import ProgressTracker
from scenario_controller.runner import ScenarioRun
from scenario_controller.store import ScenarioStore
from testbed_messages import RegisterAll, encode

log = logging.getLogger(__name__)


class RunConflict(Exception):
    pass


Run = ScenarioRun | PastRun


class Controller:
    def __init__(
        self, settings: Settings, metrics: ControllerMetrics, http: httpx.AsyncClient
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.http = http
        self.hub = ClientHub(metrics)
        self.store = ScenarioStore(settings.scenario_dir, settings.pairing_convention)
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        # runs of earlier lifetimes first, so their logs stay available after a restart
        self.runs: dict[str, Run] = {run.run_id: run for run in load_runs(settings.runs_dir)}
        self.current: Run | None = list(self.runs.values())[-1] if self.runs else None
        self.progress = ProgressTracker(self.hub)
        self.panels: set[WebSocket] = set()
        self.register_requested_at: float | None = None
        replay = load_replay(settings.experiment_replay) if settings.experiment_replay else None
        self.experiment = ExperimentFeed(settings.experiment_keep_rows, replay)
        # what the panels were last sent of it: (epoch, last sample's seq, version)
        self._experiment_sent = (
            self.experiment.epoch,
            self.experiment.seq,
            self.experiment.version,
        )
        metrics.clients.set_function(lambda: self.hub.connected)

    # -- commands --------------------------------------------------------------------------

    def register_all(self) -> list[str]:
        self.register_requested_at = time.time()
        return self.hub.broadcast(encode(RegisterAll()))

    def start(self, scenario: str, speed: float, hold_ms: int | None) -> ScenarioRun:
        if self.current is not None and self.current.active:
            raise RunConflict(f"run {self.current.run_id} is {self.current.state}: stop it first")
        stored = self.store.get(scenario)  # raises UnknownScenario
        run_id = base = time.strftime("%Y%m%d-%H%M%S") + f"-{stored.name}"
        n = 1
        while run_id in self.runs or (self.settings.runs_dir / f"{run_id}.csv").exists():
            n += 1
            run_id = f"{base}-{n}"
        lines: Iterator[str] = self.store.lines(stored.name)
        run = ScenarioRun(
            run_id,
            stored.name,
            lines,
            self.hub,
            self.metrics,
            self.settings.runs_dir / f"{run_id}.csv",
            speed,
            self.settings.default_hold_ms if hold_ms is None else hold_ms,
            stored.rows,
            stored.duration_s,
        )
        self.runs[run_id] = run
        self.current = run
        log.info("run %s: scenario %s at speed %g", run_id, stored.name, speed)
        return run

    async def stop_runs(self, within: float = 10.0) -> None:
        """Stop every active run and let it write its log and record (bounded wait)."""
        tasks = []
        for run in self.runs.values():
            run.stop()
            if isinstance(run, ScenarioRun) and not run.task.done():
                tasks.append(run.task)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=within)
            for task in pending:  # their record keeps saying running: interrupted on restart
                task.cancel()

    # -- registrations, as the sip-controller sees them ----------------------------------

    async def registered_by_pod(self) -> tuple[dict[str, int], str | None]:
        if not self.settings.sip_controller_url:
            return {}, "SIP_CONTROLLER_URL not set"
        try:
            response = await self.http.get(
                f"{self.settings.sip_controller_url}/registrations", timeout=5
            )
            response.raise_for_status()
            users = response.json()["users"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            return {}, f"sip-controller: {exc}"
        counts: dict[str, int] = {}
        for user in users:
            counts[user[:2]] = counts.get(user[:2], 0) + 1
        return counts, None

    # -- the panel's live feed -----------------------------------------------------------

    async def publish_forever(self) -> None:
        while True:
            snapshot = self.progress.tick(self.current)
            texts = [json.dumps(snapshot)]
            experiment = self._experiment_delta()
            if experiment is not None:
                texts.append(experiment)
            # one sender for every message: a socket is never written from two tasks at once
            for socket in list(self.panels):
                try:
                    for text in texts:
                        await asyncio.wait_for(socket.send_text(text), timeout=2)
                except Exception:  # a closed or stuck browser: forget it
                    self.panels.discard(socket)
            await asyncio.sleep(self.settings.progress_interval_seconds)

    def _experiment_delta(self) -> str | None:
        """The experiment's samples since the last tick (and its proxies, events and
        description), or None when nothing changed. A panel that missed some (it connected
        in between, or the epoch moved) sees the gap in `seq` and reads GET /experiment."""
        feed = self.experiment
        epoch, seq, version = self._experiment_sent
        if (feed.epoch, feed.version) == (epoch, version):
            return None
        view = feed.view(after=seq if feed.epoch == epoch else 0)
        self._experiment_sent = (view["epoch"], feed.seq, view["version"])
        return json.dumps(view)

    async def serve_panel(self, socket: WebSocket) -> None:
        await socket.accept()
        self.panels.add(socket)
        try:
            await socket.send_text(json.dumps(self.progress.snapshot(self.current)))
            while True:
                await socket.receive_text()  # the panel only listens; this notices the close
        except Exception:
            pass
        finally:
            self.panels.discard(socket)
            with contextlib.suppress(Exception):
                await socket.close()

    def summary(self) -> dict[str, Any]:
        return {
            "pods": self.hub.connected,
            "scenarios": len(self.store.all()),
            "run": self.current.view() if self.current else None,
        }
