"""The `testbed` command: bring the local testbed up, look at it, scale it, take it down."""

from __future__ import annotations

import json
import logging
import os
import time
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from testbed import exit_codes
from testbed.cluster.cli import cluster_app
from testbed.config import TestbedSettings
from testbed.containers.compose_cli import compose_app
from testbed.experiment.lifecycle import describe
from testbed.experiment.loop import Progress
from testbed.experiment.plain_progress import DEFAULT_EVERY_S, PlainProgress
from testbed.experiment.progress import ProgressView
from testbed.local import cpusets, processes
from testbed.local.cgroups import parse_millicores
from testbed.local.state import IsolationRecord, RunRegistry
from testbed.local.testbed import ComponentStatus, LocalTestbed, StartupError
from testbed.view import view as view_command

if TYPE_CHECKING:
    from testbed.experiment.group import Group

app = typer.Typer(
    help="Local testbed for scaling SIP proxies (Kamailio) under a response-time target.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(cluster_app, name="cluster")
app.add_typer(compose_app, name="compose")
# how long `testbed down` lets a live run stop its own testbed and write its results
RUN_STOP_TIMEOUT_S = 420.0
# wide enough for the status table when output is not a terminal (CI logs, pipes)
console = Console(width=None if Console().is_terminal else 160)
# errors go to stderr, one line each, so stdout stays the command's output (a results folder,
# a table, JSON) for pipes and $(...)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 160)


def _error(message: str, details: str = "") -> None:
    """An expected error: one red line on stderr (its text is not read as markup); `details`
    (a log's tail) follow it, dim."""
    err_console.print(f"[red]{escape(message)}[/red]", soft_wrap=True, highlight=False)
    if details:
        err_console.print(escape(details), style="dim", soft_wrap=True, highlight=False)


def _failed(what: str, exc: BaseException) -> None:
    """`<what>: <the first line of exc>`, and its further lines (a log's tail) below."""
    first, _, rest = str(exc).strip().partition("\n")
    first = first or type(exc).__name__
    _error(f"{what}: {first}" if what else first, rest.strip())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"testbed {metadata.version('ims-testbed')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Local testbed for scaling SIP proxies (Kamailio) under a response-time target."""


def _testbed() -> LocalTestbed:
    return LocalTestbed(
        TestbedSettings(), notify=lambda message: console.print(f"[dim]{message}[/dim]")
    )


def _print_status(rows: list[ComponentStatus], isolation: str | None = None) -> None:
    if not rows:
        console.print("testbed: not running")
        return
    if isolation is not None:
        console.print(f"isolation: {isolation}", highlight=False)
    table = Table(title="testbed")
    for column in ("component", "kind", "PID", "endpoints", "CPU limit", "CPUs", "health"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row.health == "healthy" else "red"
        table.add_row(
            row.name,
            row.kind,
            str(row.pid) if row.pid else "-",
            "  ".join(f"{k}={v}" for k, v in row.endpoints.items()),
            row.cpu_limit or "-",
            row.cpus or "-",
            f"[{colour}]{row.health}[/{colour}]",
        )
    console.print(table)


def _isolation_text(testbed: LocalTestbed) -> str | None:
    record = testbed.isolation()
    return record.describe() if record is not None else None


def _cpu(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_millicores(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--proxy-cpu") from None


@app.command()
def up(
    proxies: Annotated[int, typer.Option(min=0, help="number of SIP proxies")] = 2,
    proxy_cpu: Annotated[
        str | None, typer.Option(help="CPU limit per proxy, as in Kubernetes (30m, 0.5)")
    ] = None,
    db: Annotated[
        str,
        typer.Option(help="sqlite (embedded) or mariadb (local server); DATABASE_URL overrides"),
    ] = "sqlite",
    analyzers: Annotated[bool, typer.Option(help="an analyzer beside each proxy")] = False,
    clients: Annotated[
        int, typer.Option(min=0, max=100, help="client pods 00..N-1 (with the scenario controller)")
    ] = 0,
    phones: Annotated[int, typer.Option(min=1, max=100, help="phones per client pod")] = 100,
    isolation: Annotated[
        bool | None,
        typer.Option(
            help="LB and proxies on CPUs of their own, everything else on the rest "
            "(default: on with 2 or more CPUs)"
        ),
    ] = None,
    sut_cpus: Annotated[
        str | None, typer.Option(help="CPUs of the LB and proxies, e.g. 1 or 2-3")
    ] = None,
    other_cpus: Annotated[
        str | None, typer.Option(help="CPUs of everything else (default: the rest)")
    ] = None,
    shield: Annotated[
        bool,
        typer.Option(
            help="also move the machine's other processes off the SUT's CPUs until `down` "
            "(cgroup v1)"
        ),
    ] = False,
) -> None:
    """Start DB, sip-controller, load balancer and proxies (optionally analyzers, scenario
    controller and client pods); return once all are healthy."""
    millicores = _cpu(proxy_cpu)
    try:
        plan = cpusets.resolve(isolation, sut_cpus, other_cpus, cpusets.machine_cpus(), shield)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sut-cpus/--other-cpus/--shield") from None
    testbed = _testbed()
    pods = [(pod, phones) for pod in range(clients)]
    try:
        _print_status(
            testbed.up(
                proxies,
                millicores,
                db,
                analyzers=analyzers,
                scenario_controller=bool(pods),
                clients=pods,
                isolation=plan,
            ),
            _isolation_text(testbed),
        )
    except (StartupError, ValueError, OSError) as exc:
        _failed("testbed up failed", exc)
        raise typer.Exit(1) from None
    finally:
        testbed.close()


class Output(StrEnum):
    table = "table"
    json = "json"


@app.command()
def status(
    output: Annotated[
        Output,
        typer.Option("--output", "-o", help="table, or json (machine-readable, on stdout)"),
    ] = Output.table,
) -> None:
    """Every component with its PID, endpoints, CPU limit, CPUs and health. Exit status 1 when
    any component is not healthy."""
    testbed = _testbed()
    try:
        rows = testbed.status()
        record = testbed.isolation()
    finally:
        testbed.close()
    if output is Output.json:
        typer.echo(json.dumps(status_json(rows, record), indent=2))
    else:
        _print_status(rows, record.describe() if record is not None else None)
    if any(r.health != "healthy" for r in rows):
        raise typer.Exit(1)


def status_json(rows: list[ComponentStatus], isolation: IsolationRecord | None) -> dict[str, Any]:
    """`testbed status -o json`: running (false: no testbed), healthy (every component),
    isolation (the CPU split applied, null when not running) and the components."""
    return {
        "running": bool(rows),
        "healthy": all(r.health == "healthy" for r in rows) if rows else None,
        "isolation": None
        if isolation is None
        else {**isolation.model_dump(), "description": isolation.describe()},
        "components": [
            {
                "name": r.name,
                "kind": r.kind,
                "pid": r.pid,
                "endpoints": r.endpoints,
                "health": r.health,
                "cpu_limit": r.cpu_limit,
                "cpus": r.cpus,
            }
            for r in rows
        ],
    }


@app.command()
def token() -> None:
    """Print the running testbed's API token, the bearer token its services require on every
    state-changing request: curl -H "Authorization: Bearer $(testbed token)" ..."""
    testbed = _testbed()
    try:
        state = testbed.load_state()
    finally:
        testbed.close()
    if state is None or not state.api_token:
        where = testbed.state_dir
        problem = "no testbed is running" if state is None else "this testbed has no API token"
        _error(f"testbed token: {problem} (state in {where})")
        raise typer.Exit(1)
    typer.echo(state.api_token)  # alone on stdout, for $(testbed token)


@app.command()
def logs(
    component: Annotated[
        str, typer.Argument(help="a component of `testbed status` (sip-proxy-0, sip-loadb ...)")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing what is added, until Ctrl-C")
    ] = False,
    tail: Annotated[
        int | None,
        typer.Option("--tail", "-n", min=0, help="only the last N lines (default: all)"),
    ] = None,
) -> None:
    """Print a component's log file (<state dir>/logs/<name>.log; it stays after `down`), or
    follow it as tail -f does. An unknown component is refused with the known ones (exit 2)."""
    import contextlib
    import signal
    import threading

    from testbed import logs as logfiles

    settings = TestbedSettings()
    state_dir = settings.testbed_state_dir.resolve()
    testbed = _testbed()
    try:
        state = testbed.load_state()
    finally:
        testbed.close()
    known = logfiles.known_logs(state_dir, state)
    if not known:
        _error(f"testbed logs: no testbed is running and no logs are kept (state in {state_dir})")
        raise typer.Exit(1)
    path = known.get(component)
    if path is None:
        _error(f"testbed logs: unknown component {component!r}; known: {', '.join(known)}")
        raise typer.Exit(exit_codes.USAGE)
    if not path.exists() and not follow:
        _error(f"testbed logs: {component} has no log file ({path})")
        raise typer.Exit(1)
    out = typer.get_binary_stream("stdout")

    def write(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    start = 0
    if path.exists():
        start = logfiles.tail_offset(path, tail) if tail is not None else 0
        start = logfiles.copy(path, write, start)
    if not follow:
        return

    def stop_following(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM and SIGHUP end it as Ctrl-C does

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_following)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even as a background job
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it ends
        logfiles.follow(path, write, start, threading.Event())


@app.command()
def scale(
    component: Annotated[str, typer.Argument(help="what to scale: sip-proxy")],
    replicas: Annotated[int, typer.Argument(min=0, help="desired number")],
) -> None:
    """Change the number of proxies live (new ones are enabled, removed ones drained first)."""
    testbed = _testbed()
    try:
        _print_status(testbed.scale(component, replicas))
    except (StartupError, ValueError) as exc:
        _failed("testbed scale failed", exc)
        raise typer.Exit(1) from None
    finally:
        testbed.close()


@app.command()
def down() -> None:
    """Stop everything `testbed up` started, and the testbeds `testbed run` left running (a run
    still going is sent SIGTERM: it stops its testbed and writes its results); nothing else."""
    testbed = _testbed()
    try:
        stopped = testbed.down()
    finally:
        testbed.close()
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    settings = TestbedSettings()
    registry = RunRegistry(settings.testbed_state_dir)
    for entry in registry.entries():
        where = entry.results or entry.state_dir
        if not (entry.state_dir / "state.json").exists() and not entry.owner.alive():
            registry.remove(entry.state_dir)  # stopped already, or its folder was deleted
            continue
        if entry.owner.alive():
            console.print(f"run PID {entry.owner_pid} ({where}) is still going: stopping it")
            processes.stop(entry.owner, timeout=RUN_STOP_TIMEOUT_S)
        leftover = LocalTestbed(
            settings.model_copy(
                update={"testbed_state_dir": entry.state_dir, "database_url": None}
            ),
            notify=lambda message: console.print(f"[dim]{message}[/dim]"),
        )
        try:
            stopped = leftover.down()
        finally:
            leftover.close()
        registry.remove(entry.state_dir)
        console.print(
            f"stopped (testbed of the run in {where}): "
            + (", ".join(stopped) if stopped else "nothing was left running")
        )


@app.command()
def demo(
    proxies: Annotated[int, typer.Option(min=1, help="number of SIP proxies")] = 2,
    rate: Annotated[float, typer.Option(min=0.1, help="calls per second")] = 20.0,
    calls: Annotated[int, typer.Option(min=1, help="calls to place")] = 300,
    proxy_cpu: Annotated[str | None, typer.Option(help="CPU limit per proxy (30m, 0.5)")] = None,
    db: Annotated[str, typer.Option(help="sqlite or mariadb")] = "sqlite",
    keep: Annotated[bool, typer.Option(help="leave the testbed running afterwards")] = False,
) -> None:
    """Bring the testbed up, register callees and push SIPp calls through the LB, then stop."""
    from testbed.demo import run_demo

    millicores = _cpu(proxy_cpu)
    testbed = _testbed()
    try:
        _print_status(testbed.up(proxies, millicores, db))
        report = run_demo(testbed, rate, calls, callees=100, notify=console.print)
        for line in report.lines():
            console.print(line)
        if report.calls.failed or report.calls.successful < calls:
            _error("some calls failed")
            raise typer.Exit(1)
        console.print("[green]all calls completed through the load balancer and proxies[/green]")
    except (StartupError, ValueError) as exc:
        _failed("testbed demo failed", exc)
        raise typer.Exit(1) from None
    finally:
        if not keep:
            stopped = testbed.down()
            console.print("stopped: " + ", ".join(stopped))
        testbed.close()


@app.command()
def run(
    experiment_file: Annotated[
        Path | None,
        typer.Argument(help="experiment YAML (see experiments/); not with --from-search"),
    ] = None,
    results: Annotated[Path, typer.Option(help="folder the results folder goes in")] = Path(
        "results"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="override a field, e.g. --set scenario.generate.shape.step_every_s=60 "
            "(repeatable; the value is YAML)",
        ),
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="run on this Kubernetes cluster (the Helm chart) instead of the local testbed; "
            "`testbed cluster up` prints the local cluster's"
        ),
    ] = None,
    values: Annotated[
        list[Path] | None,
        typer.Option("--values", "-f", help="extra Helm values for --kubeconfig (repeatable)"),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            help="run it N times (seeds + 0..N-1) into one group folder with the mean and 95% "
            "CI of every summary figure (local testbed only)",
        ),
    ] = 1,
    fail_on_qos: Annotated[
        bool,
        typer.Option(
            "--fail-on-qos",
            help="exit 4 when any window's percentile was above P0 (qos.p0_ms), even though "
            "the run completed and no call failed",
        ),
    ] = False,
    progress_every: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="seconds of run time between progress lines when stdout is not a terminal "
            "(tee, CI, a pipe); a terminal gets the live view",
        ),
    ] = DEFAULT_EVERY_S,
    from_search: Annotated[
        Path | None,
        typer.Option(
            help="a `testbed search` folder: run its candidate ranked --rank (its experiment "
            "file and overrides, then --set)"
        ),
    ] = None,
    rank: Annotated[int, typer.Option(min=1, help="with --from-search: which candidate")] = 1,
) -> None:
    """Run an experiment on the local testbed or, with --kubeconfig, on a cluster; the last line
    printed is its results folder (errors go to stderr).

    \b
    Exit status (summary.json says why):
      0    completed, no call failed (--fail-on-qos: and no window above P0)
      1    failed, or ended at its deadline
      2    bad usage or experiment file (nothing ran)
      3    completed, but calls failed or were undeliverable (no client pod)
      4    --fail-on-qos: no call failed, but a window's percentile was above P0
      130  interrupted (Ctrl-C, SIGTERM, SIGHUP, a stop from the panel or API)

    \b
    With --repeat N the folder is a group of run-1..run-N, and the exit status
    the most serious of its repetitions' (in the order 130, 1, 3, 4)."""
    from testbed.experiment.spec import ExperimentError, load

    if (experiment_file is None) == (from_search is None):
        _error("give an experiment file or --from-search FOLDER (one of them)")
        raise typer.Exit(exit_codes.USAGE)
    if from_search is not None:
        from testbed.simulate.search import SearchError, candidate_overrides

        try:
            experiment_file, chosen = candidate_overrides(from_search, rank)
        except SearchError as exc:
            _failed("", exc)
            raise typer.Exit(exit_codes.USAGE) from None
        set_ = [*chosen, *(set_ or [])]
    assert experiment_file is not None
    try:
        experiment = load(experiment_file, set_)
    except ExperimentError as exc:
        _failed("", exc)
        raise typer.Exit(exit_codes.USAGE) from None
    if repeat > 1:
        if kubeconfig is not None:
            _error("--repeat runs on the local testbed only (not with --kubeconfig)")
            raise typer.Exit(exit_codes.USAGE)
        _run_group(experiment, experiment_file, results, repeat, fail_on_qos, progress_every)
        return
    folder = _run_one(experiment, experiment_file, results, kubeconfig, values, progress_every)
    summary = _summary(folder)
    try:
        console.print(ProgressView.summary_text(folder), soft_wrap=True, highlight=False)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        _error(f"summary.json unreadable: {describe(exc)}")
    code = exit_codes.run_exit_code(summary, fail_on_qos)
    if summary.get("status") != "completed":
        _error(f"{summary.get('status')}: {summary.get('end_reason', '')}")
    elif code != exit_codes.OK:
        _error(f"exit status {code}: {_why(summary, code)}")
    console.print(str(folder), soft_wrap=True, highlight=False)
    if code != exit_codes.OK:
        raise typer.Exit(code)


