"""`testbed search`: an experiment's parameters searched in the simulator.

A grid (`key=v1,v2,...` per axis, values read as YAML as `--set` reads them) gives candidates;
each is simulated with seeds `seed + 0..N-1`; per candidate the mean and the spread of its
figures; ranked: those that kept every window under P0 and lost no call first, by cost
(proxy-seconds), then the others by their share of windows over P0. The folder holds
search.csv, search.json (what `testbed run --from-search FOLDER --rank K` reads) and a Pareto
figure of cost against the share of windows over P0.
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.experiment.runner import load_rises, plan_proxies_for
from testbed.experiment.spec import ExperimentError, load
from testbed.experiment.summary import summarize
from testbed.simulate.calibration import Calibration
from testbed.simulate.run import Simulation


class SearchError(ValueError):
    pass


def parse_grid(axes: list[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2` axes as (key, ["key=v1", "key=v2"]): each value an override."""
    grid = []
    for axis in axes:
        key, sep, values = axis.partition("=")
        if not sep or not key or not values:
            raise SearchError(f"--grid {axis}: expected KEY.PATH=V1,V2,...")
        grid.append((key, [f"{key}={v}" for v in values.split(",")]))
    return grid


@dataclass
class Candidate:
    overrides: list[str]
    figures: list[dict[str, float]] = field(default_factory=list)  # one per seed

    def mean(self, key: str) -> float:
        return statistics.fmean(f[key] for f in self.figures)

    def spread(self, key: str) -> float:
        values = [f[key] for f in self.figures]
        return statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def meets_p0(self) -> bool:
        return all(f["share_over_p0"] == 0 and f["failed_calls"] == 0 for f in self.figures)


FIGURES = ("share_over_p0", "failed_calls", "proxy_seconds", "cost_vs_plan", "scaling_actions")


def simulate_candidate(
    path: Path, overrides: list[str], seed_offset: int, calibration: Calibration
) -> dict[str, float]:
    try:
        experiment = load(path, overrides)
    except ExperimentError as exc:
        raise SearchError(f"{' '.join(overrides)}: {exc}") from None
    experiment = experiment.model_copy(update={"seed": experiment.seed + seed_offset})
    generate = experiment.scenario.generate
    if generate is not None and generate.arrivals == "poisson":  # other arrival times too
        generate = generate.model_copy(update={"seed": generate.seed + seed_offset})
        scenario = experiment.scenario.model_copy(update={"generate": generate})
        experiment = experiment.model_copy(update={"scenario": scenario})
    simulation = Simulation(experiment, calibration)
    samples = simulation.run()
    summary = summarize(
        samples,
        [],
        0,
        experiment.qos.p0_ms,
        experiment.qos.percentile,
        rises_s=load_rises(experiment),
        plan_proxies=plan_proxies_for(experiment, simulation.offered.peak_rate),
        counted=(simulation.succeeded, simulation.failed),
    )
    return {
        "share_over_p0": summary.p99_violation_share,
        "failed_calls": float(summary.calls_failed),
        "proxy_seconds": summary.proxy_seconds,
        "cost_vs_plan": summary.cost_vs_plan if summary.cost_vs_plan is not None else float("nan"),
        "scaling_actions": float(summary.scaling_actions),
    }


