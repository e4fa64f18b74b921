"""The `testbed` CLI behaves like the tools users know, without a testbed: plain progress lines
when stdout is not a terminal, SIPp-like exit codes, errors on stderr in one line, --version,
`status -o json`, `logs [-f]` (on a crafted state directory, with real processes for its
components)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from testbed import cli, exit_codes
from testbed.experiment import runner
from testbed.experiment.loop import Running
from testbed.experiment.plain_progress import PlainProgress
from testbed.experiment.spec import Experiment
from testbed.local import processes
from testbed.local.state import Component, StateStore, TestbedState
from testbed.logs import tail_offset
from testbed.sample import Clients, Sample

EXPERIMENT: dict[str, Any] = {
    "name": "conv",
    "scenario": {
        "generate": {
            "shape": {"kind": "constant", "rate": 10, "duration_s": 12},
            "pods": 2,
            "phones_per_pod": 5,
        }
    },
    "proxies": {"count": 1},
    "qos": {"p0_ms": 500, "window_s": 10},
}


def _experiment() -> Experiment:
    return Experiment.model_validate(EXPERIMENT)


def _row(
    t: float,
    *,
    proxies: int = 1,
    p99_ms: float | None = 120.0,
    lb_invites_per_s: float | None = 10.0,
    **calls: float | None,
) -> Running:
    clients = (
        Clients(calls.get("calls_succeeded_per_s"), calls.get("calls_failed_per_s"), 0)
        if calls
        else None  # the scenario controller did not answer: no call columns
    )
    sample = Sample(
        t_s=t,
        proxies=proxies,
        latency_percentile_ms=p99_ms,
        lb_invites_per_s=lb_invites_per_s,
        clients=clients,
    )
    return Running(sample, duration_s=12.0)


# -- plain progress --------------------------------------------------------------------------


def test_plain_progress_prints_phases_and_a_line_every_few_seconds_of_run_time():
    lines: list[str] = []
    progress = PlainProgress(_experiment(), lines.append, every_s=5)
    progress("registering 10 phones", None)
    for t in range(13):  # one row a second, as the runner samples
        progress("running", _row(float(t)))
    assert lines[0] == "registering 10 phones"
    assert [line.split()[0] for line in lines[1:]] == ["t=0s/12s", "t=5s/12s", "t=10s/12s"]
    assert lines[2] == "t=5s/12s rate=10.0/s proxies=1 p99=120ms (P0 500ms) calls ok=0 failed=0"


def test_plain_progress_adds_up_the_calls_exactly_even_over_a_missed_reading():
    """The rows carry per-second rates of the pods' counters; a reading the scenario controller
    did not answer has no rate, and the next one covers both seconds."""
    lines: list[str] = []
    progress = PlainProgress(_experiment(), lines.append, every_s=1)
    ok_totals = [0, 3, 7, 12, 12, 20]  # the pods' succeeded counter at t = 0..5
    failed_totals = [0, 0, 1, 1, 1, 2]
    for t in range(6):
        if t == 3:  # no answer: the row has no call columns
            progress("running", _row(float(t)))
            continue
        previous = t - 2 if t == 4 else t - 1
        span = t - previous
        ok = None if t == 0 else (ok_totals[t] - ok_totals[previous]) / span
        failed = None if t == 0 else (failed_totals[t] - failed_totals[previous]) / span
        row = _row(float(t), calls_succeeded_per_s=ok, calls_failed_per_s=failed)
        progress("running", row)
    assert lines[-1].endswith("calls ok=20 failed=2")
    assert lines[2].endswith("calls ok=7 failed=1")
    assert lines[3].endswith("calls ok=7 failed=1")  # t=3: nothing known yet


def test_plain_progress_marks_a_percentile_over_p0_and_unknown_values():
    lines: list[str] = []
    progress = PlainProgress(_experiment(), lines.append)
    progress("running", _row(0.0, p99_ms=812.4, proxies=3))
    progress("running", _row(5.0, p99_ms=None, lb_invites_per_s=float("nan")))
    progress("running", _row(10.0, p99_ms=0.94))
    assert "proxies=3 p99=812ms (> P0 500ms)" in lines[0]
    assert "rate=- proxies=1 p99=- (P0 500ms)" in lines[1]
    assert "p99=0.9ms (P0 500ms)" in lines[2]  # a loopback run's sub-millisecond times


# -- exit codes -------------------------------------------------------------------------------


def _summary(**values: Any) -> dict[str, Any]:
    base = {
        "experiment": "conv",
        "status": "completed",
        "end_reason": "the scenario finished at t=12 s",
        "percentile": 99,
        "p0_ms": 500,
        "p99_violation_share": 0.0,
        "worst_p99_ms": 120.0,
        "calls_attempted": 120,
        "calls_succeeded": 120,
        "calls_failed": 0,
        "calls_undeliverable": 0,
        "ser": 1.0,
        "proxy_seconds": 12.0,
        "scaling_actions": 0,
        "max_proxies": 1,
        "reaction_s": [],
    }
    return {**base, **values}


@pytest.mark.parametrize(
    ("summary", "fail_on_qos", "code"),
    [
        (_summary(), False, 0),
        (_summary(), True, 0),
        (_summary(calls_failed=2, calls_succeeded=118), False, 3),
        (_summary(calls_undeliverable=4), False, 3),
        (_summary(p99_violation_share=0.25), False, 0),
        (_summary(p99_violation_share=0.25), True, 4),
        (_summary(p99_violation_share=0.25, calls_failed=1), True, 3),
        (_summary(status="deadline", calls_failed=5), False, 1),
        (_summary(status="failed"), True, 1),
        (_summary(status="interrupted", calls_failed=5), True, 130),
        ({"status": "not run"}, False, 1),
        ({}, False, 1),
    ],
)
def test_a_summary_maps_to_its_exit_code(summary: dict[str, Any], fail_on_qos: bool, code: int):
    assert exit_codes.run_exit_code(summary, fail_on_qos) == code


def test_a_group_exits_with_its_most_serious_repetition():
    ok, calls, qos = _summary(), _summary(calls_failed=1), _summary(p99_violation_share=0.1)
    assert exit_codes.group_exit_code([ok, ok]) == 0
    assert exit_codes.group_exit_code([ok, qos]) == 0
    assert exit_codes.group_exit_code([ok, qos], fail_on_qos=True) == 4
    assert exit_codes.group_exit_code([qos, calls, ok], fail_on_qos=True) == 3
    assert exit_codes.group_exit_code([calls, _summary(status="failed")]) == 1
    assert exit_codes.group_exit_code([calls, {"status": "not run"}], interrupted=True) == 130
    assert exit_codes.group_exit_code([]) == 0


# -- `testbed run` through the CLI, with a crafted run in place of the testbed ---------------


def _fake_runs(monkeypatch: pytest.MonkeyPatch, summaries: list[dict[str, Any]]) -> list[list[str]]:
    """run_experiment replaced: each call plays 13 rows through the progress callback and
    writes the next of `summaries`; returns the phases each run showed."""
    shown: list[list[str]] = []

    def fake_run(
        experiment: Experiment,
        experiment_file: Path | None,
        results_root: Path,
        progress: Callable[[str, Running | None], None],
        settings: object = None,
        folder_name: str | None = None,
        summary_extra: dict[str, Any] | None = None,
    ) -> Path:
        out = results_root / (folder_name or f"{experiment.name}-{len(shown)}")
        out.mkdir(parents=True)
        shown.append([])
        progress("starting 1 proxies and 2 client pods", None)
        for t in range(13):
            progress("running", _row(float(t), calls_succeeded_per_s=None if t == 0 else 10.0))
        (out / "summary.json").write_text(json.dumps({**summaries.pop(0), **(summary_extra or {})}))
        (out / "timeseries.csv").write_text("t_s,proxies,p99_ms\n0,1,100\n1,1,120\n")
        return out.resolve()

    monkeypatch.setattr(runner, "run_experiment", fake_run)
    return shown


def _experiment_file(tmp_path: Path) -> Path:
    path = tmp_path / "conv.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    return path


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("summary", "flags", "code", "complaint"),
    [
        (_summary(), [], 0, None),
        (_summary(calls_failed=3, calls_succeeded=117), [], 3, "3 of 120 calls failed"),
        (_summary(p99_violation_share=0.5), [], 0, None),
        (_summary(p99_violation_share=0.5), ["--fail-on-qos"], 4, "p99 above P0 (500 ms) in 50.0%"),
        (_summary(status="deadline", end_reason="no answer"), [], 1, "deadline: no answer"),
        (_summary(status="interrupted", end_reason="by SIGTERM"), [], 130, "interrupted: by"),
    ],
)
def test_run_prints_plain_progress_and_exits_by_its_summary(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    summary: dict[str, Any],
    flags: list[str],
    code: int,
    complaint: str | None,
):
    _fake_runs(monkeypatch, [summary])
    results = tmp_path / "results"
    done = _invoke("run", str(_experiment_file(tmp_path)), "--results", str(results), *flags)
    assert done.exit_code == code, done.output
    lines = done.stdout.splitlines()
    assert lines[0] == "starting 1 proxies and 2 client pods"
    progress = [line for line in lines if line.startswith("t=")]
    assert [line.split()[0] for line in progress] == ["t=0s/12s", "t=5s/12s", "t=10s/12s"]
    assert progress[-1].endswith("calls ok=100 failed=0")
    assert lines[-1] == str((results / "conv-0").resolve())  # the last line: the folder
    if complaint is None:
        assert done.stderr == ""
    else:
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert complaint in done.stderr
        assert complaint not in done.stdout


def test_run_progress_every_sets_the_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_runs(monkeypatch, [_summary()])
    experiment, results = str(_experiment_file(tmp_path)), str(tmp_path / "r")
    done = _invoke("run", experiment, "--results", results, "--progress-every", "4")
    assert done.exit_code == 0, done.output
    assert [x.split()[0] for x in done.stdout.splitlines() if x.startswith("t=")] == [
        "t=0s/12s",
        "t=4s/12s",
        "t=8s/12s",
        "t=12s/12s",
    ]


def test_run_on_a_terminal_keeps_the_live_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_runs(monkeypatch, [_summary()])
    screen = StringIO()
    monkeypatch.setattr(cli, "console", Console(file=screen, force_terminal=True, width=120))
    done = _invoke("run", str(_experiment_file(tmp_path)), "--results", str(tmp_path / "r"))
    assert done.exit_code == 0, done.output
    shown = screen.getvalue()
    assert "elapsed / remaining" in shown  # the Live view's table
    assert "t=5s/12s" not in shown
    assert shown.rstrip().splitlines()[-1].endswith("conv-0")


def test_run_repeat_exits_with_the_most_serious_repetition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    qos = _summary(p99_violation_share=0.2)
    shown = _fake_runs(monkeypatch, [_summary(), qos, _summary(calls_failed=1), _summary()])
    experiment, results = str(_experiment_file(tmp_path)), str(tmp_path / "results")
    both = _invoke("run", experiment, "--results", results, "--repeat", "2", "--fail-on-qos")
    assert len(shown) == 2
    assert both.exit_code == 4, both.output
    assert "exit status 4: QoS target exceeded in run-2" in both.stderr
    assert sum(line.startswith("t=0s/12s") for line in both.stdout.splitlines()) == 2
    group = Path(both.stdout.splitlines()[-1])
    assert (group / "group.json").exists()

    time.sleep(1.1)  # the group folder is named by the second
    calls = _invoke("run", experiment, "--results", results, "--repeat", "2")
    assert calls.exit_code == 3, calls.output
    assert "exit status 3: calls failed in run-1" in calls.stderr


def test_a_bad_experiment_file_is_one_line_on_stderr(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**EXPERIMENT, "proxies": {"count": "many"}}))
    done = _invoke("run", str(bad))
    assert done.exit_code == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "proxies" in done.stderr


# -- --version, errors, status -o json ---------------------------------------------------------


def test_version_is_the_package_version():
    done = _invoke("--version")
    assert done.exit_code == 0
    assert done.stdout == f"testbed {metadata.version('ims-testbed')}\n"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "state"
    monkeypatch.setenv("TESTBED_STATE_DIR", str(directory))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return directory


def test_errors_go_to_stderr_in_one_line(state_dir: Path, tmp_path: Path):
    for args, code, text in [
        (["token"], 1, "testbed token: no testbed is running"),
        (["prometheus", str(tmp_path)], 2, "no Prometheus TSDB"),
        (["logs", "sip-proxy-0"], 1, "testbed logs: no testbed is running"),
    ]:
        done = _invoke(*args)
        assert done.exit_code == code, (args, done.output)
        assert done.stdout == "", args
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert text in done.stderr


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def components(state_dir: Path) -> Iterator[TestbedState]:
    """A state file like `up` writes: the SQLite database, a live controller answering its
    health URL, and a proxy whose process has died; each with a log file."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    live = subprocess.Popen(["sleep", "300"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    logs = state_dir / "logs"
    logs.mkdir(parents=True)
    (state_dir / "testbed.db").write_text("")
    live_handle = processes.handle_of(live.pid)
    assert live_handle is not None
    state = TestbedState(
        database_url=f"sqlite:///{state_dir / 'testbed.db'}",
        database_kind="sqlite",
        components=[
            Component(name="database", kind="database"),
            Component(
                name="sip-controller",
                kind="sip-controller",
                pid=live.pid,
                start_ticks=live_handle.start_ticks,
                endpoints={"http": f"127.0.0.1:{server.server_port}"},
                health_url=f"http://127.0.0.1:{server.server_port}/health",
                log=str(logs / "sip-controller.log"),
            ),
            Component(
                name="sip-proxy-0",
                kind="sip-proxy",
                index=0,
                pid=dead.pid,
                start_ticks=1,
                endpoints={"sip": "udp:127.0.1.1:5060"},
                log=str(logs / "sip-proxy-0.log"),
            ),
        ],
    )
    StateStore(state_dir).save(state)
    (logs / "sip-controller.log").write_text("".join(f"line {n}\n" for n in range(1, 31)))
    (logs / "sip-proxy-0.log").write_text("proxy started\n")
    (logs / "sip-proxy-1.log").write_text("scaled away\n")  # a proxy no longer in the state
    yield state
    live.kill()
    live.wait()
    server.shutdown()