@app.command()
def campaign(
    campaign_file: Annotated[
        Path | None,
        typer.Argument(
            help="campaign YAML: candidates and repetitions (docs/experiments.md, Campaigns)"
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="a campaign folder: play the runs it has not played (not run, interrupted), "
            "into the same groups; not with a campaign file"
        ),
    ] = None,
    results: Annotated[Path, typer.Option(help="folder the campaign folder goes in")] = Path(
        "results"
    ),
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="override a field of every candidate, after the file's (repeatable)"
        ),
    ] = None,
    latest_start: Annotated[
        str | None,
        typer.Option(
            help="HH:MM (local time, within the next 24 h): start no run after it; the runs "
            "left are marked `not run` and the groups summarised as they are"
        ),
    ] = None,
    fail_on_qos: Annotated[
        bool,
        typer.Option("--fail-on-qos", help="as for `testbed run`, over every run"),
    ] = False,
    progress_every: Annotated[
        float, typer.Option(min=1.0, help="seconds of run time between progress lines")
    ] = DEFAULT_EVERY_S,
) -> None:
    """Run several candidate experiments N times each on the local testbed, interleaved
    (repetition 1 of every candidate, then 2, ...; repetition i of each with the same seeds),
    a group folder per candidate, then `testbed compare` over the groups. --resume plays what an
    ended campaign left. The last line printed is the campaign folder; the exit status is the
    most serious of its runs' (as `run --repeat`; a run not played counts as failed)."""
    from testbed.experiment.campaign import (
        CampaignError,
        group_folders,
        load_campaign,
        play_campaign,
        resume_campaign,
        start_campaign,
    )
    from testbed.experiment.compare import compare as compare_runs
    from testbed.experiment.group import load_group
    from testbed.experiment.runner import run_experiment

    if (campaign_file is None) == (resume is None):
        _error("give a campaign file or --resume FOLDER (one of them)")
        raise typer.Exit(exit_codes.USAGE)
    if resume is not None and set_:
        _error("--set applies to a new campaign; a resumed one keeps its overrides")
        raise typer.Exit(exit_codes.USAGE)
    played: list[dict[str, Any]] = []
    try:
        deadline = None if latest_start is None else next_clock_time(latest_start, time.time())
        if resume is not None:
            folder = resume.resolve()
            spec, planned, played = resume_campaign(folder)
        else:
            assert campaign_file is not None
            spec, planned = load_campaign(campaign_file, set_)
            folder = start_campaign(spec, planned, campaign_file, results)
    except (CampaignError, ValueError) as exc:
        _failed("", exc)
        raise typer.Exit(exit_codes.USAGE) from None

    files = {plan.candidate.name: plan.file for plan in planned}

    def run_one(run: Any, group: Path, folder_name: str, extra: dict[str, Any]) -> Path:
        progress = PlainProgress(run, _plain_line, progress_every)
        return run_experiment(
            run, files[group.name], group, progress, folder_name=folder_name, summary_extra=extra
        )

    ended = play_campaign(folder, spec, planned, played, run_one, _note, latest_start=deadline)
    if ended is not None:
        _error(f"ended early: {ended.reason}")
    groups = group_folders(folder, planned)
    loaded = [load_group(g) for g in groups]
    for group in loaded:
        _print_group(group)
    if any(g.counted for g in loaded):
        _print_comparison(compare_runs(groups, folder / "compare"))
    summaries = [s for g in loaded for s in _repetition_summaries(g)]
    interrupted = ended is not None and ended.interrupted
    code = exit_codes.group_exit_code(summaries, fail_on_qos, interrupted)
    if code != exit_codes.OK:
        _error(f"exit status {code}: {exit_codes.describe(code)}")
    console.print(str(folder), soft_wrap=True, highlight=False)
    if code != exit_codes.OK:
        raise typer.Exit(code)


