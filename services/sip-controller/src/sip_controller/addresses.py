"""Proxy names and addresses: validation, parsing and DNS resolution of the platform's hosts."""

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


def normalize_ip(host: str) -> str | None:
    """The canonical text of an IP address (::0001 -> ::1), None for a hostname."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def resolve_all(host: str) -> tuple[str, ...]:
    """Hostname to its IP addresses, in getaddrinfo's order (the first is the one used);
    an IP passes through. Kamailio should not resolve per message, so the table holds IPs."""
    ip = normalize_ip(host)
    if ip is not None:
        return (ip,)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise UnknownProxy(f"cannot resolve '{host}': {exc.strerror}") from None
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class ProxyAddresses:
    sip_uri: str
    http_url: str
