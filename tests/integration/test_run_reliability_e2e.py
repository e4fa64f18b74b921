"""`testbed run` through the CLI on the real local testbed when things go wrong: the scenario
controller killed mid-run, the run sent SIGTERM, the run itself killed (then `testbed down`).
On addresses of their own (127.0.40.x-127.0.42.x), so they never meet other tests' testbeds."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from support import own_addresses_env

from testbed.local import processes
from testbed.local.state import Component, StateStore

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "testbed.cli"]
SCENARIO_URL = "http://127.0.40.1:8001"


def _experiment(duration_s: int) -> dict[str, object]:
    return {
        "name": "reliability",
        "scenario": {
            "generate": {
                "shape": {"kind": "constant", "rate": 10, "duration_s": duration_s},
                "pods": 2,
                "phones_per_pod": 5,
            },
            "hold_ms": 100,
        },
        "proxies": {"count": 1},
        "qos": {"p0_ms": 1000, "window_s": 5},
        # the run's Prometheus scrapes every 2 s: two scrapes in every 4-5 s window
        "metrics": {"scrape_interval_s": 2},
        "drain_s": 2,
    }


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return own_addresses_env(40, tmp_path / "state")


@dataclass
class Run:
    proc: subprocess.Popen[str]
    results: Path
    output: Path
    pattern: str = "reliability-*"  # its results folder, under `results`

    @property
    def folder(self) -> Path:
        folders = list(self.results.glob(self.pattern))
        assert len(folders) == 1, folders
        return folders[0]

    def state(self) -> list[Component]:
        state = StateStore(self.folder / "testbed").load()
        return state.components if state else []

    def text(self) -> str:
        return self.output.read_text()


class Runs:
    """Starts `testbed run` and waits for its scenario; remembers every component seen, so a
    failing test leaves nothing running."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path, self.env = tmp_path, env
        self.started: list[Run] = []
        self.seen: dict[str, Component] = {}

    def start(self, duration_s: int) -> Run:
        experiment = self.tmp_path / "reliability.yaml"
        experiment.write_text(yaml.safe_dump(_experiment(duration_s)))
        output = self.tmp_path / "output.txt"
        with output.open("w") as out:
            proc = subprocess.Popen(
                [*CLI, "run", str(experiment), "--results", str(self.tmp_path / "results")],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        run = Run(proc, self.tmp_path / "results", output)
        self.started.append(run)
        return run

    def running(self, run: Run, timeout: float = 120.0) -> list[Component]:
        """Wait until the scenario is being played; the testbed's components."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                assert run.proc.poll() is None, run.text()
                try:
                    runs = http.get(f"{SCENARIO_URL}/runs").json()
                except (httpx.HTTPError, ValueError):
                    runs = []
                if any(r["state"] == "running" for r in runs):
                    components = run.state()
                    self.seen.update((f"{c.name}:{c.pid}", c) for c in components)
                    return components
                time.sleep(0.5)
        raise AssertionError(f"the scenario never ran:\n{run.text()}")

    def wait(self, run: Run, timeout: float) -> int:
        """The run's exit status; meanwhile every component its state lists is remembered (a
        supervisor may restart one under a new PID)."""
        deadline = time.monotonic() + timeout
        while run.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running after {timeout} s"
            self.seen.update((f"{c.name}:{c.pid}", c) for c in run.state())
            time.sleep(0.5)
        return run.proc.returncode

    def clean_up(self) -> None:
        for run in self.started:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
        for component in self.seen.values():
            if component.handle is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(component.handle.pid, signal.SIGCONT)
                processes.stop(component.handle, timeout=5)

    def assert_all_gone(self) -> None:
        handles = [(c.name, c.handle) for c in self.seen.values() if c.handle is not None]
        # supervisor, controller, LB, proxy, analyzer, scenario controller, two pods
        assert len(handles) >= 8, handles
        alive = [name for name, handle in handles if handle.alive()]
        assert not alive, f"left running: {alive}"
        workers = [name for name, handle in handles if processes.group_members(handle.pid)]
        assert not workers, f"left workers behind: {workers}"


@pytest.fixture
def runs(tmp_path: Path, env: dict[str, str]) -> Iterator[Runs]:
    runs = Runs(tmp_path, env)
    yield runs
    runs.clean_up()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _files_written(folder: Path) -> None:
    for name in ("response_times.csv", "calls.csv"):
        assert len((folder / name).read_text().splitlines()) > 10, name
    assert (folder / "run_log.csv").read_text().startswith("seq,caller,callee,")
    assert "detail" not in (folder / "run_log.csv").read_text()
    for name in ("experiment.json", "scenario.csv", "timeseries.csv", "report.html"):
        assert (folder / name).stat().st_size > 0, name
    assert not (folder / "testbed" / "state.json").exists()


def test_a_run_whose_scenario_controller_stops_answering_ends_at_its_deadline_with_every_file(
    runs: Runs,
):
    run = runs.start(20)
    components = runs.running(run)
    playing = time.monotonic()
    time.sleep(5)
    controller = next(c for c in components if c.kind == "scenario-controller")
    assert controller.handle is not None
    os.kill(controller.handle.pid, signal.SIGSTOP)  # alive (not restarted), answers nothing

    # deadline: 20 s scenario + 2.1 s drain + 31 s margin after the start, then the cleanup
    code = runs.wait(run, timeout=200)
    ended = time.monotonic() - playing
    text = run.text()
    assert code == 1, text
    assert 53 < ended < 53 + 60, ended
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == str(run.folder)
    assert "deadline: the scenario controller did not answer" in text

    folder = run.folder
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "deadline"
    assert "did not answer for the run (unreachable (ReadTimeout))" in summary["end_reason"]
    assert "last state: running" in summary["end_reason"]
    assert "margin 31 s" in summary["end_reason"]
    assert summary["unread"]["run_log"] == "scenario controller: unreachable (ReadTimeout)"
    assert summary["unanswered_requests"]["scenario-controller"] > 20
    assert summary["calls_attempted"] > 0  # the pods' records were still collected
    series = _rows(folder / "timeseries.csv")
    # sampled up to the deadline, 53 s after the start, and not longer
    assert 50 <= float(series[-1]["t_s"]) - float(series[0]["t_s"]) <= 62
    assert series[-1]["run_state"] == ""
    assert any(row["run_state"] == "running" for row in series)
    _files_written(folder)
    runs.assert_all_gone()


def test_a_run_whose_scenario_controller_is_killed_ends_and_says_so_with_every_file(
    runs: Runs,
):
    run = runs.start(30)
    components = runs.running(run)
    playing = time.monotonic()
    time.sleep(5)
    controller = next(c for c in components if c.kind == "scenario-controller")
    assert controller.handle is not None
    os.kill(controller.handle.pid, signal.SIGKILL)

    code = runs.wait(run, timeout=200)
    ended = time.monotonic() - playing
    text = run.text()
    assert "Traceback" not in text
    assert text.strip().splitlines()[-1] == str(run.folder)
    folder = run.folder
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["unanswered_requests"]["scenario-controller"] >= 1
    assert summary["calls_attempted"] > 0
    restarted = any(
        c.kind == "scenario-controller" and c.pid != controller.pid for c in runs.seen.values()
    )
    if restarted:
        # the testbed's supervisor started it again, and it lists the run as interrupted: the
        # runner ends after the drain, long before the deadline
        assert code == 130, text
        assert ended < 30, ended
        assert summary["status"] == "interrupted"
        assert summary["end_reason"].startswith(
            "the scenario controller lost the run: it restarted and reported it interrupted"
        )
        # the run log the restarted controller kept: what was sent before the kill
        assert 20 < len(_rows(folder / "run_log.csv")) < 300
        assert "run_log" not in summary.get("unread", {})
    else:
        # gone for good: the deadline, 30 s + 2.1 s drain + 31.5 s margin after the start
        assert code == 1, text
        assert 63 < ended < 63 + 60, ended
        assert summary["status"] == "deadline"
        assert "(unreachable (ConnectError)) since t=" in summary["end_reason"]
        assert summary["unread"]["run_log"] == "scenario controller: unreachable (ConnectError)"
    _files_written(folder)
    runs.assert_all_gone()


def test_a_run_sent_sigterm_half_way_stops_at_once_and_leaves_nothing(runs: Runs):
    run = runs.start(40)
    runs.running(run)
    time.sleep(6)
    # the time series is on disk row by row while the run goes, and stdout (a file here) gets
    # a progress line every 5 s of run time instead of the live view
    rows_before = len(_rows(run.folder / "timeseries.csv"))
    time.sleep(2)
    assert len(_rows(run.folder / "timeseries.csv")) > rows_before > 3
    assert re.search(r"^t=\d+s/40s rate=", run.text(), re.MULTILINE), run.text()
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    code = runs.wait(run, timeout=90)
    took = time.monotonic() - sent
    text = run.text()
    assert code == 130, text
    assert took < 45, took
    assert "Traceback" not in text

    summary = json.loads((run.folder / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["interrupted"] is True
    assert summary["end_reason"].startswith("interrupted by SIGTERM at t=")
    assert 5 <= summary["duration_s"] < 30
    assert summary["calls_attempted"] > 0
    run_log = _rows(run.folder / "run_log.csv")
    assert 0 < len(run_log) < 400  # the run log of a scenario stopped half-way
    _files_written(run.folder)
    runs.assert_all_gone()


def test_testbed_down_stops_the_testbed_of_a_killed_run(runs: Runs, env: dict[str, str]):
    run = runs.start(60)
    components = runs.running(run)
    run.proc.kill()  # SIGKILL: no cleanup at all
    run.proc.wait()
    assert all(c.handle.alive() for c in components if c.handle is not None)

    down = subprocess.run(
        [*CLI, "down"], env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"testbed of the run in {run.folder}" in down.stdout
    for name in ("supervisor", "sip-proxy-0", "scenario-controller", "sip-client-00", "sip-loadb"):
        assert name in down.stdout
    runs.assert_all_gone()

    again = subprocess.run(
        [*CLI, "down"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert again.stdout.strip() == "stopped: nothing was running"


def test_a_benchmark_sent_sigterm_stops_instead_of_starting_its_next_step(
    runs: Runs, tmp_path: Path, env: dict[str, str]
):
    spec = tmp_path / "bench.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"name": "bench", "cpu": ["100m"], "rates": [10, 20], "step_s": 30, "phones_per_pod": 5}
        )
    )
    output = tmp_path / "bench.txt"
    with output.open("w") as out:
        proc = subprocess.Popen(
            [*CLI, "benchmark", str(spec), "--results", str(tmp_path / "results")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    run = Run(proc, tmp_path / "results", output, "bench-*/steps/*")
    runs.started.append(run)
    runs.running(run)
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=90)
    text = output.read_text()
    assert code == 1, text
    assert "benchmark failed: interrupted by SIGTERM" in text
    assert "Traceback" not in text
    steps = list((tmp_path / "results").glob("bench-*/steps/*"))
    assert len(steps) == 1, steps  # the second step never started
    summary = json.loads((steps[0] / "summary.json").read_text())
    assert summary["status"] == "interrupted"
