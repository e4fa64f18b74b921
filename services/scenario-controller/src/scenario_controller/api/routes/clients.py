"""Connected pods and the commands that go to all of them."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, WebSocket, status

from api_token.guard import require_token, token_guard
from scenario_controller.deps import ControllerDep
from sip_core import RateLimitedLog

router = APIRouter(tags=["clients"])
log = logging.getLogger(__name__)
# a pod with a wrong or missing API_TOKEN retries every few seconds: one line per attempt
# would bury the log
_refusals = RateLimitedLog(log)


@router.get("/clients")
async def clients(controller: ControllerDep) -> dict[str, object]:
    """Pods with phones, connection and registration state, cross-checked with the registrar."""
    registered, problem = await controller.registered_by_pod()
    pods = controller.hub.views()
    for pod in pods:
        pod["registered_at_proxy"] = registered.get(str(pod["pod"])) if problem is None else None
    return {
        "pods": pods,
        "connected": controller.hub.connected,
        "registrations_source_error": problem,
    }


@router.post("/register", dependencies=[Depends(require_token)])
async def register_all(controller: ControllerDep) -> dict[str, object]:
    """Tell every connected pod to register all its phones."""
    pods = controller.register_all()
    if not pods:
        raise HTTPException(status_code=409, detail="no sip-client pod is connected")
    return {"pods": pods}


@router.websocket("/ws/clients")
async def client_socket(socket: WebSocket, controller: ControllerDep) -> None:
    # a pod sends invites' results and gets commands: only with the API token in the
    # handshake's Authorization header (a browser page on another site cannot add one)
    guard = token_guard(socket)
    if guard is None or not guard.admits_websocket(socket):
        verdict = "no token guard" if guard is None else guard.judge(socket.headers).value
        peer = f"{socket.client.host}:{socket.client.port}" if socket.client else "?"
        _refusals.warning("refused a client WebSocket from %s: API token %s", peer, verdict)
        # closing before accept: the handshake is answered 403 (policy violation)
        await socket.close(code=status.WS_1008_POLICY_VIOLATION)
        return
    await socket.accept()
    await controller.hub.serve(socket)