def next_clock_time(text: str, now: float) -> float:
    """The Unix time of the next HH:MM (local time) after `now`; ValueError naming the text."""
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"--latest-start {text!r}: expected HH:MM, e.g. 17:10") from None
    local = time.localtime(now)
    at = time.mktime((*local[:3], hours, minutes, 0, 0, 0, -1))
    return at if at > now else at + 24 * 3600


# the simulator's model parameters, as `simulate` and `search` take them
CalibrationFile = Annotated[
    Path | None,
    typer.Option(help="the model's parameters (default: calibration/this-machine.yaml)"),
]


@app.command()
def simulate(
    experiment_file: Annotated[Path, typer.Argument(help="experiment YAML (see experiments/)")],
    results: Annotated[Path, typer.Option(help="folder the results folder goes in")] = Path(
        "results"
    ),
    calibration: CalibrationFile = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a field, as for `testbed run` (repeatable)"),
    ] = None,
) -> None:
    """Play an experiment against a model of the proxies instead of processes
    (docs/simulator.md): the same results folder as `testbed run`, in seconds; the autoscaler
    and its policy are the real ones. The last line printed is the results folder."""
    from testbed.experiment.spec import ExperimentError, load
    from testbed.simulate.calibration import (
        CalibrationError,
        default_calibration_path,
        load_calibration,
        with_client_environment,
    )
    from testbed.simulate.run import SimulationError
    from testbed.simulate.run import simulate as simulate_experiment

    path = calibration or default_calibration_path()
    try:
        experiment = load(experiment_file, set_)
        model = with_client_environment(load_calibration(path), os.environ)
        folder = simulate_experiment(experiment, model, results, experiment_file, path)
    except (ExperimentError, CalibrationError, SimulationError) as exc:
        _failed("", exc)
        raise typer.Exit(exit_codes.USAGE) from None
    try:
        console.print(ProgressView.summary_text(folder), soft_wrap=True, highlight=False)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        _error(f"summary.json unreadable: {describe(exc)}")
    summary = _summary(folder)
    console.print(
        f"simulated {summary.get('duration_s', 0):.0f} s in {summary.get('simulation_s')} s "
        f"({summary.get('speedup')}x real time)",
        highlight=False,
    )
    console.print(str(folder), soft_wrap=True, highlight=False)


