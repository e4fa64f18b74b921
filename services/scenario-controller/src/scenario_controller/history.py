"""Runs from before a restart, read back from the runs directory (read-only).

Each run left `<id>.json` (its record) beside `<id>.csv` (its log). A record still saying
running or paused means the controller stopped mid-run: the run is shown as interrupted, with
its counts taken from the log rows that were written, and the record is rewritten so. A record
that cannot be read is skipped with a warning; it never stops the controller from starting.
"""

from __future__ import annotations

import csv
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenario_controller.files import write_atomic
from scenario_controller.runner import ACTIVE, RunRecord, RunState, SecondStats

log = logging.getLogger(__name__)


@dataclass
class PastRun:
    record: RunRecord
    log_path: Path
    seconds: deque[SecondStats] = field(default_factory=deque)  # no live series any more

    @property
    def run_id(self) -> str:
        return self.record.id

    @property
    def state(self) -> RunState:
        return self.record.state

    @property
    def sent(self) -> int:
        return self.record.sent

    @property
    def started_at(self) -> float:
        return self.record.started_at

    @property
    def active(self) -> bool:
        return False

    # a finished run takes no commands; the routes answer 409 on pause/resume
    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def view(self) -> dict[str, Any]:
        r = self.record
        ended = r.ended_at if r.ended_at is not None else r.started_at
        return {
            **r.model_dump(mode="json", exclude={"hold_ms"}),
            "elapsed_s": round(max(0.0, ended - r.started_at), 3),
            "last_second": None,
        }


def _count_log(path: Path) -> tuple[int, int, int]:
    """(rows, sent, undeliverable) of a run log; a half-written last row is not counted."""
    rows = sent = undeliverable = 0
    with path.open(newline="", errors="replace") as f:
        for row in csv.DictReader(f):
            status = row.get("status")
            if status == "sent":
                sent += 1
            elif status == "undeliverable":
                undeliverable += 1
            else:
                continue
            rows += 1
    return rows, sent, undeliverable


def _interrupted(record: RunRecord, log_path: Path) -> RunRecord:
    counts: dict[str, Any] = {"ended_at": record.started_at}
    try:
        rows, sent, undeliverable = _count_log(log_path)
        counts = {
            "ended_at": max(log_path.stat().st_mtime, record.started_at),
            "scheduled": rows,
            "sent": sent,
            "undeliverable": undeliverable,
        }
    except (OSError, csv.Error) as exc:  # keep the counts of the record
        log.warning("run %s: could not count its log %s: %s", record.id, log_path, exc)
    return record.model_copy(
        update={
            **counts,
            "state": RunState.INTERRUPTED,
            "error": "the scenario controller stopped during the run; "
            "the log has every invite written before that",
        }
    )


def load_runs(directory: Path) -> list[PastRun]:
    """The runs recorded in `directory`, oldest first."""
    runs = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = RunRecord.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            log.warning("skipped run record %s: unreadable (%s)", path, str(exc)[:300])
            continue
        log_path = path.with_suffix(".csv")
        if record.id != path.stem:
            log.warning("skipped run record %s: it names run %r", path, record.id)
            continue
        if record.state in ACTIVE:
            record = _interrupted(record, log_path)
            log.warning("run %s was interrupted by a restart of the controller", record.id)
            try:
                write_atomic(path, record.model_dump_json(indent=1))
            except OSError as exc:
                log.warning("run %s: could not rewrite its record: %s", record.id, exc)
        runs.append(PastRun(record, log_path))
    runs.sort(key=lambda run: run.started_at)
    return runs
