"""Registered users as a proxy's usrloc holds them (the paper checked `kamctl ul show`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sip_controller.api.models import RegistrationsView
from sip_controller.deps import ServiceDep

router = APIRouter(tags=["registrations"])


@router.get("/registrations", response_model=RegistrationsView)
async def registrations(
    service: ServiceDep,
    proxy: Annotated[
        str | None, Query(description="read this proxy (default: the first enabled)")
    ] = None,
) -> RegistrationsView:
    result = await service.registrations(proxy)
    return RegistrationsView(proxy=result.proxy, count=len(result.users), users=result.users)
