"""When each fault is applied and lifted (sans-I/O: the run time is passed in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from testbed.experiment.faults.spec import FaultSpec

Phase = Literal["apply", "lift"]


@dataclass(frozen=True)
class Step:
    index: int  # position in the experiment's faults list
    fault: FaultSpec
    phase: Phase
    due_s: float  # run time it was due at
    lift_s: float | None  # apply: when it is to be lifted (None: never, by the injector)


class FaultSchedule:
    """`due(now)` hands out every step whose time has come, each once, applies before lifts
    and in time order; `unlifted()` lists what was applied and not lifted yet (for teardown)."""

    def __init__(self, faults: Sequence[FaultSpec]) -> None:
        self._pending: list[Step] = []
        for i, fault in enumerate(faults):
            after = fault.lifted_after_s
            lift = None if after is None else fault.at_s + after
            self._pending.append(Step(i, fault, "apply", fault.at_s, lift))
            if lift is not None:
                self._pending.append(Step(i, fault, "lift", lift, None))
        # at one time: lifts first (a fault ending as the next begins), then applies, then
        # lifts of zero-length faults (a restart with no downtime) after their own apply
        self._pending.sort(
            key=lambda s: (
                s.due_s,
                s.phase == "apply" or s.due_s == s.fault.at_s,
                s.index,
                s.phase == "lift",
            )
        )
        self._applied: dict[int, Step] = {}

    def due(self, now_s: float) -> list[Step]:
        ready = [s for s in self._pending if s.due_s <= now_s]
        self._pending = [s for s in self._pending if s.due_s > now_s]
        out: list[Step] = []
        for step in ready:
            if step.phase == "apply":
                self._applied[step.index] = step
                out.append(step)
            elif step.index in self._applied:
                del self._applied[step.index]
                out.append(step)
        return out

    def unlifted(self) -> list[Step]:
        """Lift steps for every fault applied and not lifted yet, whatever their due time
        (faults without a lift time are not listed: there is nothing to undo); the schedule
        ends here: nothing is applied after it."""
        steps = [
            Step(a.index, a.fault, "lift", a.lift_s, None)
            for a in self._applied.values()
            if a.lift_s is not None
        ]
        self._applied = {i: a for i, a in self._applied.items() if a.lift_s is None}
        self._pending = []
        return sorted(steps, key=lambda s: s.index)

    def next_due_s(self) -> float | None:
        return self._pending[0].due_s if self._pending else None

    @property
    def finished(self) -> bool:
        return not self._pending
