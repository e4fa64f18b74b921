from __future__ import annotations

from fastapi import APIRouter, Depends

from api_token.guard import require_token
from sip_client.deps import RuntimeDep

router = APIRouter(tags=["phones"])


@router.get("/phones")
async def phones(runtime: RuntimeDep) -> list[dict[str, object]]:
    return runtime.require_pod().registration_state(runtime.now())


@router.post("/register", status_code=202, dependencies=[Depends(require_token)])
async def register_all(runtime: RuntimeDep) -> dict[str, int]:
    """Register every phone of the pod (what the controller's `register` command does)."""
    runtime.register_all()
    return {"phones": runtime.require_pod().config.phones}
