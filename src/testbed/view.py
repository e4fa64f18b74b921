"""`testbed view RESULTS [--port P]`: a results folder in the panel's Experiment tab, afterwards.

The folder's timeseries.csv, autoscaler.csv (when the run was autoscaled) and summary.json
become the same view `testbed run` pushes live (testbed.experiment.panel_feed), served by a
read-only scenario controller on 127.0.0.1: it has no API token, so every route that changes
something answers 503, and its Experiment tab refuses pushes. Ctrl-C stops it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import ValidationError

from scenario_controller.config import Settings
from service_kit.environment import to_environment
from testbed.experiment.panel_feed import BadValue, scaling_events, to_sample
from testbed.local import processes
from testbed.local.health import StartupError, wait_healthy
from testbed_messages.experiment import ExperimentInfo, ExperimentRecord, ProxyView, Sample

DEFAULT_PORT = 8002  # beside a running testbed's scenario controller (8001)
STOP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 30.0  # the controller starts in about a second; a loaded machine is slower


class FolderError(ValueError):
    """A results folder that cannot be shown; the message names the file (and line)."""


def load_folder(folder: Path) -> ExperimentRecord:
    """The experiment a results folder holds, as the panel shows it."""
    if not folder.is_dir():
        raise FolderError(f"{folder}: not a folder")
    series = folder / "timeseries.csv"
    if not series.is_file():
        runs = sorted(p.name for p in folder.glob("run-*") if (p / "timeseries.csv").is_file())
        hint = (
            f" (a group of repetitions: view one of its runs, {folder / runs[0]})" if runs else ""
        )
        raise FolderError(f"{series}: missing; not the results folder of a run{hint}")
    summary = _summary(folder / "summary.json")
    samples = _samples(series)
    autoscaler = folder / "autoscaler.csv"
    events = []
    if autoscaler.is_file():
        rows = _csv_rows(autoscaler)
        for line, row in rows:
            try:
                events += scaling_events([row])
            except BadValue as exc:
                raise FolderError(f"{autoscaler}: line {line}: {exc}") from None
    try:
        return ExperimentRecord(
            experiment=_info(folder, summary),
            samples=samples,
            proxies=_proxies(samples),
            events=events,
        )
    except ValidationError as exc:  # a figure of summary.json out of its range
        first = exc.errors()[0]
        loc = first["loc"][1:] if first["loc"][:1] == ("experiment",) else first["loc"]
        where = ".".join(str(p) for p in loc)
        raise FolderError(f"{folder / 'summary.json'}: {where}: {first['msg']}") from None


def _summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FolderError(f"{path}: missing (every run writes it, however it ended)") from None
    except OSError as exc:
        raise FolderError(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise FolderError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise FolderError(f"{path}: line 1: not a JSON object")
    return data


def _info(folder: Path, summary: dict[str, Any]) -> ExperimentInfo:
    path = folder / "summary.json"

    def number(key: str) -> float | None:
        value = summary.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FolderError(f"{path}: {key}: {value!r} is not a number")
        return float(value) if math.isfinite(value) else None

    def count(key: str) -> int | None:
        value = number(key)
        return None if value is None else int(value)

    name = summary.get("experiment")
    if not isinstance(name, str) or not name:
        raise FolderError(f"{path}: no experiment name ('experiment')")
    p0 = number("p0_ms")
    if p0 is None or p0 <= 0:
        raise FolderError(f"{path}: no positive p0_ms (the run's QoS target)")
    cpu = summary.get("cpu")
    return ExperimentInfo(
        name=name[:100],
        run_id=str(folder),
        source="folder",
        p0_ms=p0,
        percentile=number("percentile") or 99.0,
        cpu_millicores=_millicores(path, cpu),
        duration_s=number("duration_s"),
        status=str(summary.get("status") or "unknown")[:40],
        end_reason=str(summary.get("end_reason") or "")[:1000] or None,
        calls_attempted=count("calls_attempted"),
        calls_succeeded=count("calls_succeeded"),
        calls_failed=count("calls_failed"),
        worst_p99_ms=number("worst_p99_ms"),
        folder=str(folder),
    )


def _millicores(path: Path, cpu: object) -> int | None:
    from testbed.local.cgroups import parse_millicores

    if cpu is None:
        return None
    try:
        return parse_millicores(str(cpu))
    except ValueError as exc:
        raise FolderError(f"{path}: cpu: {exc}") from None


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file with a header; a row with more cells than the header has
    columns is an error naming its line."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise FolderError(f"{path}: line 1: empty, no header")
            rows = []
            for row in reader:
                if None in row:
                    raise FolderError(
                        f"{path}: line {reader.line_num}: more cells than the header's "
                        f"{len(reader.fieldnames)} columns"
                    )
                rows.append((reader.line_num, row))
            return rows
    except UnicodeDecodeError as exc:
        raise FolderError(f"{path}: not text ({exc.reason})") from None
    except csv.Error as exc:
        raise FolderError(f"{path}: {exc}") from None
    except OSError as exc:
        raise FolderError(f"{path}: {exc.strerror or exc}") from None


def _samples(path: Path) -> list[Sample]:
    samples = []
    for line, row in _csv_rows(path):
        try:
            samples.append(to_sample(row))
        except BadValue as exc:
            raise FolderError(f"{path}: line {line}: {exc}") from None
    return samples


def _proxies(samples: list[Sample]) -> list[ProxyView]:
    """Every proxy with the first and last sample it had data in (states are not recorded)."""
    seen: dict[str, tuple[float, float]] = {}
    for sample in samples:
        for name in sample.per_proxy:
            first = seen[name][0] if name in seen else sample.t_s
            seen[name] = (first, sample.t_s)
    return [
        ProxyView(name=name, first_t_s=first, last_t_s=last)
        for name, (first, last) in sorted(seen.items())
    ]


def _check_port(port: int) -> int:
    """The port to serve on (port 0: a free one), checked free now so that a busy one is named
    before anything starts."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))  # loopback only: nothing listens beyond this machine
        except OSError as exc:
            raise FolderError(
                f"port {port} on 127.0.0.1: {exc.strerror or exc} (choose another with --port)"
            ) from None
        return int(sock.getsockname()[1])


