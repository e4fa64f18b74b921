"""The panel's Experiment tab in a real browser (headless Chromium) during a real `testbed run`:
a tiny autoscaled experiment on the local testbed (two proxies at first, the capacity policy
adds a third), the panel opened while it runs shows the proxies with their states, the scaling
event and charts with data; afterwards `testbed view`'s loader reads the same run from its
results folder. On addresses of its own (127.0.80.x-127.0.82.x).

UPDATE_PANEL_SCREENSHOT=1 copies the screenshot to docs/panel-experiment.png."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.sync_api import Page, sync_playwright
from support import ROOT, own_addresses_env

from testbed.local import processes
from testbed.local.state import Component, StateStore
from testbed.view import load_folder

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "testbed.cli"]
BLOCK = 80
PANEL = f"http://127.0.{BLOCK}.1:8001"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking"]

EXPERIMENT = {
    "name": "panel-e2e",
    "scenario": {
        "generate": {
            # 1 call/s for 20 s, then 4: the panel is open before the third proxy is wanted
            "shape": {
                "kind": "step",
                "start_rate": 1,
                "step_rate": 3,
                "step_every_s": 20,
                "steps": 2,
            },
            "pods": 2,
            "phones_per_pod": 10,
        },
        "hold_ms": 100,
    },
    "proxies": {"count": 2, "cpu": "100m"},
    # 4 calls/s over 1.5 per proxy: the capacity policy wants a third proxy once it sees the
    # second step's rate; it starts for 3 s (a pod's startup delay), long enough for the panel
    # to show it
    "autoscale": {
        "policy": "capacity",
        "capacity": {"capacity_per_proxy": 1.5, "headroom": 1.0},
        "min_replicas": 2,
        "max_replicas": 3,
        "sync_period_s": 2,
        "scrape_interval_s": 2,
        "metric_window_s": 4,
        "startup_delay_s": 3,
    },
    "qos": {"p0_ms": 1000, "window_s": 5},
    "metrics": {"scrape_interval_s": 2},
    "drain_s": 2,
}


class Run:
    """`testbed run` through the CLI; remembers every component it started, so a failing test
    leaves nothing running."""

    def __init__(self, tmp_path: Path) -> None:
        experiment = tmp_path / "panel-e2e.yaml"
        experiment.write_text(yaml.safe_dump(EXPERIMENT))
        self.results = tmp_path / "results"
        self.output = tmp_path / "output.txt"
        with self.output.open("w") as out:
            self.proc = subprocess.Popen(
                [*CLI, "run", str(experiment), "--results", str(self.results)],
                env=own_addresses_env(BLOCK, tmp_path / "state"),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.seen: dict[str, Component] = {}

    @property
    def folder(self) -> Path:
        folders = list(self.results.glob("panel-e2e-*"))
        assert len(folders) == 1, folders
        return folders[0]

    def remember(self) -> None:
        with contextlib.suppress(AssertionError):
            state = StateStore(self.folder / "testbed").load()
            self.seen.update((f"{c.name}:{c.pid}", c) for c in (state.components if state else []))

    def text(self) -> str:
        return self.output.read_text()

    def clean_up(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # it stops its testbed and writes its results
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for component in self.seen.values():
            if component.handle is not None and component.handle.alive():
                processes.stop(component.handle, timeout=5)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = Run(tmp_path)
    yield started
    started.clean_up()


def wait_for_experiment(run: Run, timeout: float = 180.0) -> None:
    """Until the runner's first samples reached the panel (the scenario plays then)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            assert run.proc.poll() is None, run.text()
            run.remember()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                held = http.get(f"{PANEL}/experiment").json()
                if held["experiment"] and held["held"] >= 2:
                    return
            time.sleep(0.5)
    raise AssertionError(f"no experiment reached the panel:\n{run.text()}")


def state_of(page: Page, proxy: str) -> str | None:
    cell = page.query_selector(f'#exp-proxies-table tr[data-proxy="{proxy}"] .state')
    return None if cell is None else cell.inner_text()


# how many pixels of a chart's plot area are drawn in a colour: its lines, read from the
# canvas itself. The legend's text, in the lines' colours, lies in the bottom 12 rows and is
# left out; the x axis is at 28 rows from the bottom, and a line near zero lies on it (the
# clean-clone CI of 4ef23f6 found 10 pixels of a third proxy's 8-sample line at a few mcpu of
# its 100m when the count stopped 32 rows from the bottom, above that line)
PIXELS = """([id, hex]) => {
  const c = document.getElementById(id);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height - 14).data;
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const near = (i) => Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40
    && Math.abs(d[i + 2] - b) < 40 && d[i + 3] > 100;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (near(i)) n++;
  return n;
}"""


