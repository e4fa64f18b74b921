"""GET /status: the last decision, flat (what `testbed run --kubeconfig` logs per sample and
the cluster test reads: current, desired, reason), and the last failed request."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from policy_controller.controller import PolicyLoop
from policy_controller.deps import LoopDep, SettingsDep

router = APIRouter(tags=["status"])

NO_DECISION = "no decision yet"


class LastError(BaseModel):
    time: float = Field(description="Unix time of the sync it happened in")
    source: str = Field(description="prometheus or kubernetes")
    message: str = Field(description="the reason (for Kubernetes: the status code and message)")


class Status(BaseModel):
    target: str = Field(description="kind/name of the scaled workload")
    dry_run: bool
    sync_period_s: float
    lead_time_s: float | None = Field(description="how far ahead the policy looks")
    # the last decision; null (reason: "no decision yet") until a sync read the scale
    time: float | None = Field(description="Unix time of the last decision's sync")
    current: int | None = Field(description="the target scale's spec.replicas")
    desired: int | None = Field(description="what the policy wants")
    action: str | None = Field(description="up, down or hold")
    patch: bool | None = Field(
        description="the scale was to be set to `desired` (false: no change, or a dry run); "
        "a PATCH that failed is the last error"
    )
    reason: str = Field(description="the policy's reason, e.g. `predictive: up, 8.0/s, ...`")
    knee_invites_per_second: float | None = Field(description="the knee the decision used")
    cpu_knee_invites_per_second: float | None = Field(
        description="the knee the CPU per invite measured (null: not measured)"
    )
    invite_rate: float | None = Field(description="INVITEs/s at the load balancer, as read")
    predicted_invite_rate: float | None = Field(description="one lead time ahead")
    settled_p99_s: float | None = Field(description="the settled proxies' p99 response time")
    ready: int | None = Field(description="the target's pods counted as serving")
    pending: int | None = Field(description="pods asked for whose metrics have not appeared")
    last_error: LastError | None


def status_of(loop: PolicyLoop | None, target: str, dry_run: bool, period: float) -> Status:
    d = loop.last_decision if loop is not None else None
    error = loop.last_error if loop is not None else None
    return Status(
        target=target,
        dry_run=dry_run,
        sync_period_s=period,
        lead_time_s=loop.core.policy.s.lead_time_s if loop is not None else None,
        time=d and d.time,
        current=d and d.current,
        desired=d and d.desired,
        action=d and d.action,
        patch=d and d.patch,
        reason=d.reason if d is not None else NO_DECISION,
        knee_invites_per_second=d and d.knee_invites_per_second,
        cpu_knee_invites_per_second=d and d.cpu_knee_invites_per_second,
        invite_rate=d and d.invite_rate,
        predicted_invite_rate=d and d.predicted_invite_rate,
        settled_p99_s=d and d.settled_p99_s,
        ready=d and d.ready,
        pending=d and d.pending,
        last_error=None
        if error is None
        else LastError(time=error.time, source=error.source, message=error.message),
    )


@router.get("/status")
async def status(loop: LoopDep, settings: SettingsDep) -> Status:
    """The last decision (time, replicas, reason, lead time, knee, rates, settled p99) and the
    last failed request, if any."""
    s = settings
    target = f"{s.policy_controller_target_kind.value}/{s.policy_controller_target_name}"
    return status_of(loop, target, s.policy_controller_dry_run, s.policy_controller_sync_period_s)
