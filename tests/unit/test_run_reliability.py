"""How a run ends, without a testbed: the deadline, signals during the run and its cleanup,
rows written as they come, error answers kept out of data files, summary.json on failure."""

from __future__ import annotations

import csv
import http.server
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testbed.experiment.collect import Budget, collect_local, fetch_run_log
from testbed.experiment.csvstream import CsvStream
from testbed.experiment.deadline import EndWatch, deadline_margin
from testbed.experiment.lifecycle import Interrupts, bounded
from testbed.experiment.runner import ExperimentFailed, run_experiment
from testbed.experiment.spec import Experiment
from testbed.local import processes
from testbed.local.state import Component, TestbedState

# -- the deadline -------------------------------------------------------------------------------


def _watch(margin: float = 10.0) -> EndWatch:
    # the run started at 100 (monotonic), the time series at 90; 60 s scenario, 3 s drain
    return EndWatch(100.0, 60.0, 3.0, margin, origin=90.0)


def test_a_finished_run_ends_after_the_drain():
    watch = _watch()
    assert watch.observe(130.0, "running") is None
    assert watch.observe(160.5, "finished") is None
    assert watch.observe(163.0, "finished") is None
    end = watch.observe(163.5, "finished")
    assert end is not None
    assert end.status == "completed"
    assert "finished at t=70 s" in end.reason


def test_a_silent_scenario_controller_ends_the_run_at_the_deadline_and_says_so():
    watch = _watch()
    assert watch.deadline == 173.0
    assert watch.observe(110.0, "running") is None
    t = 111.0
    while t < 173.0:  # killed: no answer from here on
        assert watch.observe(t, None, "unreachable (ConnectError)") is None, t
        assert watch.remaining(t) == pytest.approx(173.0 - t)
        t += 1.0
    end = watch.observe(173.0, None, "unreachable (ConnectError)")
    assert end is not None
    assert end.status == "deadline"
    assert "did not answer for the run (unreachable (ConnectError)) since t=21 s" in end.reason
    assert "last state: running" in end.reason
    assert "deadline t=83 s (scenario 60 s + drain 3 s + margin 10 s)" in end.reason


def test_a_restarted_controller_without_the_run_and_one_stuck_in_running_both_end():
    restarted = _watch()
    restarted.observe(101.0, "running")
    end = restarted.observe(173.0, None, "HTTP 404")
    assert end is not None
    assert end.status == "deadline"
    assert "(HTTP 404)" in end.reason

    stuck = _watch()
    end = stuck.observe(173.0, "running")
    assert end is not None
    assert end.status == "deadline"
    assert "still reported the run running" in end.reason


def test_a_pause_moves_the_deadline_but_silence_during_a_pause_does_not():
    watch = _watch()
    watch.observe(110.0, "paused")
    watch.observe(140.0, "paused")
    watch.observe(150.0, "running")
    assert watch.deadline == pytest.approx(173.0 + 40.0)
    assert watch.observe(200.0, "running") is None
    end = watch.observe(213.0, "running")
    assert end is not None
    assert "paused 40 s" in end.reason

    dead_while_paused = _watch()
    dead_while_paused.observe(110.0, "paused")
    for t in range(111, 400):
        if dead_while_paused.observe(float(t), None) is not None:
            break
    assert t == 174  # one sample's worth of pause (110 -> 111), then the deadline holds


def test_a_run_stopped_elsewhere_or_lost_in_a_restart_counts_as_interrupted():
    watch = _watch()
    watch.observe(120.0, "stopped")
    end = watch.observe(123.0, "stopped")
    assert end is not None
    assert end.status == "interrupted"
    assert "reported the run stopped at t=30 s (stopped from its API or panel" in end.reason

    restarted = _watch()
    restarted.observe(120.0, None, "unreachable (ConnectError)")
    assert restarted.observe(124.0, "interrupted") is None
    end = restarted.observe(127.0, "interrupted")
    assert end is not None
    assert end.status == "interrupted"
    assert "lost the run: it restarted and reported it interrupted at t=34 s" in end.reason


def test_the_margin_grows_with_the_scenario():
    assert deadline_margin(0) == 30.0
    assert deadline_margin(3600) == 210.0


# -- signals ------------------------------------------------------------------------------------


def _signal_and_wait(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)  # the handler runs at once: a raising one ends the sleep


def test_sigterm_and_sighup_interrupt_like_ctrl_c_and_nothing_interrupts_the_cleanup():
    notes: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    with Interrupts(notes.append) as interrupts:
        with pytest.raises(KeyboardInterrupt):
            _signal_and_wait(signal.SIGTERM)
        assert interrupts.received == "SIGTERM"
        interrupts.cleaning()
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C during cleanup
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.01)
    assert interrupts.ignored == ["SIGINT", "SIGHUP"]
    assert "still cleaning up" in notes[0]
    assert signal.getsignal(signal.SIGTERM) is before

    with Interrupts(notes.append) as interrupts, pytest.raises(KeyboardInterrupt):
        _signal_and_wait(signal.SIGHUP)
    assert interrupts.received == "SIGHUP"


