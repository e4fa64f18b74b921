"""Lifecycle hooks (postStart: enable, preStop: disable) and the proxies' state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from api_token.guard import require_token
from kamailio_rpc import DispatcherTarget
from sip_controller.api.models import DisableResponse, EnableRequest, LoadBalancerView, ProxyView
from sip_controller.deps import ServiceDep
from sip_controller.store import ProxyRow

router = APIRouter(tags=["proxies"])

# every state-changing route: Authorization: Bearer <API_TOKEN> (401 missing, 403 wrong, 503
# none configured), checked before the body is even validated
GUARDED = [Depends(require_token)]

GraceQuery = Annotated[
    float | None,
    Query(ge=0, description="seconds to wait for open transactions (default DRAIN_GRACE_SECONDS)"),
]


def _view(row: ProxyRow, lbs: dict[str, list[DispatcherTarget] | str] | None = None) -> ProxyView:
    views: list[LoadBalancerView] = []
    for url, targets in (lbs or {}).items():
        if isinstance(targets, str):
            views.append(LoadBalancerView(url=url, error=targets))
            continue
        flags = next((t.flags for t in targets if t.uri == row.sip_uri), None)
        views.append(LoadBalancerView(url=url, flags=flags))
    return ProxyView(
        name=row.name,
        state=row.state.value,
        sip_uri=row.sip_uri,
        http_url=row.http_url,
        dispatcher_flags=row.dispatcher_flags,
        loadbalancers=views,
    )


@router.get("/proxies", response_model=list[ProxyView])
async def list_proxies(service: ServiceDep) -> list[ProxyView]:
    rows = await service.rows()
    lbs = await service.loadbalancer_views()
    return [_view(row, lbs) for row in rows]


@router.get("/proxies/{name}", response_model=ProxyView)
async def get_proxy(name: str, service: ServiceDep) -> ProxyView:
    return _view(await service.get(name), await service.loadbalancer_views())


async def _enable(name: str, body: EnableRequest | None, service: ServiceDep) -> ProxyView:
    body = body or EnableRequest()
    row = await service.enable(name, body.sip_address, body.http_address)
    return _view(row, await service.loadbalancer_views())


async def _disable(name: str, grace_seconds: float | None, service: ServiceDep) -> DisableResponse:
    row, drain = await service.disable(name, grace_seconds)
    view = _view(row, await service.loadbalancer_views())
    return DisableResponse(
        **view.model_dump(),
        drained=drain.drained,
        open_transactions=drain.open_transactions,
        waited_seconds=round(drain.waited_seconds, 3),
    )


@router.post("/proxies/{name}/enable", response_model=ProxyView, dependencies=GUARDED)
async def enable_proxy(
    name: str, service: ServiceDep, body: Annotated[EnableRequest | None, Body()] = None
) -> ProxyView:
    """postStart hook: add the proxy to every LB; returns once every LB lists it active."""
    return await _enable(name, body, service)


@router.post("/proxies/{name}/disable", response_model=DisableResponse, dependencies=GUARDED)
async def disable_proxy(
    name: str, service: ServiceDep, grace_seconds: GraceQuery = None
) -> DisableResponse:
    """preStop hook: stop new traffic, wait for open transactions (or the grace period), remove."""
    return await _disable(name, grace_seconds, service)


# the paper's form of the hooks: /proxy/enable/sip-proxy-0
@router.post(
    "/proxy/enable/{name}", response_model=ProxyView, include_in_schema=False, dependencies=GUARDED
)
async def enable_proxy_paper_form(
    name: str, service: ServiceDep, body: Annotated[EnableRequest | None, Body()] = None
) -> ProxyView:
    return await _enable(name, body, service)


@router.post(
    "/proxy/disable/{name}",
    response_model=DisableResponse,
    include_in_schema=False,
    dependencies=GUARDED,
)
async def disable_proxy_paper_form(
    name: str, service: ServiceDep, grace_seconds: GraceQuery = None
) -> DisableResponse:
    return await _disable(name, grace_seconds, service)
