"""The report of a run: figures like the paper's 4.4 and 4.12 and a summary table, in HTML."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from testbed.experiment.faults.analysis import FaultImpact, FaultWindow, analyze, fault_windows
from testbed.experiment.faults.report import fault_table, mark_faults
from testbed.experiment.spec import Experiment
from testbed.experiment.style import STYLE
from testbed.experiment.summary import Summary

FIGURES = (
    ("a_invites", "Incoming INVITE rate (new calls)", "INVITEs/s", "invites_per_s"),
    ("b_cpu", "CPU per proxy", "mCPU", "cpu_mcpu"),
    ("c_p99", "p99 response time", "ms", "p99_ms"),
    ("d_ok", "200 OK rate", "200 OK/s", "ok_per_s"),
    ("e_register", "REGISTER rate", "REGISTERs/s", "registers_per_s"),
    ("f_proxies", "Proxies", "proxies", None),
)


def _proxy_columns(frame: pd.DataFrame, metric: str) -> list[str]:
    return sorted(
        c for c in frame.columns if c.startswith("sip-proxy-") and c.endswith(f".{metric}")
    )


def _figure(
    frame: pd.DataFrame,
    key: str,
    title: str,
    unit: str,
    metric: str | None,
    experiment: Experiment,
    out: Path,
    faults: list[FaultWindow] | None = None,
) -> str:
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    t = frame["t_s"]
    if metric is None:
        ax.step(t, frame["proxies"], where="post", color="#2b6cb0", label="proxies")
        if "proxies_serving" in frame:  # runs with faults: running and in the LBs' set
            ax.step(
                t,
                pd.to_numeric(frame["proxies_serving"], errors="coerce"),
                where="post",
                color="#dd6b20",
                ls="--",
                label="serving",
            )
    else:
        for column in _proxy_columns(frame, metric):
            ax.plot(
                t, pd.to_numeric(frame[column], errors="coerce"), lw=1, label=column.split(".")[0]
            )
        if metric == "invites_per_s" and "lb_invites_per_s" in frame:
            ax.plot(
                t,
                pd.to_numeric(frame["lb_invites_per_s"], errors="coerce"),
                color="black",
                lw=1.6,
                label="sip-loadb",
            )
        if metric == "p99_ms" and "p99_ms" in frame:
            ax.plot(
                t,
                pd.to_numeric(frame["p99_ms"], errors="coerce"),
                color="black",
                lw=1.6,
                label="all proxies",
            )
            ax.axhline(
                experiment.qos.p0_ms,
                color="#c53030",
                ls="--",
                label=f"P0 = {experiment.qos.p0_ms:g} ms",
            )
        if metric == "cpu_mcpu" and experiment.proxies.millicores:
            ax.axhline(
                experiment.proxies.millicores,
                color="#c53030",
                ls="--",
                label=f"limit {experiment.proxies.millicores}m",
            )
    mark_faults(ax, faults or [], float(t.max()))
    ax.set_title(title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    fig.tight_layout()
    name = f"fig_{key}.png"
    fig.savefig(out / name)
    plt.close(fig)
    return name


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def write_report(out: Path, experiment: Experiment, summary: Summary) -> Path:
    frame = (
        pd.read_csv(out / "timeseries.csv")
        if (out / "timeseries.csv").stat().st_size > 5
        else pd.DataFrame()
    )
    images: list[tuple[str, str]] = []
    windows = fault_windows(out)
    impacts: list[FaultImpact] = analyze(out, experiment.qos.p0_ms) if windows else []
    if not frame.empty and "t_s" in frame:
        for key, title, unit, metric in FIGURES:
            images.append(
                (title, _figure(frame, key, title, unit, metric, experiment, out, windows))
            )
    table = _table(
        [
            ("experiment", experiment.name),
            ("description", experiment.description),
            (
                f"share of windows with p{summary.percentile:g} > P0 ({summary.p0_ms:g} ms)",
                f"{summary.p99_violation_share:.1%} of {summary.windows}",
            ),
            (f"worst p{summary.percentile:g}", _fmt(summary.worst_p99_ms, " ms")),
            (
                "calls attempted / succeeded / failed",
                f"{summary.calls_attempted} / {summary.calls_succeeded} / {summary.calls_failed}",
            ),
            ("undeliverable invites", summary.calls_undeliverable),
            ("SER (RFC 6076)", "-" if summary.ser is None else f"{summary.ser:.4f}"),
            ("proxy-seconds", f"{summary.proxy_seconds:.0f}"),
            ("scaling actions", summary.scaling_actions),
            ("proxies (max)", summary.max_proxies),
            ("CPU limit per proxy", experiment.proxies.cpu or "none"),
            ("duration", f"{summary.duration_s:.0f} s"),
            ("interrupted", "yes" if summary.interrupted else "no"),
        ]
    )
    figures = "".join(
        f'<figure><img src="{name}" alt="{html.escape(title)}"></figure>' for title, name in images
    )
    links = " · ".join(
        f'<a href="{name}">{name}</a>'
        for name in (
            "timeseries.csv",
            "response_times.csv",
            "calls.csv",
            "run_log.csv",
            "summary.json",
            "experiment.json",
        )
    )
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(experiment.name)}: testbed report</title><style>{STYLE}</style>"
        f"</head><body><h1>{html.escape(experiment.name)}</h1><p>Files: {links}</p>"
        f"{table}{fault_table(impacts)}{_queries(out)}{figures}</body></html>"
    )
    path = out / "report.html"
    path.write_text(page)
    return path


def _queries(out: Path) -> str:
    """The PromQL the run's figures came from (summary.json's prometheus.queries), linked to
    the graph page of `testbed prometheus RESULTS`, which serves the run's kept TSDB."""
    try:
        prometheus = json.loads((out / "summary.json").read_text()).get("prometheus")
    except (OSError, ValueError):
        return ""
    if not isinstance(prometheus, dict) or not prometheus.get("queries"):
        return ""
    items = "".join(
        f'<li>{html.escape(str(q["for"]))}: <a href="{html.escape(str(q["graph"]))}">'
        f"<code>{html.escape(str(q['expr']))}</code></a></li>"
        for q in prometheus["queries"]
    )
    serve = html.escape(str(prometheus.get("serve", "testbed prometheus RESULTS")))
    return (
        f"<h2>Prometheus queries</h2><p>The links work while <code>{serve}</code> serves this "
        f"run's TSDB ({html.escape(str(prometheus.get('tsdb')))}).</p><ul>{items}</ul>"
    )


def load_summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return data
