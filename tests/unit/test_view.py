"""`testbed view RESULTS`: a results folder loaded into the panel's Experiment tab (bad or
missing files named with their line), served read-only on 127.0.0.1 until SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import free_port

from api_token import bearer
from testbed.view import FolderError, load_folder

HEADER = (
    "t_s,time,proxies,replicas,sip-proxy-0.cpu_mcpu,sip-proxy-0.p99_ms,p99_ms,"
    "lb_invites_per_s,run_state,calls_succeeded_per_s,calls_failed_per_s,desired_proxies,"
    "ready_proxies,sip-proxy-1.cpu_mcpu,sip-proxy-1.p99_ms"
)
SUMMARY = {
    "experiment": "tiny",
    "status": "completed",
    "end_reason": "the scenario finished",
    "cpu": "20m",
    "p0_ms": 1000.0,
    "percentile": 99.0,
    "duration_s": 4.2,
    "calls_attempted": 12,
    "calls_succeeded": 11,
    "calls_failed": 1,
    "worst_p99_ms": 4.5,
}
AUTOSCALER = (
    "t_s,target_before,target_after,ready,reason\n"
    "0.2,1,1,1,qos: no response times yet\n"
    "2.1,1,2,1,qos: p99 4 ms rising\n"
)


def results(tmp_path: Path, rows: list[str] | None = None) -> Path:
    folder = tmp_path / "tiny-20261203-070000"
    folder.mkdir()
    lines = rows or [
        "0.2,1796232850.8,1,1,,,,,running,,,1,1,,",
        "1.2,1796232851.8,1,1,7.5,3.0,3.0,2.0,running,2.0,0.0,1,1,,",
        "2.2,1796232852.8,1,2,8.0,4.5,4.5,3.0,running,2.0,1.0,2,1,,",
        "3.2,1796232853.8,2,2,8.5,4.0,4.0,3.0,running,3.0,0.0,2,2,6.0,2.5",
    ]
    (folder / "timeseries.csv").write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    (folder / "summary.json").write_text(json.dumps(SUMMARY, indent=2))
    (folder / "autoscaler.csv").write_text(AUTOSCALER)
    return folder


def test_a_results_folder_becomes_the_experiment_view(tmp_path: Path):
    folder = results(tmp_path)
    record = load_folder(folder)
    info = record.experiment
    assert (info.name, info.source, info.status, info.p0_ms, info.cpu_millicores) == (
        "tiny",
        "folder",
        "completed",
        1000.0,
        20,
    )
    assert (info.calls_attempted, info.calls_failed, info.folder) == (12, 1, str(folder))
    assert [s.t_s for s in record.samples] == [0.2, 1.2, 2.2, 3.2]
    assert record.samples[2].per_proxy["sip-proxy-0"].p99_ms == 4.5
    assert record.samples[3].desired_proxies == 2
    # proxies: when each had data (a folder records no states)
    assert [(p.name, p.state, p.first_t_s, p.last_t_s) for p in record.proxies] == [
        ("sip-proxy-0", None, 1.2, 3.2),
        ("sip-proxy-1", None, 3.2, 3.2),
    ]
    assert [(e.t_s, e.before, e.after) for e in record.events] == [(2.1, 1, 2)]


def test_a_folder_without_autoscaler_csv_has_no_events(tmp_path: Path):
    folder = results(tmp_path)
    (folder / "autoscaler.csv").unlink()
    assert load_folder(folder).events == []


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "timeseries.csv").unlink(), "timeseries.csv: missing"),
        (lambda f: (f / "summary.json").unlink(), "summary.json: missing"),
        (lambda f: (f / "timeseries.csv").write_text(""), "timeseries.csv: line 1: empty"),
        (
            lambda f: (f / "summary.json").write_text('{\n  "experiment": "tiny",\n  oops\n}'),
            "summary.json: line 3: not JSON",
        ),
        (lambda f: (f / "summary.json").write_text("[1, 2]"), "summary.json: line 1: not a JSON"),
        (
            lambda f: (f / "summary.json").write_text(json.dumps({**SUMMARY, "p0_ms": None})),
            "summary.json: no positive p0_ms",
        ),
        (
            lambda f: (f / "summary.json").write_text(json.dumps({**SUMMARY, "cpu": "lots"})),
            "summary.json: cpu:",
        ),
        (
            lambda f: (f / "summary.json").write_text(json.dumps({**SUMMARY, "percentile": 100})),
            "summary.json: percentile: Input should be less than 100",
        ),
        (
            lambda f: (f / "autoscaler.csv").write_text(AUTOSCALER + "3.0,two,3,2,x\n"),
            "autoscaler.csv: line 4: column target_before: 'two' is not a number",
        ),
    ],
)
def test_bad_or_missing_files_are_named_with_their_line(tmp_path: Path, damage, message: str):
    folder = results(tmp_path)
    damage(folder)
    with pytest.raises(FolderError) as caught:
        load_folder(folder)
    assert message in str(caught.value)
    assert str(folder) in str(caught.value)


def test_a_bad_cell_names_the_file_the_line_and_the_column(tmp_path: Path):
    rows = [
        "0.2,1796232850.8,1,1,,,,,running,,,1,1,,",
        "1.2,1796232851.8,1,1,7.5,slow,3.0,2.0,running,2.0,0.0,1,1,,",
    ]
    with pytest.raises(FolderError) as caught:
        load_folder(results(tmp_path, rows))
    assert str(caught.value).endswith(
        "timeseries.csv: line 3: column sip-proxy-0.p99_ms: 'slow' is not a number"
    )


def test_a_row_longer_than_the_header_is_named(tmp_path: Path):
    rows = ["0.2,1796232850.8,1,1,,,,,running,,,1,1,,,surplus"]
    with pytest.raises(FolderError, match=r"timeseries.csv: line 2: more cells than the header"):
        load_folder(results(tmp_path, rows))


def test_a_group_folder_points_to_its_runs(tmp_path: Path):
    run = results(tmp_path)
    group = tmp_path / "group"
    group.mkdir()
    run.rename(group / "run-1")
    with pytest.raises(FolderError, match="a group of repetitions: view one of its runs"):
        load_folder(group)


# -- serving --------------------------------------------------------------------------------

VIEW = "import typer; from testbed.view import view; typer.run(view)"


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_view(folder: Path, port: int, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", VIEW, str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "API_TOKEN": "an-api-token-from-the-environment"},
        # as a shell without job control starts a background command (CI, nohup ... &)
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["sigint-default", "sigint-ignored"])
def test_view_serves_the_folder_read_only_on_loopback_until_sigint(
    tmp_path: Path, sigint_ignored: bool
):
    folder = results(tmp_path)
    port = free_port()
    view = start_view(folder, port, sigint_ignored)
    try:
        assert view.stdout is not None
        line = view.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        assert f"{url}/#experiment" in line, line + (view.stderr.read() if view.stderr else "")
        assert "4 samples, 1 scaling events" in line
        held = httpx.get(f"{url}/experiment", timeout=5).json()
        assert held["read_only"] is True
        assert held["experiment"]["folder"] == str(folder)
        assert len(held["samples"]) == 4
        assert "Experiment" in httpx.get(url, timeout=5).text  # the panel
        # read-only even with the token of the caller's environment: it has none of its own
        for method, path in (("POST", "/experiment/samples"), ("POST", "/register")):
            answer = httpx.request(
                method, url + path, headers=bearer("an-api-token-from-the-environment"), json={}
            )
            assert answer.status_code == 503, (path, answer.text)
        # loopback only: another local address of this machine finds nothing
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.2:{port}/experiment", timeout=2)
        view.send_signal(signal.SIGINT)
        assert view.wait(10) == 0
    finally:
        if view.poll() is None:
            view.kill()
            view.wait()


def test_view_names_a_bad_folder_and_a_busy_port(tmp_path: Path):
    bad = start_view(tmp_path / "nowhere", free_port())
    _out, err = bad.communicate(timeout=30)
    assert bad.returncode == 2
    assert f"testbed view: {tmp_path / 'nowhere'}: not a folder" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = start_view(results(tmp_path), taken.getsockname()[1])
        _out, err = busy.communicate(timeout=30)
    assert busy.returncode == 2
    assert "choose another with --port" in err
