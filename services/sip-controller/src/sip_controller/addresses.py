"""Proxy names and addresses: validation, parsing and DNS resolution of the platform's hosts."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

import service_kit
from service_kit import AddressError, HostPort
from sip_controller.errors import InvalidRequest, UnknownProxy

__all__ = [
    "HostPort",
    "ProxyAddresses",
    "normalize_ip",
    "parse_host_port",
    "resolve_all",
    "validate_name",
]


def validate_name(name: str, pattern: str) -> None:
    if not re.fullmatch(pattern, name):
        raise InvalidRequest(f"proxy name '{name}' does not match PROXY_NAME_PATTERN {pattern}")


def parse_host_port(text: str, field: str, scheme: str) -> HostPort:
    """Parse 'host:port', '[v6]:port' or 'scheme:host:port' / 'scheme://host:port' (a request
    body's or the proxy registry's address); a bad one is a 422 naming the field."""
    try:
        return service_kit.parse_host_port(text, field, scheme)
    except AddressError as exc:
        raise InvalidRequest(str(exc)) from None


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
