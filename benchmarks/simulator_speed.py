"""Benchmark: how fast `testbed simulate` plays a Milano-shaped week at its real length.

The week is csvgen's synthetic Milano day repeated seven times (its timestamps shifted a day
at a time), peak 20 calls/s, uncompressed: 604,800 s of traffic against 10m proxies under the
QoS policy, one sample every 15 s (the HPA's sync period). Baseline in the same run: the
shipped 12-minute step load (experiments/step-qos.yaml at 20m, 120 s steps) with one sample a
second, as a real run samples. Goal (issue 20): the week in under 60 s, >= 10,000x real time.

    uv run python benchmarks/simulator_speed.py [--days 7] [--sample-interval 15]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from testbed.experiment.spec import Experiment, load
from testbed.simulate.calibration import default_calibration_path, load_calibration
from testbed.simulate.run import Simulation

ROOT = Path(__file__).resolve().parents[1]
DAY_FILE = ROOT / "services/csvgen/src/csvgen/data/milano-synthetic-day.tsv"
DAY_MS = 86_400_000
GOAL_S = 60.0


def week_file(days: int, folder: Path) -> Path:
    """The synthetic day, `days` times in a row (column 2 is the slot's start in Unix ms)."""
    rows = [line.split("\t") for line in DAY_FILE.read_text().splitlines() if line.strip()]
    out = folder / f"milano-synthetic-{days}-days.tsv"
    with out.open("w") as f:
        for day in range(days):
            for row in rows:
                f.write("\t".join([row[0], str(int(row[1]) + day * DAY_MS), *row[2:]]) + "\n")
    return out


def week_experiment(tsv: Path, sample_interval_s: float) -> Experiment:
    return Experiment.model_validate(
        {
            "name": "milano-week",
            "scenario": {
                "generate": {
                    "shape": {"kind": "milano", "files": [str(tsv)], "peak_rate": 20},
                    "pods": 2,
                    "phones_per_pod": 100,
                }
            },
            "proxies": {"count": 2, "cpu": "10m"},
            "autoscale": {
                "policy": "qos",
                "min_replicas": 2,
                "max_replicas": 10,
                "sync_period_s": 15,
                "scrape_interval_s": 30,
                "metric_window_s": 30,
                "startup_delay_s": 5,
            },
            "qos": {"p0_ms": 1000, "window_s": 30},
            "metrics": {"scrape_interval_s": 5},
            "sample_interval_s": sample_interval_s,
        }
    )


def timed(simulation: Simulation) -> tuple[float, float, int]:
    """(simulated seconds, wall seconds, calls)."""
    started = time.perf_counter()
    samples = simulation.run()
    wall = time.perf_counter() - started
    return samples[-1].t_s, wall, int(simulation.offered.per_period.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--sample-interval", type=float, default=15.0)
    args = parser.parse_args()
    calibration = load_calibration(default_calibration_path())

    step = load(
        ROOT / "experiments/step-qos.yaml",
        ["proxies.cpu=20m", "scenario.generate.shape.step_every_s=120"],
    )
    base_s, base_wall, base_calls = timed(Simulation(step, calibration))
    print(
        f"# baseline: step-qos (20m, 120 s steps), 1 s samples: {base_s:.0f} s simulated in "
        f"{base_wall:.2f} s ({base_s / base_wall:,.0f}x), {base_calls} calls"
    )
    with tempfile.TemporaryDirectory() as tmp:
        experiment = week_experiment(week_file(args.days, Path(tmp)), args.sample_interval)
        prepared = time.perf_counter()
        simulation = Simulation(experiment, calibration)  # the invite times for the week
        setup = time.perf_counter() - prepared
        week_s, week_wall, week_calls = timed(simulation)
    total = setup + week_wall
    print(
        f"# week: {args.days} Milano-shaped days, {args.sample_interval:g} s samples: "
        f"{week_calls:,} calls; invite times {setup:.1f} s, simulation {week_wall:.1f} s"
    )
    verdict = "goal met" if total < GOAL_S else "goal MISSED"
    print(f"# {verdict}: {total:.1f} s for {week_s:,.0f} s of traffic (goal < {GOAL_S:.0f} s)")
    print(
        f"week_simulated_s={week_s:.0f} week_wall_s={total:.1f} speedup={week_s / total:.0f} "
        f"baseline_speedup={base_s / base_wall:.0f}"
    )


if __name__ == "__main__":
    main()
