"""Settings from the environment (ANALYZER_*), the same names locally and in a sidecar."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from analyzer.capture import DEFAULT_BACKEND, Backend
from analyzer.endpoints import Endpoint, parse_endpoint
from service_kit import ServiceSettings

# 0.5 ms to 10 s, dense around the 1000 ms QoS target so its p99 is resolvable
DEFAULT_BUCKETS = (
    "0.0005,0.001,0.002,0.005,0.01,0.02,0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,"
    "1.0,1.1,1.25,1.5,2.0,2.5,5.0,10.0"
)


def parse_buckets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(
            f"ANALYZER_BUCKETS must be comma-separated seconds, got {text!r}"
        ) from None
    if not values:
        raise ValueError("ANALYZER_BUCKETS needs at least one bucket bound")
    if any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"ANALYZER_BUCKETS must be positive and strictly increasing, got {text!r}")
    return values


class Settings(ServiceSettings):
    # each field is read from its name in capitals (service_kit, docs/configuration.md); every
    # name starts with ANALYZER_ because bare ones (INTERFACE, DEBUG) would say nothing
    listen_fields = ("analyzer_http_host", "analyzer_http_port")

    analyzer_proxy_address: str = Field(
        "127.0.1.1:5060", description="IPv4:port of the proxy's SIP socket"
    )
    analyzer_proxy_name: str = Field(
        "", description="the proxy's name in /samples; empty: its address"
    )
    analyzer_interface: str = "lo"
    analyzer_backend: Backend = DEFAULT_BACKEND
    analyzer_pcap_file: Path | None = Field(
        None, description="analyze this pcap/pcapng file instead of capturing live"
    )
    analyzer_socket_buffer_bytes: int = Field(32 << 20, ge=65536)
    analyzer_pair_timeout_seconds: float = Field(32.0, gt=0)
    analyzer_buckets: str = DEFAULT_BUCKETS
    analyzer_samples_limit: int = Field(1_000_000, ge=1)
    analyzer_debug: bool = False

    analyzer_http_host: str = "127.0.0.1"
    analyzer_http_port: int = Field(9101, gt=0, lt=65536)
    analyzer_log_level: str = "info"

    @field_validator("analyzer_proxy_address")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        parse_endpoint(value, "ANALYZER_PROXY_ADDRESS")
        return value

    @field_validator("analyzer_buckets")
    @classmethod
    def _buckets(cls, value: str) -> str:
        parse_buckets(value)
        return value

    @field_validator("analyzer_pcap_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def proxy(self) -> Endpoint:
        return parse_endpoint(self.analyzer_proxy_address, "ANALYZER_PROXY_ADDRESS")

    @property
    def proxy_label(self) -> str:
        return self.analyzer_proxy_name or self.analyzer_proxy_address

    @property
    def bucket_bounds(self) -> tuple[float, ...]:
        return parse_buckets(self.analyzer_buckets)
