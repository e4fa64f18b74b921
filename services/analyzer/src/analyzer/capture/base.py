"""The one small interface every capture backend implements, and what it reports."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from analyzer.packets import Frame


class CaptureError(RuntimeError):
    """A capture cannot start or broke off; the message names the backend and the cause."""


@dataclass(frozen=True)
class CaptureStats:
    """What a backend knows about its own completeness.

    `kernel_seen` counts the packets the kernel matched against the capture filter (None where
    the backend cannot know); `dropped` those the kernel threw away because the backend did not
    read fast enough; `queued` those seen but neither dropped nor handed over yet (still in a
    socket buffer or a pipe). A backend that falls behind shows it here, never silently.
    """

    backend: str
    source: str
    live: bool
    delivered: int
    kernel_seen: int | None
    dropped: int | None
    lag_seconds: float | None
    finished: bool
    error: str | None = None

    @property
    def queued(self) -> int | None:
        if self.kernel_seen is None:
            return None
        return max(0, self.kernel_seen - (self.dropped or 0) - self.delivered)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "queued": self.queued}


class PacketSource(abc.ABC):
    """Frames matching the proxy's address and port, oldest first.

    `frames()` blocks (live) or reads on (file) and ends when the file ends or `close()` is
    called from another thread. The adapters stay thin: decoding and pairing happen elsewhere.
    """

    backend: str = ""

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]: ...

    @abc.abstractmethod
    def stats(self) -> CaptureStats: ...

    @abc.abstractmethod
    def close(self) -> None: ...
