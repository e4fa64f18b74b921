"""Local-mode settings from the environment; the names match the services' and the chart's."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "ims-testbed"


class TestbedSettings(BaseSettings):
    __test__ = False  # not a pytest class
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    testbed_state_dir: Path = Field(default_factory=_default_state_dir)
    kamailio_config_dir: Path = _REPO_ROOT / "kamailio"
    # the chart whose recording rules and adapter/KEDA queries local mode runs too
    chart_dir: Path = _REPO_ROOT / "helm" / "ims-testbed"
    # the runs' Prometheus (Debian's package); on 127.0.0.1, a free port
    prometheus_binary: str = "prometheus"

    sip_domain: str = "testbed.local"
    # set it to use an external DB instead of the embedded SQLite / local MariaDB
    database_url: str | None = None

    lb_address: str = "127.0.0.1"
    lb_sip_port: int = 5060
    lb_http_port: int = 8060

    # proxy i listens on PROXY_ADDRESS_BASE + i (its own loopback address, like a pod IP)
    proxy_address_base: str = "127.0.1.1"
    proxy_sip_port: int = 5060
    proxy_http_port: int = 8080
    dmq_port: int = 5061
    kamailio_children: int = Field(4, ge=1)

    sip_controller_host: str = "127.0.0.1"
    sip_controller_port: int = 8000

    # an analyzer per proxy listens on the proxy's own address (a sidecar shares the pod's IP)
    analyzer_http_port: int = 9101
    scenario_controller_host: str = "127.0.0.1"
    scenario_controller_port: int = 8001
    # client pod PP listens on CLIENT_ADDRESS_BASE + PP (SIP on 5060, its API on 8090)
    client_address_base: str = "127.0.2.1"
    client_sip_port: int = 5060
    client_http_port: int = 8090

    # the local autoscaler's Prometheus metrics (testbed_replicas, testbed_desired_replicas)
    autoscaler_metrics_host: str = "127.0.0.1"
    autoscaler_metrics_port: int = 9190

    mariadb_port: int = 3307
    startup_timeout_seconds: float = 30.0

    def proxy_address(self, index: int) -> str:
        return str(ipaddress.ip_address(self.proxy_address_base) + index)

    def client_address(self, pod: int) -> str:
        return str(ipaddress.ip_address(self.client_address_base) + pod)

    @property
    def scenario_controller_url(self) -> str:
        return f"http://{self.scenario_controller_host}:{self.scenario_controller_port}"

    @property
    def controller_url(self) -> str:
        return f"http://{self.sip_controller_host}:{self.sip_controller_port}"

    @property
    def lb_rpc_url(self) -> str:
        return f"http://{self.lb_address}:{self.lb_http_port}/RPC"
