import logging

import pytest

from testbed_messages.ratelimit import RateLimitedLog


def test_a_flood_logs_a_burst_per_window_then_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
):
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("flood"), interval=10, burst=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="flood"):
        for n in range(1000):
            limited.warning("bad message %d", n)
        assert [r.getMessage() for r in caplog.records] == [f"bad message {n}" for n in range(3)]
        assert limited.suppressed == 997
        now[0] = 10.0
        limited.warning("bad message %d", 1000)
    assert [r.getMessage() for r in caplog.records[3:]] == [
        "997 similar message(s) not logged in the last 10 s",
        "bad message 1000",
    ]
    assert limited.suppressed == 0


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="burst"):
        RateLimitedLog(logging.getLogger("x"), burst=0)
