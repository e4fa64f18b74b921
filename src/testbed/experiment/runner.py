"""`testbed run EXPERIMENT.yaml`: bring the local testbed up, play the scenario, sample every
second, collect what every component recorded, stop everything, write the results folder."""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from csvgen.output import write_file
from csvgen.scenario import Scenario
from csvgen.spec import StepShape, TableShape
from scenario_csv import ScenarioSummary, text_lines, validate
from testbed.autoscale.local import LocalAutoscaler
from testbed.config import TestbedSettings
from testbed.experiment.report import write_report
from testbed.experiment.sampler import Sampler
from testbed.experiment.spec import Experiment
from testbed.experiment.summary import summarize
from testbed.local.testbed import ANALYZER_KIND, CLIENT_KIND, PROXY_KIND, LocalTestbed

Progress = Callable[[str, dict[str, Any] | None], None]


class ExperimentFailed(RuntimeError):
    pass


@dataclass
class Prepared:
    csv: Path
    summary: ScenarioSummary
    proxies: int
    pods: list[tuple[int, int]]


def prepare(experiment: Experiment, out: Path) -> Prepared:
    """The scenario file (copied or generated), what it needs, and the proxy count."""
    target = out / "scenario.csv"
    spec = experiment.scenario
    if spec.csv is not None:
        shutil.copyfile(spec.csv, target)
    else:
        assert spec.generate is not None
        write_file(Scenario(spec.generate), target)
    with target.open("rb") as data:
        run = validate(text_lines(data))
        defects = [str(d) for _, d in zip(range(10), run, strict=False)]
        for _ in run:
            pass
    if run.summary.defects:
        raise ExperimentFailed(
            f"{experiment.name}: scenario has {run.summary.defects} defects: " + "; ".join(defects)
        )
    summary = run.summary
    phones = max(summary.phones_per_pod, experiment.clients.phones_per_pod or 0)
    pods = (
        [(pod, phones) for pod in range(min(summary.pods), max(summary.pods) + 1)]
        if summary.pods
        else []
    )
    if experiment.proxies.count is not None:
        proxies = experiment.proxies.count
    else:
        assert experiment.proxies.plan is not None
        peak = summary.peak_rate * spec.speed
        proxies = experiment.proxies.plan.proxies_for(peak)
    return Prepared(target, summary, proxies, pods)


def load_rises(experiment: Experiment) -> list[float]:
    """When the offered load steps up (run seconds), for step and held-table scenarios."""
    generate = experiment.scenario.generate
    speed = experiment.scenario.speed
    if generate is None:
        return []
    shape = generate.shape
    if isinstance(shape, StepShape):
        if shape.step_rate <= 0:
            return []
        return [i * shape.step_every_s / speed for i in range(1, shape.steps)]
    if isinstance(shape, TableShape) and shape.interpolate == "hold":
        return [t / speed for (_t0, r0), (t, r) in itertools.pairwise(shape.points) if r > r0]
    return []


def plan_proxies(experiment: Experiment, prepared: Prepared) -> int | None:
    """The static capacity plan's proxy count, if the experiment names a plan."""
    plan = experiment.proxies.plan
    if plan is None:
        return None
    return plan.proxies_for(prepared.summary.peak_rate * experiment.scenario.speed)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise ExperimentFailed(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.5)