@app.command()
def search(
    experiment_file: Annotated[Path, typer.Argument(help="experiment YAML (see experiments/)")],
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid",
            help="an axis KEY.PATH=V1,V2,... (repeatable: every combination); e.g. "
            "--grid autoscale.hpa_file=hpa/step-10m.yaml,hpa/step-20m.yaml",
        ),
    ],
    repeat: Annotated[int, typer.Option(min=1, help="seeds per candidate (seed + 0..N-1)")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a field for every candidate (repeatable)"),
    ] = None,
    calibration: CalibrationFile = None,
    results: Annotated[Path, typer.Option(help="folder the search folder goes in")] = Path(
        "results"
    ),
) -> None:
    """Search an experiment's parameters in the simulator (docs/simulator.md, "Search"): every
    combination of the grid, --repeat seeds each, ranked (those with no window over P0 and no
    failed call first, cheapest first); search.csv, search.json and pareto.png in the folder,
    printed last. `testbed run --from-search FOLDER --rank K` runs a candidate for real."""
    from testbed.simulate.calibration import (
        CalibrationError,
        default_calibration_path,
        load_calibration,
        with_client_environment,
    )
    from testbed.simulate.run import SimulationError
    from testbed.simulate.search import SearchError, parse_grid, run_search

    path = calibration or default_calibration_path()
    try:
        axes = parse_grid(grid)
        model = with_client_environment(load_calibration(path), os.environ)
        folder = run_search(
            experiment_file, axes, set_ or [], repeat, model, path, results, _plain_line
        )
    except (SearchError, CalibrationError, SimulationError) as exc:
        _failed("", exc)
        raise typer.Exit(exit_codes.USAGE) from None
    with (folder / "search.csv").open() as f:
        import csv as csv_module

        rows = list(csv_module.DictReader(f))
    table = Table("rank", "candidate", "over P0 %", "failed", "proxy-s", "cost vs plan", "P0 met")
    for row in rows[:15]:
        table.add_row(
            row["rank"],
            row["candidate"],
            f"{100 * float(row['share_over_p0']):.1f}",
            f"{float(row['failed_calls']):.0f}",
            f"{float(row['proxy_seconds']):.0f}",
            f"{float(row['cost_vs_plan']):.2f}",
            "yes" if row["meets_p0"] == "True" else "",
        )
    console.print(table)
    console.print(str(folder), soft_wrap=True, highlight=False)


