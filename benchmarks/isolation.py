"""Benchmark: how much the answers of the shipped experiments depend on what else the machine
runs, with and without isolating the system under test (docs/benchmarks.md, isolation.py).

Every cell is a mode (isolation on: LB and proxies on CPUs of their own, and by default with
the shield, which moves the machine's other processes off them; off: every process on every
CPU) with or without a noisy neighbour (a CPU hog of one full core, placed as an unrelated
process would be). In each
cell the 10m capacity benchmark (experiments/benchmark-10m.yaml) and `autoscale-demo` run
REPETITIONS times. Per cell it prints the 10m capacity and the share of windows over P0 of
every run, with their spread, and autoscale-demo's failed calls. The last line:

    spread_isolated_pct=.. spread_shared_pct=.. noisy_capacity_ratio=..

Every measurement is appended to a record (--record, JSON lines) as soon as it is made, and a
run given an existing record goes on from there: a benchmark cut short (a machine that stops)
loses at most the measurement under way. Full run: about two hours. A quick check that it
works end to end:

    flock /tmp/ims-testbed-itest.lock uv run python benchmarks/isolation.py --repetitions 1 \\
        --rates 8,12 --step-seconds 15 --autoscale-seconds 60
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.experiment.benchmark import load_benchmark, run_benchmark
from testbed.experiment.runner import ExperimentFailed, run_experiment
from testbed.experiment.spec import IsolationSpec, NoiseSpec, load

ROOT = Path(__file__).resolve().parent.parent
CAPACITY_FILE = ROOT / "experiments" / "benchmark-10m.yaml"
AUTOSCALE_FILE = ROOT / "experiments" / "autoscale-demo.yaml"


@dataclass
class Cell:
    isolated: bool
    noisy: bool
    shield: bool = False  # isolated cells: outside processes moved off the SUT's CPUs too
    capacity: list[float] = field(default_factory=list)  # calls/s at 10m, per repetition
    over_p0: list[float] = field(default_factory=list)  # autoscale-demo, share of windows
    failed: list[int] = field(default_factory=list)  # autoscale-demo's failed calls
    noise_cores: list[float] = field(default_factory=list)  # what the hog actually used

    @property
    def label(self) -> str:
        mode = ("shielded" if self.shield else "isolated") if self.isolated else "shared"
        return f"{mode}{' + noise' if self.noisy else ''}"


def spread_pct(values: list[float]) -> float | None:
    """(max - min) / mean in %: 0 with one run; None without a run or with a zero mean."""
    if not values or statistics.fmean(values) == 0:
        return None
    return (max(values) - min(values)) / statistics.fmean(values) * 100


def ratio(numerator: list[float], denominator: list[float]) -> float | None:
    if not numerator or not denominator or statistics.fmean(denominator) == 0:
        return None
    return statistics.fmean(numerator) / statistics.fmean(denominator)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _record(args: argparse.Namespace, cell: Cell, kind: str, **figures: Any) -> None:
    with args.record.open("a") as f:
        f.write(json.dumps({"cell": cell.label, "kind": kind, **figures}) + "\n")


def load_record(path: Path, cells: list[Cell]) -> None:
    """The measurements a previous (interrupted) run of the benchmark made, into `cells`."""
    if not path.exists():
        return
    by_label = {cell.label: cell for cell in cells}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            cell = by_label[entry["cell"]]
            if entry["kind"] == "capacity":
                cell.capacity.append(float(entry["capacity"]))
            else:
                cell.over_p0.append(float(entry["over_p0_pct"]))
                cell.failed.append(int(entry["failed"]))
                if entry.get("noise_cores") is not None:
                    cell.noise_cores.append(float(entry["noise_cores"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}:{number}: not a record of this benchmark ({exc!r})") from None


def run_capacity(cell: Cell, args: argparse.Namespace, results: Path) -> None:
    spec = load_benchmark(CAPACITY_FILE)
    update: dict[str, Any] = {
        "name": "iso-capacity-" + cell.label.replace(" + ", "-"),
        "isolation": IsolationSpec(enabled=cell.isolated, shield=cell.shield),
        "noise": NoiseSpec(share=args.noise_share) if cell.noisy else None,
    }
    if args.rates:
        update["rates"] = args.rates
    if args.step_seconds:
        update["step_s"] = args.step_seconds
        update["warmup_s"] = min(spec.warmup_s, args.step_seconds / 3)
    spec = spec.model_copy(update=update)
    folder = run_benchmark(spec, results, _progress)
    summary = json.loads((folder / "summary.json").read_text())
    cell.capacity.append(float(summary["capacity_calls_per_s"]["10m"]))
    _record(args, cell, "capacity", capacity=cell.capacity[-1], folder=str(folder))
    print(f"  {cell.label}: capacity {cell.capacity[-1]:g} calls/s ({folder})", flush=True)


def run_autoscale(cell: Cell, args: argparse.Namespace, results: Path) -> None:
    overrides = [f"isolation.enabled={str(cell.isolated).lower()}"]
    if cell.shield:
        overrides.append("isolation.shield=true")
    if cell.noisy:
        overrides.append(f"noise.share={args.noise_share}")
    if args.autoscale_seconds:
        overrides.append(f"scenario.generate.shape.duration_s={args.autoscale_seconds}")
    experiment = load(AUTOSCALE_FILE, overrides)
    try:
        folder = run_experiment(experiment, AUTOSCALE_FILE, results, _progress)
    except ExperimentFailed as exc:
        if exc.folder is None:
            raise
        folder = exc.folder  # its summary still says what it measured
    summary = json.loads((folder / "summary.json").read_text())
    if summary.get("status") == "interrupted":  # Ctrl-C or SIGTERM: not a measurement
        raise SystemExit(f"autoscale-demo interrupted ({folder}); nothing recorded for it")
    cell.over_p0.append(float(summary.get("p99_violation_share") or 0.0) * 100)
    cell.failed.append(int(summary.get("calls_failed") or 0))
    cores = (summary.get("noise") or {}).get("cores_used")
    if cores is not None:
        cell.noise_cores.append(float(cores))
    _record(
        args,
        cell,
        "autoscale",
        over_p0_pct=cell.over_p0[-1],
        failed=cell.failed[-1],
        noise_cores=cores,
        status=summary.get("status"),
        folder=str(folder),
    )
    print(
        f"  {cell.label}: autoscale-demo {cell.over_p0[-1]:.1f}% of windows over P0, "
        f"{cell.failed[-1]} failed calls, status {summary.get('status')} ({folder})",
        flush=True,
    )


def _progress(phase: str, running: object) -> None:
    if running is None and not phase.startswith("running"):
        print(f"    {phase}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rates", type=lambda t: [float(r) for r in t.split(",")], default=None)
    parser.add_argument("--step-seconds", type=float, default=None, help="capacity step length")
    parser.add_argument(
        "--autoscale-seconds", type=float, default=None, help="cut autoscale-demo to this long"
    )
    parser.add_argument("--noise-share", type=float, default=1.0, help="cores the hog burns")
    parser.add_argument("--results", type=Path, default=Path("results/isolation"))
    parser.add_argument("--skip-autoscale", action="store_true")
    parser.add_argument(
        "--shield",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="isolated cells also shield the SUT's CPUs from outside processes (the hog too)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        help="JSON lines of every measurement (default: RESULTS/record.jsonl); an existing "
        "record is resumed",
    )
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    args.record = args.record or args.results / "record.jsonl"
    cells = [
        Cell(isolated, noisy, isolated and args.shield)
        for isolated in (True, False)
        for noisy in (False, True)
    ]
    load_record(args.record, cells)
    for repetition in range(1, args.repetitions + 1):
        for cell in cells:  # interleaved, so a slow drift of the machine hits every cell
            if len(cell.capacity) < repetition:
                print(f"repetition {repetition}: {cell.label}", flush=True)
                run_capacity(cell, args, args.results)
            if not args.skip_autoscale and len(cell.over_p0) < repetition:
                run_autoscale(cell, args, args.results)
    print()
    print(
        f"{'cell':<18} {'10m capacity (calls/s)':<26} {'spread %':>8}  "
        f"{'windows over P0 (%)':<24} {'spread %':>8}  {'failed calls':<14} {'hog cores':<10}"
    )
    for cell in cells:
        print(
            f"{cell.label:<18} {' '.join(f'{c:g}' for c in cell.capacity):<26} "
            f"{_fmt(spread_pct(cell.capacity)):>8}  "
            f"{' '.join(f'{v:.1f}' for v in cell.over_p0) or '-':<24} "
            f"{_fmt(spread_pct(cell.over_p0)):>8}  "
            f"{' '.join(str(f) for f in cell.failed) or '-':<14} "
            f"{' '.join(f'{c:.2f}' for c in cell.noise_cores) or '-':<10}"
        )
    isolated, isolated_noisy, shared, _shared_noisy = cells
    print(
        f"spread_isolated_pct={_fmt(spread_pct(isolated.capacity))} "
        f"spread_shared_pct={_fmt(spread_pct(shared.capacity))} "
        f"noisy_capacity_ratio={_fmt(ratio(isolated_noisy.capacity, isolated.capacity), 3)}"
    )


if __name__ == "__main__":
    main()
