from __future__ import annotations

from fastapi import APIRouter, Request

from sip_client import __version__
from sip_client.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(runtime: RuntimeDep, request: Request) -> dict[str, object]:
    pod = runtime.require_pod()
    link = request.app.state.link
    return {
        "status": "ok",
        "version": __version__,
        "pod": pod.config.pod,
        "sip": f"{pod.config.local[0]}:{pod.config.local[1]}",
        "phones": pod.config.phones,
        "registered": len(pod.registered(runtime.now())),
        "controller": None
        if link is None
        else {"url": link.url, "connected": link.connected, "refused": link.refused_reason or None},
    }
