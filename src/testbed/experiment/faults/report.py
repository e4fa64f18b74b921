"""The faults in a run's report: a shaded span per fault window on every figure, and a table."""

from __future__ import annotations

import html
from collections.abc import Sequence

from matplotlib.axes import Axes

from testbed.experiment.faults.analysis import FaultImpact, FaultWindow

COLOURS = ("#c53030", "#b7791f", "#6b46c1", "#2f855a", "#2c5282", "#97266d")


def mark_faults(ax: Axes, windows: Sequence[FaultWindow], run_end_s: float) -> None:
    """A shaded span from each fault's start to its end (to the run's end if it never ended),
    a line at its start, and its label at the top."""
    for n, w in enumerate(windows):
        colour = COLOURS[n % len(COLOURS)]
        end = w.end_s if w.end_s is not None else run_end_s
        ax.axvline(w.start_s, color=colour, lw=1, ls=":")
        if end > w.start_s:
            ax.axvspan(w.start_s, end, color=colour, alpha=0.12, lw=0)
        # at the foot of the plot: the legend sits at its top left
        ax.text(
            w.start_s,
            0.02,
            f" {w.label}",
            transform=ax.get_xaxis_transform(),
            fontsize=6,
            color=colour,
            va="bottom",
            rotation=90 if len(windows) > 3 else 0,
            bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1},
        )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def fault_table(impacts: Sequence[FaultImpact]) -> str:
    """The per-fault table of the report (empty without faults)."""
    if not impacts:
        return ""
    head = (
        "<tr><th>fault</th><th>start</th><th>end</th><th>calls failed in window</th>"
        "<th>in flight on target (failed)</th><th>recovered after</th></tr>"
    )
    body = "".join(
        "<tr>"
        f"<td>{html.escape(i.fault)}{' (' + html.escape(i.error) + ')' if i.error else ''}</td>"
        f"<td>{_s(i.start_s)}</td><td>{_s(i.end_s)}</td>"
        f"<td>{i.calls_failed_in_window}</td>"
        f"<td>{i.calls_in_flight} ({i.calls_failed_in_flight})</td>"
        f"<td>{_s(i.recovery_s) if i.recovery_s is not None else 'not within the run'}</td>"
        "</tr>"
        for i in impacts
    )
    return f"<h2>Faults</h2><table>{head}{body}</table>"


def text_table(impacts: Sequence[FaultImpact]) -> str:
    """The same as plain text (docs, terminals)."""
    lines = [
        "| fault | start | end | calls failed in window | in flight on target (failed) "
        "| recovered after |",
        "|---|---|---|---|---|---|",
    ]
    for i in impacts:
        recovered = _s(i.recovery_s) if i.recovery_s is not None else "not within the run"
        lines.append(
            f"| {i.fault} | {_s(i.start_s)} | {_s(i.end_s)} | {i.calls_failed_in_window} "
            f"| {i.calls_in_flight} ({i.calls_failed_in_flight}) | {recovered} |"
        )
    return "\n".join(lines)