def test_status_json_is_machine_readable(components: TestbedState):
    done = _invoke("status", "-o", "json")
    assert done.exit_code == 1  # a dead component, as with the table
    data = json.loads(done.stdout)
    assert data["running"] is True
    assert data["healthy"] is False
    assert data["isolation"] is None
    by_name = {c["name"]: c for c in data["components"]}
    assert list(by_name) == ["database", "sip-controller", "sip-proxy-0"]
    controller = components.get("sip-controller")
    assert controller is not None
    assert by_name["sip-controller"] == {
        "name": "sip-controller",
        "kind": "sip-controller",
        "pid": controller.pid,
        "endpoints": controller.endpoints,
        "health": "healthy",
        "cpu_limit": None,
        "cpus": by_name["sip-controller"]["cpus"],
    }
    assert by_name["sip-controller"]["cpus"]  # read back from /proc
    assert by_name["database"]["health"] == "healthy"
    assert by_name["sip-proxy-0"]["health"] == "dead"

    table = _invoke("status")
    assert table.exit_code == 1
    assert "sip-controller" in table.stdout
    assert not table.stdout.lstrip().startswith("{")


def test_status_json_when_nothing_runs(state_dir: Path):
    done = _invoke("status", "--output", "json")
    assert done.exit_code == 0
    assert json.loads(done.stdout) == {
        "running": False,
        "healthy": None,
        "isolation": None,
        "components": [],
    }
    assert _invoke("status", "-o", "yaml").exit_code == 2


