"""Each process's environment: its own settings and the few variables every program needs, never
the rest of the caller's environment (no token, no stray setting of another service).

A Python service's settings are its `config.Settings` (the launch contract: importing it is
allowed, its app is not) built with the values this testbed chooses and written out by
`service_kit.environment.to_environment`. A setting the testbed does not choose is still read
from the environment of `testbed up` (pydantic-settings does that when the object is built), so
`DRAIN_GRACE_SECONDS=5 testbed up` reaches the sip-controller, as docs/local-mode.md says, and a
bad value is refused before anything starts. Kamailio has no Settings class: `KamailioSettings`
lists what kamailio/entrypoint.sh reads. The services' config modules are imported when a
component is built, not with this module: they pull in FastAPI, which `testbed status` needs not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from testbed.config import TestbedSettings

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    import analyzer.config
    import scenario_controller.config
    import sip_client.config
    import sip_controller.config

S = TypeVar("S", bound="BaseSettings")

# what any program may need of the caller's environment: where programs are (kamailio, awk,
# mariadbd), the home directory and user, the locale, the time zone, where temporary files go,
# the TLS roots (an external DATABASE_URL over TLS);
# PYTHONPATH and VIRTUAL_ENV for a caller that relies on them rather than on sys.executable's
# own environment (uv run, an installed venv need neither); PYTHONUNBUFFERED keeps a service's
# prints in its log as they happen when the caller asked for that
BASE_VARIABLES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "PYTHONUNBUFFERED",
)

# what kamailio/entrypoint.sh reads that local mode does not choose: passed on from the
# caller's environment when set there (the Kamailio counterpart of a service's own settings)
KAMAILIO_TUNABLES = (
    "AUTH_SECRET",
    "AUTH_ALGORITHM",
    "REGISTER_MAX_EXPIRES",
    "KAMAILIO_SHM_MB",
    "KAMAILIO_PKG_MB",
    "KAMAILIO_LOG_LEVEL",
)


class SettingsError(ValueError):
    """A component's settings do not validate; the message names it and each variable."""


