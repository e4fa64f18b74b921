"""Request and response bodies of the REST API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EnableRequest(BaseModel):
    """Where the proxy says it is. The addresses come from the platform (PROXY_ADDRESS_SOURCE);
    either field may be left out, and one that is given must equal the platform's (else 403)."""

    model_config = ConfigDict(extra="forbid")

    sip_address: str | None = Field(None, examples=["127.0.1.1:5060"])
    http_address: str | None = Field(None, examples=["127.0.1.1:8080"])


class LoadBalancerView(BaseModel):
    url: str
    flags: str | None = Field(
        None, description="dispatcher.list FLAGS (AX active, IX inactive); null if not listed"
    )
    error: str | None = None


class ProxyView(BaseModel):
    name: str
    state: str
    sip_uri: str
    http_url: str
    dispatcher_flags: int | None = Field(
        None, description="flags of its DB dispatcher row; null: no row"
    )
    loadbalancers: list[LoadBalancerView] = []


class DisableResponse(ProxyView):
    drained: bool
    open_transactions: int
    waited_seconds: float


class RegistrationsView(BaseModel):
    proxy: str
    count: int
    users: list[str]
