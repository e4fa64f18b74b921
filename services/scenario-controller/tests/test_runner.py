"""Scheduling on an absolute timeline, against a stand-in hub that records what it is given.

The real hub and real pods are exercised in tests/test_scenario_controller_integration.py.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from scenario_controller.metrics import ControllerMetrics
from scenario_controller.runner import RunState, ScenarioRun
from testbed_messages import Invite, decode_controller

HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"


def scenario(rate: int, seconds: int, pods: tuple[str, ...] = ("00",)) -> list[str]:
    lines = [HEADER]
    wait = 1000 // rate
    for i in range(rate * seconds):
        pod = pods[i % len(pods)]
        callee = f"{int(pod) + 1:02d}"
        lines.append(f"{pod}{i % 100:02d};{callee}{i % 100:02d};{wait};{i // rate};{rate}")
    return lines


class StandInHub:
    def __init__(self, connected: set[str]) -> None:
        self.connected = connected
        self.sent: list[tuple[float, str, Invite]] = []

    def send(self, pod: str, text: str, sent=None) -> bool:
        if pod not in self.connected:
            return False
        now = time.monotonic()
        message = decode_controller(text)
        assert isinstance(message, Invite)
        self.sent.append((now, pod, message))
        if sent is not None:
            asyncio.get_running_loop().call_soon(sent, now)
        return True


def run(lines: list[str], hub: StandInHub, tmp_path: Path, speed: float = 1.0, actions=None):
    async def main() -> ScenarioRun:
        r = ScenarioRun(
            "r1",
            "s",
            iter(lines),
            hub,  # type: ignore[arg-type]  # the stand-in for a ClientHub
            ControllerMetrics(CollectorRegistry()),
            tmp_path / "log.csv",
            speed,
            rows=len(lines) - 1,
        )
        if actions:
            await actions(r)
        await r.task
        return r

    return asyncio.run(main())


def seq(invite: Invite) -> int:
    """The scenario row an invite carries (the runner numbers every one)."""
    assert invite.seq is not None
    return invite.seq


def late_s(
    r: ScenarioRun, sent: list[tuple[float, str, Invite]], per_s: float, paused_s: float = 0.0
) -> list[float]:
    """How late each invite went out against its place on the absolute timeline: the run's own
    start + seq / per_s + the time paused before it. Measured from the run's start (the loop's
    clock is time.monotonic), never from the first send, which a busy machine can delay by
    itself (a first send once 0.15 s late made a first-to-last span 0.33 s against 0.475)."""
    return [(t - r._start) - (seq(m) / per_s + paused_s) for t, _p, m in sent]


def log_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.timing
def test_invites_follow_the_timeline_in_order_with_small_lag(tmp_path: Path):
    hub = StandInHub({"00"})
    r = run(scenario(200, 2), hub, tmp_path)
    assert r.state is RunState.FINISHED
    assert [m.seq for _t, _p, m in hub.sent] == list(range(400))
    # each invite at the run's start + seq / 200, never drifting and never early
    late = late_s(r, hub.sent, 200)
    assert max(late) < 0.02
    assert min(late) > -0.002
    rows = log_rows(tmp_path / "log.csv")
    assert len(rows) == 400
    lags = sorted(float(row["lag_ms"]) for row in rows)
    assert lags[int(0.99 * len(lags))] < 5.0
    assert all(row["status"] == "sent" for row in rows)


def test_each_invite_goes_to_its_callers_pod_and_absent_pods_are_undeliverable(tmp_path: Path):
    hub = StandInHub({"00", "04"})
    r = run(scenario(50, 1, pods=("00", "02", "04")), hub, tmp_path)
    assert {(p, m.caller[:2]) for _t, p, m in hub.sent} == {("00", "00"), ("04", "04")}
    assert r.undeliverable == 17  # rows 1, 4, ..., 49 went to pod 02, which is not connected
    rows = log_rows(tmp_path / "log.csv")
    undeliverable = [row for row in rows if row["status"] == "undeliverable"]
    assert len(undeliverable) == 17
    assert all(row["pod"] == "02" and row["sent_at"] == "" for row in undeliverable)


@pytest.mark.slow
@pytest.mark.timing
def test_pause_shifts_the_rest_of_the_timeline(tmp_path: Path):
    hub = StandInHub({"00"})

    async def pause_for_a_while(r: ScenarioRun) -> None:
        await asyncio.sleep(0.5)
        r.pause()
        assert r.state is RunState.PAUSED
        await asyncio.sleep(0.6)
        r.resume()

    r = run(scenario(20, 2), hub, tmp_path, actions=pause_for_a_while)
    times = [t for t, _p, _m in hub.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) > 0.55  # the pause
    # after the pause, the invites keep their spacing: due = start + seq/20 + paused time
    paused = max(gaps) - 0.05
    for late in late_s(r, hub.sent[-10:], 20, paused):
        assert abs(late) < 0.03


@pytest.mark.timing
def test_speed_factor_compresses_the_timeline_and_stop_ends_the_run(tmp_path: Path):
    hub = StandInHub({"00"})
    r = run(scenario(10, 2), hub, tmp_path, speed=4.0)
    # each invite due at the run's start + (seq / 10) / 4: never early, and the median late by
    # far less than speed 2 would make it (0.24 s), whatever one send suffers
    late = sorted(late_s(r, hub.sent, 10 * 4))
    assert len(late) == 20
    assert late[0] > -0.002
    assert late[len(late) // 2] < 0.08

    hub = StandInHub({"00"})

    async def stop_soon(run_: ScenarioRun) -> None:
        await asyncio.sleep(0.3)
        run_.stop()

    r = run(scenario(10, 5), hub, tmp_path, actions=stop_soon)
    assert r.state is RunState.STOPPED
    assert 2 <= len(hub.sent) <= 5
