"""Benchmark: how closely `testbed simulate` reproduces real runs of the testbed.

Give it results folders of real runs: `testbed run` folders (or `--repeat` groups of them) and
`testbed benchmark` folders (or groups). Each is played again in the simulator from the
experiment it recorded (experiment.json, benchmark.json) and its figures are put next to the
real ones:

- a run: share of windows over P0 (points), proxy-seconds (%), scaling actions (when the pool's
  target changed, matched within one sync period) and failed calls;
- a benchmark: the capacity per CPU limit, and how many rate steps apart the two are.

Goals (issue 20): windows over P0 within 5 points, proxy-seconds within 10%, scaling actions at
the same times within one sync period, capacity within one rate step, failed calls of the same
order. The last line: worst_p99_share_error_pts=.. worst_proxy_seconds_error_pct=..
worst_capacity_error_steps=.. speedup=..

    uv run python benchmarks/simulator_fidelity.py FOLDER... [--calibration FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
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


def compare_run(folder: Path, calibration: Calibration, out: Path) -> dict[str, Any]:
    experiment = Experiment.model_validate_json((folder / "experiment.json").read_text())
    real = json.loads((folder / "summary.json").read_text())
    started = time.perf_counter()
    sim_folder = simulate(experiment, calibration, out, folder_name=f"{folder.name}-sim")
    wall = time.perf_counter() - started
    sim = json.loads((sim_folder / "summary.json").read_text())
    sync = experiment.autoscale.sync_period_s if experiment.autoscale else 0.0
    real_changes, sim_changes = target_changes(folder), target_changes(sim_folder)
    return {
        "run": f"{folder.parent.name}/{folder.name}"
        if folder.name.startswith("run-")
        else folder.name,
        "share_real": 100 * real["p99_violation_share"],
        "share_sim": 100 * sim["p99_violation_share"],
        "ps_real": real["proxy_seconds"],
        "ps_sim": sim["proxy_seconds"],
        "actions": f"{len(real_changes)}/{len(sim_changes)}",
        "actions_matched": matched(real_changes, sim_changes, sync),
        "actions_real": len(real_changes),
        "failed_real": real["calls_failed"],
        "failed_sim": sim["calls_failed"],
        "speedup": sim["duration_s"] / wall if wall > 0 else 0.0,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--calibration", type=Path, default=default_calibration_path())
    parser.add_argument("--out", type=Path, default=Path("results/fidelity"))
    args = parser.parse_args()
    calibration = load_calibration(args.calibration)
    print(f"# calibration: {args.calibration}")
    runs: list[dict[str, Any]] = []
    benches: list[dict[str, Any]] = []
    for folder in args.folders:
        for run in runs_in(folder, "experiment.json"):
            if (run / "summary.json").exists():
                runs.append(compare_run(run, calibration, args.out))
        for bench in runs_in(folder, "benchmark.csv"):
            benches.extend(compare_benchmark(bench, calibration))
    if runs:
        print(
            "# run: windows over P0 % real/sim, proxy-seconds real/sim (error), actions real/sim"
            " (matched within a sync period), failed calls real/sim"
        )
        for r in runs:
            error = 100 * (r["ps_sim"] - r["ps_real"]) / r["ps_real"] if r["ps_real"] else 0.0
            r["ps_error"] = error
            print(
                f"  {r['run']:40s} {r['share_real']:5.1f} / {r['share_sim']:5.1f}  "
                f"{r['ps_real']:8.0f} / {r['ps_sim']:8.0f} ({error:+5.1f}%)  {r['actions']:>6s} "
                f"({r['actions_matched']} matched)  {r['failed_real']} / {r['failed_sim']}"
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
