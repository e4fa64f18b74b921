"""The experiment the panel's "Experiment" tab shows: what `testbed run` pushes once a second
(POST /experiment/samples), or a results folder `testbed view` loaded (EXPERIMENT_REPLAY).

The wire model is typed and bounded (a push carries at most MAX_PUSH samples) and the feed keeps
the last `capacity` samples, so a long run or a chatty client cannot grow the controller's
memory. Samples are numbered (`seq`) as they are accepted; a sample whose t_s is not after the
last one held is a resend and is ignored, so a client may safely push its backlog again.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service_kit import problem_lines

MAX_PUSH = 3600  # samples in one push: a client resending an hour of backlog at once
MAX_PROXIES = 256
MAX_EVENTS = 1000  # scaling events kept (the oldest go first)


# floats the browser's JSON.parse can read: no NaN, no infinity
Number = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=100)]

# starting: being started and enabled (or pending, waiting to be created); ready: in the load
# balancers' set; draining: taken out of the set, open transactions ending, then stopped;
# dead: its process is gone until it is restarted
ProxyStateName = Literal["starting", "ready", "draining", "dead"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProxySample(_Strict):
    p99_ms: Number | None = None
    cpu_mcpu: Number | None = None
    invites_per_s: Number | None = None


class Sample(_Strict):
    """One row of the run's time series (timeseries.csv), the columns the panel draws."""

    t_s: Number = Field(description="seconds since the run's first sample")
    time: Number | None = Field(None, description="Unix time of the sample")
    proxies: int | None = Field(None, ge=0, description="proxies whose process runs")
    replicas: int | None = Field(None, ge=0, description="the pool's size")
    desired_proxies: int | None = Field(None, ge=0)
    ready_proxies: int | None = Field(None, ge=0)
    p99_ms: Number | None = None
    lb_invites_per_s: Number | None = Field(None, description="new INVITEs arriving at the LB")
    sent_per_s: Number | None = None
    calls_succeeded_per_s: Number | None = None
    calls_failed_per_s: Number | None = None
    per_proxy: dict[Name, ProxySample] = Field(default_factory=dict, max_length=MAX_PROXIES)


class ProxyView(_Strict):
    name: Name
    state: ProxyStateName | None = Field(None, description="None: not recorded (a results folder)")
    first_t_s: Number | None = None
    last_t_s: Number | None = None


class ScalingEvent(_Strict):
    t_s: Number
    before: int = Field(ge=0)
    after: int = Field(ge=0)
    reason: str = Field("", max_length=500)


class ExperimentInfo(_Strict):
    name: Name
    run_id: str = Field(
        min_length=1, max_length=4096, description="tells one run from the next: a new one resets"
    )
    source: Literal["run", "folder"] = "run"
    p0_ms: Number = Field(gt=0)
    percentile: Number = Field(99.0, gt=0, lt=100)
    cpu_millicores: int | None = Field(None, gt=0, description="each proxy's CPU limit")
    duration_s: Number | None = Field(None, ge=0, description="the scenario's planned length")
    status: str = Field("running", max_length=40)
    end_reason: str | None = Field(None, max_length=1000)
    calls_attempted: int | None = None
    calls_succeeded: int | None = None
    calls_failed: int | None = None
    worst_p99_ms: Number | None = None
    folder: str | None = Field(None, max_length=4096)


class SamplesPush(_Strict):
    """POST /experiment/samples: the run's description, its new samples (older ones again are
    ignored), the proxies as they are now and the scaling events so far or since the last push."""

    experiment: ExperimentInfo
    samples: list[Sample] = Field(default_factory=list, max_length=MAX_PUSH)
    proxies: list[ProxyView] | None = Field(None, max_length=MAX_PROXIES)
    events: list[ScalingEvent] = Field(default_factory=list, max_length=MAX_EVENTS)


class ExperimentRecord(_Strict):
    """A whole recorded experiment (EXPERIMENT_REPLAY, written by `testbed view`): like a push,
    without its bound on samples."""

    experiment: ExperimentInfo
    samples: list[Sample]
    proxies: list[ProxyView] = Field(default_factory=list, max_length=MAX_PROXIES)
    events: list[ScalingEvent] = Field(default_factory=list)


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
