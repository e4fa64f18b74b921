"""`testbed benchmark FILE`: the paper's section 4.1, automated. One proxy at a CPU limit (or
several limits in turn) gets a constant arrival rate, step after step; each step is a short
experiment of its own. Output: p99 and max response time against the rate per CPU limit (the
paper's figure 4.1) and the largest rate that keeps p99 under P0: the capacity per proxy that
capacity planning uses."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from testbed.config import TestbedSettings
from testbed.experiment.runner import ExperimentFailed, Progress, run_experiment
from testbed.experiment.spec import (
    Experiment,
    ExperimentError,
    IsolationSpec,
    NoiseSpec,
    apply_override,
)
from testbed.experiment.style import STYLE
from testbed.local.cgroups import parse_millicores

PAIRS_MEASURED = ("invite_challenge", "invite_forward", "ok_forward")
STEP_WINDOW_S = 10.0  # the per-second p99 of a step's timeseries.csv
# the chart's ServiceMonitor interval: each scrape of a proxy's /metrics costs it about 0.5 ms
# of CPU, 5% of a 10m limit at one scrape a second
STEP_SCRAPE_S = 5.0


class BenchmarkSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")] = "benchmark"
    description: str = ""
    cpu: list[str] = Field(default_factory=lambda: ["30m"], min_length=1)
    # one list for every limit, or a list per limit ({10m: [1, 2, 3], 30m: [8, 10, 12]}): a
    # larger limit serves more, and steps far below its capacity only cost time
    rates: list[Annotated[float, Field(gt=0)]] | dict[str, list[Annotated[float, Field(gt=0)]]] = (
        Field(description="calls per second, in the order tried")
    )
    step_s: float = Field(60.0, gt=0, description="length of each constant-rate step")
    warmup_s: float = Field(5.0, ge=0, description="left out of each step's percentiles")
    phones_per_pod: int = Field(100, ge=1, le=100)
    p0_ms: float = Field(1000.0, gt=0)
    percentile: float = Field(99.0, gt=0, lt=100)
    stop_after: int = Field(2, ge=1, description="stop a CPU limit after this many failing steps")
    arrivals: Literal["deterministic", "poisson"] = Field(
        "deterministic", description="poisson: random arrival times (seeded), as csvgen's"
    )
    seed: int = Field(0, ge=0, description="seed of the steps' Poisson arrivals (--repeat: + i-1)")
    isolation: IsolationSpec = IsolationSpec()  # passed on to every step
    noise: NoiseSpec | None = None  # a noisy neighbour during every step

    @model_validator(mode="after")
    def _rates_for_every_limit(self) -> BenchmarkSpec:
        if isinstance(self.rates, dict):
            missing = [cpu for cpu in self.cpu if cpu not in self.rates]
            extra = [cpu for cpu in self.rates if cpu not in self.cpu]
            problems = [f"no rates for {cpu}" for cpu in missing]
            problems += [f"rates for {cpu}, which is not in cpu" for cpu in extra]
            if problems:
                raise ValueError("rates: one list per CPU limit of cpu: " + "; ".join(problems))
        for cpu in self.cpu:
            if not self.rates_for(cpu):
                raise ValueError(f"rates: no rate for {cpu}")
        return self

    def rates_for(self, cpu: str) -> list[float]:
        """The rates tried at one CPU limit, in order."""
        return self.rates[cpu] if isinstance(self.rates, dict) else self.rates


def load_benchmark(path: Path, overrides: list[str] | None = None) -> BenchmarkSpec:
    """The benchmark file, with `--set` overrides (field=YAML value) applied."""
    try:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("expected a mapping at the top level")
        for override in overrides or []:
            apply_override(data, override)
        spec = BenchmarkSpec.model_validate(data)
        for cpu in spec.cpu:
            parse_millicores(cpu)
        return spec
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such file") from None
    except (yaml.YAMLError, ValidationError, ValueError) as exc:
        raise ExperimentError(f"{path}: {exc}") from None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _step_figures(folder: Path, warmup_s: float, percentile: float) -> dict[str, float | None]:
    with (folder / "response_times.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["pair"] in PAIRS_MEASURED]
    if rows:
        start = min(float(r["timestamp"]) for r in rows)
        rows = [r for r in rows if float(r["timestamp"]) >= start + warmup_s]
    times = [float(r["response_time_ms"]) for r in rows]
    return {
        "p50_ms": _percentile(times, 50),
        "p99_ms": _percentile(times, percentile),
        "max_ms": max(times) if times else None,
        "samples": float(len(times)),
    }


def run_benchmark(
    spec: BenchmarkSpec,
    results_root: Path,
    progress: Progress,
    settings: TestbedSettings | None = None,
    folder_name: str | None = None,
) -> Path:
    """The steps one after the other into `results_root/<folder_name>` (by default
    `<name>-<time>`). What was measured is always written, with `status` in summary.json; an
    interrupted step (Ctrl-C, SIGTERM) ends the benchmark with ExperimentFailed."""
    name = folder_name or f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = (results_root / name).resolve()
    (out / "steps").mkdir(parents=True)
    (out / "benchmark.json").write_text(spec.model_dump_json(indent=2))
    table: list[dict[str, Any]] = []
    status, reason = "completed", "every step ran"
    try:
        _steps(spec, out, progress, settings, table)
    except KeyboardInterrupt as exc:
        status, reason = "interrupted", f"interrupted by {exc or 'SIGINT'} between steps"
        raise
    except ExperimentFailed as exc:
        status = "interrupted" if isinstance(exc, StepInterrupted) else "failed"
        reason = str(exc)
        raise
    finally:
        _write(out, spec, table, capacity_of(spec, table), status, reason)
    return out


class StepInterrupted(ExperimentFailed):
    """A step was interrupted (Ctrl-C, SIGTERM, SIGHUP): the benchmark ends."""


def step_experiment(spec: BenchmarkSpec, cpu: str, rate: float) -> Experiment:
    """One step of the benchmark: one proxy at `cpu`, `rate` calls/s for `step_s` (also what
    the simulator plays to calibrate and check itself against a benchmark)."""
    return Experiment.model_validate(
        {
            "name": f"{spec.name}-{cpu}-{rate:g}",
            "scenario": {
                "generate": {
                    "shape": {"kind": "constant", "rate": rate, "duration_s": spec.step_s},
                    "arrivals": spec.arrivals,
                    "seed": spec.seed,
                    "pods": 2,
                    "phones_per_pod": spec.phones_per_pod,
                }
            },
            "proxies": {"count": 1, "cpu": cpu},
            # the step's figures come from its raw samples (_step_figures); the
            # per-second p99 only shows the step's course, so Prometheus's window is
            # short: the run waits one window and a scrape before its traffic
            "qos": {
                "p0_ms": spec.p0_ms,
                "percentile": spec.percentile,
                "window_s": min(spec.step_s, STEP_WINDOW_S),
            },
            # two scrapes in the window, also for steps under 10 s
            "metrics": {
                "scrape_interval_s": min(STEP_SCRAPE_S, min(spec.step_s, STEP_WINDOW_S) / 2)
            },
            "seed": spec.seed,
            "isolation": spec.isolation.model_dump(),
            "noise": spec.noise.model_dump() if spec.noise else None,
        }
    )


def _steps(
    spec: BenchmarkSpec,
    out: Path,
    progress: Progress,
    settings: TestbedSettings | None,
    table: list[dict[str, Any]],
) -> None:
    for cpu in spec.cpu:
        failing = 0
        for rate in spec.rates_for(cpu):
            progress(f"{cpu}: {rate:g} calls/s for {spec.step_s:g} s", None)
            experiment = step_experiment(spec, cpu, rate)
            folder = run_experiment(experiment, None, out / "steps", progress, settings)
            summary = json.loads((folder / "summary.json").read_text())
            if summary.get("status") == "interrupted":  # Ctrl-C or SIGTERM ends the benchmark
                raise StepInterrupted(f"{summary.get('end_reason')} ({folder})", folder=folder)
            figures = _step_figures(folder, spec.warmup_s, spec.percentile)
            p99 = figures["p99_ms"]
            ok = (
                summary["calls_failed"] == 0
                and summary["calls_undeliverable"] == 0
                and p99 is not None
                and p99 < spec.p0_ms
            )
            noise = summary.get("noise") or {}
            table.append(
                {
                    "cpu": cpu,
                    "rate": rate,
                    **figures,
                    "calls": summary["calls_attempted"],
                    "failed": summary["calls_failed"],
                    "within_qos": ok,
                    "isolation": _isolation_text(summary.get("isolation")),
                    "noise_cores_used": noise.get("cores_used"),
                    "host_steal_pct": summary.get("host_steal_pct"),
                    "folder": folder.name,
                }
            )
            failing = 0 if ok else failing + 1
            if failing >= spec.stop_after:
                break


def capacity_of(spec: BenchmarkSpec, table: list[dict[str, Any]]) -> dict[str, float]:
    """Per CPU limit, the largest rate of the unbroken run of steps within QoS from the first.

    A limit without a step (a run interrupted before it) has no capacity, not 0."""
    capacity: dict[str, float] = {}
    for cpu in spec.cpu:
        rows = [r for r in table if r["cpu"] == cpu]
        if not rows:
            continue
        best = 0.0
        for row in rows:
            if not row["within_qos"]:
                break
            best = row["rate"]
        capacity[cpu] = best
    return capacity


def latency_axis(ax: Any, p0_ms: float, title: str, xlabel: str) -> None:
    """A response-time axis against the rate: log scale, P0 drawn, legend."""
    ax.axhline(p0_ms, color="#c53030", ls="--", label=f"P0 = {p0_ms:g} ms")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _write(
    out: Path,
    spec: BenchmarkSpec,
    table: list[dict[str, Any]],
    capacity: dict[str, float],
    status: str = "completed",
    end_reason: str = "",
) -> None:
    with (out / "benchmark.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]) if table else ["cpu"])
        writer.writeheader()
        writer.writerows(table)
    (out / "summary.json").write_text(
        json.dumps(
            {
                "benchmark": spec.name,
                "p0_ms": spec.p0_ms,
                "percentile": spec.percentile,
                "capacity_calls_per_s": capacity,
                "steps": len(table),
                "seed": spec.seed,
                "arrivals": spec.arrivals,
                "status": status,
                "end_reason": end_reason,
                "isolation": spec.isolation.model_dump(),
                "noise": spec.noise.model_dump() if spec.noise else None,
            },
            indent=2,
        )
    )
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for ax, key, title in (
        (axes[0], "p99_ms", f"p{spec.percentile:g}"),
        (axes[1], "max_ms", "maximum"),
    ):
        for cpu in spec.cpu:
            rows = [r for r in table if r["cpu"] == cpu and r[key] is not None]
            ax.plot(
                [r["rate"] for r in rows], [r[key] for r in rows], marker="o", label=f"{cpu} CPU"
            )
        latency_axis(
            ax,
            spec.p0_ms,
            f"{title} response time against arrival rate",
            "calls/s (2 INVITEs each)",
        )
    fig.tight_layout()
    fig.savefig(out / "fig_benchmark.png")
    plt.close(fig)
    head = "".join(
        f"<th>{k}</th>"
        for k in (
            "CPU",
            "calls/s",
            "p50 ms",
            f"p{spec.percentile:g} ms",
            "max ms",
            "calls",
            "failed",
            "within QoS",
        )
    )
    body = "".join(
        f"<tr><td>{r['cpu']}</td><td>{r['rate']:g}</td><td>{_ms(r['p50_ms'])}</td><td>{_ms(r['p99_ms'])}</td>"
        f"<td>{_ms(r['max_ms'])}</td><td>{r['calls']}</td><td>{r['failed']}</td>"
        f"<td>{'yes' if r['within_qos'] else 'no'}</td></tr>"
        for r in table
    )
    caps = ", ".join(f"{cpu}: {rate:g} calls/s" for cpu, rate in capacity.items())
    (out / "report.html").write_text(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{spec.name}</title>'
        f"<style>{STYLE}</style></head><body><h1>{spec.name}</h1>"
        f"<p>Capacity per proxy (largest rate with p{spec.percentile:g} &lt; {spec.p0_ms:g} ms "
        f"and no failed call): <b>{caps}</b></p><table><tr>{head}</tr>{body}</table>"
        '<img src="fig_benchmark.png" alt="response time against rate"></body></html>'
    )


def _isolation_text(record: dict[str, Any] | None) -> str:
    """A step's isolation as applied (its summary.json): 'sut=1 others=0' or 'off'."""
    if not record or not record.get("enabled"):
        return "off"
    return f"sut={record['sut_cpus']} others={record['other_cpus']}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
