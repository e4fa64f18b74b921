"""Benchmark: how closely `testbed simulate` reproduces real runs of the testbed.

Give it results folders of real runs: `testbed run` folders (or `--repeat` groups of them) and
`testbed benchmark` folders (or groups). Each is played again in the simulator from the
experiment it recorded (experiment.json, benchmark.json) and its figures are put next to the
real ones:

- runs: the real runs of one experiment (repetitions, whatever their seed) are one group, played
  with `--seeds` seeds of the model's own randomness; the means side by side: share of windows
  over P0 (points), proxy-seconds ± sd (% between the means), scaling actions (when the pool's
  target changed, matched within one sync period, per real/simulated pair and per real/real
  pair), failed calls and the proxies' CPU per call;
- a benchmark: the capacity per CPU limit, and how many rate steps apart the two are.

Goals (issue 20): windows over P0 within 5 points, proxy-seconds within 10%, scaling actions at
the same times within one sync period, capacity within one rate step, failed calls of the same
order. The last line: worst_p99_share_error_pts=.. worst_proxy_seconds_error_pct=..
worst_capacity_error_steps=.. speedup=..

    uv run python benchmarks/simulator_fidelity.py FOLDER... [--calibration FILE] [--seeds N]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.experiment.spec import Experiment
from testbed.simulate import calibrate as cal
from testbed.simulate.calibration import Calibration, default_calibration_path, load_calibration
from testbed.simulate.run import simulate


def runs_in(folder: Path, marker: str) -> list[Path]:
    """The folder itself if it holds `marker`, else its run-* folders that do."""
    if (folder / marker).exists():
        return [folder]
    return sorted(p for p in folder.glob("run-*") if (p / marker).exists())


def target_changes(folder: Path) -> list[tuple[float, int, int]]:
    path = folder / "autoscaler.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return [
            (float(r["t_s"]), int(r["target_before"]), int(r["target_after"]))
            for r in csv.DictReader(f)
            if r["target_before"] != r["target_after"]
        ]


def matched(
    real: list[tuple[float, int, int]], sim: list[tuple[float, int, int]], within: float
) -> int:
    """How many real target changes the simulation made too, in the same direction, within
    `within` seconds (each simulated change used once)."""
    left = list(sim)
    hits = 0
    for t, before, after in real:
        for i, (ts, b, a) in enumerate(left):
            if abs(ts - t) <= within and (a > b) == (after > before):
                hits += 1
                del left[i]
                break
    return hits


def cpu_ms_per_call(folder: Path, calls: int) -> float | None:
    """The proxies' CPU over the run (every proxy's samples, background included) per call: a
    real run whose figure is far from the simulation's ran on a machine faster or slower than
    the calibration's, whatever the model does."""
    if calls <= 0:
        return None
    with (folder / "timeseries.csv").open() as f:
        rows = list(csv.DictReader(f))
    cpu_s = 0.0
    previous = 0.0
    for row in rows:
        t = float(row["t_s"])
        used = [float(v) for k, v in row.items() if k.endswith(".cpu_mcpu") and v not in ("", None)]
        cpu_s += sum(u for u in used if not math.isnan(u)) / 1000 * (t - previous)
        previous = t
    return 1000 * cpu_s / calls


@dataclass(frozen=True)
class RunFigures:
    share: float  # % of windows over P0
    proxy_seconds: float
    changes: list[tuple[float, int, int]]
    failed: int
    cpu_per_call: float | None


def figures(folder: Path) -> RunFigures:
    summary = json.loads((folder / "summary.json").read_text())
    return RunFigures(
        100 * summary["p99_violation_share"],
        summary["proxy_seconds"],
        target_changes(folder),
        summary["calls_failed"],
        cpu_ms_per_call(folder, summary["calls_attempted"]),
    )


def same_experiment(folder: Path) -> str:
    """What repetitions of one experiment share: the experiment without its seed."""
    experiment = Experiment.model_validate_json((folder / "experiment.json").read_text())
    return experiment.model_dump_json(exclude={"seed"})


def compare_group(
    folders: list[Path], calibration: Calibration, out: Path, seeds: int
) -> dict[str, Any]:
    """Real repetitions of one experiment against the model played with `seeds` seeds of its
    own randomness (the load balancer's hash draws; the offered calls are the recorded
    experiment's): the means side by side, with their spreads. A policy that reacts to a
    p99 near its margin is chaotic; one run of it, real or simulated, is one draw."""
    experiment = Experiment.model_validate_json((folders[0] / "experiment.json").read_text())
    real = [figures(f) for f in folders]
    sim: list[RunFigures] = []
    wall = simulated_s = 0.0
    for k in range(seeds):
        seeded = experiment.model_copy(update={"seed": experiment.seed + k})
        started = time.perf_counter()
        sim_folder = simulate(seeded, calibration, out, folder_name=f"{folders[0].name}-sim-{k}")
        wall += time.perf_counter() - started
        simulated_s += json.loads((sim_folder / "summary.json").read_text())["duration_s"]
        sim.append(figures(sim_folder))
    sync = experiment.autoscale.sync_period_s if experiment.autoscale else 0.0
    matches = [matched(r.changes, s.changes, sync) for r in real for s in sim]
    # how close the testbed is to itself: real repetitions matched with one another
    among = [matched(a.changes, b.changes, sync) for a, b in itertools.combinations(real, 2)]
    name = folders[0].name
    if folders[0].name.startswith("run-"):
        name = f"{folders[0].parent.name}/{folders[0].name}"
    return {
        "run": name if len(folders) == 1 else f"{name} (+{len(folders) - 1})",
        "share_real": _mean([r.share for r in real]),
        "share_sim": _mean([s.share for s in sim]),
        "ps_real": _mean([r.proxy_seconds for r in real]),
        "ps_real_sd": _sd([r.proxy_seconds for r in real]),
        "ps_sim": _mean([s.proxy_seconds for s in sim]),
        "ps_sim_sd": _sd([s.proxy_seconds for s in sim]),
        "actions_real": _mean([len(r.changes) for r in real]),
        "actions_sim": _mean([len(s.changes) for s in sim]),
        "actions_matched": _mean(matches),
        "actions_matched_real": _mean(among) if among else None,
        "failed_real": _mean([r.failed for r in real]),
        "failed_sim": _mean([s.failed for s in sim]),
        "cpu_per_call_real": _mean_of([r.cpu_per_call for r in real]),
        "cpu_per_call_sim": _mean_of([s.cpu_per_call for s in sim]),
        "speedup": simulated_s / wall if wall > 0 else 0.0,
    }


