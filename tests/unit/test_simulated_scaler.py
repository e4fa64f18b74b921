"""SimulatedScaler: ProxyScaler's behaviour (ordered one at a time after the start-up delay,
parallel at once, removals at once) computed from a clock instead of a thread."""

from __future__ import annotations

from testbed.simulate.scaler import SimulatedScaler


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_ordered_adds_one_proxy_per_start_up_delay():
    clock = Clock()
    s = SimulatedScaler(2, clock, mode="ordered", startup_delay_s=5.0)
    s.set_target(4)
    clock.t = 4.9
    r = s.readiness()
    assert r.ready == {"sip-proxy-0", "sip-proxy-1"}
    assert r.pending == {"sip-proxy-2", "sip-proxy-3"}
    clock.t = 5.0
    assert s.ready() == ["sip-proxy-0", "sip-proxy-1", "sip-proxy-2"]
    assert s.readiness().ready_since["sip-proxy-2"] == 5.0
    clock.t = 9.9
    assert s.replicas == 3
    clock.t = 30.0  # asked late: the fourth was ready at 10, not when asked
    assert s.replicas == 4
    assert s.readiness().ready_since["sip-proxy-3"] == 10.0
    assert s.readiness().pending == frozenset()


def test_parallel_adds_all_at_once():
    clock = Clock()
    s = SimulatedScaler(1, clock, mode="parallel", startup_delay_s=3.0)
    s.set_target(3)
    clock.t = 3.0
    assert s.replicas == 3


def test_removal_is_at_once_and_a_step_in_flight_completes():
    clock = Clock()
    s = SimulatedScaler(3, clock, startup_delay_s=5.0)
    s.set_target(1)
    assert s.ready() == ["sip-proxy-0"]
    s.set_target(2)
    clock.t = 2.0
    s.set_target(1)  # the pod being created still comes up, then goes
    clock.t = 5.0
    assert s.replicas == 1
    assert s.ready() == ["sip-proxy-0"]
