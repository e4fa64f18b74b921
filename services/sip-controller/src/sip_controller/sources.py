"""The adapters that ask the platform where a proxy is (PROXY_ADDRESS_SOURCE).

Each fetches one answer and hands it to the pure functions of `sip_controller.platform`:
the template needs nothing, the registry file is re-read on every enable (the local testbed
rewrites it before each), the Kubernetes pod is read through the in-cluster API.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import anyio
import httpx

from sip_controller.config import Settings
from sip_controller.platform import (
    PlatformProxy,
    PlatformUnavailable,
    from_pod,
    from_registry,
    from_template,
    parse_selector,
    pod_path,
)


class AddressSource(Protocol):
    async def lookup(self, name: str) -> PlatformProxy: ...


class TemplateSource:
    def __init__(self, host_template: str, sip_port: int, http_port: int) -> None:
        self._template = host_template
        self._sip_port = sip_port
        self._http_port = http_port

    async def lookup(self, name: str) -> PlatformProxy:
        return from_template(name, self._template, self._sip_port, self._http_port)


class RegistrySource:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def lookup(self, name: str) -> PlatformProxy:
        try:
            text = await anyio.to_thread.run_sync(self.path.read_text)
        except OSError as exc:
            raise PlatformUnavailable(
                f"cannot read the proxy registry {self.path}: {exc.strerror or exc}"
            ) from None
        return from_registry(name, text, str(self.path))


class KubernetesSource:
    """GET /api/v1/namespaces/<ns>/pods/<name> with the service account's token (re-read on
    every lookup: projected tokens rotate) and, over https, the service account's CA."""

    def __init__(self, settings: Settings) -> None:
        self._selector = parse_selector(settings.proxy_pod_selector)
        self.namespace = settings.pod_namespace or _read(
            settings.kubernetes_namespace_file, "the service account's namespace (or POD_NAMESPACE)"
        )
        self._base = settings.kubernetes_api_url.rstrip("/")
        self._token_file = settings.kubernetes_token_file
        self._sip_port = settings.proxy_sip_port
        self._http_port = settings.proxy_http_port
        self._timeout = settings.rpc_timeout_seconds
        verify: ssl.SSLContext | bool = False
        if self._base.startswith("https://"):
            ca = settings.kubernetes_ca_file
            if not ca.is_file():
                raise ValueError(
                    f"KUBERNETES_CA_FILE {ca} does not exist (the API is {self._base})"
                )
            verify = ssl.create_default_context(cafile=str(ca))
        # not the shared client: this one trusts only the cluster's CA
        self._client = httpx.AsyncClient(verify=verify, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def lookup(self, name: str) -> PlatformProxy:
        token = await anyio.to_thread.run_sync(
            lambda: _read(self._token_file, "the service account token")
        )
        path = pod_path(quote(self.namespace, safe=""), quote(name, safe=""))
        try:
            response = await self._client.get(
                f"{self._base}{path}",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise PlatformUnavailable(
                f"the Kubernetes API {self._base} is unreachable: {exc!r}"
            ) from None
        return from_pod(
            name,
            self.namespace,
            response.status_code,
            response.content,
            self._selector,
            self._sip_port,
            self._http_port,
        )


def _read(path: Path, what: str) -> str:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise PlatformUnavailable(f"cannot read {what} from {path}: {exc.strerror}") from None
    if not text:
        raise PlatformUnavailable(f"{what} in {path} is empty")
    return text


def source_for(settings: Settings) -> AddressSource:
    """The source PROXY_ADDRESS_SOURCE names (Settings checked that its settings are there)."""
    if settings.proxy_address_source == "registry":
        assert settings.proxy_registry_file is not None
        return RegistrySource(settings.proxy_registry_file)
    if settings.proxy_address_source == "kubernetes":
        return KubernetesSource(settings)
    return TemplateSource(
        settings.proxy_host_template, settings.proxy_sip_port, settings.proxy_http_port
    )
