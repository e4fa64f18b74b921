"""After the run: every analyzer's response-time samples, every pod's call records and the run
log, each request bounded and the whole within a time budget. What could not be read is named
(source -> reason), never skipped silently, and an error answer never lands in a data file."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from testbed.local.state import TestbedState
from testbed.local.testbed import ANALYZER_KIND, CLIENT_KIND
from testbed_messages.samples import SAMPLES_CSV_FIELDS

SAMPLES_PAGE = 200_000
CALLS_PAGE = 100_000
# per request (httpx bounds each connect and each read by it): a hung component costs this
REQUEST_TIMEOUT_S = 15.0
RUN_LOG_HEADER = "seq,caller,callee,pod,offset_s,scheduled_at,sent_at,lag_ms,status\n"


class BudgetSpent(TimeoutError):
    pass


class Budget:
    """A deadline shared by several requests: each gets at most `cap` seconds, and none
    starts once it has passed."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def timeout(self, cap: float = REQUEST_TIMEOUT_S) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise BudgetSpent("the time for collecting results ran out")
        return min(cap, left)


def _problem(exc: Exception) -> str:
    if isinstance(exc, BudgetSpent):
        return str(exc)
    return f"unreachable ({type(exc).__name__})"


def collect_local(
    state: TestbedState | None,
    http: httpx.Client,
    out: Path,
    budget: Budget,
    unread: dict[str, str],
) -> list[dict[str, Any]]:
    """response_times.csv and calls.csv from a local testbed; returns the call records."""
    calls: list[dict[str, Any]] = []
    with (out / "response_times.csv").open("w", newline="") as f:
        f.write(",".join(SAMPLES_CSV_FIELDS) + "\n")
        for analyzer in state.of_kind(ANALYZER_KIND) if state else []:
            problem = _samples(http, f"http://{analyzer.endpoints['http']}/samples", f, budget)
            if problem:
                unread[analyzer.name] = problem
    for pod in state.of_kind(CLIENT_KIND) if state else []:
        problem = _calls(http, f"http://{pod.endpoints['http']}/calls", calls, budget)
        if problem:
            unread[pod.name] = problem
    write_calls(calls, out)
    return calls


def _samples(http: httpx.Client, url: str, f: TextIO, budget: Budget) -> str | None:
    """Page through one analyzer's samples into `f` (without its header); the problem, if
    any, with how far it got."""
    offset = 0
    while True:
        try:
            response = http.get(
                url,
                params={"format": "csv", "offset": offset, "limit": SAMPLES_PAGE},
                timeout=budget.timeout(),
            )
        except (httpx.HTTPError, BudgetSpent) as exc:
            return _after(offset, "samples", _problem(exc))
        if response.status_code != 200:
            return _after(offset, "samples", f"HTTP {response.status_code}")
        lines = response.text.splitlines()
        if not lines or lines[0].split(",") != list(SAMPLES_CSV_FIELDS):
            return _after(offset, "samples", "the answer is not the samples CSV")
        body = lines[1:]
        if body:
            f.write("\n".join(body) + "\n")
        offset += len(body)
        try:
            total = int(response.headers.get("X-Total-Count", offset))
        except ValueError:
            total = offset
        if not body or offset >= total:
            return None


def _calls(http: httpx.Client, url: str, calls: list[dict[str, Any]], budget: Budget) -> str | None:
    offset = 0
    while True:
        try:
            response = http.get(
                url, params={"offset": offset, "limit": CALLS_PAGE}, timeout=budget.timeout()
            )
        except (httpx.HTTPError, BudgetSpent) as exc:
            return _after(offset, "call records", _problem(exc))
        if response.status_code != 200:
            return _after(offset, "call records", f"HTTP {response.status_code}")
        try:
            page = response.json()
            items, total = page["items"], int(page["total"])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _after(offset, "call records", "the answer is not a page of call records")
        calls.extend(items)
        offset += len(items)
        if not items or offset >= total:
            return None


def _after(count: int, what: str, problem: str) -> str:
    return f"{problem} (after {count} {what})" if count else problem


def ensure_files(out: Path) -> None:
    """Every data file of a run exists, with its header alone when nothing could be read."""
    for name, header in (
        ("response_times.csv", ",".join(SAMPLES_CSV_FIELDS) + "\n"),
        ("calls.csv", "call_id,caller,callee,outcome,reason\n"),
        ("run_log.csv", RUN_LOG_HEADER),
    ):
        if not (out / name).exists():
            (out / name).write_text(header)


def write_calls(calls: list[dict[str, Any]], out: Path) -> None:
    """calls.csv: every call record the client pods kept (a header alone when none)."""
    if calls:
        columns = list(dict.fromkeys(k for call in calls for k in call))
        with (out / "calls.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(calls)
    else:
        (out / "calls.csv").write_text("call_id,caller,callee,outcome,reason\n")


def fetch_run_log(
    http: httpx.Client,
    scenario_url: str,
    run_id: str | None,
    out: Path,
    unread: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> int:
    """run_log.csv from the scenario controller (a header alone when it cannot be read, the
    reason in `unread`); returns how many invites were undeliverable."""
    problem = None
    if run_id:
        try:
            response = http.get(f"{scenario_url}/runs/{run_id}/log", timeout=timeout)
            if response.status_code != 200:
                problem = f"HTTP {response.status_code}"
            elif not response.text.startswith(RUN_LOG_HEADER.split(",")[0] + ","):
                problem = "the answer is not the run log CSV"
            else:
                (out / "run_log.csv").write_text(response.text)
        except httpx.HTTPError as exc:
            problem = _problem(exc)
    if problem and unread is not None:
        unread["run_log"] = f"scenario controller: {problem}"
    if not (out / "run_log.csv").exists():
        (out / "run_log.csv").write_text(RUN_LOG_HEADER)
        return 0
    with (out / "run_log.csv").open(newline="") as f:
        return sum(1 for row in csv.DictReader(f) if row.get("status") == "undeliverable")
