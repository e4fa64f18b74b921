"""Connected pods and the commands that go to all of them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, WebSocket

from scenario_controller.deps import ControllerDep

router = APIRouter(tags=["clients"])


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


@router.post("/register")
async def register_all(controller: ControllerDep) -> dict[str, object]:
    """Tell every connected pod to register all its phones."""
    pods = controller.register_all()
    if not pods:
        raise HTTPException(status_code=409, detail="no sip-client pod is connected")
    return {"pods": pods}


@router.websocket("/ws/clients")
async def client_socket(socket: WebSocket, controller: ControllerDep) -> None:
    await socket.accept()
    await controller.hub.serve(socket)
