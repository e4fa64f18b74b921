"""`testbed compare RESULTS...`: several runs side by side, as a table and overlaid figures."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from testbed.experiment.report import STYLE, load_summary

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


def compare(folders: list[Path], out: Path) -> tuple[list[dict[str, Any]], Path]:
    for folder in folders:
        if not (folder / "summary.json").exists():
            raise FileNotFoundError(f"{folder}: no summary.json (not a results folder)")
    out.mkdir(parents=True, exist_ok=True)
    summaries = [{"folder": f.name, **load_summary(f)} for f in folders]
    for summary in summaries:
        summary["reaction"] = " ".join(
            "-" if r is None else f"{r:.0f}" for r in summary.get("reaction_s") or []
        )
    images = []
    for metric, title, unit in (
        ("p99_ms", "p99 response time (all proxies)", "ms"),
        ("proxies", "Proxies", ""),
    ):
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
        for folder in folders:
            frame = pd.read_csv(folder / "timeseries.csv")
            if metric in frame:
                ax.plot(
                    frame["t_s"],
                    pd.to_numeric(frame[metric], errors="coerce"),
                    lw=1.2,
                    label=folder.name,
                )
        if metric == "p99_ms":
            ax.axhline(summaries[0].get("p0_ms", 1000), color="#c53030", ls="--", label="P0")
        ax.set_title(title)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"compare_{metric}.png"
        fig.savefig(out / name)
        plt.close(fig)
        images.append(name)
    header = "".join(f"<th>{html.escape(label)}</th>" for _key, label in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_cell(s.get(key)))}</td>" for key, _label in COLUMNS)
        + "</tr>"
        for s in summaries
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>comparison</title>'
        f"<style>{STYLE}</style></head><body><h1>Comparison</h1><table><tr>{header}</tr>{body}</table>"
        + "".join(f'<img src="{name}" alt="{name}">' for name in images)
        + "</body></html>"
    )
    path = out / "compare.html"
    path.write_text(page)
    return summaries, path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return str(value)