def _spawn_in_held_sections(tmp_path: Path, recorded: list[processes.ProcessHandle]) -> None:
    with processes.interrupts_held():
        with processes.interrupts_held():  # nested: held until the outermost ends
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run, and held its interrupt
            handle = processes.spawn(["sleep", "30"], os.environ, tmp_path / "sleep.log")
        recorded.append(handle)


def test_an_interrupt_waits_until_a_spawned_process_is_recorded(tmp_path: Path):
    recorded: list[processes.ProcessHandle] = []
    with Interrupts(lambda _note: None) as interrupts, pytest.raises(KeyboardInterrupt):
        _spawn_in_held_sections(tmp_path, recorded)
    assert interrupts.received == "SIGTERM"
    assert len(recorded) == 1
    assert recorded[0].alive()  # known, so the cleanup can stop it
    assert processes.stop(recorded[0], timeout=5.0)
    # outside a section it is raised at once, and a later section holds nothing from before
    with Interrupts(lambda _note: None), pytest.raises(KeyboardInterrupt):
        _signal_and_wait(signal.SIGTERM)
    with processes.interrupts_held():
        pass


def test_a_cleanup_step_is_bounded_and_its_failure_named():
    started = time.monotonic()
    assert bounded("stopping the autoscaler", lambda: time.sleep(3), 0.2) == (
        "stopping the autoscaler: not finished within 0.2 s"
    )
    assert time.monotonic() - started < 1.0

    def fails() -> None:
        raise OSError("disk full\nmore")

    assert bounded("closing", fails, 1.0) == "closing: OSError: disk full"
    assert bounded("fine", lambda: None, 1.0) is None


# -- rows written as they come ---------------------------------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_rows_are_on_disk_as_soon_as_they_are_appended_and_a_new_column_widens_the_file(
    tmp_path: Path,
):
    path = tmp_path / "timeseries.csv"
    stream = CsvStream(path)
    stream.append({"t_s": 0.0, "proxies": 2, "p99_ms": None})
    stream.append({"t_s": 1.0, "proxies": 2, "p99_ms": 12.5})
    # read by another reader while the stream is open: what a SIGKILL would leave
    assert _read(path) == [
        {"t_s": "0.0", "proxies": "2", "p99_ms": ""},
        {"t_s": "1.0", "proxies": "2", "p99_ms": "12.5"},
    ]
    stream.append({"t_s": 2.0, "proxies": 3, "sip-proxy-2.p99_ms": 7})
    stream.append({"t_s": 3.0, "proxies": 3, "p99_ms": 9, "sip-proxy-2.p99_ms": 8})
    rows = _read(path)
    assert list(rows[0]) == ["t_s", "proxies", "p99_ms", "sip-proxy-2.p99_ms"]
    assert [r["t_s"] for r in rows] == ["0.0", "1.0", "2.0", "3.0"]
    assert rows[2]["sip-proxy-2.p99_ms"] == "7"
    assert rows[0]["sip-proxy-2.p99_ms"] == ""
    stream.close()
    assert not list(tmp_path.glob(".*tmp"))


