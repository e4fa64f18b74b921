"""Settings, read from the environment (the same names locally, in compose and in the chart)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = "sqlite:////var/lib/testbed/testbed.sqlite"
    sip_domain: str = "testbed.local"
    subscriber_first: int = Field(0, ge=0)
    subscriber_last: int = Field(9999, ge=0)
    subscriber_password_template: str = "{username}"

    # comma-separated JSON-RPC URLs of every load balancer
    loadbalancer_rpc_urls: str = "http://127.0.0.1:8060/RPC"

    # how a proxy name is turned into an address when the hook does not give one
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

    @property
    def loadbalancer_urls(self) -> list[str]:
        return [u.strip() for u in self.loadbalancer_rpc_urls.split(",") if u.strip()]
