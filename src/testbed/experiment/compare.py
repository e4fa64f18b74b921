"""`testbed compare RESULTS...`: several runs side by side, as a table and overlaid figures.

Each argument is a results folder or a group of repetitions (`testbed run --repeat N`). A
group's figures are the mean ± 95% CI over its completed repetitions (n shown); a plain run's
are its own values. Every later entry's figure is tested against the first entry's (Welch's
t-test) and marked `*` when p < 0.05; every pair is tested in compare_tests.csv. Compare only
reads the folders it is given and writes into OUT."""

from __future__ import annotations

import csv
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from testbed.experiment.group import fmt, is_group, load_group, mean_ci
from testbed.experiment.report import load_summary
from testbed.experiment.stats import ALPHA, Estimate, Welch, estimate, welch
from testbed.experiment.style import STYLE
from testbed.experiment.verdict import DEFAULT_ALLOWED_SHARE, Verdict, judge

COLUMNS = (
    ("experiment", "experiment"),
    ("p99_violation_share", "share p99 > P0"),
    ("worst_p99_ms", "worst p99 ms"),
    ("calls_failed", "failed calls"),
    ("calls_attempted", "calls"),
    ("ser", "SER"),
    ("proxy_seconds", "proxy-seconds"),
    ("cost_vs_plan", "cost vs plan"),
    ("scaling_actions", "scaling actions"),
    ("max_proxies", "max proxies"),
    ("reaction", "reaction to each rise (s)"),
)
# the columns with a number per run: a mean and CI over a group, and tested for a difference
NUMERIC = tuple(key for key, _label in COLUMNS if key not in ("experiment", "reaction"))
MARK = "*"
LEGEND = (
    f"{MARK}: differs from the first entry (Welch's t-test, p < {ALPHA:g}); a group's figure is "
    "the mean ± the half-width of its 95% confidence interval (Student's t) over its completed "
    "repetitions, n of them; a plain run's is its value (n=1, not tested)"
)


@dataclass
class Entry:
    """One compared folder: a run (one summary) or a group (the completed repetitions')."""

    folder: Path
    label: str
    summaries: list[dict[str, Any]]
    runs: list[Path]  # folders whose time series are drawn
    group: bool = False
    estimates: dict[str, Estimate] = field(default_factory=dict)

    def values(self, key: str) -> list[Any]:
        return [s.get(key) for s in self.summaries]


@dataclass
class Test:
    figure: str
    a: str
    b: str
    result: Welch


@dataclass
class Comparison:
    entries: list[Entry]
    rows: list[dict[str, str]]  # per entry, the table's cells by COLUMNS key (marks included)
    tests: list[Test]  # every pair, every numeric figure
    page: Path
    table_csv: Path
    tests_csv: Path
    verdict: Verdict
    legend: str = LEGEND

    @property
    def significant(self) -> list[Test]:
        return [t for t in self.tests if t.result.significant]


def load_entry(folder: Path) -> Entry:
    if is_group(folder):
        group = load_group(folder)
        counted = group.counted
        return Entry(
            folder,
            folder.name,
            counted,
            [folder / s["folder"] for s in counted],
            group=True,
        )
    if not (folder / "summary.json").exists():
        raise FileNotFoundError(
            f"{folder}: no summary.json nor group.json (not a results folder or group)"
        )
    return Entry(folder, folder.name, [load_summary(folder)], [folder])


def compare(
    folders: list[Path], out: Path, allowed_share: float = DEFAULT_ALLOWED_SHARE
) -> Comparison:
    entries = [load_entry(f) for f in folders]
    out.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        entry.estimates = {key: estimate(entry.values(key)) for key in NUMERIC}
    tests = [
        Test(key, a.label, b.label, welch(a.values(key), b.values(key)))
        for i, a in enumerate(entries)
        for b in entries[i + 1 :]
        for key in NUMERIC
    ]
    rows = [_row(entry, entries[0], index) for index, entry in enumerate(entries)]
    verdict = judge(
        ((_label(entry), entry.summaries) for entry in entries), allowed_share=allowed_share
    )
    images = _figures(entries, out)
    table_csv = _write_table_csv(out / "compare.csv", entries, entries[0])
    tests_csv = _write_tests_csv(out / "compare_tests.csv", tests)
    page = _write_page(out / "compare.html", rows, tests, images, verdict)
    (out / "verdict.txt").write_text("\n".join(verdict.lines()) + "\n")
    return Comparison(entries, rows, tests, page, table_csv, tests_csv, verdict)


def _label(entry: Entry) -> str:
    first = entry.summaries[0] if entry.summaries else {}
    return str(first.get("experiment", entry.label))


