"""The run's sampling loop (testbed.experiment.loop) on a fake clock and fake sample sources:
seconds of run time in microseconds, no testbed. What it writes is what timeseries.csv gets."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from testbed.experiment.clock import FakeClock
from testbed.experiment.csvstream import CsvStream
from testbed.experiment.deadline import COMPLETED, EndWatch, deadline_margin
from testbed.experiment.loop import SampleLoop
from testbed.sample import Clients, HostCpu, ProxyReading, Sample, Scaling, ScenarioRun

READ_COST_S = 0.2  # what reading the components costs each sample, in fake time

# a local run's header, as timeseries.csv of a real autoscaled run has it (two proxies)
HEADER = [
    "t_s", "time", "proxies", "replicas",
    *(f"sip-proxy-{i}.{c}" for i in range(2) for c in (
        "invites_per_s", "invite_requests_per_s", "registers_per_s", "cpu_mcpu", "ok_per_s",
        "p99_ms",
    )),
    "p99_ms", "lb_invites_per_s", "host_busy_pct", "host_steal_pct",
    "scheduled", "sent_per_s", "undeliverable_per_s", "run_state",
    "calls_succeeded_per_s", "calls_failed_per_s", "registered",
    "desired_proxies", "ready_proxies",
]  # fmt: skip


class FakeComponents:
    """Sample sources: the scenario runs for `run_s` of run time, then says finished."""

    def __init__(self, clock: FakeClock, origin: float, run_s: float) -> None:
        self.clock, self.origin, self.run_s = clock, origin, run_s
        self.reads = 0

    def read(self) -> Sample:
        t = round(self.clock.now() - self.origin, 3)
        self.reads += 1
        self.clock.advance(READ_COST_S)
        state = "running" if t < self.run_s else "finished"
        return Sample(
            t_s=t,
            proxies=2,
            time=1796287238.0 + t,
            replicas=2,
            per_proxy=tuple(
                ProxyReading(f"sip-proxy-{i}", cpu_mcpu=10.0 + i, latency_percentile_ms=4.0)
                for i in range(2)
            ),
            percentile=95.0,
            latency_percentile_ms=4.5,
            lb_invites_per_s=7.0,
            host=HostCpu(50.0, 0.0),
            scenario=ScenarioRun(100, 7.0, 0.0, state),
            clients=Clients(6.5, None, 80),
        )


def test_the_loop_samples_every_second_of_fake_time_and_writes_the_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    origin = clock.now()
    components = FakeComponents(clock, origin, run_s=10.0)
    stream = CsvStream(tmp_path / "timeseries.csv")
    recorded: list[Sample] = []

    def record(sample: Sample) -> None:
        recorded.append(sample)
        stream.append(sample.row())

    def autoscaler(_now: float, sample: Sample) -> Sample:
        return replace(sample, scaling=Scaling(desired_proxies=3, ready_proxies=2))

    watch = EndWatch(clock.now(), 10.0, 3.0, deadline_margin(10.0), origin=origin)
    loop = SampleLoop(clock, components.read, [autoscaler], record, watch, 1.0, origin)
    end = loop.run()
    stream.close()

    assert end.status == COMPLETED
    # one sample a second (the read's cost is taken out of the sleep), until 3 s of drain
    # after the scenario said finished at t=10
    assert [s.t_s for s in recorded] == [float(t) for t in range(14)]
    assert components.reads == len(recorded)
    assert clock.slept == pytest.approx([1.0 - READ_COST_S] * (len(recorded) - 1))
    assert all(s.scaling == Scaling(3, 2) for s in recorded)  # the hook's addition is kept
    with (tmp_path / "timeseries.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER
    assert len(rows) == 1 + len(recorded)
    first = dict(zip(HEADER, rows[1], strict=True))
    # the configured percentile (p95 here) in the column named p99_ms, as before
    assert (first["p99_ms"], first["sip-proxy-1.p99_ms"]) == ("4.5", "4.0")
    assert (first["run_state"], first["calls_failed_per_s"], first["desired_proxies"]) == (
        "running",
        "",
        "3",
    )
    assert dict(zip(HEADER, rows[-1], strict=True))["run_state"] == "finished"


def test_groups_a_source_did_not_answer_leave_their_columns_out() -> None:
    bare = Sample(t_s=1.0, proxies=1)
    assert list(bare.row()) == ["t_s", "time", "proxies", "p99_ms", "lb_invites_per_s"]
    assert bare.run_state is None
