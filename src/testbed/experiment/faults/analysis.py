"""Per fault, from a results folder: the calls it cost and how long the system took to recover.

Definitions (docs/faults.md):
- window: from the fault's start until it is lifted (SIGCONT, packet rules removed, the
  component started again) or the component is back on its own (a killed proxy restarted by the
  testbed, a client pod reconnected); a fault that never ends lasts until the end of the run;
- calls failed in the window: failed calls whose lifetime (first INVITE to end) overlaps it;
- calls failed in flight on the faulted component: failed calls that had started and not ended
  when the fault began and went through that component: a proxy (or its analyzer) when the
  proxy's analyzer timed one of the call's messages, a client pod when the call's caller or
  callee is one of its phones; the load balancer, the database and the controllers carry or
  serve every call;
- recovery: from the fault's start until the first sample, at or after the window's end, in
  which as many proxies serve as just before the fault and the p99 is back under P0.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed.experiment.faults.inject import SERVING_COLUMN
from testbed.experiment.faults.spec import target_index, target_kind

ENDS = ("lift", "back")


@dataclass(frozen=True)
class FaultWindow:
    index: int
    label: str
    action: str
    target: str
    start_s: float
    start_time: float  # Unix seconds, the time base of calls.csv
    end_s: float | None  # None: still in force when the run ended
    end_time: float | None
    error: str = ""


@dataclass(frozen=True)
class FaultImpact:
    fault: str
    action: str
    target: str
    start_s: float
    end_s: float | None
    calls_failed_in_window: int
    calls_in_flight: int
    calls_failed_in_flight: int
    recovered_at_s: float | None
    recovery_s: float | None  # None: not recovered before the run ended
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def fault_windows(folder: Path) -> list[FaultWindow]:
    """Every applied fault of the run in faults.csv, with its window."""
    events: dict[int, list[dict[str, str]]] = {}
    for event in _read(folder / "faults.csv"):
        events.setdefault(int(event["index"]), []).append(event)
    windows = []
    for index, rows in sorted(events.items()):
        start = next((r for r in rows if r["phase"] == "apply"), None)
        errors = "; ".join(r["detail"] for r in rows if r["phase"] == "error")
        if start is None:
            first = rows[0]
            windows.append(
                FaultWindow(index, first["fault"], first["action"], first["target"],
                            float(first["t_s"]), float(first["time"]), None, None, errors)
            )  # fmt: skip
            continue
        end = next((r for r in rows if r["phase"] in ENDS), None)
        windows.append(
            FaultWindow(
                index, start["fault"], start["action"], start["target"],
                float(start["t_s"]), float(start["time"]),
                float(end["t_s"]) if end else None, float(end["time"]) if end else None, errors,
            )
        )  # fmt: skip
    return windows


def _proxies_of_calls(folder: Path) -> dict[str, set[str]]:
    """call_id -> the proxies whose analyzers timed one of its messages."""
    seen: dict[str, set[str]] = {}
    for sample in _read(folder / "response_times.csv"):
        if sample.get("call_id"):
            seen.setdefault(sample["call_id"], set()).add(sample.get("proxy", ""))
    return seen


def _on_component(call: dict[str, str], target: str, proxies: dict[str, set[str]]) -> bool:
    kind = target_kind(target)
    if kind in ("sip-proxy", "analyzer"):
        return f"sip-proxy-{target_index(target)}" in proxies.get(call.get("call_id", ""), set())
    if kind == "sip-client":
        pod = f"{target_index(target):02d}"
        return call.get("caller", "")[:2] == pod or call.get("callee", "")[:2] == pod
    return True  # the load balancer, the database and the controllers: every call


def analyze(folder: Path, p0_ms: float) -> list[FaultImpact]:
    windows = fault_windows(folder)
    if not windows:
        return []
    calls = _read(folder / "calls.csv")
    series = [
        (t, r) for r in _read(folder / "timeseries.csv") if (t := _number(r.get("t_s"))) is not None
    ]
    run_end_s = series[-1][0] if series else None
    run_end_time = max(
        [_number(r.get("time")) or 0.0 for _t, r in series]
        + [_number(c.get("ended_at")) or 0.0 for c in calls],
        default=0.0,
    )
    proxies = _proxies_of_calls(folder)
    impacts = []
    for w in windows:
        end_time = w.end_time if w.end_time is not None else run_end_time
        failed_in_window = in_flight = failed_in_flight = 0
        for call in calls:
            started = _number(call.get("invite_at"))
            if started is None:
                continue
            ended = _number(call.get("ended_at"))
            failed = call.get("outcome") == "failed"
            if failed and started <= end_time and (ended is None or ended >= w.start_time):
                failed_in_window += 1
            if (
                started <= w.start_time
                and (ended is None or ended > w.start_time)
                and _on_component(call, w.target, proxies)
            ):
                in_flight += 1
                failed_in_flight += failed
        recovered = _recovery(series, w, p0_ms)
        impacts.append(
            FaultImpact(
                fault=w.label,
                action=w.action,
                target=w.target,
                start_s=w.start_s,
                end_s=w.end_s if w.end_s is not None else run_end_s,
                calls_failed_in_window=failed_in_window,
                calls_in_flight=in_flight,
                calls_failed_in_flight=failed_in_flight,
                recovered_at_s=recovered,
                recovery_s=None if recovered is None else round(recovered - w.start_s, 3),
                error=w.error,
            )
        )
    return impacts


def _serving(row: dict[str, str]) -> float | None:
    value = _number(row.get(SERVING_COLUMN))
    return value if value is not None else _number(row.get("proxies"))


def _recovery(
    series: list[tuple[float, dict[str, str]]], w: FaultWindow, p0_ms: float
) -> float | None:
    before = [s for t, r in series if t < w.start_s and (s := _serving(r)) is not None]
    if not before or w.end_s is None:
        return None  # never lifted nor back: not recovered within the run
    whole = before[-1]
    for t, row in series:
        if t < w.end_s:
            continue
        serving, p99 = _serving(row), _number(row.get("p99_ms"))
        if serving is not None and serving >= whole and p99 is not None and p99 <= p0_ms:
            return t
    return None
