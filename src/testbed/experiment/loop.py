"""The run's sampling loop: read a sample, let the hooks add to it (the autoscaler, the fault
injector), record it, and stop when the end watch says the run is over; between samples it
sleeps until the next is due. Everything it touches comes in, time included (clock.py), so
the loop runs in unit tests against fake sample sources."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from testbed.experiment.clock import Clock
from testbed.experiment.deadline import EndWatch, RunEnd
from testbed.sample import Sample

# called after every sample with (monotonic time, sample), before it is recorded; returns the
# sample with its additions (dataclasses.replace): the autoscaler, fault injection
TickHook = Callable[[float, Sample], Sample]


@dataclass
class SampleLoop:
    clock: Clock
    read: Callable[[], Sample]  # one sample, now
    hooks: Sequence[TickHook]
    record: Callable[[Sample], None]  # keep it: the rows, timeseries.csv, panel, progress
    watch: EndWatch
    interval_s: float
    origin: float  # the clock's time at t_s = 0
    problem: Callable[[], str | None] = lambda: None  # the scenario controller's, if any

    def run(self) -> RunEnd:
        while True:
            sample = self.read()
            for hook in self.hooks:
                sample = hook(self.clock.now(), sample)
            self.record(sample)
            now = self.clock.now()
            end = self.watch.observe(now, sample.run_state, self.problem())
            if end is not None:
                return end
            # the next sample one interval after this one was taken (t_s), not after its end
            due = self.interval_s - (now - self.origin - sample.t_s)
            self.clock.sleep(max(0.0, min(due, self.watch.remaining(now))))


@dataclass(frozen=True)
class Running:
    """What a progress display gets with each sample: it and the scenario's duration."""

    sample: Sample
    duration_s: float


# a run's progress callback: (phase, running); None with a phase message
Progress = Callable[[str, Running | None], None]
