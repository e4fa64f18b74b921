"""`host:port` endpoints, as the settings and the CLI take them."""

from __future__ import annotations

import ipaddress

from service_kit import AddressError, parse_host_port

Endpoint = tuple[str, int]
EXPECTED = "must be IPv4:port (e.g. 127.0.1.1:5060)"


def parse_endpoint(text: str, what: str = "address") -> Endpoint:
    """'127.0.1.1:5060' -> ('127.0.1.1', 5060); the host must be an IPv4 address.

    Capture filters and packet matching compare raw addresses, so names are refused here
    rather than resolved once and silently going stale.
    """
    try:
        host, port = parse_host_port(text, what)
    except AddressError as exc:
        raise ValueError(f"{what} {EXPECTED}: {exc.problem}") from None
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{what} {EXPECTED}; {host!r} is not an IPv4 address") from None
    return str(address), port


def format_endpoint(endpoint: Endpoint) -> str:
    return f"{endpoint[0]}:{endpoint[1]}"
