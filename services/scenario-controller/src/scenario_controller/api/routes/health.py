from __future__ import annotations

from fastapi import APIRouter

from scenario_controller import __version__
from scenario_controller.deps import ControllerDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(controller: ControllerDep) -> dict[str, object]:
    return {"status": "ok", "version": __version__, **controller.summary()}
