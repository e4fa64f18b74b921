from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sip_controller import __version__
from sip_controller.deps import StoreDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(store: StoreDep) -> JSONResponse:
    try:
        await anyio.to_thread.run_sync(store.ping)
    except Exception as exc:
        return JSONResponse({"status": "unhealthy", "reason": f"database: {exc}"}, status_code=503)
    return JSONResponse({"status": "ok", "version": __version__})