def ranked(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(
        candidates,
        key=lambda c: (
            not c.meets_p0,
            c.mean("proxy_seconds") if c.meets_p0 else c.mean("share_over_p0"),
            c.mean("failed_calls"),
            c.mean("proxy_seconds"),
        ),
    )


def run_search(
    path: Path,
    grid: list[tuple[str, list[str]]],
    base: list[str],
    repeat: int,
    calibration: Calibration,
    calibration_file: Path,
    results_root: Path,
    progress: Callable[[str], None] = lambda _line: None,
) -> Path:
    """Every candidate of the grid, `repeat` seeds each, into `<name>-search-<time>/`."""
    combos = [list(c) for c in itertools.product(*(values for _key, values in grid))]
    candidates = [Candidate([*base, *combo]) for combo in combos]
    started = time.perf_counter()
    for i, candidate in enumerate(candidates, start=1):
        for offset in range(repeat):
            candidate.figures.append(
                simulate_candidate(path, candidate.overrides, offset, calibration)
            )
        progress(
            f"{i}/{len(candidates)} {' '.join(candidate.overrides[len(base) :]) or '(base)'}: "
            f"over P0 {100 * candidate.mean('share_over_p0'):.1f}%, "
            f"{candidate.mean('proxy_seconds'):.0f} proxy-seconds"
        )
    elapsed = time.perf_counter() - started
    order = ranked(candidates)
    name = load(path, base).name
    out = (results_root / f"{name}-search-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True)
    rows = [_row(rank, c, len(base)) for rank, c in enumerate(order, start=1)]
    with (out / "search.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "search.json").write_text(
        json.dumps(
            {
                "experiment": str(path.resolve()),
                "base": base,
                "grid": [key for key, _values in grid],
                "repeat": repeat,
                "calibration": str(calibration_file),
                "simulation_s": round(elapsed, 3),
                "candidates": [
                    {"rank": r["rank"], "overrides": c.overrides, "meets_p0": c.meets_p0}
                    for r, c in zip(rows, order, strict=True)
                ],
            },
            indent=2,
        )
    )
    _pareto(out / "pareto.png", order, len(base))
    return out


def _row(rank: int, c: Candidate, skip: int) -> dict[str, Any]:
    row: dict[str, Any] = {"rank": rank, "candidate": " ".join(c.overrides[skip:]) or "(base)"}
    for key in FIGURES:
        row[key] = round(c.mean(key), 6)
        row[f"{key}_sd"] = round(c.spread(key), 6)
    row["meets_p0"] = c.meets_p0
    row["runs"] = len(c.figures)
    return row


def _pareto(path: Path, order: list[Candidate], skip: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    points: dict[tuple[float, float], list[int]] = {}  # candidates that land on one point
    for rank, c in enumerate(order, start=1):
        x, y = c.mean("proxy_seconds"), 100 * c.mean("share_over_p0")
        points.setdefault((round(x, 1), round(y, 2)), []).append(rank)
        failed = c.mean("failed_calls")
        colour = "#38a169" if c.meets_p0 else ("#c53030" if failed else "#dd6b20")
        ax.scatter([x], [y], s=30 + min(failed, 200), color=colour, zorder=3)
    lines = []  # the points' keys, under the plot (labels at the points would overlap)
    for (x, y), ranks in sorted(points.items(), key=lambda item: item[1][0])[:8]:
        ax.annotate(f"#{ranks[0]}", (x, y), fontsize=8, xytext=(4, 6), textcoords="offset points")
        best = order[ranks[0] - 1]
        label = " ".join(o.split(".")[-1] for o in best.overrides[skip:]) or "(base)"
        more = f" (and {len(ranks) - 1} more at this point)" if len(ranks) > 1 else ""
        lines.append(f"#{ranks[0]}: {label}{more}")
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", family="monospace")
    fig.subplots_adjust(bottom=0.14 + 0.03 * len(lines))
    top = max((100 * c.mean("share_over_p0") for c in order), default=0.0)
    ax.set_ylim(-1, max(5.0, top * 1.1))
    ax.set_xlabel("proxy-seconds (cost)")
    ax.set_ylabel("windows over P0 (%)")
    ax.set_title("search: green met P0 with no failed call, red lost calls (size: how many)")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def candidate_overrides(folder: Path, rank: int) -> tuple[Path, list[str]]:
    """The experiment file and the overrides of the candidate ranked `rank` in a search."""
    try:
        data = json.loads((folder / "search.json").read_text())
    except (OSError, ValueError) as exc:
        raise SearchError(f"{folder}: not a search folder ({exc})") from None
    for candidate in data["candidates"]:
        if candidate["rank"] == rank:
            return Path(data["experiment"]), list(candidate["overrides"])
    raise SearchError(f"{folder}: no candidate ranked {rank} (1..{len(data['candidates'])})")
