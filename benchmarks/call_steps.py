"""What the call-rate benchmarks share: one rate step, its pass rule and row, and process CPU.

client_throughput.py and pod_scale.py judge a rate the same way, so a figure in one can be read
against the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed_messages import CallRecordMessage

PASS_RATIO = 0.999  # over 99.9% of the calls must succeed
KEEP_UP = 0.95  # ... and complete at 95% of the offered rate or better (not falling behind)
TICKS = os.sysconf("SC_CLK_TCK")

HEADER = (
    f"{'rate/s':>8} {'achieved':>9} {'calls':>7} {'failed':>6} {'success':>9} {'cpu_ms/call':>11}"
)


@dataclass
class Step:
    rate: float
    sent: int
    succeeded: int
    achieved: float
    cpu_ms_per_call: float

    @property
    def failed(self) -> int:
        return self.sent - self.succeeded

    @property
    def ok(self) -> bool:
        return (
            self.sent > 0
            and self.succeeded / self.sent > PASS_RATIO
            and self.achieved >= KEEP_UP * self.rate
        )

    def row(self) -> str:
        share = 100 * self.succeeded / self.sent if self.sent else 0.0
        return (
            f"{self.rate:>8g} {self.achieved:>9.1f} {self.sent:>7} {self.failed:>6} "
            f"{share:>8.2f}% {self.cpu_ms_per_call:>11.3f}  {'ok' if self.ok else 'FAILS'}"
        )


def step_from_records(
    rate: float, sent: int, records: Sequence[CallRecordMessage], cpu: float
) -> Step:
    """A rate step judged from the pods' own call records: the rate achieved runs from the
    first INVITE sent to the last call finished; `cpu` is the pods' CPU seconds over the step."""
    ok = sum(1 for r in records if r.outcome == "succeeded")
    span = (
        max((r.ended_at or r.invite_at) for r in records) - min(r.invite_at for r in records)
        if records
        else 0.0
    )
    return Step(rate, sent, ok, ok / max(span, 1e-9), 1000 * cpu / max(sent, 1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS
