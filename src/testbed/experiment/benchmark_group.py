"""`testbed benchmark FILE --repeat N`: the benchmark N times (seed + 0..N-1 for the steps'
Poisson arrivals) into one group folder, and the capacity per CPU limit with its spread:

    results/<name>-<time>/
        group.json       the repetitions, their seeds, folders and statuses
        summary.json     per CPU limit: the capacities, n, mean, sd, min, max, 95% CI
        capacity.csv     one row per CPU limit and repetition, then the statistics
        fig_capacity.png capacity per CPU limit (each repetition and mean ± 95% CI), and p99
                         against the rate (mean ± 95% CI over the repetitions)
        report.html
        run-1/ .. run-N/ each a normal benchmark folder (steps/, benchmark.csv, summary.json)

Only completed repetitions enter the statistics."""

from __future__ import annotations

import csv
import html
import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from testbed.config import TestbedSettings
from testbed.experiment.benchmark import BenchmarkSpec, latency_axis, run_benchmark
from testbed.experiment.group import (
    COUNTED,
    GroupInterrupted,
    Repetition,
    fmt,
    mean_ci,
    run_repetitions,
    write_group_file,
)
from testbed.experiment.runner import Progress
from testbed.experiment.stats import Estimate, estimate
from testbed.experiment.style import STYLE


def reseed(spec: BenchmarkSpec, index: int) -> BenchmarkSpec:
    return spec.model_copy(update={"seed": spec.seed + index - 1})


def run_benchmark_group(
    spec: BenchmarkSpec,
    results_root: Path,
    repeat: int,
    progress: Progress,
    settings: TestbedSettings | None = None,
) -> Path:
    """Returns the group folder, or raises GroupInterrupted naming it; the group's summary is
    always written."""
    if repeat < 1:
        raise ValueError(f"--repeat {repeat}: must be at least 1")
    out = (results_root / f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    poisson = spec.arrivals == "poisson"
    repetitions = [
        Repetition(i, f"run-{i}", spec.seed + i - 1, spec.seed + i - 1 if poisson else None)
        for i in range(1, repeat + 1)
    ]
    note_text = (
        ""
        if poisson
        else "deterministic arrivals: every repetition replays the same steps (arrivals: poisson "
        "draws other arrival times per repetition)"
    )

    def note(message: str) -> None:
        progress(message, None)

    if note_text and repeat > 1:
        note(f"note: {note_text}")

    def one(repetition: Repetition) -> Path:
        return run_benchmark(
            reseed(spec, repetition.index), out, progress, settings, repetition.folder
        )

    def record(interrupted: str | None, final: bool) -> None:
        header = (spec.name, "benchmark", spec.seed, "repetition i: seed + (i - 1)")
        write_group_file(out, header, repeat, repetitions, note_text, interrupted)
        if final:
            write_benchmark_group(out, spec, repetitions)

    interrupted = run_repetitions(out, repetitions, one, record, note)
    if interrupted:
        raise GroupInterrupted(interrupted, out)
    return out


def capacity_spread(
    spec: BenchmarkSpec, summaries: list[dict[str, Any]]
) -> dict[str, tuple[list[float], Estimate]]:
    """Per CPU limit: the capacities of the completed repetitions and their estimate."""
    counted = [s for s in summaries if s.get("status", COUNTED) == COUNTED]
    out: dict[str, tuple[list[float], Estimate]] = {}
    for cpu in spec.cpu:
        values = [float(s["capacity_calls_per_s"][cpu]) for s in counted]
        out[cpu] = (values, estimate(values))
    return out


def write_benchmark_group(out: Path, spec: BenchmarkSpec, repetitions: list[Repetition]) -> None:
    summaries: list[dict[str, Any]] = []
    tables: list[list[dict[str, str]]] = []
    for r in repetitions:
        folder = out / r.folder
        if (folder / "summary.json").exists():
            summaries.append(
                {"folder": r.folder, **json.loads((folder / "summary.json").read_text())}
            )
            if r.status == COUNTED and (folder / "benchmark.csv").exists():
                with (folder / "benchmark.csv").open() as f:
                    tables.append(list(csv.DictReader(f)))
    spread = capacity_spread(spec, summaries)
    (out / "summary.json").write_text(
        json.dumps(
            {
                "benchmark": spec.name,
                "kind": "benchmark group",
                "p0_ms": spec.p0_ms,
                "percentile": spec.percentile,
                "repetitions": len(repetitions),
                "counted": len(tables),
                "statuses": {r.folder: r.status for r in repetitions},
                "capacity_calls_per_s": {
                    cpu: {"values": values, **e.as_dict()} for cpu, (values, e) in spread.items()
                },
                "interval": "Student-t 95% interval of the mean over the completed repetitions",
            },
            indent=2,
        )
    )
    with (out / "capacity.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cpu", "row", "capacity_calls_per_s"])
        by_folder = {s["folder"]: s for s in summaries}
        for cpu, (_values, e) in spread.items():
            for r in repetitions:
                summary = by_folder.get(r.folder)
                value = summary["capacity_calls_per_s"].get(cpu) if summary else None
                writer.writerow([cpu, f"{r.folder} ({r.status})", value])
            for row, value in (
                ("n", e.n),
                ("mean", e.mean),
                ("sd", e.sd),
                ("min", e.minimum),
                ("max", e.maximum),
                ("ci95_low", e.ci_low),
                ("ci95_high", e.ci_high),
            ):
                writer.writerow([cpu, row, value])
    _figure(out, spec, spread, tables)
    caps = "".join(
        f"<tr><td>{html.escape(cpu)}</td><td>{e.n}</td><td>{mean_ci(e)}</td>"
        f"<td>{fmt(e.minimum)} .. {fmt(e.maximum)}</td><td>{fmt(e.ci_low)} .. {fmt(e.ci_high)}</td>"
        f"<td>{', '.join(f'{v:g}' for v in values)}</td><td>{html.escape(e.note)}</td></tr>"
        for cpu, (values, e) in spread.items()
    )
    runs = "".join(
        f'<tr><td><a href="{r.folder}/report.html">{r.folder}</a></td><td>{r.seed}</td>'
        f"<td>{html.escape(r.status)}</td><td>{html.escape(r.end_reason)}</td></tr>"
        for r in repetitions
    )
    (out / "report.html").write_text(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{spec.name}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(spec.name)}: "
        f"{len(repetitions)} repetitions</h1><p>Capacity per proxy (largest rate with "
        f"p{spec.percentile:g} &lt; {spec.p0_ms:g} ms and no failed call), over the completed "
        "repetitions: mean ± half-width of the 95% confidence interval (Student's t).</p>"
        "<table><tr><th>CPU</th><th>n</th><th>calls/s</th><th>min .. max</th><th>95% CI</th>"
        f"<th>each repetition</th><th></th></tr>{caps}</table>"
        "<table><tr><th>run</th><th>seed</th><th>status</th><th>why it ended</th></tr>"
        f'{runs}</table><img src="fig_capacity.png" alt="capacity with its spread"></body></html>'
    )


