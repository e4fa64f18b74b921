"""PNG plots: lambda(t) of a shape (like the paper's figure 4.3) and the realized per-second
rate of a scenario file next to its declared arrival_rate_in_s (figures 4.10, 4.11)."""

from __future__ import annotations

import io
import math
from array import array
from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")  # no display; the service renders from worker threads

import numpy as np
from matplotlib.figure import Figure

from scenario_csv import read_main
from scenario_gen.shapes import RateShape

MAX_POINTS = 2000


def _time_axis(duration_s: float) -> tuple[float, str]:
    if duration_s > 6 * 3600:
        return 3600.0, "hours"
    if duration_s > 120:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def shape_png(shape: RateShape, title: str | None = None) -> bytes:
    duration = shape.duration_s
    # both sides of every segment start, so steps are drawn as steps
    edge = duration * 1e-9
    t = np.unique(
        np.concatenate(
            (np.linspace(0, duration - edge, MAX_POINTS), shape.starts, shape.starts[1:] - edge)
        )
    )
    scale, unit = _time_axis(duration)
    figure = Figure(figsize=(8, 4), dpi=100, layout="tight")
    axes = figure.subplots()
    axes.plot(t / scale, shape.rate(t), color="tab:blue", label="lambda(t)")
    axes.set_xlabel(f"time since start ({unit})")
    axes.set_ylabel("invites per second")
    axes.set_ylim(bottom=0)
    axes.set_title(title or f"{shape.name}: {shape.total:.0f} invites in {duration:g} s")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    return _png(figure)


def scenario_png(
    lines: Iterable[str], title: str | None = None, source: str | None = None
) -> bytes:
    """Raises scenario_csv.ScenarioError at the first malformed row."""
    counts = array("q")
    declared = array("d")
    for row in read_main(lines, source):
        second = row.seconds_since_start
        if second >= len(counts):
            grow = second + 1 - len(counts)
            counts.extend([0] * grow)
            declared.extend([math.nan] * grow)
        counts[second] += 1
        declared[second] = row.arrival_rate_in_s
    realized = np.asarray(counts, dtype=np.float64)
    rates = np.asarray(declared, dtype=np.float64)
    duration = len(realized)
    # long files: mean per-second values over bins, at most MAX_POINTS of them
    width = max(1, math.ceil(duration / MAX_POINTS))
    bins = math.ceil(duration / width) if duration else 0
    padded = np.zeros(bins * width)
    padded[:duration] = realized
    realized_binned = padded.reshape(bins, width).mean(axis=1) if bins else padded
    padded_rates = np.full(bins * width, np.nan)
    padded_rates[:duration] = rates
    with np.errstate(all="ignore"):
        rates_binned = (
            np.nanmean(padded_rates.reshape(bins, width), axis=1) if bins else padded_rates
        )
    scale, unit = _time_axis(duration)
    x = np.arange(bins) * width / scale
    figure = Figure(figsize=(8, 4), dpi=100, layout="tight")
    axes = figure.subplots()
    label = "realized invites per second" + (f" (mean over {width} s)" if width > 1 else "")
    axes.step(x, realized_binned, where="post", color="tab:blue", label=label)
    axes.plot(x, rates_binned, color="tab:red", linestyle="--", label="arrival_rate_in_s")
    axes.set_xlabel(f"time since start ({unit})")
    axes.set_ylabel("invites per second")
    axes.set_ylim(bottom=0)
    total = int(realized.sum())
    axes.set_title(title or f"{source or 'scenario'}: {total} invites in {duration} s")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    return _png(figure)
