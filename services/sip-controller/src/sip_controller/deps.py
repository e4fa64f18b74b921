"""FastAPI dependencies: everything lives on app.state, created in the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sip_controller.config import Settings
from sip_controller.proxies import ProxyService
from sip_controller.store import ProxyStore


def get_service(request: Request) -> ProxyService:
    service: ProxyService = request.app.state.service
    return service


def get_store(request: Request) -> ProxyStore:
    store: ProxyStore = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[ProxyService, Depends(get_service)]
StoreDep = Annotated[ProxyStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
