"""Runs a capture backend in a thread and feeds every frame to the analyzer."""

from __future__ import annotations

import dataclasses
import logging
import threading

from analyzer.analysis import Analyzer
from analyzer.capture import CaptureStats, PacketSource

log = logging.getLogger(__name__)


class CaptureRunner:
    def __init__(self, source: PacketSource, analyzer: Analyzer) -> None:
        self.source = source
        self.analyzer = analyzer
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stats(self) -> CaptureStats:
        stats = self.source.stats()
        return dataclasses.replace(stats, error=self.error) if self.error else stats

    def stop(self, timeout: float = 5.0) -> None:
        self.source.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        process = self.analyzer.process
        try:
            for frame in self.source.frames():
                process(frame)
        except Exception as exc:  # the service stays up and reports it on /health
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("capture stopped")