@app.command()
def calibrate(
    folders: Annotated[
        list[Path], typer.Argument(help="`testbed benchmark` folders (or --repeat groups)")
    ],
    out: Annotated[
        Path | None, typer.Option(help="write the calibration here (default: print it)")
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(help="the calibration whose other fields are kept (default: this machine's)"),
    ] = None,
) -> None:
    """Fit the simulator's CPU model (background, cost per call, and a throttled proxy's
    batched cost and overhead) to benchmark folders, then
    play their steps in the simulator and print the capacities it finds next to the measured
    ones (docs/simulator.md, "Calibration")."""
    import yaml

    from testbed.simulate import calibrate as cal
    from testbed.simulate.calibration import (
        CalibrationError,
        default_calibration_path,
        load_calibration,
    )

    try:
        found = cal.benchmark_folders(folders)
        read = [cal.read_benchmark(folder) for folder in found]
        readings = [r for _spec, rs in read for r in rs]
        start = load_calibration(base or default_calibration_path())
        fitted = cal.fit(readings, start, [str(f) for f in found])
    except CalibrationError as exc:
        _failed("", exc)
        raise typer.Exit(exit_codes.USAGE) from None
    c = fitted.calibration
    console.print(
        f"fit over {len(fitted.used)} of {len(readings)} steps (those under "
        f"{cal.THROTTLED_SHARE:.0%} of their limit): background {c.background_mcpu:g} mCPU, "
        f"{c.cpu_ms_per_call:g} ms per call, base latency {c.base_latency_ms:g} ms",
        highlight=False,
    )
    table = Table("source", "cpu", "rate", "mCPU measured", "mCPU line", "p99 ms", "in fit")
    for r in readings:
        line = c.background_mcpu + c.cpu_ms_per_call * r.rate
        table.add_row(
            r.source,
            r.cpu,
            f"{r.rate:g}",
            "-" if r.cpu_mcpu is None else f"{r.cpu_mcpu:.1f}",
            f"{line:.1f}",
            "-" if r.p99_ms is None else f"{r.p99_ms:.0f}",
            "yes" if r in fitted.used else "",
        )
    console.print(table)
    if c.batched_cpu_ms_per_call is None:
        console.print(
            f"throttled: no batching ({len(fitted.knees)} knee(s) at the limit: "
            + (", ".join(f"{k.cpu} {k.rate:g}/s" for k in fitted.knees) or "none")
            + "; the fit needs a knee the line puts too low)",
            highlight=False,
        )
    else:
        console.print(
            f"throttled: {c.batched_cpu_ms_per_call:g} ms per call handled back to back, "
            f"{c.throttled_overhead_ms:g} ms per period behind, fitted to the knees "
            + ", ".join(
                f"{k.cpu} {k.rate:g}/s" + (" (or more: the ladder's top)" if k.lower_bound else "")
                for k in fitted.knees
            ),
            highlight=False,
        )
        if all(k.lower_bound for k in fitted.knees):
            console.print(
                "every knee is a ladder's top that kept QoS: the batched cost is an upper bound "
                "(run the ladder past the knee for a fit)",
                highlight=False,
            )
    checks = cal.simulate_benchmark(read[0][0], c)
    simulated = cal.capacities(
        read[0][0], [(k.cpu, k.rate, k.simulated_within_qos) for k in checks]
    )
    for spec, rs in read:
        measured = cal.capacities(spec, [(r.cpu, r.rate, r.within_qos) for r in rs])
        console.print(
            f"capacity {rs[0].source if rs else spec.name}: measured "
            + ", ".join(f"{cpu} {rate:g}/s" for cpu, rate in measured.items()),
            highlight=False,
        )
    console.print(
        "capacity simulated: " + ", ".join(f"{cpu} {rate:g}/s" for cpu, rate in simulated.items()),
        highlight=False,
    )
    text = yaml.safe_dump(c.model_dump(), sort_keys=False)
    if out is None:
        console.print(text, highlight=False, markup=False)
    else:
        out.write_text(text)
        console.print(str(out), highlight=False)


