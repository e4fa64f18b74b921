"""Frames in, pairs out: decode, feed the tracker, record samples and observe the histogram.

The glue between a capture backend and the sans-I/O tracker. One lock covers the tracker, so
the capture thread and the HTTP handlers can share it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable

from analyzer.endpoints import Endpoint, format_endpoint
from analyzer.packets import Frame, decode
from analyzer.pairing import Pair, PairTracker, TrackerStats
from analyzer.samples import Sample, SampleStore
from sip_core import LogLimiter, held_note

pair_log = logging.getLogger("analyzer.pairs")
log = logging.getLogger(__name__)

# skip reason of a frame whose analysis failed unexpectedly (counted, logged, capture goes on)
ANALYSIS_ERROR = "analysis_error"


def describe(pair: Pair) -> str:
    """A pair with both packets' times and addresses (the paper's figure 3.18)."""
    return (
        f"pair={pair.name} call_id={pair.call_id} cseq={pair.cseq} "
        f"in={pair.start:.6f} {format_endpoint(pair.start_src)}->"
        f"{format_endpoint(pair.start_dst)} "
        f"out={pair.end:.6f} {format_endpoint(pair.end_src)}->{format_endpoint(pair.end_dst)} "
        f"response_ms={pair.response_time * 1000:.3f}"
    )


class Analyzer:
    def __init__(
        self,
        proxy: Endpoint,
        timeout: float,
        samples: SampleStore | None = None,
        observe: Callable[[Pair], None] | None = None,
        debug: bool = False,
    ) -> None:
        self.proxy = proxy
        self.tracker = PairTracker(proxy, timeout)
        self.samples = samples
        self.observe = observe
        self.debug = debug
        self.lock = threading.Lock()
        self.frames = 0
        self.last_timestamp: float | None = None
        self._names: dict[bytes, str] = {}
        self._log_limiter = LogLimiter()

    def process(self, frame: Frame) -> Pair | None:
        """Analyse one frame. Never raises: one bad frame must not stop a capture or a file."""
        try:  # the work inline, not in a method: a call per packet is measurable at 100k/s
            datagram = decode(frame.linktype, frame.data)
            with self.lock:
                self.frames += 1
                self.last_timestamp = frame.timestamp
                if isinstance(datagram, str):
                    self.tracker.count_skip(datagram)
                    return None
                names = self._names
                src = (names.get(datagram.src) or self._name(datagram.src), datagram.sport)
                dst = (names.get(datagram.dst) or self._name(datagram.dst), datagram.dport)
                pair = self.tracker.feed(frame.timestamp, src, dst, datagram.payload)
                malformed, self.tracker.last_malformed = self.tracker.last_malformed, None
            if malformed is not None:
                self._log_malformed(frame.timestamp, src, malformed)
            if pair is not None:
                self._record(pair)
            return pair
        except Exception:
            with self.lock:
                self.tracker.count_skip(ANALYSIS_ERROR)
            held = self._log_limiter.allow(time.monotonic())
            if held is not None:
                log.exception(
                    "frame at %.6f skipped: analysis failed%s", frame.timestamp, held_note(held)
                )
            return None

    def _log_malformed(self, timestamp: float, src: Endpoint, reason: str) -> None:
        held = self._log_limiter.allow(time.monotonic())
        if held is not None:
            log.warning(
                "malformed SIP message at %.6f from %s skipped: %s%s",
                timestamp,
                format_endpoint(src),
                reason,
                held_note(held),
            )

    def process_all(self, frames: Iterable[Frame]) -> list[Pair]:
        return [pair for frame in frames if (pair := self.process(frame)) is not None]

    def expire(self, now: float) -> int:
        with self.lock:
            return self.tracker.expire(now)

    def snapshot(self) -> tuple[TrackerStats, int, int]:
        """Copies of the counters, the open and the remembered entries (for metrics, health)."""
        with self.lock:
            s = self.tracker.stats
            copy = TrackerStats(
                s.messages.copy(),
                s.skipped.copy(),
                s.retransmissions.copy(),
                s.pairs.copy(),
                s.unpaired.copy(),
            )
            return copy, self.tracker.open_entries, self.tracker.remembered_entries

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = socket.inet_ntoa(raw)
            if len(self._names) < 65536:  # bounded: addresses come from the network
                self._names[raw] = name
        return name

    def _record(self, pair: Pair) -> None:
        if self.samples is not None:
            self.samples.add(Sample.of(pair))
        if self.observe is not None:
            self.observe(pair)
        if self.debug:
            pair_log.info("%s", describe(pair))
