"""`host:port` as settings, request bodies and command lines give it: one parser, whose errors
name the field and say what is wrong."""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

# RFC 1123 labels: letters, digits and inner hyphens, 1-63 each, 253 in all (no underscore)
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*"
)


class HostPort(NamedTuple):
    """A host (an IP address or a hostname) and a port; unpacks as (host, port)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class AddressError(ValueError):
    """A `host:port` that is not one; str() is `field: problem`."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_host_port(text: str, field: str, scheme: str | None = None) -> HostPort:
    """'host:port', '[v6]:port' (or a bare v6 address before its last colon) -> HostPort;
    with a scheme, also 'scheme:host:port' and 'scheme://host:port/'.

    The host must be an IP address or a hostname, the port 1-65535; blanks around are ignored.
    Errors quote the whole text given.
    """
    raw = text.strip()
    if scheme is not None:
        for prefix in (f"{scheme}://", f"{scheme}:"):
            if raw.lower().startswith(prefix):
                raw = raw[len(prefix) :]
                break
        raw = raw.rstrip("/")
    if raw.startswith("["):
        host, closed, rest = raw[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not closed:
            raise AddressError(field, f"'{text}' has an unclosed IPv6 bracket")
    else:
        host, _, port_text = raw.rpartition(":")
    if not host or not port_text:
        raise AddressError(field, f"'{text}' is not host:port")
    if not (port_text.isascii() and port_text.isdigit()):
        raise AddressError(field, f"port '{port_text}' in '{text}' is not a number")
    port = int(port_text)
    if not 0 < port < 65536:
        raise AddressError(field, f"port {port} in '{text}' is out of range 1-65535")
    if not is_ip(host) and not _HOSTNAME.fullmatch(host):
        raise AddressError(
            field, f"host '{host}' in '{text}' is neither an IP address nor a hostname"
        )
    return HostPort(host, port)
