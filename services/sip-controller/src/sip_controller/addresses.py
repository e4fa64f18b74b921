"""Proxy names and addresses: validation and resolution into what the dispatcher table holds."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from sip_controller.errors import InvalidRequest, UnknownProxy

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def validate_name(name: str, pattern: str) -> None:
    if not re.fullmatch(pattern, name):
        raise InvalidRequest(f"proxy name '{name}' does not match PROXY_NAME_PATTERN {pattern}")


def parse_host_port(text: str, field: str, scheme: str) -> HostPort:
    """Parse 'host:port', '[v6]:port' or 'scheme:host:port' / 'scheme://host:port'."""
    raw = text.strip()
    for prefix in (f"{scheme}://", f"{scheme}:"):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix) :]
            break
    raw = raw.rstrip("/")
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep:
            raise InvalidRequest(f"{field}: '{text}' has an unclosed IPv6 bracket")
    else:
        host, _, port_text = raw.rpartition(":")
    if not host or not port_text:
        raise InvalidRequest(f"{field}: '{text}' is not host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise InvalidRequest(f"{field}: port '{port_text}' in '{text}' is not a number") from None
    if not 0 < port < 65536:
        raise InvalidRequest(f"{field}: port {port} in '{text}' is out of range 1-65535")
    if not _is_ip(host) and not _HOSTNAME.match(host):
        raise InvalidRequest(
            f"{field}: host '{host}' in '{text}' is neither an IP address nor a hostname"
        )
    return HostPort(host, port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str) -> str:
    """Hostname to IP address (Kamailio should not resolve per message); IPs pass through."""
    if _is_ip(host):
        return host
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise UnknownProxy(f"cannot resolve '{host}': {exc.strerror}") from None
    return str(infos[0][4][0])


@dataclass(frozen=True)
class ProxyAddresses:
    sip_uri: str
    http_url: str


def proxy_addresses(
    name: str,
    sip_address: str | None,
    http_address: str | None,
    host_template: str,
    sip_port: int,
    http_port: int,
) -> ProxyAddresses:
    """The proxy's SIP URI and HTTP base URL: from the hook's body, else from its name."""
    default_host = host_template.format(name=name)
    if sip_address:
        sip = parse_host_port(sip_address, "sip_address", "sip")
    else:
        sip = HostPort(default_host, sip_port)
    if http_address:
        http = parse_host_port(http_address, "http_address", "http")
    else:
        http = HostPort(sip.host if sip_address else default_host, http_port)
    sip = HostPort(resolve(sip.host), sip.port)
    http = HostPort(resolve(http.host), http.port)
    return ProxyAddresses(sip_uri=f"sip:{sip}", http_url=f"http://{http}")
