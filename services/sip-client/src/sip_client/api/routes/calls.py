"""Place calls by hand and read the call records (the runner collects them after a run)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api_token.guard import require_token
from sip_client.deps import RuntimeDep
from testbed_messages import CallId, PhoneId

router = APIRouter(tags=["calls"])


class CallRequest(BaseModel):
    """The same checks as the controller's `invite` message: nothing here can add a header."""

    caller: PhoneId
    callee: PhoneId
    hold_ms: int = Field(0, ge=0)
    call_id: CallId | None = None


@router.post("/calls", status_code=202, dependencies=[Depends(require_token)])
async def place_call(body: CallRequest, runtime: RuntimeDep) -> dict[str, str]:
    try:
        record = runtime.call(body.caller, body.callee, body.hold_ms, body.call_id)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"call_id": record.call_id}


@router.get("/calls")
async def list_calls(
    runtime: RuntimeDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    outcome: Literal["succeeded", "failed"] | None = None,
) -> dict[str, object]:
    """Finished calls, oldest first, one page at a time."""
    records = runtime.require_pod().records
    selected = records if outcome is None else [r for r in records if r.outcome == outcome]
    page = list(itertools.islice(selected, offset, offset + limit))
    return {"total": len(selected), "offset": offset, "items": [r.as_dict() for r in page]}