def _run_one(
    experiment: Any,
    experiment_file: Path,
    results: Path,
    kubeconfig: Path | None,
    values: list[Path] | None,
    progress_every: float,
) -> Path:
    """One run with its progress (the live view on a terminal, lines otherwise); its results
    folder. A run that failed or was interrupted ends the command here (exit 1 or 130)."""
    from rich.live import Live

    from testbed.experiment.runner import ExperimentFailed, run_experiment

    def play(report: Progress) -> Path:
        if kubeconfig is None:
            return run_experiment(experiment, experiment_file, results, report)
        from testbed.experiment.cluster_runner import run_on_cluster
        from testbed.experiment.cluster_tools import cluster_tools

        tools, local_images = cluster_tools(kubeconfig)
        return run_on_cluster(
            experiment, experiment_file, results, report, tools, local_images, values
        )

    try:
        if not console.is_terminal:  # tee, CI, a pipe: Live would show nothing until the end
            return play(PlainProgress(experiment, _plain_line, progress_every))
        view = ProgressView(experiment)
        with Live(view.render(), console=console, refresh_per_second=2, transient=False) as live:
            return play(lambda phase, row: live.update(view.update(phase, row)))
    except ExperimentFailed as exc:
        details = exc.folder and (exc.folder / "error.txt")
        more = f" (details: {details})" if details and details.exists() else ""
        _error(f"experiment failed: {describe(exc).split(': ', 1)[-1]}{more}")
        if exc.folder is not None:
            console.print(str(exc.folder), soft_wrap=True, highlight=False)
        raise typer.Exit(exit_codes.RUN_FAILED) from None
    except KeyboardInterrupt:
        _error("interrupted")
        raise typer.Exit(exit_codes.INTERRUPTED) from None
    except Exception as exc:  # one line, not a traceback
        _error(f"experiment failed: {describe(exc)}")
        raise typer.Exit(exit_codes.RUN_FAILED) from None


def _summary(folder: Path) -> dict[str, Any]:
    """A run's summary.json; an unreadable one is a failed run's."""
    try:
        data = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        return {"status": "failed", "end_reason": f"summary.json unreadable: {describe(exc)}"}
    return data if isinstance(data, dict) else {"status": "failed", "end_reason": "bad summary"}


