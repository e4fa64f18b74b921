import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scenario_gen.assignment import HoldTimeGuard, PhonePlan
from scenario_gen.errors import CapacityError
from scenario_gen.scenario import Scenario
from scenario_gen.spec import GenerateRequest


def test_pairs_go_round_robin_over_pods_then_phones():
    plan = PhonePlan(pods=6, phones_per_pod=3, first_pod=40)
    assert plan.caller_pods == [40, 42, 44]
    assert plan.callers == 9
    assert plan.pairs()[:4] == [
        ("4000", "4100"),
        ("4200", "4300"),
        ("4400", "4500"),
        ("4001", "4101"),
    ]
    # an odd number of pods leaves the last without a partner
    assert PhonePlan(pods=5).caller_pods == [0, 2]


def test_pod_numbers_must_fit():
    with pytest.raises(CapacityError, match="odd"):
        PhonePlan(first_pod=3)
    with pytest.raises(CapacityError, match="numbered below 100"):
        PhonePlan(pods=4, first_pod=98)


def test_too_few_pods_for_the_peak_are_refused_up_front():
    plan = PhonePlan(pods=10, phones_per_pod=100)
    plan.check_peak(peak_rate=42, hold_s=11.9)  # 500 calls up, 500 callers
    with pytest.raises(CapacityError) as caught:
        plan.check_peak(peak_rate=42, hold_s=30)  # 1260 calls up at once
    message = str(caught.value)
    assert "1260 calls up at once" in message
    assert "500 callers" in message
    assert "at least 26 pods of 100 phones" in message
    with pytest.raises(CapacityError, match="more than the 100 pods"):
        plan.check_peak(peak_rate=42, hold_s=180)


def _calls_by_phone(text: str) -> dict[str, list[int]]:
    """Invite times (ms) per caller and per callee, from a main-format file."""
    times: dict[str, list[int]] = {}
    lines = text.splitlines()[1:]
    at = int(lines[0].split(";")[3]) * 1000
    for line in lines:
        caller, callee, wait, _, _ = line.split(";")
        times.setdefault(caller, []).append(at)
        times.setdefault(callee, []).append(at)
        at += int(wait)
    return times


@given(
    st.floats(1, 60),
    st.floats(1, 30),
    st.sampled_from(["deterministic", "poisson"]),
    st.integers(0, 1000),
)
def test_no_phone_is_called_again_within_the_hold_time(rate, hold, arrivals, seed):
    # enough pods for Poisson bursts: peak x hold plus 8 standard deviations
    busy = rate * hold
    phones = 100
    caller_pods = int(np.ceil((busy + 8 * np.sqrt(busy) + 5) / phones))
    if 2 * caller_pods > 100:
        return
    request = GenerateRequest.model_validate(
        {
            "shape": {"kind": "constant", "rate": rate, "duration_s": 3 * hold + 10},
            "arrivals": arrivals,
            "seed": seed,
            "pods": 2 * caller_pods,
            "hold_time_s": hold,
        }
    )
    scenario = Scenario(request)
    scenario.check_capacity()
    for times in _calls_by_phone("".join(scenario.text())).values():
        assert np.all(np.diff(times) >= round(hold * 1000))


def test_a_poisson_burst_beyond_the_pods_is_refused_with_the_invite_and_phone():
    request = GenerateRequest.model_validate(
        {
            "shape": {"kind": "constant", "rate": 10, "duration_s": 600},
            "arrivals": "poisson",
            "pods": 2,
            "hold_time_s": 9.5,
        }
    )
    scenario = Scenario(request)  # 95 calls up on average, 100 callers: passes the peak check
    with pytest.raises(CapacityError) as caught:
        scenario.check_capacity()
    assert re.search(r"invite \d+ at [\d.]+ s would call \d{4} [\d.]+ s after", str(caught.value))


def test_guard_works_across_chunks():
    plan = PhonePlan(pods=2, phones_per_pod=2)  # 2 callers
    guard = HoldTimeGuard(plan, hold_ms=1000)
    guard.check(np.array([0, 500], dtype=np.int64))
    guard.check(np.array([1000], dtype=np.int64))
    guard.check(np.array([1500, 2000], dtype=np.int64))
    with pytest.raises(CapacityError, match=r"invite 6 at 2\.400 s would call 0001 0\.900 s"):
        guard.check(np.array([2400], dtype=np.int64))
