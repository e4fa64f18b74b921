"""`testbed calibrate`: the model's CPU parameters fitted from `testbed benchmark` folders, and
the benchmark played again in the simulator to show how well the fit reproduces it.

A benchmark step is one proxy at a CPU limit under a constant rate. Its mean CPU over the step
(after the warm-up) against the rate is a line, `background + cost x rate`, as long as the
proxy is not throttled; steps that used 85% of their limit or more are left out of the fit.
The base latency is the median p50 of the steps within QoS.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.experiment.benchmark import BenchmarkSpec, capacity_of, step_experiment
from testbed.local.cgroups import parse_millicores
from testbed.simulate.calibration import Calibration, CalibrationError
from testbed.simulate.proxy_model import level_ms, percentile_level
from testbed.simulate.run import Simulation

THROTTLED_SHARE = 0.85  # a step at this share of its limit or above is not in the fit
PROXY_CPU = "sip-proxy-0.cpu_mcpu"


@dataclass(frozen=True)
class StepReading:
    """One benchmark step as measured."""

    source: str  # the benchmark folder's name
    cpu: str
    millicores: int
    rate: float
    cpu_mcpu: float | None  # the proxy's mean CPU over the step, after the warm-up
    p50_ms: float | None
    p99_ms: float | None
    failed: int
    within_qos: bool


@dataclass(frozen=True)
class Fit:
    calibration: Calibration
    used: list[StepReading]  # the steps the line was fitted to
    readings: list[StepReading]


def benchmark_folders(paths: list[Path]) -> list[Path]:
    """The benchmark folders named, a group's (`--repeat`) run-* folders in its place."""
    found: list[Path] = []
    for path in paths:
        if (path / "benchmark.csv").exists():
            found.append(path)
            continue
        runs = sorted(p for p in path.glob("run-*") if (p / "benchmark.csv").exists())
        if not runs:
            raise CalibrationError(f"{path}: not a benchmark folder (no benchmark.csv)")
        found.extend(runs)
    return found


def read_benchmark(folder: Path) -> tuple[BenchmarkSpec, list[StepReading]]:
    try:
        spec = BenchmarkSpec.model_validate_json((folder / "benchmark.json").read_text())
        with (folder / "benchmark.csv").open() as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"{folder}: {exc}") from None
    readings = []
    for line, row in enumerate(rows, start=2):
        try:
            cpu, rate = row["cpu"], float(row["rate"])
            step = folder / "steps" / row["folder"]
            readings.append(
                StepReading(
                    source=folder.name,
                    cpu=cpu,
                    millicores=parse_millicores(cpu),
                    rate=rate,
                    cpu_mcpu=mean_cpu(step / "timeseries.csv", spec.warmup_s, spec.step_s),
                    p50_ms=_number(row.get("p50_ms")),
                    p99_ms=_number(row.get("p99_ms")),
                    failed=int(row.get("failed") or 0),
                    within_qos=row.get("within_qos") == "True",
                )
            )
        except (KeyError, ValueError) as exc:
            raise CalibrationError(f"{folder / 'benchmark.csv'}, line {line}: {exc}") from None
    return spec, readings


def _number(text: str | None) -> float | None:
    """A CSV cell as a number; empty (not measured) is None."""
    return None if text in (None, "") else float(text)


def mean_cpu(timeseries: Path, warmup_s: float, step_s: float) -> float | None:
    """The proxy's mean CPU (mCPU) while the step's traffic played, after its warm-up: the rows
    whose run_state is "running" from the first such row + the warm-up (rows without a
    run_state: t_s from the warm-up to the step's end), not the drain; None if unmeasured."""
    try:
        with timeseries.open() as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise CalibrationError(f"{timeseries}: {exc.strerror or exc}") from None
    if rows and "run_state" in rows[0]:
        running = [r for r in rows if r["run_state"] == "running"]
        start = float(running[0]["t_s"]) if running else math.inf
        rows = [r for r in running if float(r["t_s"]) >= start + warmup_s]
    else:
        rows = [r for r in rows if warmup_s <= float(r["t_s"]) <= step_s]
    values = [float(r[PROXY_CPU]) for r in rows if r.get(PROXY_CPU) not in (None, "")]
    values = [v for v in values if not math.isnan(v)]
    return statistics.fmean(values) if values else None


def fit(readings: list[StepReading], base: Calibration, sources: list[str]) -> Fit:
    """The line through the unthrottled steps; the rest of `base` kept."""
    used = [
        r
        for r in readings
        if r.cpu_mcpu is not None and r.cpu_mcpu < THROTTLED_SHARE * r.millicores
    ]
    if len({r.rate for r in used}) < 2:
        raise CalibrationError(
            f"{len(used)} unthrottled step(s) at {len({r.rate for r in used})} rate(s): the fit "
            "needs steps at two rates or more below 85% of their CPU limit"
        )
    xs = [r.rate for r in used]
    ys = [r.cpu_mcpu for r in used if r.cpu_mcpu is not None]
    slope, intercept = statistics.linear_regression(xs, ys)
    if slope <= 0:
        raise CalibrationError(
            f"the proxy's CPU does not rise with the rate in these steps (slope {slope:.3f} "
            "mCPU per call/s): not a usable benchmark"
        )
    within = [r.p50_ms for r in readings if r.within_qos and r.p50_ms is not None]
    update: dict[str, object] = {
        "machine": f"fitted {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} "
        f"({os.cpu_count()} CPUs, {platform.release()})",
        "background_mcpu": round(max(0.0, intercept), 3),
        "cpu_ms_per_call": round(slope, 4),
        "sources": sources,
    }
    if within:
        update["base_latency_ms"] = round(statistics.median(within), 3)
    return Fit(base.model_copy(update=update), used, readings)


@dataclass(frozen=True)
class StepCheck:
    cpu: str
    rate: float
    measured_cpu_mcpu: float | None
    simulated_cpu_mcpu: float
    measured_p99_ms: float | None
    simulated_p99_ms: float | None
    simulated_failed: int
    simulated_within_qos: bool


def simulate_benchmark(spec: BenchmarkSpec, calibration: Calibration) -> list[StepCheck]:
    """Every step of the benchmark played in the simulator (all rates: no early stop)."""
    checks = []
    for cpu in spec.cpu:
        for rate in spec.rates_for(cpu):
            experiment = step_experiment(spec, cpu, rate)
            simulation = Simulation(experiment, calibration)
            simulation.tally_from_s = spec.warmup_s
            samples = simulation.run()
            level = percentile_level(simulation.tally, spec.percentile)
            p99 = None if level is None else level_ms(level, calibration)
            after = [s for s in samples if spec.warmup_s <= s.t_s <= spec.step_s and s.per_proxy]
            used = [s.per_proxy[0].cpu_mcpu or 0.0 for s in after]
            checks.append(
                StepCheck(
                    cpu,
                    rate,
                    None,
                    statistics.fmean(used) if used else 0.0,
                    None,
                    p99,
                    simulation.failed,
                    simulation.failed == 0 and p99 is not None and p99 < spec.p0_ms,
                )
            )
    return checks


def capacities(spec: BenchmarkSpec, steps: list[tuple[str, float, bool]]) -> dict[str, float]:
    """The benchmark's capacity per limit (capacity_of) of steps given as (cpu, rate, within
    QoS) in the order run: measured ones or simulated ones."""
    return capacity_of(spec, [{"cpu": c, "rate": r, "within_qos": ok} for c, r, ok in steps])
