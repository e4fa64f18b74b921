"""`testbed calibrate`: the model's CPU parameters fitted from `testbed benchmark` folders, and
the benchmark played again in the simulator to show how well the fit reproduces it.

A benchmark step is one proxy at a CPU limit under a constant rate. Its mean CPU over the step
(after the warm-up) against the rate is a line, `background + cost x rate`, as long as the
proxy is not throttled; steps that used 85% of their limit or more are left out of the fit.
The base latency is the median p50 of those steps within QoS.

A throttled proxy serves more calls per CPU second than that line allows (it handles messages
back to back, once behind), so the line alone puts its knee too low. Where each limit's run of
steps within QoS ended with the proxy at its limit, the batched cost per call and the overhead
per period spent behind are fitted so that the model's knees fall where the measured ones did.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from testbed.experiment.benchmark import BenchmarkSpec, capacity_of, step_experiment
from testbed.local.cgroups import parse_millicores
from testbed.simulate.calibration import Calibration, CalibrationError
from testbed.simulate.proxy_model import level_ms, percentile_level
from testbed.simulate.run import Simulation


@dataclass(frozen=True)
class MessageShares:
    """What each kind of message costs a proxy, as a share of a whole call's CPU: a benchmark
    of calls alone fits one cost per call, and these split it (measured apart by
    benchmarks/message_costs.py; shares, because a machine's speed moves 2-3x between hours
    and the shares much less)."""

    bye: float  # the BYE and its 200, when the call ends
    challenge: float  # a first INVITE and its 407 (a retransmitted first INVITE costs this)
    absorbed: float  # a retransmitted authenticated INVITE, absorbed by its transaction
    register: float  # a registration, on the proxy that takes it
    dmq_replica: float  # its copy on each other proxy


# benchmarks/message_costs.py, 2026-12-05 03:04-03:15, means of 3 rounds (docs/simulator.md)
MESSAGE_SHARES = MessageShares(
    bye=0.294, challenge=0.171, absorbed=0.025, register=0.562, dmq_replica=0.139
)

THROTTLED_SHARE = 0.85  # a step at this share of its limit or above is not in the fit
AT_LIMIT_SHARE = 0.95  # a step at this share of its limit or above ran the proxy at its limit
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
    knees: list[Knee]  # the throttled knees the batched cost and the overhead were fitted to


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
    # the unthrottled steps' (a throttled proxy's median is whole periods, not its latency)
    within = [r.p50_ms for r in used if r.within_qos and r.p50_ms is not None]
    background = max(0.0, intercept)
    knees = throttled_knees(readings)
    batched, overhead = fit_throttled(knees, background, slope, base.period_s)
    update: dict[str, object] = {
        "machine": f"fitted {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} "
        f"({os.cpu_count()} CPUs, {platform.release()})",
        "background_mcpu": round(background, 3),
        "cpu_ms_per_call": round(slope, 4),
        "batched_cpu_ms_per_call": None if batched is None else round(batched, 4),
        "throttled_overhead_ms": round(overhead, 4),
        # the costs by message type: the measured shares of this hour's cost per call
        "bye_share": MESSAGE_SHARES.bye,
        "challenge_cpu_ms": round(MESSAGE_SHARES.challenge * slope, 4),
        "retransmission_cpu_ms": round(MESSAGE_SHARES.absorbed * slope, 4),
        "register_cpu_ms": round(MESSAGE_SHARES.register * slope, 4),
        "dmq_replica_cpu_ms": round(MESSAGE_SHARES.dmq_replica * slope, 4),
        "sources": sources,
    }
    if within:
        update["base_latency_ms"] = round(statistics.median(within), 3)
    return Fit(base.model_copy(update=update), used, readings, knees)


@dataclass(frozen=True)
class Knee:
    """Where one benchmark's proxy at one limit stopped keeping up while throttled."""

    source: str
    cpu: str
    millicores: int
    rate: float  # between the last rate within QoS and the next, or the last (a lower bound)
    # the ladder's top kept QoS: the knee is at this rate or above, and the batched cost
    # fitted to it an upper bound (run the ladder past the knee)
    lower_bound: bool = False


def throttled_knees(readings: list[StepReading]) -> list[Knee]:
    """Per benchmark folder and limit: the rate where the unbroken run of steps within QoS
    ends (halfway to the first step out of it), where that step (or the last one, when none
    broke) ran the proxy at its limit: a knee set by the CPU quota. A limit whose proxy broke
    below its limit says nothing about a throttled proxy and gives none."""
    knees = []
    for source, cpu in dict.fromkeys((r.source, r.cpu) for r in readings):
        steps = sorted(
            (r for r in readings if (r.source, r.cpu) == (source, cpu)), key=attrgetter("rate")
        )
        ok = _unbroken(steps)
        after = steps[len(ok)] if len(ok) < len(steps) else None
        edge = after if after is not None else (ok[-1] if ok else None)
        if not ok or edge is None or edge.cpu_mcpu is None:
            continue
        if edge.cpu_mcpu < AT_LIMIT_SHARE * edge.millicores:
            continue
        rate = ok[-1].rate if after is None else (ok[-1].rate + after.rate) / 2
        knees.append(Knee(source, cpu, edge.millicores, rate, lower_bound=after is None))
    return knees


def _unbroken(steps: list[StepReading]) -> list[StepReading]:
    ok = []
    for step in steps:
        if not step.within_qos or step.failed:
            break
        ok.append(step)
    return ok


def fit_throttled(
    knees: list[Knee], background_mcpu: float, cpu_ms_per_call: float, period_s: float
) -> tuple[float | None, float]:
    """The batched cost per call (ms) and the overhead per period spent behind (ms) that put
    a throttled proxy's knee where the benchmarks measured it: at the knee the whole quota goes
    on the background, the overhead and the calls at the batched cost, `limit - background =
    overhead / period + batched x rate` (mCPU), a line through the knees of two limits or
    more. The knees of one limit give the batched cost alone (the line through the origin:
    a benchmark of one limit, quicker to run in the hour it has to match). No knee, or knees
    the unthrottled line already explains: (None, 0), no batching.
    """
    if not knees:
        return None, 0.0
    xs = [k.rate for k in knees]
    ys = [k.millicores - background_mcpu for k in knees]
    fitted = (
        statistics.linear_regression(xs, ys) if len({k.millicores for k in knees}) >= 2 else None
    )
    if fitted is not None and fitted.intercept >= 0 and fitted.slope > 0:
        slope, intercept = fitted
    else:  # one limit (no overhead to tell apart), or no overhead: the line through the origin
        slope, intercept = (
            sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs),
            0.0,
        )
    if slope >= cpu_ms_per_call:
        return None, 0.0
    return slope, intercept * period_s


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