def base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The BASE_VARIABLES of `source` (default: this process's environment) that are set."""
    source = os.environ if source is None else source
    return {name: source[name] for name in BASE_VARIABLES if name in source}


def service_environment(settings: BaseSettings) -> dict[str, str]:
    """A Python service's whole environment: the base and its settings."""
    from service_kit.environment import to_environment

    return {**base_environment(), **to_environment(settings)}


def _build(component: str, settings_class: type[S], **values: Any) -> S:
    """`settings_class` with `values`, the rest from this process's environment."""
    from pydantic import ValidationError

    from service_kit import error_lines

    try:
        return settings_class(**values)
    except ValidationError as exc:
        raise SettingsError(f"{component}: " + "; ".join(error_lines(exc))) from None


# -- the Python services: each one's Settings with what this testbed chooses -----------------


def controller_settings(
    s: TestbedSettings, database_url: str, registry_file: Path, api_token: str | None
) -> sip_controller.config.Settings:
    from sip_controller.config import Settings

    return _build(
        "sip-controller",
        Settings,
        # addresses of the proxies come from what this testbed started, not the request
        proxy_address_source="registry",
        proxy_registry_file=registry_file,
        database_url=database_url,
        sip_domain=s.sip_domain,
        loadbalancer_rpc_urls=s.lb_rpc_url,
        sip_controller_host=s.sip_controller_host,
        sip_controller_port=s.sip_controller_port,
        proxy_sip_port=s.proxy_sip_port,
        proxy_http_port=s.proxy_http_port,
        api_token=api_token,
    )


def analyzer_settings(
    s: TestbedSettings, proxy_index: int, proxy_name: str
) -> analyzer.config.Settings:
    """No API_TOKEN: the analyzer serves only GET routes and calls nothing that needs it, and a
    process with raw packet capture is better off without the token (its Settings has none)."""
    from analyzer.config import Settings

    address = s.proxy_address(proxy_index)
    return _build(
        "analyzer",
        Settings,
        analyzer_proxy_address=f"{address}:{s.proxy_sip_port}",
        analyzer_proxy_name=proxy_name,
        analyzer_interface="lo",
        analyzer_http_host=address,
        analyzer_http_port=s.analyzer_http_port,
    )


def scenario_controller_settings(
    s: TestbedSettings, state_dir: Path, api_token: str | None
) -> scenario_controller.config.Settings:
    from scenario_controller.config import Settings

    return _build(
        "scenario-controller",
        Settings,
        scenario_controller_host=s.scenario_controller_host,
        scenario_controller_port=s.scenario_controller_port,
        scenario_dir=state_dir / "scenarios",
        runs_dir=state_dir / "runs",
        sip_controller_url=s.controller_url,
        api_token=api_token,
    )


def client_settings(
    s: TestbedSettings, pod: int, phones: int, api_token: str | None, log_level: str
) -> sip_client.config.Settings:
    from sip_client.config import Settings

    address = s.client_address(pod)
    return _build(
        f"sip-client-{pod:02d}",
        Settings,
        pod_id=f"{pod:02d}",
        phones=phones,
        sip_domain=s.sip_domain,
        sip_client_address=address,
        sip_client_port=s.client_sip_port,
        sip_client_http_host=address,
        sip_client_http_port=s.client_http_port,
        outbound_proxy=f"{s.lb_address}:{s.lb_sip_port}",
        scenario_controller_url=(
            f"ws://{s.scenario_controller_host}:{s.scenario_controller_port}/ws/clients"
        ),
        api_token=api_token,
        log_level=log_level,
    )


def client_log_level(source: Mapping[str, str] | None = None) -> str:
    """The pods' LOG_LEVEL: SIP_CLIENT_LOG_LEVEL of the caller, else warning (a pod of 100
    phones logs every call at info)."""
    source = os.environ if source is None else source
    return source.get("SIP_CLIENT_LOG_LEVEL", "warning")


# -- Kamailio ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KamailioSettings:
    """What local mode sets for kamailio/entrypoint.sh (docs/kamailio.md lists every variable)."""

    sip_domain: str
    sip_address: str
    sip_port: int
    http_port: int
    dmq_port: int
    database_url: str
    kamailio_children: int
    kamailio_run_dir: Path
    api_token: str | None
    # a proxy's: the running peer it joins the DMQ bus through, and the LB as its outbound proxy
    dmq_notification_address: str | None = None
    outbound_proxy: str | None = None
    # KAMAILIO_TUNABLES set in the caller's environment
    tunables: Mapping[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, str]:
        values = {
            "SIP_DOMAIN": self.sip_domain,
            "SIP_ADDRESS": self.sip_address,
            "SIP_PORT": str(self.sip_port),
            "HTTP_PORT": str(self.http_port),
            "DMQ_PORT": str(self.dmq_port),
            "DATABASE_URL": self.database_url,
            "KAMAILIO_CHILDREN": str(self.kamailio_children),
            "KAMAILIO_RUN_DIR": str(self.kamailio_run_dir),
            "API_TOKEN": self.api_token,
            "DMQ_NOTIFICATION_ADDRESS": self.dmq_notification_address,
            "OUTBOUND_PROXY": self.outbound_proxy,
        }
        return {**self.tunables, **{k: v for k, v in values.items() if v is not None}}


def kamailio_tunables(source: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if source is None else source
    return {name: source[name] for name in KAMAILIO_TUNABLES if name in source}


def loadbalancer_settings(
    s: TestbedSettings, database_url: str, run_dir: Path, api_token: str | None
) -> KamailioSettings:
    return KamailioSettings(
        sip_domain=s.sip_domain,
        sip_address=s.lb_address,
        sip_port=s.lb_sip_port,
        http_port=s.lb_http_port,
        dmq_port=s.dmq_port,
        database_url=database_url,
        kamailio_children=s.kamailio_children,
        kamailio_run_dir=run_dir,
        api_token=api_token,
        tunables=kamailio_tunables(),
    )


def proxy_settings(
    s: TestbedSettings,
    index: int,
    database_url: str,
    run_dir: Path,
    api_token: str | None,
    peer_dmq: str | None,
) -> KamailioSettings:
    """`peer_dmq`: a running proxy's DMQ address; a new proxy joins the bus through it and
    pulls the location table (None: the first one notifies itself)."""
    address = s.proxy_address(index)
    return KamailioSettings(
        sip_domain=s.sip_domain,
        sip_address=address,
        sip_port=s.proxy_sip_port,
        http_port=s.proxy_http_port,
        dmq_port=s.dmq_port,
        database_url=database_url,
        kamailio_children=s.kamailio_children,
        kamailio_run_dir=run_dir,
        api_token=api_token,
        dmq_notification_address=peer_dmq or f"sip:{address}:{s.dmq_port}",
        outbound_proxy=f"sip:{s.lb_address}:{s.lb_sip_port}",
        tunables=kamailio_tunables(),
    )


def kamailio_environment(settings: KamailioSettings) -> dict[str, str]:
    return {**base_environment(), **settings.variables()}
