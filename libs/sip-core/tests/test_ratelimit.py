"""RateLimitedLog: a logger behind a LogLimiter (the mechanism itself is tested in
test_hostile.py)."""

from __future__ import annotations

import logging

import pytest

from sip_core import LogLimiter, RateLimitedLog


def test_a_flood_logs_a_burst_per_window_then_says_how_many_were_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(
        logging.getLogger("flood"), LogLimiter(interval=10, burst=3), clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="flood"):
        for n in range(1000):
            limited.warning("bad message %d", n)
        assert [r.getMessage() for r in caplog.records] == [f"bad message {n}" for n in range(3)]
        now[0] = 10.0
        limited.warning("bad message %d", 1000)
        limited.warning("bad message %d", 1001)
    assert [r.getMessage() for r in caplog.records[3:]] == [
        "bad message 1000 (997 more not logged)",
        "bad message 1001",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_the_default_limit_is_five_lines_per_ten_seconds(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("default"), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="default"):
        for _ in range(8):
            limited.log(logging.INFO, "x")
        now[0] = 109.9
        limited.log(logging.INFO, "x")
        now[0] = 110.0
        limited.log(logging.INFO, "x")
    assert [r.getMessage() for r in caplog.records] == ["x"] * 5 + ["x (4 more not logged)"]


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        LogLimiter(burst=0)
