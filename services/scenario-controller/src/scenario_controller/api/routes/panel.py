"""The web control panel (static files of this package, no CDN) and its live feed."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, WebSocket
from fastapi.responses import FileResponse

from scenario_controller.deps import ControllerDep

PANEL = Path(__file__).resolve().parents[2] / "panel"
router = APIRouter(tags=["panel"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(PANEL / "index.html", media_type="text/html")


@router.websocket("/ws/panel")
async def panel_socket(socket: WebSocket, controller: ControllerDep) -> None:
    await controller.serve_panel(socket)
