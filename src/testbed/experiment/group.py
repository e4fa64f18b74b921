"""Repetitions of one experiment (`testbed run FILE --repeat N`), grouped in one folder:

    results/<name>-<time>/
        group.json           what was run: the repetitions, their seeds, folders and statuses
        group_summary.json   per summary figure: n, mean, sd, 95% CI, min, max (stats.py)
        summary.csv          one row per repetition, then mean, sd, CI rows
        report.html          the same as a page
        run-1/ .. run-N/     each a normal results folder

Repetition i (1-based) runs with seed = experiment seed + (i - 1) and, for generated Poisson
arrivals, scenario seed = scenario.generate.seed + (i - 1): run-1 replays exactly what the
plain `testbed run` plays, and each further run draws other arrival times. Only completed
repetitions enter the statistics; the others are listed with their status."""

from __future__ import annotations

import csv
import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed.experiment.lifecycle import Interrupts, describe
from testbed.experiment.spec import Experiment
from testbed.experiment.stats import Estimate, estimate
from testbed.experiment.style import STYLE

GROUP_FILE = "group.json"
GROUP_SUMMARY_FILE = "group_summary.json"
COUNTED = "completed"  # the status a repetition needs to enter the statistics
# the summary figures with a mean and a CI over the repetitions (summary.json keys)
FIGURES = (
    "p99_violation_share",
    "worst_p99_ms",
    "calls_attempted",
    "calls_succeeded",
    "calls_failed",
    "calls_undeliverable",
    "ser",
    "proxy_seconds",
    "cost_vs_plan",
    "scaling_actions",
    "max_proxies",
    "mean_reaction_s",
    "duration_s",
)


@dataclass
class Repetition:
    index: int  # 1-based: run-<index>/
    folder: str  # relative to the group folder
    seed: int
    scenario_seed: int | None
    status: str = "pending"
    end_reason: str = ""


def reseed(experiment: Experiment, index: int) -> Experiment:
    """The experiment of repetition `index` (1-based): both seeds moved on by index - 1."""
    data = experiment.model_dump()
    offset = index - 1
    data["seed"] = experiment.seed + offset
    generate = data["scenario"].get("generate")
    if generate is not None:
        generate["seed"] = generate["seed"] + offset
    again = Experiment.model_validate(data)
    # paths resolved by spec.load are kept as they are (model_dump keeps them absolute)
    return again


def arrivals_note(experiment: Experiment) -> str:
    """Why repetitions may replay the same arrivals, or '' when they draw new ones."""
    generate = experiment.scenario.generate
    if generate is None:
        return "the scenario is a CSV file: every repetition replays the same arrivals"
    if generate.arrivals != "poisson":
        return (
            "deterministic arrivals: every repetition replays the same scenario (use "
            "scenario.generate.arrivals=poisson for other arrival times per repetition)"
        )
    return ""


def statistics(summaries: Sequence[dict[str, Any]]) -> dict[str, Estimate]:
    """Per figure, the estimate over the completed repetitions' summaries."""
    counted = [s for s in summaries if s.get("status", COUNTED) == COUNTED]
    return {key: estimate([s.get(key) for s in counted]) for key in FIGURES}


# -- reading a group ------------------------------------------------------------------------------


def is_group(folder: Path) -> bool:
    return (folder / GROUP_FILE).exists()


@dataclass
class Group:
    folder: Path
    name: str
    repetitions: list[Repetition]
    summaries: list[dict[str, Any]]  # of the repetitions whose summary.json could be read

    @property
    def counted(self) -> list[dict[str, Any]]:
        return [s for s in self.summaries if s.get("status", COUNTED) == COUNTED]

    def values(self, key: str) -> list[Any]:
        return [s.get(key) for s in self.counted]


def load_group(folder: Path) -> Group:
    data = json.loads((folder / GROUP_FILE).read_text())
    repetitions = [Repetition(**r) for r in data["repetitions"]]
    summaries = []
    for repetition in repetitions:
        path = folder / repetition.folder / "summary.json"
        if path.exists():
            summaries.append({"folder": repetition.folder, **json.loads(path.read_text())})
    return Group(folder, str(data.get("experiment", folder.name)), repetitions, summaries)


# -- running a group ------------------------------------------------------------------------------

# runs one repetition: (experiment, the group folder, the run's folder name in it, fields for
# its summary.json) -> its results folder
RunOne = Callable[[Experiment, Path, str, dict[str, Any]], Path]


