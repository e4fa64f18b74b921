"""The experiment the panel's "Experiment" tab shows: what `testbed run` pushes once a second
(POST /experiment/samples), or a results folder `testbed view` loaded (EXPERIMENT_REPLAY).

The wire model (testbed_messages.experiment) is typed and bounded and the feed keeps
the last `capacity` samples, so a long run or a chatty client cannot grow the controller's
memory. Samples are numbered (`seq`) as they are accepted; a sample whose t_s is not after the
last one held is a resend and is ignored, so a client may safely push its backlog again.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service_kit import problem_lines
from testbed_messages.experiment import (
    MAX_EVENTS,
    ExperimentInfo,
    ExperimentRecord,
    ProxyView,
    Sample,
    SamplesPush,
    ScalingEvent,
)


class ReadOnly(Exception):
    """The feed shows a recorded experiment: nothing is pushed to it."""


class BadReplay(ValueError):
    pass


def load_replay(path: Path) -> ExperimentRecord:
    """EXPERIMENT_REPLAY's file; a clear one-line error naming it when it is missing or bad."""
    try:
        return ExperimentRecord.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise BadReplay(f"EXPERIMENT_REPLAY {path}: {exc.strerror or exc}") from None
    except ValidationError as exc:
        first = problem_lines(exc)[0]  # the first is enough to find the file's fault
        raise BadReplay(f"EXPERIMENT_REPLAY {path}: {first}") from None


class ExperimentFeed:
    """What the Experiment tab shows; `version` moves with every change, `epoch` with every new
    experiment (the panel starts over then). Pushes come from request handlers and reads from
    the publisher, both on the event loop; the lock keeps it safe for threads too."""

    def __init__(self, capacity: int, replay: ExperimentRecord | None = None) -> None:
        self.capacity = capacity
        self.read_only = replay is not None
        self._lock = threading.Lock()
        self.info: ExperimentInfo | None = None
        self.samples: deque[tuple[int, Sample]] = deque(maxlen=capacity)
        self.proxies: list[ProxyView] = []
        self.events: deque[ScalingEvent] = deque(maxlen=MAX_EVENTS)
        self.seq = 0
        self.epoch = 0
        self.version = 0
        if replay is not None:
            # a recorded run is shown whole, however long
            self.samples = deque(maxlen=max(capacity, len(replay.samples)))
            self._apply(replay.experiment, replay.samples, replay.proxies, replay.events)

    def push(self, push: SamplesPush) -> int:
        """Take a push; returns how many samples of this experiment are held now."""
        if self.read_only:
            raise ReadOnly("this controller shows a recorded experiment (testbed view): read-only")
        with self._lock:
            self._apply(push.experiment, push.samples, push.proxies, push.events)
            return len(self.samples)

    def _apply(
        self,
        info: ExperimentInfo,
        samples: list[Sample],
        proxies: list[ProxyView] | None,
        events: list[ScalingEvent],
    ) -> None:
        if self.info is None or self.info.run_id != info.run_id:
            self.samples.clear()
            self.events.clear()
            self.proxies = []
            self.epoch += 1
        self.info = info
        last = self.samples[-1][1].t_s if self.samples else None
        for sample in sorted(samples, key=lambda s: s.t_s):
            if last is not None and sample.t_s <= last:
                continue  # a resend
            self.seq += 1
            self.samples.append((self.seq, sample))
            last = sample.t_s
        if proxies is not None:
            self.proxies = list(proxies)
        known = {(e.t_s, e.before, e.after) for e in self.events}
        for event in sorted(events, key=lambda e: e.t_s):
            if (event.t_s, event.before, event.after) not in known:
                self.events.append(event)
                known.add((event.t_s, event.before, event.after))
        self.version += 1

    def view(self, after: int = 0) -> dict[str, Any]:
        """Everything held (samples numbered after `after` only): GET /experiment and the
        panel's live feed."""
        with self._lock:
            return {
                "type": "experiment",
                "epoch": self.epoch,
                "version": self.version,
                "read_only": self.read_only,
                "capacity": self.samples.maxlen,
                "held": len(self.samples),
                "experiment": None if self.info is None else self.info.model_dump(),
                "proxies": [p.model_dump() for p in self.proxies],
                "events": [e.model_dump() for e in self.events],
                "samples": [
                    {"seq": seq, **sample.model_dump(exclude_none=True)}
                    for seq, sample in self.samples
                    if seq > after
                ],
            }