def _why(summary: dict[str, Any], code: int) -> str:
    """Why a completed run exits non-zero, in figures."""
    if code == exit_codes.CALLS_FAILED:
        failed, lost = summary.get("calls_failed", 0), summary.get("calls_undeliverable", 0)
        return f"{failed} of {summary.get('calls_attempted', 0)} calls failed" + (
            f", {lost} could not be delivered to a client pod" if lost else ""
        )
    share = float(summary.get("p99_violation_share", 0.0))
    return (
        f"p{summary.get('percentile', 99):g} above P0 ({summary.get('p0_ms', 0):g} ms) in "
        f"{share:.1%} of windows (--fail-on-qos)"
    )


def _plain_line(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _run_group(
    experiment: Any,
    experiment_file: Path,
    results: Path,
    repeat: int,
    fail_on_qos: bool,
    progress_every: float,
) -> None:
    """`testbed run --repeat N`: the repetitions one after the other (progress as lines), then
    the group's table; the exit status is the most serious of the repetitions'."""
    from testbed.experiment.group import GroupInterrupted, load_group, run_group
    from testbed.experiment.runner import run_experiment

    def run_one(run: Any, group: Path, folder_name: str, extra: dict[str, Any]) -> Path:
        progress = PlainProgress(run, _plain_line, progress_every)
        return run_experiment(
            run, experiment_file, group, progress, folder_name=folder_name, summary_extra=extra
        )

    interrupted = False
    try:
        folder = run_group(experiment, experiment_file, results, repeat, run_one, _note)
    except GroupInterrupted as exc:
        _error(f"interrupted: {exc}")
        folder, interrupted = exc.folder, True
    group = load_group(folder)
    _print_group(group)
    summaries = _repetition_summaries(group)
    code = exit_codes.group_exit_code(summaries, fail_on_qos, interrupted)
    if code in (exit_codes.CALLS_FAILED, exit_codes.QOS_EXCEEDED):
        bad = [
            r.folder
            for r, s in zip(group.repetitions, summaries, strict=True)
            if exit_codes.run_exit_code(s, fail_on_qos) == code
        ]
        _error(f"exit status {code}: {exit_codes.describe(code)} in {', '.join(bad)}")
    console.print(str(folder), soft_wrap=True, highlight=False)
    if code != exit_codes.OK:
        raise typer.Exit(code)


def _repetition_summaries(group: Group) -> list[dict[str, Any]]:
    """Each repetition's summary.json with the status group.json gives it (alone where the
    repetition wrote none), for the group's exit status."""
    return [
        {"status": r.status, **_summary(group.folder / r.folder)}
        if (group.folder / r.folder / "summary.json").exists()
        else {"status": r.status}
        for r in group.repetitions
    ]


def _note(message: str) -> None:
    console.print(f"[dim]{message}[/dim]")


def _print_group(group: Group) -> None:
    """The repetitions with their status, and mean ± 95% CI of each figure."""
    from testbed.experiment.group import mean_ci, statistics

    stats = statistics(group.summaries)
    runs = Table(title=f"{group.name}: {len(group.repetitions)} repetitions")
    for column in ("run", "seed", "scenario seed", "status", "why it ended"):
        runs.add_column(column)
    for r in group.repetitions:
        scenario = "-" if r.scenario_seed is None else str(r.scenario_seed)
        runs.add_row(r.folder, str(r.seed), scenario, r.status, r.end_reason)
    console.print(runs)
    figures = Table(title=f"over the {len(group.counted)} completed repetitions")
    for column in ("figure", "n", "mean ± 95% CI", "sd", "min .. max"):
        figures.add_column(column)
    for key, e in stats.items():
        spread = f"{_cell(e.minimum)} .. {_cell(e.maximum)}"
        figures.add_row(key, str(e.n), mean_ci(e), _cell(e.sd), spread)
    console.print(figures)


@app.command()
def benchmark(
    spec_file: Annotated[Path, typer.Argument(help="benchmark YAML (experiments/benchmark.yaml)")],
    results: Annotated[Path, typer.Option(help="folder the results folder goes in")] = Path(
        "results"
    ),
    repeat: Annotated[
        int,
        typer.Option(
            min=1,
            help="run it N times (seeds + 0..N-1) into one group folder: the capacity per CPU "
            "limit with its spread (mean, min-max, 95% CI)",
        ),
    ] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="override a field, e.g. --set isolation.shield=true (repeatable; YAML value)",
        ),
    ] = None,
) -> None:
    """The paper's 4.1: one proxy, constant rates in steps; the capacity per proxy within QoS."""
    from testbed.experiment.benchmark import load_benchmark, run_benchmark
    from testbed.experiment.benchmark_group import run_benchmark_group
    from testbed.experiment.group import GroupInterrupted
    from testbed.experiment.runner import ExperimentFailed
    from testbed.experiment.spec import ExperimentError

    try:
        spec = load_benchmark(spec_file, set_)
    except ExperimentError as exc:
        _failed("", exc)
        raise typer.Exit(2) from None
    if repeat > 1:
        try:
            folder = run_benchmark_group(spec, results, repeat, _print_phase)
        except GroupInterrupted as exc:
            _error(f"interrupted: {exc}")
            _print_capacity(exc.folder)
            console.print(str(exc.folder), soft_wrap=True, highlight=False)
            raise typer.Exit(exit_codes.INTERRUPTED) from None
        _print_capacity(folder)
        console.print(str(folder), soft_wrap=True, highlight=False)
        return
    try:
        folder = run_benchmark(spec, results, _print_phase)
    except (ExperimentFailed, StartupError, ValueError) as exc:
        _failed("benchmark failed", exc)
        raise typer.Exit(1) from None
    console.print((folder / "benchmark.csv").read_text())
    console.print((folder / "summary.json").read_text())
    console.print(str(folder), soft_wrap=True, highlight=False)


