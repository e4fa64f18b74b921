"""The simulator's model parameters, read from a calibration file (calibration/*.yaml).

A proxy is modelled as a FIFO of CPU work served under a CFS quota: `limit x period` seconds of
CPU per `period_s`, so a busy proxy answers in multiples of the period, as measured. Its work is
a fixed background load plus a cost per call, split between the moment the call starts (the
challenged and the authenticated INVITE, their answers, the ACKs) and its BYE, the phones'
registrations (on the proxy that takes each, and its copy over DMQ on every other) and
retransmitted INVITEs (a first INVITE is challenged again, an authenticated one absorbed); the
costs by message type are measured by benchmarks/message_costs.py. Messages that
find older work waiting cost less (`batched_cpu_ms_per_call`): the benchmark's throttled
proxies served more calls per CPU second than the unthrottled line allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analyzer.config import DEFAULT_BUCKETS, parse_buckets


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    machine: str = Field("", description="where and when the figures were measured")
    sources: list[str] = Field(
        default_factory=list, description="the results folders or documents they came from"
    )
    period_s: float = Field(0.1, gt=0, le=1, description="the CFS period (cpu.cfs_period_us)")
    background_mcpu: float = Field(
        5.5, ge=0, description="CPU a proxy uses with no calls (timers, DMQ keepalives)"
    )
    cpu_ms_per_call: float = Field(0.65, gt=0, description="proxy CPU per call, all messages")
    batched_cpu_ms_per_call: float | None = Field(
        None,
        gt=0,
        description="the same, for messages that find older work waiting and are handled back "
        "to back with it (a throttled proxy wakes up once for many); None: cpu_ms_per_call",
    )
    throttled_overhead_ms: float = Field(
        0.0,
        ge=0,
        description="CPU a proxy spends per period it starts behind (its processes resuming "
        "after the quota ran out), in proportion to the share of the period older work takes",
    )
    bye_share: float = Field(
        0.2, ge=0, lt=1, description="of the per-call cost, paid when the call ends (BYE, 200)"
    )
    retransmission_cpu_ms: float = Field(
        0.05,
        ge=0,
        description="absorbing one retransmitted authenticated INVITE (its transaction exists)",
    )
    challenge_cpu_ms: float | None = Field(
        None,
        ge=0,
        description="a first INVITE and its 407: what a retransmitted first INVITE costs (the "
        "proxy keeps no transaction for it and challenges it again); None: "
        "retransmission_cpu_ms",
    )
    register_cpu_ms: float = Field(
        0.0,
        ge=0,
        description="a registration (REGISTER, 401, REGISTER with credentials, 200) on the "
        "proxy that takes it",
    )
    dmq_replica_cpu_ms: float = Field(
        0.0, ge=0, description="a registration's copy on each other proxy (DMQ replication)"
    )
    reregister_interval_s: float = Field(
        3000.0,
        gt=0,
        description="each phone refreshes its binding this long after its last 200 (the "
        "sip-client's REREGISTER_INTERVAL_SECONDS default, as the runs use it)",
    )
    dmq_sync_ms_per_phone: float = Field(
        0.05, ge=0, description="a joining proxy's CPU to take in one registration over DMQ"
    )
    base_latency_ms: float = Field(
        0.2, ge=0, description="response time of a proxy with CPU to spare (p50 of the benchmark)"
    )
    unlimited_cores: float = Field(
        1.0, gt=0, description="the CPU a proxy without a limit gets (the SUT's CPUs)"
    )
    t1_s: float = Field(0.5, gt=0, description="SIP timer T1: the first INVITE retransmission")
    timeout_s: float = Field(
        32.0, gt=0, description="timers B and F: an unanswered INVITE or REGISTER fails"
    )
    t2_s: float = Field(
        4.0, gt=0, description="SIP timer T2: a REGISTER is sent again at most this far apart"
    )
    histogram_buckets: str = Field(
        DEFAULT_BUCKETS,
        description="the analyzers' bucket bounds (s, ANALYZER_BUCKETS): the time series' "
        "percentiles are read from them as Prometheus's histogram_quantile does; empty: exact",
    )
    local_ready_s: float = Field(
        0.0, ge=0, description="added to autoscale.startup_delay_s before a new proxy serves"
    )

    @model_validator(mode="after")
    def _batched_not_dearer(self) -> Calibration:
        if self.batched_cpu_ms_per_call is not None and (
            self.batched_cpu_ms_per_call > self.cpu_ms_per_call
        ):
            raise ValueError(
                f"batched_cpu_ms_per_call ({self.batched_cpu_ms_per_call}) is above "
                f"cpu_ms_per_call ({self.cpu_ms_per_call}): handling messages back to back "
                "cannot cost more"
            )
        return self

    @field_validator("histogram_buckets")
    @classmethod
    def _bounds(cls, text: str) -> str:
        if text.strip():
            parse_buckets(text)  # names what is wrong
        return text

    def bucket_bounds(self) -> tuple[float, ...]:
        """The bucket bounds in seconds; () for exact percentiles."""
        return parse_buckets(self.histogram_buckets) if self.histogram_buckets.strip() else ()


class CalibrationError(ValueError):
    pass


def load_calibration(path: Path) -> Calibration:
    """A calibration file, validated; CalibrationError names the file and the field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CalibrationError(f"{path}: {exc}") from None
    try:
        return Calibration.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise CalibrationError(f"{path}: {problems}") from None


# the sip-client's variable: set where `testbed run` runs, it reaches the local client pods
REREGISTER_VARIABLE = "REREGISTER_INTERVAL_SECONDS"


def with_client_environment(calibration: Calibration, environ: Mapping[str, str]) -> Calibration:
    """The calibration with the clients' refresh interval from `environ` where it is set, so
    that `REREGISTER_INTERVAL_SECONDS=240 testbed simulate` plays what the same variable does to
    `testbed run`'s client pods; CalibrationError names the variable if it is not a number > 0."""
    text = environ.get(REREGISTER_VARIABLE)
    if text is None:
        return calibration
    try:
        interval = float(text)
    except ValueError:
        interval = math.nan
    if not interval > 0:  # also NaN
        raise CalibrationError(f"{REREGISTER_VARIABLE}={text!r}: not a number of seconds > 0")
    return calibration.model_copy(update={"reregister_interval_s": interval})


def default_calibration_path() -> Path:
    """The calibration committed for the development machine (calibration/this-machine.yaml)."""
    return Path(__file__).resolve().parents[3] / "calibration" / "this-machine.yaml"
