"""The simulator's proxy model (testbed.simulate.proxy_model) against a plain per-period
reference and hand-computed cases: CPU under the quota, levels in whole periods, retransmissions
and failures when the backlog passes T1 and timer B."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.simulate import proxy_model
from testbed.simulate.calibration import Calibration
from testbed.simulate.proxy_model import (
    SAMPLES_PER_CALL,
    BucketReader,
    ProxyPool,
    level_ms,
    percentile_level,
)

QUIET = Calibration(background_mcpu=0.0, cpu_ms_per_call=1.0, bye_share=0.0)


def pool(calibration: Calibration = QUIET, cores: float | None = 0.01, phones: int = 0, seed=0):
    return ProxyPool(calibration, cores, 0.1, phones, np.random.default_rng(seed))


def test_a_proxy_with_cpu_to_spare_answers_everything_at_level_0():
    p = pool(cores=0.1)  # 10 ms of CPU per 100 ms period, 1 ms per call
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([3, 5, 0, 2]))
    assert (out.calls, out.failed, out.retransmissions) == (10, 0, 0)
    assert out.invites == {"sip-proxy-0": 10}
    assert out.cpu_seconds["sip-proxy-0"] == pytest.approx(0.010)
    assert out.levels["sip-proxy-0"].tolist() == [10 * SAMPLES_PER_CALL]


def test_work_beyond_the_quota_waits_whole_periods():
    # 10m: 1 ms of CPU per period; 3 calls of 1 ms in one period take three periods
    p = pool()
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([3, 0, 0, 0]))
    levels = out.levels["sip-proxy-0"].tolist()
    assert levels == [3, 3, 3]  # a third of the samples at each of levels 0, 1, 2
    assert out.cpu_seconds["sip-proxy-0"] == pytest.approx(0.003)
    assert percentile_level(out.levels["sip-proxy-0"], 99) == 2
    assert level_ms(2, QUIET) == pytest.approx(200)
    assert level_ms(0, QUIET) == QUIET.base_latency_ms


def test_a_joining_proxy_serves_its_calls_behind_the_dmq_sync():
    c = QUIET.model_copy(update={"dmq_sync_ms_per_phone": 0.025})
    p = pool(c, phones=100)  # 2.5 ms of sync work: 2.5 periods at 10m
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([1, 0, 0, 0, 0]))
    # the call's work lies between 2.5 and 3.5 quotas: half at level 2, half at level 3
    assert out.levels["sip-proxy-0"].tolist()[2:] in ([2, 1], [1, 2])
    assert sum(out.levels["sip-proxy-0"].tolist()[:2]) == 0


def reference(work: list[float], quota: float, backlog: float) -> tuple[list[float], float]:
    """Per period: served = min(backlog + work, quota), the rest carried."""
    served = []
    for w in work:
        total = backlog + w
        served.append(min(total, quota))
        backlog = total - served[-1]
    return served, backlog


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=40),
    st.floats(0.0, 3.0),
    st.floats(0.0, 5.0),
)
def test_the_vectorised_backlog_equals_the_per_period_reference(calls, background, sync_ms):
    c = Calibration(
        background_mcpu=background, cpu_ms_per_call=0.7, bye_share=0.0, dmq_sync_ms_per_phone=1.0
    )
    # timers far away: retransmissions would add work the reference lacks
    c_no_timers = c.model_copy(update={"t1_s": 1000.0, "timeout_s": 2000.0})
    p = ProxyPool(c_no_timers, 0.01, 0.1, 0, np.random.default_rng(0))
    p.sync_work = sync_ms / 1000
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array(calls))
    work = [background / 1000 * 0.1 + n * 0.7 / 1000 for n in calls]
    served, left = reference(work, 0.001, sync_ms / 1000)
    assert out.cpu_seconds["sip-proxy-0"] == pytest.approx(sum(served), abs=1e-12)
    assert p.backlog[p.slots["sip-proxy-0"]] == pytest.approx(left, abs=1e-12)
    assert int(out.levels["sip-proxy-0"].sum()) == SAMPLES_PER_CALL * sum(calls)


def test_invites_waiting_past_t1_are_sent_again_and_cost_cpu_later():
    c = QUIET.model_copy(update={"retransmission_cpu_ms": 0.5})
    p = pool(c)
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([10] + [0] * 4))  # 10 ms of work: the last calls wait ~1 s
    assert out.retransmissions > 0
    assert out.failed == 0
    later = p.advance(np.zeros(30, dtype=np.int64))
    # the retransmissions arrived: more CPU than the 5 ms of calls still queued
    assert later.cpu_seconds["sip-proxy-0"] > 0.005 + 0.0001


def test_a_retransmitted_first_invite_is_challenged_again_and_costs_more_than_one_absorbed():
    def work(challenge_ms: float | None) -> tuple[float, int]:
        """All CPU work the calls and their retransmissions brought, and the retransmissions."""
        c = QUIET.model_copy(
            update={"retransmission_cpu_ms": 0.1, "challenge_cpu_ms": challenge_ms}
        )
        p = pool(c)
        p.serve(["sip-proxy-0"])
        out = p.advance(np.array([10] + [0] * 4))
        later = p.advance(np.zeros(40, dtype=np.int64))
        served = out.cpu_seconds["sip-proxy-0"] + later.cpu_seconds["sip-proxy-0"]
        return served + float(p.backlog.sum()), out.retransmissions

    absorbed_only, sent = work(None)
    challenged, sent_again = work(0.5)
    assert sent == sent_again > 0
    # half of the waiting INVITEs are first ones: (0.5 - 0.1) / 2 ms more for each retransmission
    assert challenged - absorbed_only == pytest.approx(sent * 0.0002)


REGISTERING = QUIET.model_copy(
    update={
        "register_cpu_ms": 1.0,
        "dmq_replica_cpu_ms": 0.25,
        "reregister_interval_s": 10.0,
        "dmq_sync_ms_per_phone": 0.0,
    }
)


def test_the_phones_refresh_their_registrations_together_on_every_proxy():
    p = pool(REGISTERING, cores=1.0, phones=100, seed=3)
    p.serve(["sip-proxy-0", "sip-proxy-1"])
    p.schedule_refreshes(first_s=5.0, proxies=2)
    before = p.advance(np.zeros(50, dtype=np.int64))  # 0-5 s: nothing yet
    assert sum(before.cpu_seconds.values()) == 0
    assert p.registrations == 0
    burst = p.advance(np.zeros(50, dtype=np.int64))  # 5-10 s: 100 REGISTERs
    assert p.registrations == 100
    # each registration: 1 ms where the LB sent it and its 0.25 ms copy on the other proxy
    assert sum(burst.cpu_seconds.values()) == pytest.approx(0.100 * 1.25)
    taken = {name: (cpu - 0.025) / 0.75 * 1000 for name, cpu in burst.cpu_seconds.items()}
    assert sum(taken.values()) == pytest.approx(100)
    assert all(20 < n < 80 for n in taken.values())
    p.advance(np.zeros(100, dtype=np.int64))  # 10-20 s: the next refresh at 15 s
    assert p.registrations == 200


def test_a_refresh_comes_as_the_start_s_200s_came_faster_than_a_busy_proxy_serves_it():
    # 40 REGISTERs of 1 ms (two requests of 0.5) on a 10m proxy (1 ms a period): the start's
    # 200s came out two a period once the challenges were done (registration_start.py), so the
    # refresh's first REGISTERs come two a period too, 2 ms of work a period: a backlog grows
    # with no call at all
    p = pool(REGISTERING, cores=0.01, phones=40)
    p.serve(["sip-proxy-0"])
    p.schedule_refreshes(first_s=8.0, proxies=1)
    quiet = p.advance(np.zeros(21, dtype=np.int64))  # up to 2.1 s: nothing yet
    assert (p.registrations, quiet.cpu_seconds["sip-proxy-0"]) == (0, 0)
    p.advance(np.zeros(5, dtype=np.int64))
    assert p.registrations == 10
    assert p.backlog[0] == pytest.approx(0.005)  # 10 ms came, 5 ms served
    p.advance(np.zeros(60, dtype=np.int64))  # the rest, as the start's timer E copies spread it
    assert p.registrations == 40
    assert p.backlog[0] == pytest.approx(0, abs=1e-12)


def test_the_next_refresh_comes_as_the_proxy_served_this_one():
    # the refresh above, period by period: its first 10 REGISTERs came two a period (the
    # start's shape) and the proxy served one a period, so each phone's next refresh, an
    # interval (100 periods) after its 200, comes one a period over twice the time
    p = pool(REGISTERING, cores=0.01, phones=40)
    p.serve(["sip-proxy-0"])
    p.schedule_refreshes(first_s=8.0, proxies=1)
    requests = np.array(
        [p.advance(np.zeros(1, dtype=np.int64)).registers["sip-proxy-0"] for _ in range(140)]
    )
    assert requests[21:25].tolist() == [4, 4, 4, 4]  # two requests a registration
    assert requests[25] == 5  # and the last one's sent again: it waited past T1
    assert not requests[100:121].any()
    assert requests[121:131].tolist() == [2] * 10
    assert not requests[131:140].any()


def test_a_refresh_on_a_busy_10m_proxy_delays_the_calls_behind_it():
    # the same refresh while calls take half of the proxy
    p = pool(REGISTERING, cores=0.01, phones=40)
    p.serve(["sip-proxy-0"])
    p.schedule_refreshes(first_s=8.0, proxies=1)
    calls = np.tile([1, 0], 60)  # a 1 ms call every other period
    before = p.advance(calls[:20])
    during = p.advance(calls[20:])
    assert p.registrations == 40
    assert percentile_level(before.levels["sip-proxy-0"], 100) == 0
    worst = percentile_level(during.levels["sip-proxy-0"], 100)
    assert worst is not None
    assert worst >= 15


def test_a_refresh_that_waits_past_t1_is_sent_again_and_its_tail_fails_past_timer_f():
    # 300 phones registered on ten proxies at the start (30 each: their 200s came within 7 s)
    # refresh on one 10m proxy that calls keep busy half of the time: 300 ms of REGISTERs in
    # 7 s, and the backlog grows past 30 s as the waiting REGISTERs are sent again
    once = REGISTERING.model_copy(
        update={"reregister_interval_s": 1000.0, "dmq_replica_cpu_ms": 0.0}
    )
    p = pool(once, cores=0.01, phones=300)
    p.serve(["sip-proxy-0"])
    p.schedule_refreshes(first_s=30.0, proxies=10)
    out = p.advance(np.tile([1, 0], 400))  # 80 s
    assert p.register_retransmissions > 300  # most waited past several timer E firings
    assert 0 < p.registrations_failed < 300  # the tail waited past timer F (32 s)
    # every phone tried, and tried again 10-19 s after a failure
    assert 300 < p.registrations <= 300 + p.registrations_failed
    # each registration 1 ms, each retransmission processed again (half a registration on
    # the mean); the calls' INVITEs are sent again too (0.05 ms each); done, waiting, or due
    # later (copies sent after the last period played)
    work = (
        p.registrations * 0.001
        + 0.400
        + p.register_retransmissions * 0.0005
        + out.retransmissions * 0.00005
    )
    done = out.cpu_seconds["sip-proxy-0"] + p.backlog.sum() + p.future.sum()
    assert done == pytest.approx(work, rel=0.05)


def test_a_small_refresh_on_a_fast_proxy_is_never_sent_again():
    p = pool(REGISTERING, cores=1.0, phones=100)
    p.serve(["sip-proxy-0", "sip-proxy-1"])
    p.schedule_refreshes(first_s=1.0, proxies=2)
    p.advance(np.zeros(100, dtype=np.int64))
    assert (p.registrations, p.register_retransmissions, p.registrations_failed) == (100, 0, 0)


def test_without_registration_costs_no_refresh_is_scheduled():
    p = pool(QUIET, cores=1.0, phones=100)
    p.serve(["sip-proxy-0"])
    p.schedule_refreshes(first_s=1.0, proxies=2)
    p.advance(np.zeros(10, dtype=np.int64))
    assert p.registrations == 0


def test_calls_behind_more_than_timer_b_of_work_fail():
    c = QUIET.model_copy(update={"timeout_s": 1.0, "t1_s": 0.5})
    p = pool(c)
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([30, 0, 0, 0, 0]))  # 30 periods of work, timer B at 10
    assert 15 <= out.failed <= 25


def test_the_load_balancer_spreads_calls_over_the_serving_proxies():
    p = pool(cores=1.0, seed=7)
    p.serve(["sip-proxy-0", "sip-proxy-1", "sip-proxy-2"])
    out = p.advance(np.full(100, 30))
    counts = list(out.invites.values())
    assert sum(counts) == 3000
    assert all(900 < n < 1100 for n in counts)
    p.serve(["sip-proxy-0"])  # the others removed: they drain, then go
    assert p.draining == ["sip-proxy-1", "sip-proxy-2"]
    assert p.advance(np.array([4])).invites == {"sip-proxy-0": 4}
    assert set(p.slots) == {"sip-proxy-0"}


def test_a_removed_proxy_drains_its_queue_and_its_calls_byes():
    c = QUIET.model_copy(update={"bye_share": 0.5})
    p = ProxyPool(c, 0.01, 1.0, 0, np.random.default_rng(0))  # calls held 1 s (10 periods)
    p.serve(["sip-proxy-0", "sip-proxy-1"])
    p.advance(np.array([8]))
    slot = p.slots["sip-proxy-1"]
    assert p.backlog[slot] > 0  # 4 calls' 0.5 ms each on a 1 ms quota: still queued
    p.serve(["sip-proxy-0"])
    out = p.advance(np.array([0] * 5))
    assert out.invites == {"sip-proxy-0": 0}  # no new calls for the draining one
    assert "sip-proxy-1" in p.slots  # its BYEs are due at 1 s
    assert p.future[slot].sum() > 0
    p.advance(np.zeros(20, dtype=np.int64))
    assert "sip-proxy-1" not in p.slots  # queue and BYEs done: gone
    p.serve(["sip-proxy-0", "sip-proxy-1"])  # back: a new pod
    assert p.backlog[p.slots["sip-proxy-1"]] == 0.0


def test_with_nobody_serving_every_call_fails():
    p = pool()
    p.serve([])
    out = p.advance(np.array([2, 3]))
    assert (out.calls, out.failed) == (5, 5)


def test_percentile_level_of_nothing_is_none():
    assert percentile_level(np.zeros(3, dtype=np.int64), 99) is None
    assert percentile_level(np.array([98, 1, 1]), 99) == 1
    assert percentile_level(np.array([99, 0, 1]), 99) == 0


def test_a_long_interval_plays_like_the_same_periods_one_by_one():
    c = Calibration(background_mcpu=3.0, cpu_ms_per_call=0.9, bye_share=0.3)
    arrivals = np.random.default_rng(3).poisson(1.2, 2000)  # longer than the ring of future work
    whole = ProxyPool(c, 0.02, 0.3, 0, np.random.default_rng(0))
    single = ProxyPool(c, 0.02, 0.3, 0, np.random.default_rng(0))
    for p in (whole, single):
        p.serve(["sip-proxy-0"])
    a = whole.advance(arrivals)
    cpu = sum(single.advance(arrivals[i : i + 1]).cpu_seconds["sip-proxy-0"] for i in range(2000))
    assert a.cpu_seconds["sip-proxy-0"] == pytest.approx(cpu, rel=1e-9)
    assert whole.backlog[0] == pytest.approx(single.backlog[0], abs=1e-12)


def test_a_percentile_is_read_from_the_buckets_as_histogram_quantile_does():
    bounds = (0.0005, 0.05, 0.1, 0.2)
    # 98 samples at level 0 (0.2 ms), 2 at level 1 (100 ms): the 99th is in (50, 100] ms
    levels = np.array([98, 2])
    exact = BucketReader((), QUIET).percentile_ms(levels, 99)
    reader = BucketReader(bounds, QUIET)
    assert exact == pytest.approx(100)
    read = reader.percentile_ms(levels, 99)
    assert read == pytest.approx(50 + 50 * (99 - 98) / 2)  # 75 ms, interpolated
    # all at level 0: inside the first bucket, interpolated from 0
    assert reader.percentile_ms(np.array([100]), 99) == pytest.approx(0.495)
    # past the last finite bound: that bound, as Prometheus answers
    assert reader.percentile_ms(np.array([0, 0, 0, 5]), 99) == pytest.approx(200)
    assert reader.percentile_ms(np.array([0, 0, 0, 0, 5]), 99) == pytest.approx(200)
    assert reader.percentile_ms(np.zeros(2, dtype=np.int64), 99) is None


BATCHED = Calibration(
    background_mcpu=3.0,
    cpu_ms_per_call=0.9,
    batched_cpu_ms_per_call=0.45,
    throttled_overhead_ms=0.3,
    bye_share=0.3,
)


@pytest.mark.parametrize("iterations", [40, 1])  # 1: no pass settles, all played period by period
def test_a_batched_proxy_plays_a_long_interval_like_its_periods_one_by_one(
    iterations: int, monkeypatch: pytest.MonkeyPatch
):
    # one period at a time the starting backlog is known, so the batched cost is exact there:
    # the whole interval's fixed point must be the same solution
    monkeypatch.setattr(proxy_model, "BATCH_ITERATIONS", iterations)
    arrivals = np.random.default_rng(5).poisson(2.5, 1500)  # ~25/s at 20m: often behind
    whole = ProxyPool(BATCHED, 0.02, 0.3, 0, np.random.default_rng(0))
    single = ProxyPool(BATCHED, 0.02, 0.3, 0, np.random.default_rng(0))
    for p in (whole, single):
        p.serve(["sip-proxy-0"])
    a = whole.advance(arrivals)
    parts = [single.advance(arrivals[i : i + 1]) for i in range(len(arrivals))]
    cpu = sum(part.cpu_seconds["sip-proxy-0"] for part in parts)
    assert a.cpu_seconds["sip-proxy-0"] == pytest.approx(cpu, rel=1e-9)
    assert whole.backlog[0] == pytest.approx(single.backlog[0], abs=1e-9)
    assert a.retransmissions == sum(part.retransmissions for part in parts)


def test_batching_keeps_a_throttled_proxy_up_where_the_line_alone_collapses():
    # 20m, 25 calls/s: the line asks 3 + 22.5 mCPU (over the limit); handled back to back
    # 3 + 3 (overhead) + 11.25: under it
    arrivals = np.tile(np.array([2, 3], dtype=np.int64), 300)  # 2, 3, 2, 3, ...: 25 calls/s
    line = BATCHED.model_copy(update={"batched_cpu_ms_per_call": None, "throttled_overhead_ms": 0})
    out: dict[str, int] = {}
    for name, c in (("line", line), ("batched", BATCHED)):
        p = ProxyPool(c, 0.02, 0.1, 0, np.random.default_rng(0))
        p.serve(["sip-proxy-0"])
        interval = p.advance(arrivals)
        level = percentile_level(interval.levels["sip-proxy-0"], 99)
        assert level is not None
        out[name] = level
    assert out["batched"] <= 3
    assert out["line"] > 50  # seconds behind and growing


def test_the_clients_refresh_interval_comes_from_their_own_variable_where_it_is_set():
    from testbed.simulate.calibration import CalibrationError, with_client_environment

    assert with_client_environment(QUIET, {}) is QUIET
    assert with_client_environment(
        QUIET, {"REREGISTER_INTERVAL_SECONDS": "240"}
    ).reregister_interval_s == pytest.approx(240)
    for bad in ("soon", "0", "nan"):
        with pytest.raises(CalibrationError, match="REREGISTER_INTERVAL_SECONDS"):
            with_client_environment(QUIET, {"REREGISTER_INTERVAL_SECONDS": bad})
