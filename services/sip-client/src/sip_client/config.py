"""Settings from the environment (the same names locally, in compose and in the chart)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from service_kit import ServiceSettings, parse_host_port


class Settings(ServiceSettings):
    # each field is read from its name in capitals (service_kit, docs/configuration.md)
    listen_fields = ("sip_client_http_host", "sip_client_http_port")

    pod_id: str = Field("00", description="two-digit pod id; the phones are PP00..PP(N-1)")
    phones: int = Field(100, ge=1, le=100)
    sip_domain: str = "testbed.local"
    subscriber_password_template: str = "{username}"

    # where this pod's UDP socket listens (port 0: any free port) and where requests go
    sip_client_address: str = "127.0.0.1"
    sip_client_port: int = Field(0, ge=0, lt=65536)
    outbound_proxy: str = Field("127.0.0.1:5060", description="host:port of the SIP load balancer")

    register_expires: int = Field(3600, ge=60)
    reregister_interval_seconds: float = Field(3000.0, gt=0)
    register_retry_seconds: float = Field(
        10.0, ge=0, description="a failed registration is tried again after this (0: never)"
    )
    register_spread_seconds: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="the phones' first REGISTERs are spread evenly over this (0: all at once)",
    )
    register_on_start: bool = False
    ring_delay_ms: int = Field(0, ge=0)
    default_hold_ms: int = Field(0, ge=0)
    call_timeout_seconds: float = Field(32.0, gt=0)
    sip_t1_ms: int = Field(500, gt=0)
    sip_t2_ms: int = Field(4000, gt=0)
    sip_t4_ms: int = Field(5000, gt=0)
    call_records_limit: int = Field(1_000_000, ge=1)
    socket_buffer_bytes: int = Field(8 * 1024 * 1024, ge=65536)

    scenario_controller_url: str = Field(
        "", description="ws:// URL of the controller's client hub; empty: none"
    )
    stats_interval_seconds: float = Field(1.0, gt=0)
    # the bearer token (env API_TOKEN): required by this pod's POST routes, and sent in the
    # handshake to the controller's /ws/clients, which refuses a pod without it
    api_token: str | None = None

    sip_client_http_host: str = "127.0.0.1"
    sip_client_http_port: int = Field(8090, gt=0, lt=65536)
    log_level: str = "info"

    @field_validator("pod_id")
    @classmethod
    def _two_digits(cls, value: str) -> str:
        if len(value) != 2 or not value.isdigit():
            raise ValueError(f"POD_ID must be two digits 00-99 (zero-padded), got {value!r}")
        return value

    @field_validator("outbound_proxy")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_host_port(value, "OUTBOUND_PROXY")  # an AddressError names it and the problem
        return value

    @model_validator(mode="after")
    def _token_for_the_controller(self) -> Settings:
        if self.scenario_controller_url and not self.api_token:
            raise ValueError(
                "SCENARIO_CONTROLLER_URL is set but API_TOKEN is not: the scenario controller "
                "refuses a pod whose handshake does not carry the API token"
            )
        return self

    @property
    def outbound(self) -> tuple[str, int]:
        host, port = parse_host_port(self.outbound_proxy, "OUTBOUND_PROXY")
        return host, port  # a plain tuple: the socket's address
