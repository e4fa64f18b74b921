"""The experiment the scenario controller's panel shows, as `testbed run` pushes it once a
second (POST /experiment/samples) and `testbed view` records it (EXPERIMENT_REPLAY): the wire
model both sides share.

Typed and bounded: a push carries at most MAX_PUSH samples, a sample at most MAX_PROXIES
proxies, so a chatty or hostile client cannot grow the controller's memory; numbers are finite
(the browser's JSON.parse reads no NaN or infinity).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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
