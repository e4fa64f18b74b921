"""FastAPI dependencies: the settings and the loop live on app.state, set in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from policy_controller.config import Settings
from policy_controller.controller import PolicyLoop


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_loop(request: Request) -> PolicyLoop | None:
    loop: PolicyLoop | None = getattr(request.app.state, "loop", None)
    return loop


SettingsDep = Annotated[Settings, Depends(get_settings)]
LoopDep = Annotated[PolicyLoop | None, Depends(get_loop)]