def _print_capacity(folder: Path) -> None:
    """A benchmark group's repetitions and the capacity per CPU limit with its spread."""
    from testbed.experiment.group import fmt, load_group

    group = load_group(folder)
    summary = json.loads((folder / "summary.json").read_text())
    runs = Table(title=f"{group.name}: {len(group.repetitions)} repetitions")
    for column in ("run", "seed", "status", "capacity calls/s", "why it ended"):
        runs.add_column(column)
    for r, s in zip(group.repetitions, _summaries(folder, group), strict=True):
        capacity = ", ".join(
            f"{cpu}: {rate:g}" for cpu, rate in (s.get("capacity_calls_per_s") or {}).items()
        )
        runs.add_row(r.folder, str(r.seed), r.status, capacity or "-", r.end_reason)
    console.print(runs)
    table = Table(title=f"capacity per proxy over the {summary['counted']} completed repetitions")
    for column in ("CPU", "n", "mean calls/s", "95% CI", "min .. max", "sd"):
        table.add_column(column)
    for cpu, e in summary["capacity_calls_per_s"].items():
        ci = "-" if e["ci95_low"] is None else f"{fmt(e['ci95_low'])} .. {fmt(e['ci95_high'])}"
        table.add_row(
            cpu,
            str(e["n"]),
            fmt(e["mean"]),
            ci,
            f"{fmt(e['min'])} .. {fmt(e['max'])}",
            fmt(e["sd"]),
        )
    console.print(table)


def _summaries(folder: Path, group: Any) -> list[dict[str, Any]]:
    out = []
    for r in group.repetitions:
        path = folder / r.folder / "summary.json"
        out.append(json.loads(path.read_text()) if path.exists() else {})
    return out


@app.command()
def compare(
    folders: Annotated[list[Path], typer.Argument(help="results folders of earlier runs")],
    out: Annotated[Path, typer.Option(help="where compare.html goes")] = Path("results/compare"),
    allowed_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="a run met P0 with no failed call and at most this share of windows over P0",
        ),
    ] = 0.05,
) -> None:
    """Several runs or groups of repetitions (`run --repeat`) side by side: a table here (a
    group's figures as mean ± 95% CI, differences from the first entry marked), which met P0
    and the cheapest of those (also OUT/verdict.txt), and OUT/compare.html, compare.csv (n,
    mean, sd, CI) and compare_tests.csv (every pair)."""
    from testbed.experiment.compare import compare as compare_runs

    try:
        comparison = compare_runs(folders, out, allowed_share)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _print_comparison(comparison)


def _print_comparison(comparison: Any) -> None:
    """`testbed compare`'s table, significant differences and verdict, then its page."""
    from testbed.experiment.compare import COLUMNS

    table = Table(title="comparison")
    for _key, label in COLUMNS:
        table.add_column(label)
    for row in comparison.rows:
        table.add_row(*(row[key] for key, _label in COLUMNS))
    console.print(table)
    console.print(comparison.legend, highlight=False)
    for test in comparison.significant:
        p = test.result.p
        console.print(
            f"significant: {test.figure}, {test.a} vs {test.b}: "
            f"p {'< 0.001' if p is not None and p < 0.001 else f'= {p:.3f}'}",
            highlight=False,
        )
    for line in comparison.verdict.lines():
        console.print(line, highlight=False)
    console.print(str(comparison.page))


@app.command()
def prometheus(
    results: Annotated[Path, typer.Argument(help="a results folder of a local run")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 9090,
) -> None:
    """Serve a run's kept Prometheus TSDB again for ad-hoc queries, until Ctrl-C."""
    import signal

    import httpx

    from testbed.local.prometheus import PrometheusError, graph_link, kept_run, serve

    settings = TestbedSettings()
    try:
        run = kept_run(results.resolve())
        with httpx.Client() as http:
            server = serve(run, port, http, settings.prometheus_binary)
    except PrometheusError as exc:
        _failed("", exc)
        raise typer.Exit(2) from None

    def stop_serving(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM and SIGHUP stop it as Ctrl-C does

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_serving)
    # Ctrl-C, even when started with SIGINT ignored (a background job of a script)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        console.print(f"Prometheus serves {run.data} on {server.url}")
        if run.start is not None and run.end is not None:
            span = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.start))
            until = time.strftime("%H:%M:%S", time.gmtime(run.end))
            console.print(f"the run: {span} to {until} UTC ({run.end - run.start:.0f} s)")
        for query in run.queries:
            link = query["expr"]
            if run.start is not None and run.end is not None:
                link = graph_link(server.url, query["expr"], run.start, run.end)
            console.print(
                f"{query['for']}: {query['expr']}\n  {link}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        console.print("Ctrl-C stops it")
        while server.handle is not None and server.handle.alive():
            time.sleep(0.5)
        _error("Prometheus exited (see prometheus/serve.log)")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


app.command("view")(view_command)  # the panel's Experiment tab over a results folder


def _print_phase(phase: str, running: object) -> None:
    if running is None:
        console.print(f"[dim]{phase}[/dim]")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return str(value)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