def _collect(
    testbed: LocalTestbed, http: httpx.Client, out: Path, run_id: str | None
) -> tuple[list[dict[str, Any]], int]:
    """Response-time samples of every analyzer, call records of every pod, the run log."""
    state = testbed.load_state()
    calls: list[dict[str, Any]] = []
    undeliverable = 0
    if state is None:
        return calls, undeliverable
    with (out / "response_times.csv").open("w", newline="") as f:
        header_written = False
        for analyzer in state.of_kind(ANALYZER_KIND):
            try:
                text = http.get(
                    f"http://{analyzer.endpoints['http']}/samples",
                    params={"format": "csv", "limit": 1_000_000},
                    timeout=60,
                ).text
            except httpx.HTTPError:
                continue
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            if not header_written:
                f.write(lines[0])
                header_written = True
            f.writelines(lines[1:])
    for pod in state.of_kind(CLIENT_KIND):
        offset = 0
        while True:
            try:
                page = http.get(
                    f"http://{pod.endpoints['http']}/calls",
                    params={"offset": offset, "limit": 100_000},
                    timeout=60,
                ).json()
            except (httpx.HTTPError, ValueError):
                break
            calls.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
    write_calls(calls, out)
    undeliverable = fetch_run_log(http, testbed.settings.scenario_controller_url, run_id, out)
    return calls, undeliverable