def _mean(values: list[float] | list[int]) -> float:
    return statistics.fmean(values) if values else 0.0


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def compare_benchmark(folder: Path, calibration: Calibration) -> list[dict[str, Any]]:
    spec, readings = cal.read_benchmark(folder)
    measured = cal.capacities(spec, [(r.cpu, r.rate, r.within_qos) for r in readings])
    checks = cal.simulate_benchmark(spec, calibration)
    simulated = cal.capacities(spec, [(k.cpu, k.rate, k.simulated_within_qos) for k in checks])
    rows = []
    for cpu, real in measured.items():
        ladder = [0.0, *spec.rates_for(cpu)]
        sim = simulated.get(cpu, 0.0)
        steps = abs(ladder.index(sim) - ladder.index(real)) if sim in ladder else None
        rows.append(
            {"benchmark": folder.name, "cpu": cpu, "real": real, "sim": sim, "steps": steps}
        )
    return rows


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--calibration", type=Path, default=default_calibration_path())
    parser.add_argument("--out", type=Path, default=Path("results/fidelity"))
    parser.add_argument(
        "--seeds", type=int, default=3, help="model seeds per experiment (the LB's hash draws)"
    )
    args = parser.parse_args()
    calibration = load_calibration(args.calibration)
    print(f"# calibration: {args.calibration}")
    groups: dict[str, list[Path]] = {}
    benches: list[dict[str, Any]] = []
    for folder in args.folders:
        for run in runs_in(folder, "experiment.json"):
            if (run / "summary.json").exists():
                groups.setdefault(same_experiment(run), []).append(run)
        for bench in runs_in(folder, "benchmark.csv"):
            benches.extend(compare_benchmark(bench, calibration))
    runs = [compare_group(g, calibration, args.out, args.seeds) for g in groups.values()]
    if runs:
        print(
            "# run (+ its repetitions): means over real runs / model seeds: windows over P0 %,"
            " proxy-seconds ± sd (error of the means), scaling actions (matched within a sync"
            " period, per pair of real and simulated runs, and per pair of real runs), failed"
            " calls, the proxies' CPU per call in ms, background included (far apart: the"
            " machine ran at another speed than the calibration's)"
        )
        for r in runs:
            error = 100 * (r["ps_sim"] - r["ps_real"]) / r["ps_real"] if r["ps_real"] else 0.0
            r["ps_error"] = error
            print(
                f"  {r['run']:44s} {r['share_real']:5.1f} / {r['share_sim']:5.1f}  "
                f"{r['ps_real']:6.0f} ± {r['ps_real_sd']:<4.0f} / {r['ps_sim']:6.0f} ± "
                f"{r['ps_sim_sd']:<4.0f} ({error:+5.1f}%)  {r['actions_real']:4.1f} / "
                f"{r['actions_sim']:4.1f} ({r['actions_matched']:.1f} matched; real with real "
                f"{_count(r['actions_matched_real'])})  "
                f"{r['failed_real']:g} / {r['failed_sim']:g}  "
                f"{_ms(r['cpu_per_call_real'])} / {_ms(r['cpu_per_call_sim'])}"
            )
    if benches:
        print("# benchmark: capacity per CPU limit real / sim (calls/s), rate steps apart")
        for b in benches:
            print(
                f"  {b['benchmark']:40s} {b['cpu']:>5s} {b['real']:6g} / {b['sim']:6g}  "
                f"{b['steps']}"
            )
    share = max((abs(r["share_sim"] - r["share_real"]) for r in runs), default=float("nan"))
    ps = max((abs(r["ps_error"]) for r in runs), default=float("nan"))
    steps = [b["steps"] for b in benches]
    worst_steps = max((s if s is not None else 99 for s in steps), default=float("nan"))
    speed = min((r["speedup"] for r in runs), default=float("nan"))
    print(
        f"worst_p99_share_error_pts={share:.1f} worst_proxy_seconds_error_pct={ps:.1f} "
        f"worst_capacity_error_steps={worst_steps} speedup={speed:.0f}"
    )


if __name__ == "__main__":
    main()
