"""Runs and scenarios outlive the controller: a restart on the same directories lists the earlier
runs with their logs, and a damaged file is left out with a warning instead of failing."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "test-token-of-the-scenario-controller"
HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"


def scenario(rate: int, seconds: int) -> str:
    wait = 1000 // rate
    rows = (
        f"00{i % 100:02d};01{i % 100:02d};{wait};{i // rate};{rate}\n"
        for i in range(rate * seconds)
    )
    return HEADER + "\n" + "".join(rows)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_rows(http: httpx.Client, run_id: str) -> list[dict[str, str]]:
    response = http.get(f"/runs/{run_id}/log")
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


class Process:
    """`python -m scenario_controller`, as the testbed starts it."""

    def __init__(self, base: Path, port: int, n: int) -> None:
        env = {
            **os.environ,
            "SCENARIO_CONTROLLER_HOST": "127.0.0.1",
            "SCENARIO_CONTROLLER_PORT": str(port),
            "SCENARIO_DIR": str(base / "scenarios"),
            "RUNS_DIR": str(base / "runs"),
            "SIP_CONTROLLER_URL": "",
            "API_TOKEN": TOKEN,
        }
        self.log = base / f"controller-{n}.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scenario_controller"], env=env, stdout=out, stderr=out
            )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=5,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        wait_until(self._up, 20, f"the controller (log: {self.log.read_text()[-2000:]})")

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return self.http.get("/health").status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[], Process]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started: list[Process] = []

    def start() -> Process:
        started.append(Process(tmp_path, port, len(started)))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@pytest.mark.slow
def test_a_controller_killed_mid_run_lists_its_runs_and_logs_after_a_restart(processes):
    first = processes()
    http = first.http
    assert http.post("/scenarios", params={"name": "short"}, content=scenario(10, 1)).is_success
    assert http.post("/scenarios", params={"name": "long"}, content=scenario(10, 60)).is_success
    done = http.post("/runs", json={"scenario": "short"}).json()
    wait_until(lambda: http.get(f"/runs/{done['id']}").json()["state"] == "finished", 5, "short")
    cut = http.post("/runs", json={"scenario": "long"}).json()
    wait_until(lambda: http.get(f"/runs/{cut['id']}").json()["scheduled"] >= 12, 5, "invites")
    first.kill()  # SIGKILL: no shutdown code runs

    http = processes().http  # the same directories
    runs = {r["id"]: r for r in http.get("/runs").json()}
    assert set(runs) == {done["id"], cut["id"]}
    assert (runs[done["id"]]["state"], runs[done["id"]]["undeliverable"]) == ("finished", 10)
    assert len(log_rows(http, done["id"])) == 10
    interrupted = runs[cut["id"]]
    assert interrupted["state"] == "interrupted"
    assert "stopped during the run" in interrupted["error"]
    rows = log_rows(http, cut["id"])  # every row written before the kill is there
    assert len(rows) >= 12
    assert interrupted["scheduled"] == len(rows) == interrupted["undeliverable"]
    assert http.get("/runs/current").json()["id"] == cut["id"]
    assert http.get("/health").json()["status"] == "ok"
    again = http.post("/runs", json={"scenario": "short"})  # nothing is left "active"
    assert again.status_code == 201, again.text
    assert again.json()["id"] not in runs


def test_a_controller_stopped_mid_run_records_the_run_as_stopped(start_controller):
    live = start_controller()
    assert live.http.post(
        "/scenarios", params={"name": "long"}, content=scenario(10, 60)
    ).is_success
    run = live.http.post("/runs", json={"scenario": "long"}).json()
    wait_until(lambda: live.http.get(f"/runs/{run['id']}").json()["scheduled"] >= 3, 5, "invites")
    live.stop()

    live = start_controller()
    view = live.http.get(f"/runs/{run['id']}").json()
    assert view["state"] == "stopped"
    assert view["scheduled"] == len(log_rows(live.http, run["id"])) >= 3
    assert live.http.post(f"/runs/{run['id']}/resume").status_code == 409


def test_damaged_scenario_and_run_files_are_skipped_with_a_warning(
    start_controller, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    live = start_controller()
    for name in ("good", "damaged"):
        assert live.http.post(
            "/scenarios", params={"name": name}, content=scenario(10, 1)
        ).is_success
    live.stop()
    meta = tmp_path / "scenarios" / "damaged.json"
    meta.write_bytes(meta.read_bytes()[:40])  # as a crash mid-write left it
    (tmp_path / "runs" / "20250101-000000-x.json").write_text("{not json")
    (tmp_path / "runs" / "20250101-000001-y.json").write_text(json.dumps({"id": "other"}))

    with caplog.at_level(logging.WARNING):
        live = start_controller()
        for _ in range(3):
            health = live.http.get("/health")
            assert health.status_code == 200, health.text
            assert health.json()["scenarios"] == 1
        assert [s["name"] for s in live.http.get("/scenarios").json()] == ["good"]
        shown = live.http.get("/scenarios/damaged")
        assert shown.status_code == 404
        assert "unreadable" in shown.json()["detail"]
        assert (
            "unreadable" in live.http.post("/runs", json={"scenario": "damaged"}).json()["detail"]
        )
        assert live.http.get("/runs").json() == []
        assert live.http.delete("/scenarios/damaged").status_code == 204  # can be cleaned up
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("'damaged'" in w for w in warnings) == 1  # once, not at every /health
    assert sum("20250101-000000-x.json" in w for w in warnings) == 1
    assert sum("20250101-000001-y.json" in w for w in warnings) == 1


def test_an_atomic_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    from scenario_controller.files import write_atomic

    target = tmp_path / "meta.json"
    write_atomic(target, '{"old": 1}')
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, '{"new": "\udcff"}')  # fails half-way through the write
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]
