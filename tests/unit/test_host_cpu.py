"""The machine's busy and stolen CPU from /proc/stat's text (testbed.experiment.host_cpu), and
the sampler and summary that carry it."""

from pathlib import Path

import httpx
import pytest

from testbed.experiment.host_cpu import (
    PROC_STAT,
    CpuTimes,
    HostCpuError,
    HostCpuTracker,
    parse_proc_stat,
    shares,
)
from testbed.experiment.sampler import Sampler
from testbed.experiment.summary import summarize
from testbed.sample import HostCpu, Sample

# user nice system idle iowait irq softirq steal guest guest_nice
STAT_A = "cpu  1000 0 200 8000 100 0 50 0 0 0\ncpu0 500 0 100 4000 50 0 25 0 0 0\nintr 1 2\n"
STAT_B = "cpu  1300 0 260 8200 100 0 60 80 0 0\ncpu0 650 0 130 4100 50 0 30 40 0 0\nintr 3 4\n"


def test_the_aggregate_line_is_read_and_guest_time_not_counted_twice():
    times = parse_proc_stat(STAT_A.replace(" 0 0\ncpu0", " 70 0\ncpu0", 1))
    assert times == CpuTimes(idle=8100, steal=0, total=9350)


def test_shares_between_two_readings():
    # 650 ticks between them: 300 user + 60 system + 10 softirq busy, 200 idle, 80 stolen
    got = shares(parse_proc_stat(STAT_A), parse_proc_stat(STAT_B))
    assert got is not None
    assert got.steal_pct == pytest.approx(100 * 80 / 650)
    assert got.busy_pct == pytest.approx(100 * 370 / 650)
    assert shares(parse_proc_stat(STAT_B), parse_proc_stat(STAT_B)) is None  # no tick passed


def test_the_tracker_answers_from_the_second_reading_on():
    tracker = HostCpuTracker()
    assert tracker.update(STAT_A) is None
    second = tracker.update(STAT_B)
    assert second is not None
    assert second.steal_pct > 12


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("intr 1 2\n", "no aggregate cpu line"),
        ("cpu  1 2 3 4 5 6 7\n", "no steal field"),
        ("cpu  1 2 x 4 5 6 7 8\n", "not a number"),
    ],
)
def test_text_without_a_usable_cpu_line_is_named(text: str, problem: str):
    with pytest.raises(HostCpuError, match=problem):
        parse_proc_stat(text)


def test_this_machines_proc_stat_parses():
    times = parse_proc_stat(PROC_STAT.read_text())
    assert times.total > times.idle >= 0


def test_the_sampler_writes_the_shares_and_counts_an_unreadable_source(tmp_path: Path):
    texts = iter([STAT_A, STAT_B])
    sampler = Sampler(httpx.Client(), 4, 99, "http://127.0.0.1:1", host_stat=lambda: next(texts))
    assert sampler._host_cpu() == HostCpu(None, None)  # the first reading: no span yet
    second = sampler._host_cpu()
    assert second is not None
    assert second.steal_pct == pytest.approx(12.31, abs=0.01)

    def unreadable() -> str:
        return (tmp_path / "missing").read_text()

    sampler.host_stat = unreadable
    # a failed read leaves the cells empty and the row goes on
    assert sampler._host_cpu() == HostCpu(None, None)
    assert sampler.failures["host-cpu"] == 1
    sampler.close()


def test_the_summary_gives_the_mean_and_largest_steal():
    rows = [
        Sample(t_s=t, proxies=1, latency_percentile_ms=1.0, host=HostCpu(50.0, steal))
        for t, steal in enumerate([None, 2.0, 6.0])
    ]
    summary = summarize(rows, [], undeliverable=0, p0_ms=1000, percentile=99)
    assert (summary.host_steal_pct, summary.host_steal_max_pct) == (4.0, 6.0)
    without = summarize(rows[:1], [], undeliverable=0, p0_ms=1000, percentile=99)
    assert (without.host_steal_pct, without.host_steal_max_pct) == (None, None)
