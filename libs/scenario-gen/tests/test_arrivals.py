"""Realized rates against lambda(t).

Deterministic arrivals (invite k at Lambda^-1(k), floored to ms): stated tolerance is < 2
invites, both per second (count vs the second's mean rate) and cumulatively (invites before
any whole second S vs Lambda(S)): the count is floor or ceil of the integral, and a float
rounding at a second's edge can move one more invite.
Poisson arrivals: counts over the whole scenario and over 60-s windows within 6 standard
deviations (plus 1 for the invite at t = 0) of the integral, and per-second counts dispersed
like a Poisson count (variance / mean near 1; deterministic spacing gives about 0).
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scenario_gen.schedule import invite_times_ms
from scenario_gen.shapes import RateShape


@st.composite
def shapes(draw, max_rate=300.0, max_duration=600.0):
    n = draw(st.integers(1, 5))
    gaps = draw(st.lists(st.floats(1, 200), min_size=n, max_size=n))
    times = np.cumsum([0.0, *gaps[:-1]])
    rates = draw(
        st.lists(st.one_of(st.just(0.0), st.floats(0.01, max_rate)), min_size=n, max_size=n)
    )
    interpolate = draw(st.sampled_from(["hold", "linear"]))
    duration = min(float(times[-1]) + draw(st.floats(1, 200)), max_duration)
    return RateShape.from_points(times.tolist(), rates, interpolate, duration)


def _times(shape, arrivals, seed=0):
    chunks = list(invite_times_ms(shape, arrivals, seed, chunk=4096))
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)


@given(shapes())
def test_deterministic_arrivals_match_lambda_within_two_invites(shape):
    at_ms = _times(shape, "deterministic")
    assert np.all(np.diff(at_ms) >= 0)
    assert len(at_ms) == np.ceil(shape.total)
    seconds = np.arange(int(np.ceil(shape.duration_s)))
    counts = np.bincount(at_ms // 1000, minlength=len(seconds))[: len(seconds)]
    mean_rates = shape.second_rates(seconds)
    widths = np.minimum(seconds + 1, shape.duration_s) - seconds
    assert np.all(np.abs(counts - mean_rates * widths) < 2)
    before = np.searchsorted(at_ms, seconds * 1000)  # invites before each second starts
    assert np.all(np.abs(before - shape.cumulative(seconds)) < 2)


@given(
    st.floats(2, 300),
    st.floats(300, 1200),
    st.integers(0, 2**32 - 1),
)
def test_poisson_arrivals_are_a_poisson_process_of_rate_lambda(rate, duration, seed):
    shape = RateShape.from_points([0], [rate], "hold", duration)
    at_ms = _times(shape, "poisson", seed)
    expected = shape.total
    assert abs(len(at_ms) - expected) <= 6 * np.sqrt(expected) + 1
    whole = int(duration)
    counts = np.bincount(at_ms // 1000, minlength=whole + 1)[:whole]
    for start in range(0, whole - 60, 60):
        window = counts[start : start + 60].sum()
        assert abs(window - 60 * rate) <= 6 * np.sqrt(60 * rate) + 1
    dispersion = counts.var(ddof=1) / counts.mean()
    # sd of the index over n seconds is sqrt(2 / (n - 1)) <= 0.082 for n >= 300
    assert 0.5 < dispersion < 1.5


@given(shapes(max_rate=100), st.integers(0, 2**32 - 1))
def test_poisson_arrivals_follow_a_varying_lambda(shape, seed):
    at_ms = _times(shape, "poisson", seed)
    for start in range(0, int(shape.duration_s) - 60, 60):
        expected = float(shape.cumulative(start + 60) - shape.cumulative(start))
        count = np.count_nonzero((at_ms >= start * 1000) & (at_ms < (start + 60) * 1000))
        assert abs(count - expected) <= 6 * np.sqrt(expected) + 2
    # nothing is scheduled where lambda is 0 (times are floored to the millisecond)
    rates_near = np.maximum(shape.rate(at_ms / 1000), shape.rate((at_ms + 1) / 1000))
    assert np.all(rates_near > 0)


def test_deterministic_spacing_is_the_papers_1000_over_lambda():
    shape = RateShape.from_points([0], [12], "hold", 10)
    waits = np.diff(_times(shape, "deterministic"))
    assert set(waits.tolist()) == {83, 84}  # 1000/12 = 83.3, floors keep the sum exact
    assert len(waits) + 1 == 120


def test_poisson_is_reproducible_from_its_seed():
    shape = RateShape.from_points([0], [50], "hold", 120)
    first = _times(shape, "poisson", seed=7)
    assert np.array_equal(first, _times(shape, "poisson", seed=7))
    assert not np.array_equal(first, _times(shape, "poisson", seed=8))
