"""The start's registrations played request by request (testbed.simulate.registration_start):
hand-traced queues of the two-request flow, timer E's copies, timer F and the phone's retry."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.simulate.registration_start import StartCosts, start_completions

UNIT = StartCosts(challenge=1.0, save=1.0, replica=0.0)
NEVER = np.zeros(0, dtype=np.int64)  # no timer E firing


def play(
    phones,
    costs=UNIT,
    budget=1.0,
    timer_e=NEVER,
    timeout=1000,
    retry=100,
    proxies=1,
    most=10_000,
    seed=0,
):
    rng = np.random.default_rng(seed)
    return start_completions(
        phones, proxies, costs, budget, timer_e, timeout, retry, most, rng
    ).tolist()


def test_the_saving_registers_queue_behind_the_whole_first_wave():
    # one request a period: the four challenges first, then the four REGISTERs with
    # credentials, sent as each 401 came back: the 200s come in the second half, one a period
    assert play(4) == [4, 5, 6, 7]


def test_a_proxy_with_cpu_to_spare_answers_every_phone_in_the_first_period():
    assert play(50, budget=100.0) == [0] * 50


def test_timer_e_copies_are_served_in_vain_and_push_the_tail_back():
    # timer E two periods after each send: the copies of the REGISTERs still waiting then
    # (c and d's challenges, a's and b's saves, then c's save) queue behind the originals and
    # are answered to phones that have moved on (traced by hand in the commit)
    assert play(4, timer_e=np.array([2])) == [4, 5, 9, 11]


def test_a_phone_past_timer_f_starts_again_after_its_retry_time():
    # timer F two periods after a send: a's and b's saves wait too long, and c's too; each
    # phone starts again 5 periods later, times 1.0, 1.1 and 1.2 by its number
    assert play(3, timeout=2, retry=5) == [8, 10, 12]


def test_dmq_copies_queue_behind_the_proxy_s_own_registrations():
    # the copies of what the others saved arrive once each proxy has queued all its own
    # REGISTERs with credentials: the 200s come out at the rate of saving alone
    alone = play(40, costs=StartCosts(1.0, 1.0, 0.0), proxies=2, seed=3)
    copied = play(40, costs=StartCosts(1.0, 1.0, 1.0), proxies=2, seed=3)
    assert len(alone) == len(copied) == 40
    assert abs(copied[-1] - alone[-1]) <= 2


def test_a_request_that_waited_costs_the_batched_price():
    # the first wave waits from period 0: at half price two a period after the first period
    cheap = play(4, costs=StartCosts(1.0, 1.0, 0.0, discount=0.5))
    assert cheap[-1] < 7


def test_the_start_stops_at_its_limit_and_leaves_out_who_is_not_registered():
    assert play(10, most=12) == [10, 11]
    with pytest.raises(ValueError, match="CPU to spare"):
        play(1, budget=0.0)
