"""Settings, read from the environment (the same names locally, in compose and in the chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

import api_token
from service_kit import ServiceSettings

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class Settings(ServiceSettings):
    # each field is read from its name in capitals (service_kit, docs/configuration.md); a
    # rejected API_TOKEN (or DATABASE_URL) never reaches the log
    listen_fields = ("sip_controller_host", "sip_controller_port")

    database_url: str = "sqlite:////var/lib/testbed/testbed.sqlite"
    sip_domain: str = "testbed.local"
    subscriber_first: int = Field(0, ge=0)
    subscriber_last: int = Field(9999, ge=0)
    subscriber_password_template: str = "{username}"

    # comma-separated JSON-RPC URLs of every load balancer
    loadbalancer_rpc_urls: str = "http://127.0.0.1:8060/RPC"

    # API_TOKEN: required by every state-changing route and sent to every Kamailio's /RPC;
    # unset, the controller refuses every write (503) and talks to Kamailio without a token
    api_token: str | None = None

    # where a proxy's addresses come from (never from the enable body, which may only repeat
    # them): template (PROXY_HOST_TEMPLATE and the ports), registry (PROXY_REGISTRY_FILE,
    # written by the local testbed), kubernetes (the pod of that name, PROXY_POD_SELECTOR)
    proxy_address_source: Literal["template", "registry", "kubernetes"] = "template"
    proxy_registry_file: Path | None = None
    # kubernetes: the namespace (default: the service account's) and the label selector a
    # proxy pod must match, e.g. app.kubernetes.io/component=sip-proxy,app.kubernetes.io/instance=x
    pod_namespace: str | None = None
    proxy_pod_selector: str = ""
    # the in-cluster API; overridable so that a test can point it at a local fake API server
    kubernetes_api_url: str = "https://kubernetes.default.svc"
    kubernetes_token_file: Path = SERVICE_ACCOUNT_DIR / "token"
    kubernetes_ca_file: Path = SERVICE_ACCOUNT_DIR / "ca.crt"
    kubernetes_namespace_file: Path = SERVICE_ACCOUNT_DIR / "namespace"

    # template: how a proxy name is turned into its host
    proxy_host_template: str = "{name}"
    proxy_sip_port: int = Field(5060, gt=0, lt=65536)
    proxy_http_port: int = Field(8080, gt=0, lt=65536)
    proxy_name_pattern: str = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

    drain_grace_seconds: float = Field(30.0, ge=0)
    enable_timeout_seconds: float = Field(15.0, gt=0)
    sync_timeout_seconds: float = Field(10.0, ge=0)
    # a proxy that refuses connections leaves the set on the first check: within this interval;
    # one that answers slowly or with errors (busy) after the threshold: 6 s, as before at 2 s x 3
    health_check_interval_seconds: float = Field(1.0, gt=0)
    health_failure_threshold: int = Field(6, ge=1)
    # a frozen proxy still accepts TCP connections (the kernel does that): keep this short
    health_check_timeout_seconds: float = Field(1.0, gt=0)
    rpc_timeout_seconds: float = Field(5.0, gt=0)
    # how long an operation waits out the DB being unreachable or locked before it fails (503)
    database_outage_seconds: float = Field(60.0, ge=0)

    sip_controller_host: str = "127.0.0.1"
    sip_controller_port: int = Field(8000, gt=0, lt=65536)
    log_level: str = "info"

    @field_validator("loadbalancer_rpc_urls")
    @classmethod
    def _urls_not_blank(cls, value: str) -> str:
        if not [u for u in value.split(",") if u.strip()]:
            raise ValueError("LOADBALANCER_RPC_URLS needs at least one URL")
        return value

    @field_validator("api_token")
    @classmethod
    def _token_valid(cls, value: str | None) -> str | None:
        # API_TOKEN= (empty) counts as unset; anything else must be a usable token
        return api_token.validate(value) if value else None

    @model_validator(mode="after")
    def _source_complete(self) -> Settings:
        if self.proxy_address_source == "registry" and self.proxy_registry_file is None:
            raise ValueError("PROXY_ADDRESS_SOURCE=registry needs PROXY_REGISTRY_FILE")
        if self.proxy_address_source == "kubernetes" and not self.proxy_pod_selector.strip():
            # without it any pod of the namespace (the DB, the controller) could be "a proxy"
            raise ValueError("PROXY_ADDRESS_SOURCE=kubernetes needs PROXY_POD_SELECTOR")
        return self

    @property
    def loadbalancer_urls(self) -> list[str]:
        return [u.strip() for u in self.loadbalancer_rpc_urls.split(",") if u.strip()]
