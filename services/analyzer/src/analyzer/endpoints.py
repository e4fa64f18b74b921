"""`host:port` endpoints, as the settings and the CLI take them."""

from __future__ import annotations

import ipaddress

Endpoint = tuple[str, int]


def parse_endpoint(text: str, what: str = "address") -> Endpoint:
    """'127.0.1.1:5060' -> ('127.0.1.1', 5060); the host must be an IPv4 address.

    Capture filters and packet matching compare raw addresses, so names are refused here
    rather than resolved once and silently going stale.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be IPv4:port (e.g. 127.0.1.1:5060), got {text!r}")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(
            f"{what} must be IPv4:port (e.g. 127.0.1.1:5060); {host!r} is not an IPv4 address"
        ) from None
    return str(address), int(port)


def format_endpoint(endpoint: Endpoint) -> str:
    return f"{endpoint[0]}:{endpoint[1]}"