def _serving(url: str, controller: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the scenario controller answers /health; its log's end if it does not."""
    handle = processes.handle_of(controller.pid)
    try:
        if handle is None:
            raise StartupError(f"the scenario controller exited at once:\n{processes.tail(log)}")
        with httpx.Client() as http:
            wait_healthy(
                http, "the scenario controller", f"{url}/health", handle, log, START_TIMEOUT_S
            )
    except StartupError as exc:
        raise FolderError(" | ".join(str(exc).splitlines()[-6:])) from None


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # one way out for both: the controller is stopped


def serve_folder(folder: Path, port: int, announce: Callable[[str], object] = print) -> None:
    """Serve `folder` read-only on 127.0.0.1:`port` until SIGINT or SIGTERM: a scenario
    controller process started with its settings (the service is run, never imported)."""
    record = load_folder(folder.resolve())
    port = _check_port(port)
    with tempfile.TemporaryDirectory(prefix="testbed-view-") as tmp:
        base = Path(tmp)
        (base / "experiment.json").write_text(record.model_dump_json())
        settings = Settings(
            scenario_controller_host="127.0.0.1",
            scenario_controller_port=port,
            scenario_dir=base / "scenarios",
            runs_dir=base / "runs",
            sip_controller_url="",
            api_token=None,  # read-only: every mutating route answers 503
            experiment_replay=base / "experiment.json",
        )
        # only what a process needs and the settings: no API_TOKEN of the caller's
        inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        log = base / "scenario-controller.log"
        with log.open("wb") as out:
            controller = subprocess.Popen(
                [sys.executable, "-m", "scenario_controller"],
                env={**inherited, **to_environment(settings)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # set for SIGINT too: a process started in the background by a shell without job
        # control (CI, nohup ... &) inherits SIGINT ignored, and Python then leaves it so
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            url = f"http://127.0.0.1:{port}"
            _serving(url, controller, log)
            announce(
                f"{record.experiment.name}: {len(record.samples)} samples, "
                f"{len(record.events)} scaling events, on {url}/#experiment (read-only); "
                "Ctrl-C stops it"
            )
            if controller.wait() != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise FolderError(f"the scenario controller stopped: {' | '.join(tail)}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if controller.poll() is None:
                controller.terminate()
                try:
                    # uvicorn waits for open connections to close, without a limit; the view
                    # has nothing to save, so a controller still there after 5 s is killed
                    controller.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    controller.kill()
                    controller.wait()


def view(
    results: Annotated[Path, typer.Argument(help="a results folder of a run")],
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free one)")
    ] = DEFAULT_PORT,
) -> None:
    """Show a results folder in the scenario controller's panel (its Experiment tab): proxies,
    scaling events, p99 per proxy against P0, CPU against the limit, arrivals, calls; read-only,
    on 127.0.0.1, until Ctrl-C."""
    try:
        serve_folder(results, port, announce=typer.echo)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: serve_folder stopped the controller
        pass
    except FolderError as exc:
        typer.echo(f"testbed view: {exc}", err=True)
        raise typer.Exit(2) from None
