"""The exit status of `testbed run` (and `run --repeat`), from what the run wrote in summary.json.

Like SIPp's, a run that completed but lost calls is not a success: scripts and CI can tell from
the status alone. The codes (documented in `testbed run --help` and docs/experiments.md):

    0    completed; no call failed (and, with --fail-on-qos, no window above P0)
    1    failed, or ended at its deadline (summary.json's `status` and `end_reason` say why)
    2    bad usage or experiment file (nothing ran)
    3    completed, but calls failed or could not be delivered to a client pod
    4    completed without a failed call, but --fail-on-qos and a window's percentile was above P0
    130  interrupted (Ctrl-C, SIGTERM, SIGHUP, or stopped at the scenario controller)

When several apply, the first in the order 130, 1, 3, 4 wins (a group: over its repetitions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

OK = 0
RUN_FAILED = 1
USAGE = 2
CALLS_FAILED = 3
QOS_EXCEEDED = 4
INTERRUPTED = 130

# most serious first: a group reports the most serious of its repetitions' codes
_SEVERITY = (INTERRUPTED, RUN_FAILED, CALLS_FAILED, QOS_EXCEEDED, OK)

# exit status by summary.json's `status` before the calls and QoS are looked at
_BY_STATUS = {"completed": OK, "deadline": RUN_FAILED, "failed": RUN_FAILED, "interrupted": 130}


def _count(summary: Mapping[str, Any], key: str) -> float:
    value = summary.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def run_exit_code(summary: Mapping[str, Any], fail_on_qos: bool = False) -> int:
    """The exit status of one run whose summary.json holds `summary`; a status it does not
    know (or none) is a failed run."""
    code = _BY_STATUS.get(str(summary.get("status")), RUN_FAILED)
    if code != OK:
        return code
    if _count(summary, "calls_failed") + _count(summary, "calls_undeliverable") > 0:
        return CALLS_FAILED
    if fail_on_qos and _count(summary, "p99_violation_share") > 0:
        return QOS_EXCEEDED
    return OK


def most_serious(codes: Iterable[int]) -> int:
    """The code that wins among several (a group's repetitions); OK for none."""
    present = set(codes)
    return next((code for code in _SEVERITY if code in present), RUN_FAILED if present else OK)


def group_exit_code(
    summaries: Iterable[Mapping[str, Any]], fail_on_qos: bool = False, interrupted: bool = False
) -> int:
    """The exit status of `run --repeat N`: the most serious of its repetitions' (a repetition
    without a summary passes its status, as group.json lists it, in `status`)."""
    codes = [run_exit_code(s, fail_on_qos) for s in summaries]
    if interrupted:
        codes.append(INTERRUPTED)
    return most_serious(codes)


def describe(code: int) -> str:
    """What an exit status means, in a few words (printed before the results folder)."""
    return {
        OK: "ok",
        RUN_FAILED: "the run failed or ended at its deadline",
        USAGE: "bad usage",
        CALLS_FAILED: "calls failed",
        QOS_EXCEEDED: "QoS target exceeded",
        INTERRUPTED: "interrupted",
    }.get(code, f"exit status {code}")
