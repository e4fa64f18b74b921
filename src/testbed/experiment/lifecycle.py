"""What keeps a run's ending orderly: signals turned into one interruption, and cleanup steps
that each get a time bound and cannot stop the steps after them."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from testbed.local import processes

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """While active, the first SIGINT, SIGTERM or SIGHUP raises KeyboardInterrupt in the main
    thread; later ones, and any once `cleaning()` was called, are only reported, so a second
    Ctrl-C cannot cut the cleanup short. Inside `processes.interrupts_held()` (a spawn and the
    record of its PID) the KeyboardInterrupt waits for the section's end. Outside the main
    thread it does nothing."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.received: str | None = None  # the signal that interrupted the run
        self.ignored: list[str] = []  # those that arrived later or during cleanup
        self._cleaning = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def cleaning(self) -> None:
        self._cleaning = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._cleaning or self.received is not None:
            self.ignored.append(name)
            self.notify(
                f"{name}: still cleaning up (stopping what the run started); it ends on its own"
            )
            return
        self.received = name
        interrupt = KeyboardInterrupt(name)
        if not processes.hold_interrupt(interrupt):  # else raised where the section ends
            raise interrupt


def bounded(what: str, step: Callable[[], object], seconds: float) -> str | None:
    """Run `step` for at most `seconds` (in a daemon thread, left behind if it overruns);
    None when it finished, else what went wrong, naming the step."""
    failure: list[str] = []

    def target() -> None:
        try:
            step()
        except Exception as exc:
            failure.append(f"{what}: {describe(exc)}")

    thread = threading.Thread(target=target, name=f"cleanup: {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return f"{what}: not finished within {seconds:g} s"
    return failure[0] if failure else None


def describe(exc: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