def write_calls(calls: list[dict[str, Any]], out: Path) -> None:
    """calls.csv: every call record the client pods kept (a header alone when none)."""
    if calls:
        with (out / "calls.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(calls[0]))
            writer.writeheader()
            writer.writerows(calls)
    else:
        (out / "calls.csv").write_text("call_id,caller,callee,outcome,reason\n")


def fetch_run_log(http: httpx.Client, scenario_url: str, run_id: str | None, out: Path) -> int:
    """run_log.csv from the scenario controller; returns how many invites were undeliverable."""
    undeliverable = 0
    if run_id:
        try:
            log = http.get(f"{scenario_url}/runs/{run_id}/log", timeout=60).text
            (out / "run_log.csv").write_text(log)
            undeliverable = sum(
                1 for row in csv.DictReader(io.StringIO(log)) if row["status"] == "undeliverable"
            )
        except httpx.HTTPError:
            pass
    if not (out / "run_log.csv").exists():
        (out / "run_log.csv").write_text(
            "seq,caller,callee,pod,offset_s,scheduled_at,sent_at,lag_ms,status\n"
        )
    return undeliverable


def write_results(
    out: Path,
    experiment: Experiment,
    prepared: Prepared,
    rows: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    undeliverable: int,
    interrupted: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """timeseries.csv, summary.json (with `extra` fields) and the report: the end of every run,
    local or on a cluster."""
    _write_timeseries(rows, out / "timeseries.csv")
    summary = summarize(
        rows,
        calls,
        undeliverable,
        experiment.qos.p0_ms,
        experiment.qos.percentile,
        interrupted,
        rises_s=load_rises(experiment),
        plan_proxies=plan_proxies(experiment, prepared),
    )
    (out / "summary.json").write_text(
        json.dumps(
            {
                "experiment": experiment.name,
                **(extra or {}),
                "proxies": prepared.proxies,
                "cpu": experiment.proxies.cpu,
                **summary.as_dict(),
            },
            indent=2,
        )
    )
    write_report(out, experiment, summary)


def run_experiment(
    experiment: Experiment,
    experiment_file: Path | None,
    results_root: Path,
    progress: Progress,
    settings: TestbedSettings | None = None,
) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = (results_root / f"{experiment.name}-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    if experiment_file is not None:
        shutil.copyfile(experiment_file, out / "experiment.yaml")
    (out / "experiment.json").write_text(experiment.model_dump_json(indent=2))
    if experiment.autoscale is not None and experiment.autoscale.policy in ("hpa", "hybrid"):
        (out / "hpa.yaml").write_text(yaml.safe_dump(experiment.autoscale.manifest()))
    progress("preparing the scenario", None)
    prepared = prepare(experiment, out)
    settings = settings or TestbedSettings()
    settings = settings.model_copy(
        update={"testbed_state_dir": out / "testbed", "database_url": None}
    )
    testbed = LocalTestbed(settings, notify=lambda message: progress(message, None))
    rows: list[dict[str, Any]] = []
    run_id: str | None = None
    autoscaler: LocalAutoscaler | None = None
    sampler: Sampler | None = None
    interrupted = False
    http = httpx.Client(timeout=10)
    try:
        progress(f"starting {prepared.proxies} proxies and {len(prepared.pods)} client pods", None)
        testbed.up(
            prepared.proxies,
            experiment.proxies.millicores,
            experiment.db,
            analyzers=True,
            scenario_controller=True,
            clients=prepared.pods,
        )
        scenario_url = settings.scenario_controller_url
        phones = sum(p for _pod, p in prepared.pods)
        progress(f"registering {phones} phones", None)
        http.post(f"{scenario_url}/register").raise_for_status()

        def registered() -> bool:
            # Both sides: the location table can hold a contact whose 200 OK is still being
            # retransmitted to a phone behind a starved proxy; such a REGISTER would complete
            # seconds later inside the first QoS window and count as the run's worst p99.
            users = http.get(f"{settings.controller_url}/registrations").json().get("users", [])
            pods = http.get(f"{scenario_url}/clients").json().get("pods", [])
            on_phones = sum(int(pod.get("registered", 0)) for pod in pods)
            return len(users) >= phones and on_phones >= phones

        _wait(registered, experiment.register_timeout_s, f"all {phones} phones registered")
        with prepared.csv.open("rb") as data:
            http.post(
                f"{scenario_url}/scenarios", params={"name": experiment.name}, content=data.read()
            ).raise_for_status()
        sampler = Sampler(
            http,
            experiment.qos.window_s,
            experiment.qos.percentile,
            scenario_url,
            settings.lb_rpc_url,
        )
        baseline_state = testbed.load_state()
        assert baseline_state is not None
        sampler.sample(baseline_state)  # windows start here, not with the registrations
        if experiment.autoscale is not None:
            parallel = experiment.autoscale.pod_management == "parallel"
            autoscaler = LocalAutoscaler(
                experiment,
                lambda n: testbed.scale(PROXY_KIND, n, parallel=parallel),
                prepared.proxies,
                lambda message: progress(message, None),
                (settings.autoscaler_metrics_host, settings.autoscaler_metrics_port),
            )
            autoscaler.start()
        run = http.post(
            f"{scenario_url}/runs",
            json={
                "scenario": experiment.name,
                "speed": experiment.scenario.speed,
                "hold_ms": experiment.scenario.hold_ms,
            },
        )
        run.raise_for_status()
        run_id = run.json()["id"]
        duration = prepared.summary.duration_s / experiment.scenario.speed
        finished_at: float | None = None
        while True:
            state = testbed.load_state()
            assert state is not None
            row = sampler.sample(state)
            if autoscaler is not None:
                autoscaler.tick(time.monotonic(), row["t_s"], row)
            rows.append(row)
            progress("running", {**row, "duration_s": duration})
            if row.get("run_state") not in (None, "running", "paused"):
                finished_at = finished_at or time.monotonic()
                if (
                    time.monotonic() - finished_at
                    >= experiment.drain_s + experiment.scenario.hold_ms / 1000
                ):
                    break
            time.sleep(
                max(
                    0.0,
                    experiment.sample_interval_s - (time.monotonic() - sampler.start - row["t_s"]),
                )
            )
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping and keeping what was collected", None)
        if run_id:
            with contextlib.suppress(httpx.HTTPError):
                http.post(f"{settings.scenario_controller_url}/runs/{run_id}/stop")
    finally:
        if sampler is not None:
            sampler.close()
        if autoscaler is not None:
            autoscaler.stop()
            autoscaler.write_log(out / "autoscaler.csv")
        progress("collecting samples, call records and the run log", None)
        try:
            calls, undeliverable = _collect(testbed, http, out, run_id)
        finally:
            progress("stopping the testbed", None)
            testbed.down()
            testbed.close()
            http.close()
    write_results(out, experiment, prepared, rows, calls, undeliverable, interrupted)
    return out


def _write_timeseries(rows: list[dict[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or ["t_s"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