class GroupInterrupted(RuntimeError):
    """Ctrl-C, SIGTERM or SIGHUP stopped the group; `folder` has what it wrote."""

    def __init__(self, message: str, folder: Path) -> None:
        super().__init__(message)
        self.folder = folder


def run_group(
    experiment: Experiment,
    experiment_file: Path | None,
    results_root: Path,
    repeat: int,
    run_one: RunOne,
    note: Callable[[str], None],
) -> Path:
    """N repetitions one after the other (see run_repetitions); group.json is rewritten
    after every repetition and the group summary is always written; returns the folder, or
    raises GroupInterrupted naming it."""
    if repeat < 1:
        raise ValueError(f"--repeat {repeat}: must be at least 1")
    out = (results_root / f"{experiment.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    if experiment_file is not None:
        (out / "experiment.yaml").write_bytes(experiment_file.read_bytes())
    repetitions: list[Repetition] = []
    for index in range(1, repeat + 1):
        run = reseed(experiment, index)
        repetitions.append(Repetition(index, f"run-{index}", run.seed, scenario_seed(run)))
    note_text = arrivals_note(experiment)
    if note_text and repeat > 1:
        note(f"note: {note_text}")
    header = (
        experiment.name,
        "run",
        experiment.seed,
        "repetition i: seed + (i - 1), and scenario.generate.seed + (i - 1)",
    )

    def one(repetition: Repetition) -> Path:
        extra = {"repetition": repetition.index, "repetitions": repeat}
        return run_one(reseed(experiment, repetition.index), out, repetition.folder, extra)

    def record(interrupted: str | None, final: bool) -> None:
        write_group_file(out, header, repeat, repetitions, note_text, interrupted)
        if final:
            write_group_summary(out)

    interrupted = run_repetitions(out, repetitions, one, record, note)
    if interrupted:
        raise GroupInterrupted(interrupted, out)
    return out


def run_repetitions(
    out: Path,
    repetitions: list[Repetition],
    run_one: Callable[[Repetition], Path],
    record: Callable[[str | None, bool], None],
    note: Callable[[str], None],
) -> str | None:
    """Runs each repetition into out/<its folder>, its status read from the summary.json it
    wrote. A failed one is recorded and the next runs; an interrupted one (cleaned up by the
    run itself) or a signal between repetitions ends the group, the rest marked `not run`.
    `record(interrupted, final)` is called before each repetition and, always, at the end
    (final=True). Returns why the group was interrupted, or None."""
    interrupted: str | None = None
    # between repetitions a signal ends the group; during one, the run's own handler turns
    # it into an interrupted run (cleaned up), which ends the group too
    with Interrupts(note) as interrupts:
        try:
            for repetition in repetitions:
                record(None, False)
                note(f"repetition {repetition.index}/{len(repetitions)} (seed {repetition.seed})")
                run_repetition(out, repetition, run_one)
                if repetition.status == "interrupted":
                    interrupted = f"repetition {repetition.index}: {repetition.end_reason}"
                    break
        except KeyboardInterrupt:
            interrupted = f"interrupted by {interrupts.received or 'SIGINT'} between repetitions"
        finally:
            interrupts.cleaning()
            for repetition in repetitions:
                if repetition.status == "pending":
                    repetition.status = "not run"
            record(interrupted, True)
    return interrupted


def run_repetition(
    out: Path, repetition: Repetition, run_one: Callable[[Repetition], Path]
) -> None:
    """Runs one repetition into out/<its folder>; its status and why it ended are set from
    the summary.json it wrote (or from the exception it raised)."""
    folder = out / repetition.folder
    try:
        folder = run_one(repetition)
    except KeyboardInterrupt:
        repetition.status, repetition.end_reason = "interrupted", "interrupted"
    except Exception as exc:  # recorded; the next repetition runs
        repetition.status, repetition.end_reason = "failed", describe(exc)
    summary_file = folder / "summary.json"
    if summary_file.exists():
        try:
            summary = json.loads(summary_file.read_text())
        except ValueError as exc:
            summary = {"status": "failed", "end_reason": f"summary.json unreadable: {exc}"}
        # what the run wrote wins: a benchmark interrupted in a step raises, yet says so
        repetition.status = str(summary.get("status", COUNTED))
        repetition.end_reason = str(summary.get("end_reason") or repetition.end_reason)
    elif repetition.status == "pending":
        repetition.status, repetition.end_reason = "failed", "no summary.json written"


def scenario_seed(experiment: Experiment) -> int | None:
    """The seed of the generated scenario's Poisson arrivals (None: a CSV file, or
    deterministic arrivals, where no seed plays a part)."""
    generate = experiment.scenario.generate
    return None if generate is None or generate.arrivals != "poisson" else generate.seed


def write_group_file(
    out: Path,
    header: tuple[str, str, int | None, str],
    repeat: int,
    repetitions: list[Repetition],
    note_text: str,
    interrupted: str | None = None,
) -> None:
    """group.json: `header` is (name, kind "run"/"benchmark", base seed, how seeds vary)."""
    name, kind, seed, seeds = header
    data = {
        "experiment": name,
        "kind": kind,
        "repeat": repeat,
        "base_seed": seed,
        "seeds": seeds,
        "arrivals_note": note_text,
        "interrupted": interrupted,
        "repetitions": [asdict(r) for r in repetitions],
    }
    (out / GROUP_FILE).write_text(json.dumps(data, indent=2))


def write_group_summary(out: Path) -> dict[str, Estimate]:
    """group_summary.json, summary.csv and report.html of a group folder, from what its
    repetitions wrote."""
    group = load_group(out)
    stats = statistics(group.summaries)
    statuses = {r.folder: r.status for r in group.repetitions}
    (out / GROUP_SUMMARY_FILE).write_text(
        json.dumps(
            {
                "experiment": group.name,
                "repetitions": len(group.repetitions),
                "counted": len(group.counted),
                "statuses": statuses,
                "confidence": 0.95,
                "interval": "Student-t interval of the mean over the completed repetitions",
                "figures": {key: e.as_dict() for key, e in stats.items()},
            },
            indent=2,
        )
    )
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "status", *FIGURES])
        by_folder = {s["folder"]: s for s in group.summaries}
        for repetition in group.repetitions:
            summary = by_folder.get(repetition.folder, {})
            writer.writerow(
                [repetition.folder, repetition.status, *(summary.get(k) for k in FIGURES)]
            )
        for row, attr in (
            ("mean", "mean"),
            ("sd", "sd"),
            ("ci95_low", "ci_low"),
            ("ci95_high", "ci_high"),
        ):
            writer.writerow([row, "", *(getattr(stats[k], attr) for k in FIGURES)])
    _write_report(out, group, stats)
    return stats