def _figure(
    out: Path,
    spec: BenchmarkSpec,
    spread: dict[str, tuple[list[float], Estimate]],
    tables: list[list[dict[str, str]]],
) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    for x, (values, e) in enumerate(spread.values()):
        left.scatter([x] * len(values), values, color="#a0aec0", zorder=2, label=None)
        if e.mean is not None:
            half = e.half_width or 0.0
            left.errorbar(x, e.mean, yerr=half, fmt="o", color="#2b6cb0", capsize=6, zorder=3)
    left.set_xticks(range(len(spread)), [f"{cpu} CPU" for cpu in spread])
    left.set_xlim(-0.5, len(spread) - 0.5)
    left.set_title("capacity per proxy: repetitions, mean ± 95% CI")
    left.set_ylabel("calls/s within QoS")
    left.grid(alpha=0.3)
    for cpu in spec.cpu:
        rates = sorted({float(r["rate"]) for t in tables for r in t if r["cpu"] == cpu})
        means, halves, xs = [], [], []
        for rate in rates:
            e = estimate(
                [
                    float(r["p99_ms"])
                    for t in tables
                    for r in t
                    if r["cpu"] == cpu and float(r["rate"]) == rate and r["p99_ms"]
                ]
            )
            if e.mean is not None:
                xs.append(rate)
                means.append(e.mean)
                halves.append(e.half_width or 0.0)
        if xs:
            right.errorbar(xs, means, yerr=halves, marker="o", capsize=3, label=f"{cpu} CPU")
    latency_axis(
        right, spec.p0_ms, f"p{spec.percentile:g} against the rate (mean ± 95% CI)", "calls/s"
    )
    fig.tight_layout()
    fig.savefig(out / "fig_capacity.png")
    plt.close(fig)