# -- collection: error answers are named, not written ------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, str]] = {}

    def do_GET(self) -> None:
        status, kind, body = self.routes.get(self.path.split("?")[0], (404, "text/plain", "no"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if self.path.startswith("/good/samples"):
            self.send_header("X-Total-Count", "1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_unreadable_analyzers_pods_and_run_log_are_named_and_their_answers_not_written(
    tmp_path: Path, server: str
):
    header = "timestamp,proxy,pair,call_id,cseq,response_time_ms"
    _Handler.routes = {
        "/good/samples": (200, "text/csv", f"{header}\n1.5,sip-proxy-0,invite_forward,a,1,2.0\n"),
        "/broken/samples": (500, "text/plain", "Internal Server Error: capture thread died"),
        "/pod/calls": (200, "application/json", '{"items": [{"call_id": "a"}], "total": 1}'),
        "/badpod/calls": (200, "application/json", '{"detail": "not ready"}'),
        "/runs/r1/log": (404, "application/json", '{"detail": "no run \'r1\'"}'),
    }
    state = TestbedState(
        database_url="sqlite://",
        database_kind="sqlite",
        components=[
            Component(
                name="analyzer-0", kind="analyzer", index=0, endpoints={"http": f"{server}/good"}
            ),
            Component(
                name="analyzer-1", kind="analyzer", index=1, endpoints={"http": f"{server}/broken"}
            ),
            Component(
                name="sip-client-00",
                kind="sip-client",
                index=0,
                endpoints={"http": f"{server}/pod"},
            ),
            Component(
                name="sip-client-01",
                kind="sip-client",
                index=1,
                endpoints={"http": f"{server}/badpod"},
            ),
            Component(
                name="sip-client-02",
                kind="sip-client",
                index=2,
                endpoints={"http": "127.0.0.1:9/x"},  # nothing listens (discard port)
            ),
        ],
    )
    unread: dict[str, str] = {}
    with httpx.Client() as http:
        calls = collect_local(state, http, tmp_path, Budget(30), unread)
        undeliverable = fetch_run_log(http, f"http://{server}", "r1", tmp_path, unread)

    assert calls == [{"call_id": "a"}]
    assert undeliverable == 0
    assert unread == {
        "analyzer-1": "HTTP 500",
        "sip-client-01": "the answer is not a page of call records",
        "sip-client-02": "unreachable (ConnectError)",
        "run_log": "scenario controller: HTTP 404",
    }
    samples = (tmp_path / "response_times.csv").read_text()
    assert samples == f"{header}\n1.5,sip-proxy-0,invite_forward,a,1,2.0\n"
    assert "Error" not in (tmp_path / "calls.csv").read_text()
    assert (tmp_path / "run_log.csv").read_text().startswith("seq,caller,callee,")
    assert "no run" not in (tmp_path / "run_log.csv").read_text()


def test_a_spent_budget_stops_collecting_and_says_so(tmp_path: Path, server: str):
    state = TestbedState(
        database_url="sqlite://",
        database_kind="sqlite",
        components=[
            Component(name="analyzer-0", kind="analyzer", index=0, endpoints={"http": server})
        ],
    )
    unread: dict[str, str] = {}
    with httpx.Client() as http:
        collect_local(state, http, tmp_path, Budget(0), unread)
    assert unread == {"analyzer-0": "the time for collecting results ran out"}


# -- summary.json on failure --------------------------------------------------------------------


def test_a_failed_run_still_writes_summary_json_with_status_and_error(tmp_path: Path):
    scenario = tmp_path / "bad.csv"
    scenario.write_text("not;a;scenario\n1;2\n")
    experiment = Experiment.model_validate(
        {"name": "broken", "scenario": {"csv": str(scenario)}, "proxies": {"count": 1}}
    )
    with pytest.raises(ExperimentFailed) as failed:
        run_experiment(experiment, None, tmp_path / "results", lambda _p, _r: None)
    folder = failed.value.folder
    assert folder is not None
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "defects" in summary["error"]
    assert summary["end_reason"] == summary["error"]
    assert summary["calls_attempted"] == 0
    for name in ("timeseries.csv", "calls.csv", "run_log.csv", "response_times.csv"):
        assert (folder / name).exists(), name
    assert "ExperimentFailed" in (folder / "error.txt").read_text()


def test_a_display_that_fails_stops_neither_the_run_nor_its_cleanup(tmp_path: Path):
    scenario = tmp_path / "bad.csv"
    scenario.write_text("not;a;scenario\n1;2\n")
    experiment = Experiment.model_validate(
        {"name": "no-terminal", "scenario": {"csv": str(scenario)}, "proxies": {"count": 1}}
    )

    def hung_up(_phase: str, _row: object) -> None:
        raise OSError(5, "Input/output error")  # the terminal went away (SIGHUP)

    with pytest.raises(ExperimentFailed) as failed:
        run_experiment(experiment, None, tmp_path / "results", hung_up)
    assert failed.value.folder is not None
    summary = json.loads((failed.value.folder / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert "defects" in summary["error"]
    assert (failed.value.folder / "report.html").exists()


# -- the register of run testbeds ------------------------------------------------------------


def test_testbed_down_forgets_a_run_testbed_whose_folder_is_gone_without_recreating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from typer.testing import CliRunner

    from testbed.cli import app
    from testbed.local.processes import ProcessHandle, handle_of
    from testbed.local.state import RunRegistry

    root = tmp_path / "state"
    registry = RunRegistry(root)
    deleted = tmp_path / "results" / "gone-20260101-000000" / "testbed"
    registry.add(deleted, ProcessHandle(os.getpid(), 1))  # a dead owner: start time differs
    (registry.directory / "junk.json").write_text("{not json")
    me = handle_of(os.getpid())
    assert me is not None
    assert me.alive()
    assert [e.state_dir for e in registry.entries()] == [deleted]  # junk skipped, warned

    monkeypatch.setenv("TESTBED_STATE_DIR", str(root))
    result = CliRunner().invoke(app, ["down"])
    assert result.exit_code == 0, result.output
    assert "nothing was running" in result.output
    assert registry.entries() == []
    assert not deleted.parent.exists()
