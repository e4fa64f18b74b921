"""The terminal view of a running experiment: phase, elapsed/remaining, rates, p99, proxies."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from testbed.experiment.loop import Running
from testbed.experiment.spec import Experiment


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


class ProgressView:
    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        self.phase = "starting"
        self.running: Running | None = None
        self.started = time.monotonic()
        self.messages: list[str] = []

    def update(self, phase: str, running: Running | None) -> Group:
        if running is None:
            self.messages = [*self.messages[-4:], phase]
            self.phase = phase
        else:
            self.phase, self.running = "running", running
        return self.render()

    def render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("experiment", self.experiment.name)
        table.add_row("phase", self.phase)
        if self.running is not None:
            sample, duration = self.running.sample, self.running.duration_s
            elapsed = sample.t_s
            table.add_row(
                "elapsed / remaining", f"{elapsed:.0f} s / {max(0.0, duration - elapsed):.0f} s"
            )
            scenario, clients = sample.scenario, sample.clients
            table.add_row("invites sent/s", _num(scenario and scenario.sent_per_s))
            table.add_row("new INVITEs at the LB/s", _num(sample.lb_invites_per_s))
            ok = _num(clients and clients.calls_succeeded_per_s)
            failed = _num(clients and clients.calls_failed_per_s)
            table.add_row("calls ok/s, failed/s", f"{ok}, {failed}")
            p0 = self.experiment.qos.p0_ms
            p99 = sample.latency_percentile_ms
            mark = "" if p99 is None else (" [red]> P0[/red]" if p99 > p0 else " (< P0)")
            table.add_row(
                f"p{self.experiment.qos.percentile:g} ({self.experiment.qos.window_s:g} s window)",
                Text.from_markup(f"{_num(p99)} ms{mark}"),
            )
            table.add_row("proxies", str(sample.proxies))
        log = Text("\n".join(self.messages[-4:]), style="dim")
        return Group(table, log)

    @staticmethod
    def summary_text(folder: Path) -> str:
        """The summary's figures in a sentence, printed after the run."""
        data = json.loads((folder / "summary.json").read_text())
        worst = data.get("worst_p99_ms")
        worst_text = "-" if worst is None else f"{worst:.0f} ms"
        share = data["p99_violation_share"]
        calls = f"{data['calls_succeeded']}/{data['calls_attempted']}"
        return (
            f"p{data['percentile']:g} above {data['p0_ms']:g} ms in {share:.1%} of windows "
            f"(worst {worst_text}); calls {calls} succeeded, {data['calls_failed']} failed; "
            f"{data['proxy_seconds']:.0f} proxy-seconds; report: {folder / 'report.html'}"
        )
