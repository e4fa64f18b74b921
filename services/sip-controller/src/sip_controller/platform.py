"""Where a proxy is according to the platform, and whether an enable body agrees (sans-I/O).

A proxy's addresses come from the platform, never from the request: the enable body may only
repeat them. Each source's answer (the template, the registry file's text, the Kubernetes
API's answer for the pod) is turned into a PlatformProxy here, and `settle` checks the body
against it. The adapters that fetch the answers are in `sip_controller.sources`.

A refusal is raised before anything else happens: no DB write, no load balancer reload, no
request to the claimed address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sip_controller.addresses import HostPort, ProxyAddresses, normalize_ip, parse_host_port
from sip_controller.errors import ControllerError, InvalidRequest, ProxyNotReady


class AddressRefused(ControllerError):
    """The name is not a proxy of this testbed, or the body names another address."""

    status_code = 403


class PlatformUnavailable(ControllerError):
    """The platform could not be asked (unreadable or malformed registry, API error)."""

    status_code = 503


@dataclass(frozen=True)
class PlatformProxy:
    """One proxy as the platform knows it; `source` says who said so, for messages."""

    name: str
    sip: HostPort
    http: HostPort
    source: str


# -- template ---------------------------------------------------------------------------------


def from_template(name: str, host_template: str, sip_port: int, http_port: int) -> PlatformProxy:
    """PROXY_HOST_TEMPLATE with the (already validated) name, and the configured ports."""
    host = host_template.format(name=name)
    return PlatformProxy(
        name, HostPort(host, sip_port), HostPort(host, http_port), f"PROXY_HOST_TEMPLATE ({host})"
    )


# -- registry file ----------------------------------------------------------------------------


def from_registry(name: str, text: str, where: str) -> PlatformProxy:
    """The entry `name` of the registry file's text:
    {"proxies": {"<name>": {"sip_address": "h:p", "http_address": "h:p"}}}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlatformUnavailable(f"proxy registry {where} is not JSON: {exc}") from None
    proxies = data.get("proxies") if isinstance(data, dict) else None
    if not isinstance(proxies, dict):
        raise PlatformUnavailable(f"proxy registry {where} has no 'proxies' object")
    entry = proxies.get(name)
    if entry is None:
        raise AddressRefused(
            f"'{name}' is not a proxy of this testbed: not in the proxy registry {where}"
        )
    if not isinstance(entry, dict):
        raise PlatformUnavailable(f"proxy registry {where}: entry '{name}' is not an object")
    fields: dict[str, HostPort] = {}
    for field, scheme in (("sip_address", "sip"), ("http_address", "http")):
        value = entry.get(field)
        if not isinstance(value, str):
            raise PlatformUnavailable(f"proxy registry {where}: entry '{name}' has no {field}")
        try:
            fields[field] = parse_host_port(value, field, scheme)
        except InvalidRequest as exc:
            raise PlatformUnavailable(
                f"proxy registry {where}: entry '{name}': {exc.detail}"
            ) from None
    return PlatformProxy(
        name, fields["sip_address"], fields["http_address"], f"the proxy registry {where}"
    )


# -- Kubernetes -------------------------------------------------------------------------------


def parse_selector(text: str) -> dict[str, str]:
    """An equality-based label selector, 'k=v,k2==v2', as a dict. Set-based forms (in, !=,
    a bare key) are refused: the controller checks the labels itself and must not guess."""
    labels: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "!=" in part or "=" not in part:
            raise ValueError(
                f"PROXY_POD_SELECTOR: '{part}' is not key=value (only equality is supported)"
            )
        key, _, value = part.partition("==") if "==" in part else part.partition("=")
        key, value = key.strip(), value.strip()
        if not key:
            raise ValueError(f"PROXY_POD_SELECTOR: '{part}' has no label key")
        labels[key] = value
    if not labels:
        raise ValueError("PROXY_POD_SELECTOR is empty")
    return labels


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def from_pod(
    name: str,
    namespace: str,
    status_code: int,
    body: bytes,
    selector: Mapping[str, str],
    sip_port: int,
    http_port: int,
) -> PlatformProxy:
    """The Kubernetes API's answer to GET pod_path(namespace, name), judged."""
    where = f"pod {namespace}/{name}"
    if status_code == 404:
        raise AddressRefused(
            f"'{name}' is not a proxy of this testbed: no pod '{name}' in namespace '{namespace}'"
        )
    if status_code in (401, 403):
        raise PlatformUnavailable(
            f"the Kubernetes API refused to read {where} (HTTP {status_code}): "
            "the controller's service account needs get on pods in its namespace"
        )
    if status_code != 200:
        raise PlatformUnavailable(f"the Kubernetes API answered HTTP {status_code} for {where}")
    try:
        pod = json.loads(body)
    except ValueError:
        raise PlatformUnavailable(f"the Kubernetes API's answer for {where} is not JSON") from None
    metadata = _object(pod, "metadata")
    labels = _object(metadata, "labels")
    missing = [f"{k}={v}" for k, v in selector.items() if labels.get(k) != v]
    if missing:
        raise AddressRefused(
            f"'{name}' is not a proxy of this testbed: {where} lacks the label(s) "
            f"{', '.join(missing)} of PROXY_POD_SELECTOR"
        )
    pod_ip = _object(pod, "status").get("podIP")
    if not isinstance(pod_ip, str) or normalize_ip(pod_ip) is None:
        raise ProxyNotReady(f"{where} has no podIP yet")
    ip = str(normalize_ip(pod_ip))
    return PlatformProxy(name, HostPort(ip, sip_port), HostPort(ip, http_port), where)


def _object(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


# -- the body against the platform ------------------------------------------------------------


def settle(
    proxy: PlatformProxy,
    sip_claim: HostPort | None,
    http_claim: HostPort | None,
    ips: Mapping[str, Sequence[str]],
) -> ProxyAddresses:
    """The addresses to put in the dispatcher table, or AddressRefused naming the mismatch.

    `ips` maps each of the platform's hosts to what it resolves to (the first is used). A
    claimed address matches when its port is the platform's and its host is the platform's
    host, or an IP that host resolves to. A claimed hostname that differs is refused without
    being resolved: nothing is looked up for an address the platform did not give.
    """
    sip = _settle_one(proxy, "sip_address", sip_claim, proxy.sip, ips)
    http = _settle_one(proxy, "http_address", http_claim, proxy.http, ips)
    return ProxyAddresses(sip_uri=f"sip:{sip}", http_url=f"http://{http}")


def _settle_one(
    proxy: PlatformProxy,
    field: str,
    claim: HostPort | None,
    known: HostPort,
    ips: Mapping[str, Sequence[str]],
) -> HostPort:
    resolved = ips[known.host]
    if claim is None:
        return HostPort(resolved[0], known.port)
    claimed_ip = normalize_ip(claim.host)
    if claim.port == known.port:
        if claimed_ip is not None and claimed_ip in resolved:
            return HostPort(claimed_ip, known.port)
        if claimed_ip is None and claim.host.lower() == known.host.lower():
            return HostPort(resolved[0], known.port)
    raise AddressRefused(
        f"'{proxy.name}': {field} {claim} is not this proxy's address: {proxy.source} gives {known}"
    )