def _row(entry: Entry, reference: Entry, index: int) -> dict[str, str]:
    first = entry.summaries[0] if entry.summaries else {}
    row = {"experiment": str(first.get("experiment", entry.label))}
    for key in NUMERIC:
        text = mean_ci(entry.estimates[key]) if entry.group else _cell(first.get(key))
        if index > 0 and welch(entry.values(key), reference.values(key)).significant:
            text += f" {MARK}"
        row[key] = text
    if entry.group:
        row["reaction"] = mean_ci(estimate(entry.values("mean_reaction_s")))
    else:
        row["reaction"] = " ".join(
            "-" if r is None else f"{r:.0f}" for r in first.get("reaction_s") or []
        )
    if entry.group:
        row["experiment"] += f" ({entry.label}, {len(entry.summaries)} runs)"
    return row


def _figures(entries: list[Entry], out: Path) -> list[str]:
    images = []
    p0 = next((s.get("p0_ms") for e in entries for s in e.summaries), None) or 1000
    for metric, title, unit in (
        ("p99_ms", "p99 response time (all proxies)", "ms"),
        ("proxies", "Proxies", ""),
    ):
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
        for index, entry in enumerate(entries):
            colour = f"C{index % 10}"
            for n, run in enumerate(entry.runs):
                path = run / "timeseries.csv"
                if not path.exists():
                    continue
                frame = pd.read_csv(path)
                if metric in frame:
                    ax.plot(
                        frame["t_s"],
                        pd.to_numeric(frame[metric], errors="coerce"),
                        lw=1.0 if entry.group else 1.2,
                        alpha=0.6 if entry.group else 1.0,
                        color=colour,
                        # a group's repetitions share its colour and one legend entry
                        label=(
                            f"{entry.label} (n={len(entry.runs)})" if entry.group else entry.label
                        )
                        if n == 0
                        else None,
                    )
        if metric == "p99_ms":
            ax.axhline(p0, color="#c53030", ls="--", label="P0")
        ax.set_title(title)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # none when no run wrote this column
            ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"compare_{metric}.png"
        fig.savefig(out / name)
        plt.close(fig)
        images.append(name)
    return images


def _write_table_csv(path: Path, entries: list[Entry], reference: Entry) -> Path:
    """Per entry and figure: n, mean, sd, the 95% CI, and Welch's p against the first entry."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["entry", "kind", "figure", "n", "mean", "sd", "ci95_low", "ci95_high", "p_vs_first",
             "significant_vs_first"]
        )  # fmt: skip
        for index, entry in enumerate(entries):
            for key in NUMERIC:
                e = entry.estimates[key]
                test = welch(entry.values(key), reference.values(key)) if index else None
                tested = test is not None and test.p is not None
                writer.writerow(
                    [
                        entry.label,
                        "group" if entry.group else "run",
                        key,
                        e.n,
                        e.mean,
                        e.sd,
                        e.ci_low,
                        e.ci_high,
                        test.p if tested and test is not None else "",
                        test.significant if tested and test is not None else "",
                    ]
                )
    return path


def _write_tests_csv(path: Path, tests: list[Test]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["figure", "a", "b", "mean_a_minus_b", "t", "df", "p", "significant", "note"]
        )
        for test in tests:
            r = test.result
            writer.writerow(
                [test.figure, test.a, test.b, r.difference, r.t, r.df, r.p, r.significant, r.note]
            )
    return path


def _write_page(
    path: Path,
    rows: list[dict[str, str]],
    tests: list[Test],
    images: list[str],
    verdict: Verdict,
) -> Path:
    header = "".join(f"<th>{html.escape(label)}</th>" for _key, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(r[key])}</td>" for key, _label in COLUMNS) + "</tr>"
        for r in rows
    )
    significant = [t for t in tests if t.result.significant]
    listed = "".join(
        f"<tr><td>{html.escape(t.figure)}</td><td>{html.escape(t.a)}</td>"
        f"<td>{html.escape(t.b)}</td><td>{fmt(t.result.difference)}</td>"
        f"<td>{_p(t.result.p)}</td></tr>"
        for t in significant
    )
    differences = (
        "<h2>Significant differences (every pair)</h2><table><tr><th>figure</th><th>a</th>"
        f"<th>b</th><th>mean a - b</th><th>p</th></tr>{listed}</table>"
        if significant
        else "<p>No pair differs significantly (or no pair has two groups to test).</p>"
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>comparison</title>'
        f"<style>{STYLE}</style></head><body><h1>Comparison</h1>"
        + "".join(f"<p>{html.escape(line)}</p>" for line in verdict.lines())
        + f"<table><tr>{header}</tr>"
        f"{body}</table><p>{html.escape(LEGEND)}. Every pair and figure: compare_tests.csv; "
        f"each entry's n, mean, sd and CI: compare.csv.</p>{differences}"
        + "".join(f'<img src="{name}" alt="{name}">' for name in images)
        + "</body></html>"
    )
    path.write_text(page)
    return path


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return str(value)
