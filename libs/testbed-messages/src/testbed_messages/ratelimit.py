"""Logging that hostile input cannot flood: a few lines per window, then how many were held back.

Receive loops (the scenario controller's hub, the pods' controller link) log each bad message
through one of these, so a peer sending garbage at line rate costs a counter, not the disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """At most `burst` records per `interval` seconds; the next record after a window in which
    some were held back says how many."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError(f"interval must be > 0 and burst >= 1, got {interval}, {burst}")
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._window_start: float | None = None
        self._in_window = 0
        self.suppressed = 0  # held back in the current window

    def warning(self, msg: str, *args: object) -> None:
        self.log(logging.WARNING, msg, *args)

    def log(self, level: int, msg: str, *args: object) -> None:
        now = self._clock()
        start = self._window_start
        if start is None or now - start >= self.interval:
            if self.suppressed and start is not None:
                self.logger.log(
                    level,
                    "%d similar message(s) not logged in the last %.0f s",
                    self.suppressed,
                    now - start,
                )
            self._window_start, self._in_window, self.suppressed = now, 0, 0
        if self._in_window < self.burst:
            self._in_window += 1
            self.logger.log(level, msg, *args)
        else:
            self.suppressed += 1