def test_the_panel_shows_a_running_experiment(run: Run, tmp_path: Path):
    wait_for_experiment(run)
    states: dict[str, set[str]] = {}
    shot = tmp_path / "panel-experiment.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.goto(f"{PANEL}/#experiment")  # read-only: no token asked for this tab's data
            page.wait_for_selector("#feed.on")
            page.wait_for_selector("#tab-experiment", state="visible")
            page.wait_for_function(
                "document.getElementById('exp-name').textContent === 'panel-e2e'"
            )
            assert page.inner_text("#exp-source").startswith("live run")
            assert page.inner_text("#exp-p0") == "p99 < 1000 ms"
            assert page.inner_text("#exp-cpu") == "100m per proxy"
            # the proxies with their states, and the third one coming, until it serves
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and state_of(page, "sip-proxy-2") != "ready":
                for proxy in ("sip-proxy-0", "sip-proxy-1", "sip-proxy-2"):
                    state = state_of(page, proxy)
                    if state:
                        states.setdefault(proxy, set()).add(state)
                run.remember()
                time.sleep(0.25)
            assert state_of(page, "sip-proxy-2") == "ready", (states, run.text())
            assert states["sip-proxy-0"] == {"ready"}
            assert states["sip-proxy-1"] == {"ready"}
            assert "starting" in states["sip-proxy-2"], states
            assert "2 -> 3" in page.inner_text("#exp-events")
            # the charts have data: samples with each proxy's CPU, drawn (the third proxy's
            # line long enough to count: with 4 samples the clean-clone CI of 7d3be30 found
            # 13 of its pixels, a line of a few points)
            for proxy, count in (("sip-proxy-0", 12), ("sip-proxy-2", 8)):
                page.wait_for_function(
                    f"exp.samples.filter((s) => s.per_proxy['{proxy}'] &&"
                    f" s.per_proxy['{proxy}'].cpu_mcpu != null).length >= {count}",
                    timeout=30000,
                )
            assert page.evaluate("exp.samples.some((s) => s.lb_invites_per_s > 2)")
            assert page.evaluate("exp.samples.some((s) => s.calls_succeeded_per_s > 2)")
            assert page.evaluate("exp.samples.some((s) => s.p99_ms != null)")
            page.wait_for_timeout(1500)  # drawn with the latest samples
            # sip-proxy-0 (blue) and sip-proxy-1 (green) share the load evenly, so their lines
            # lie on each other and the green one, drawn later, hides part of the blue one
            # (140 blue pixels left in the clean-clone CI of c41124c): the two together make
            # at least one whole line
            for chart in ("exp-cpu-chart", "exp-p99"):
                first_two = sum(page.evaluate(PIXELS, [chart, c]) for c in ("#2b6cb0", "#38a169"))
                assert first_two > 200, chart
            assert page.evaluate(PIXELS, ["exp-cpu-chart", "#d69e2e"]) > 30  # sip-proxy-2
            assert page.evaluate(PIXELS, ["exp-p99", "#c53030"]) > 200  # the P0 line
            assert page.evaluate(PIXELS, ["exp-calls-chart", "#38a169"]) > 200
            assert page.evaluate(PIXELS, ["exp-arrivals-chart", "#2b6cb0"]) > 200
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    if os.environ.get("UPDATE_PANEL_SCREENSHOT"):
        shot.replace(ROOT / "docs" / "panel-experiment.png")

    deadline = time.monotonic() + 240
    while run.proc.poll() is None:
        assert time.monotonic() < deadline, run.text()
        run.remember()
        time.sleep(0.5)
    assert run.proc.returncode == 0, run.text()
    folder = run.folder
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["scaling_actions"] >= 1
    assert not [c.name for c in run.seen.values() if c.handle and c.handle.alive()]

    # afterwards: `testbed view` reads the same run from its folder
    record = load_folder(folder)
    with (folder / "timeseries.csv").open() as f:
        assert len(record.samples) == len(list(csv.DictReader(f)))
    assert [(e.before, e.after) for e in record.events][:1] == [(2, 3)]
    assert [p.name for p in record.proxies] == ["sip-proxy-0", "sip-proxy-1", "sip-proxy-2"]
    assert record.experiment.status == "completed"