# -- logs ---------------------------------------------------------------------------------------


def test_logs_prints_a_components_log_whole_or_its_last_lines(components: TestbedState):
    done = _invoke("logs", "sip-controller")
    assert done.exit_code == 0
    assert done.stdout == "".join(f"line {n}\n" for n in range(1, 31))
    assert _invoke("logs", "sip-controller", "-n", "2").stdout == "line 29\nline 30\n"
    assert _invoke("logs", "sip-controller", "--tail", "0").stdout == ""
    assert _invoke("logs", "sip-proxy-1").stdout == "scaled away\n"


def test_logs_of_an_unknown_component_lists_the_known_ones(components: TestbedState):
    done = _invoke("logs", "sip-proxy-7")
    assert done.exit_code == 2
    assert done.stdout == ""
    assert done.stderr == (
        "testbed logs: unknown component 'sip-proxy-7'; known: database, sip-controller, "
        "sip-proxy-0, sip-proxy-1\n"
    )
    nothing = _invoke("logs", "database")  # SQLite: no process, no log
    assert nothing.exit_code == 1
    assert "database has no log file" in nothing.stderr


@pytest.mark.slow
def test_logs_follow_prints_what_is_added_until_ctrl_c(components: TestbedState, state_dir: Path):
    log = state_dir / "logs" / "sip-proxy-0.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.cli", "logs", "sip-proxy-0", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TESTBED_STATE_DIR": str(state_dir)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"proxy started\n"
        with log.open("a") as f:
            f.write("a request\n")
        assert proc.stdout.readline() == b"a request\n"
        log.write_text("restarted\n")  # truncated: read again from its start
        assert proc.stdout.readline() == b"restarted\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("trailing", [True, False])
def test_tail_offset_finds_the_last_lines_across_blocks(tmp_path: Path, trailing: bool):
    path = tmp_path / "big.log"
    lines = [f"{n:06d} " + "x" * 90 for n in range(3000)]  # about 290 kB: several blocks
    path.write_text("\n".join(lines) + ("\n" if trailing else ""))
    data = path.read_bytes()
    for n in (1, 2, 700, 2999):
        assert data[tail_offset(path, n) :].decode().splitlines() == lines[-n:]
    assert tail_offset(path, 3000) == 0
    assert tail_offset(path, 5000) == 0
    assert tail_offset(path, 0) == len(data)
