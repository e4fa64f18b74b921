"""How often a receive loop may log about bad input: a flood of malformed datagrams must not
become a flood of log lines.

`LogLimiter` is the mechanism (sans-I/O: the caller passes the time in); `RateLimitedLog` is
a thin adapter for callers that just want a logger with the limit applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogLimiter:
    """At most `burst` messages per `interval` seconds; the rest are counted, not logged.

    `allow(now)` returns None when the message is to be held back, else how many were held
    back since the last one logged (to say so in that line).
    """

    def __init__(self, interval: float = 10.0, burst: int = 5) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError(f"need interval > 0 and burst >= 1, got {interval}, {burst}")
        self.interval = interval
        self.burst = burst
        self._window_start = float("-inf")
        self._in_window = 0
        self._held_back = 0

    def allow(self, now: float) -> int | None:
        if now - self._window_start >= self.interval:
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self.burst:
            self._held_back += 1
            return None
        self._in_window += 1
        held_back, self._held_back = self._held_back, 0
        return held_back


def held_note(count: int) -> str:
    """The tail of the first line logged after `count` were held back."""
    return f" ({count} more not logged)" if count else ""


class RateLimitedLog:
    """`logger` behind a `LogLimiter`: the first line let through after some were held back
    ends with how many."""

    def __init__(
        self,
        logger: logging.Logger,
        limiter: LogLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limiter = limiter if limiter is not None else LogLimiter()
        self._clock = clock

    def warning(self, msg: str, *args: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def log(self, level: int, msg: str, *args: object) -> None:
        held = self.limiter.allow(self._clock())
        if held is not None:
            self.logger.log(level, msg + "%s", *args, held_note(held))
