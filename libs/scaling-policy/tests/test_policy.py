"""The shared pieces of every policy: the trend, the clamp, readiness."""

from __future__ import annotations

import pytest

from scaling_policy.policy import Readiness, clamp, least_squares_slope


def test_the_slope_of_points_on_a_line_is_the_line_s():
    assert least_squares_slope([(0.0, 1.0), (10.0, 6.0), (20.0, 11.0)]) == pytest.approx(0.5)


def test_noise_symmetric_around_a_flat_line_has_no_slope():
    points = [(0.0, 1.0), (1.0, 2.0), (2.0, 1.0), (3.0, 2.0), (4.0, 1.0)]
    assert least_squares_slope(points) == pytest.approx(0.0)


def test_two_points_or_no_spread_in_time_make_no_trend():
    assert least_squares_slope([(0.0, 0.0), (1.0, 100.0)]) == 0.0
    assert least_squares_slope([(5.0, 0.0), (5.0, 1.0), (5.0, 2.0)]) == 0.0


def test_clamp_keeps_a_count_within_its_bounds():
    assert [clamp(v, 2, 8) for v in (0, 2, 5, 8, 11)] == [2, 2, 5, 8, 8]


def test_ready_is_the_set_of_proxies_with_a_ready_time():
    readiness = Readiness({"sip-proxy-0": 1.0, "sip-proxy-1": 3.0}, frozenset({"sip-proxy-2"}))
    assert readiness.ready == frozenset({"sip-proxy-0", "sip-proxy-1"})