def _write_report(out: Path, group: Group, stats: dict[str, Estimate]) -> None:
    runs = "".join(
        f'<tr><td><a href="{html.escape(r.folder)}/report.html">{html.escape(r.folder)}</a></td>'
        f"<td>{r.seed}</td><td>{'-' if r.scenario_seed is None else r.scenario_seed}</td>"
        f"<td>{html.escape(r.status)}</td><td>{html.escape(r.end_reason)}</td></tr>"
        for r in group.repetitions
    )
    figures = "".join(
        f"<tr><td>{key}</td><td>{e.n}</td><td>{fmt(e.mean)}</td><td>{fmt(e.sd)}</td>"
        f"<td>{fmt(e.ci_low)} .. {fmt(e.ci_high)}</td><td>{fmt(e.minimum)} .. "
        f"{fmt(e.maximum)}</td><td>{html.escape(e.note)}</td></tr>"
        for key, e in stats.items()
    )
    (out / "report.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(group.name)}: repetitions</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(group.name)}: {len(group.repetitions)} repetitions</h1>"
        "<table><tr><th>run</th><th>seed</th><th>scenario seed</th><th>status</th>"
        f"<th>why it ended</th></tr>{runs}</table>"
        f"<p>Over the {len(group.counted)} completed repetitions: mean, sample standard "
        "deviation and the 95% confidence interval of the mean (Student's t, n-1 degrees of "
        "freedom; none for n=1).</p><table><tr><th>figure</th><th>n</th><th>mean</th>"
        "<th>sd</th><th>95% CI</th><th>min .. max</th><th></th></tr>"
        f"{figures}</table></body></html>"
    )


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def mean_ci(e: Estimate) -> str:
    """'12.3 ± 1.2 (n=3)'; one value as it is, with n=1; none as '-'."""
    if e.mean is None:
        return "-"
    if e.half_width is None:
        return f"{fmt(e.mean)} (n={e.n})"
    return f"{fmt(e.mean)} ± {fmt(e.half_width)} (n={e.n})"
