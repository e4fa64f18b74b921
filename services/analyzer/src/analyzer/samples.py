"""Recorded pairs, kept in memory up to a limit (oldest dropped first), and their formats."""

from __future__ import annotations

import csv
import io
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from analyzer.pairing import Pair
from testbed_messages.samples import SAMPLES_CSV_FIELDS

OFFLINE_CSV_FIELDS = ("time", "pair", "call_id", "response_time_ms")


class Sample(NamedTuple):
    """One pair as served by /samples; `timestamp` is when the message reached the proxy."""

    timestamp: float
    pair: str
    call_id: str
    cseq: int
    response_time: float  # seconds

    @classmethod
    def of(cls, pair: Pair) -> Sample:
        return cls(pair.start, pair.name, pair.call_id, pair.cseq, pair.response_time)

    def as_dict(self, proxy: str) -> dict[str, object]:
        return {
            "timestamp": round(self.timestamp, 6),
            "proxy": proxy,
            "pair": self.pair,
            "call_id": self.call_id,
            "cseq": self.cseq,
            "response_time_ms": round(self.response_time * 1000, 3),
        }


class SampleStore:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"samples limit must be at least 1, got {limit}")
        self._samples: deque[Sample] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, sample: Sample) -> None:
        with self._lock:
            if len(self._samples) == self._samples.maxlen:
                self.dropped += 1
            self._samples.append(sample)

    def select(
        self,
        since: float | None = None,
        until: float | None = None,
        pair: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[int, list[Sample]]:
        """(how many match, the page [offset, offset + limit) of them), in recording order."""
        with self._lock:
            selected = list(self._samples)
        if since is not None or until is not None or pair is not None:
            low = float("-inf") if since is None else since
            high = float("inf") if until is None else until
            selected = [
                s
                for s in selected
                if low <= s.timestamp < high and (pair is None or s.pair == pair)
            ]
        stop = None if limit is None else offset + limit
        return len(selected), selected[offset:stop]


def _format_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def csv_rows(samples: Iterable[Sample], proxy: str) -> Iterator[str]:
    """/samples as CSV: header, then one line per sample."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SAMPLES_CSV_FIELDS)
    for s in samples:
        writer.writerow(
            (f"{s.timestamp:.6f}", proxy, s.pair, s.call_id, s.cseq, _format_ms(s.response_time))
        )
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def offline_csv_line(pair: Pair) -> str:
    """`analyzer offline` output: time, pair, Call-ID, response time in ms."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        (f"{pair.start:.6f}", pair.name, pair.call_id, _format_ms(pair.response_time))
    )
    return buffer.getvalue()
