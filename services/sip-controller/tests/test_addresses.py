import re

import pytest

from sip_controller.addresses import parse_host_port, proxy_addresses, validate_name
from sip_controller.errors import InvalidRequest, UnknownProxy

PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port"),
    [
        ("127.0.1.1:5060", "sip", "127.0.1.1", 5060),
        ("sip:127.0.1.1:5060", "sip", "127.0.1.1", 5060),
        ("http://10.0.0.7:8080/", "http", "10.0.0.7", 8080),
        ("[::1]:5060", "sip", "::1", 5060),
        ("sip-proxy-0.sip-proxy.ims.svc:5060", "sip", "sip-proxy-0.sip-proxy.ims.svc", 5060),
    ],
)
def test_parse_host_port(text, scheme, host, port):
    parsed = parse_host_port(text, "field", scheme)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("127.0.0.1", "is not host:port"),
        (":5060", "is not host:port"),
        ("h:0", "out of range"),
        ("h:65536", "out of range"),
        ("h:http", "is not a number"),
        ("under_score:5060", "neither an IP address nor a hostname"),
        ("[::1:5060", "unclosed IPv6 bracket"),
    ],
)
def test_parse_host_port_names_the_problem(text, reason):
    with pytest.raises(InvalidRequest, match=reason) as info:
        parse_host_port(text, "sip_address", "sip")
    assert info.value.detail.startswith("sip_address:")
    assert info.value.status_code == 422


@pytest.mark.parametrize("name", ["sip-proxy-0", "p", "a1"])
def test_valid_names(name):
    validate_name(name, PATTERN)


@pytest.mark.parametrize("name", ["Sip-Proxy", "-x", "x-", "a_b", "", "a" * 64])
def test_invalid_names(name):
    with pytest.raises(InvalidRequest, match="PROXY_NAME_PATTERN"):
        validate_name(name, PATTERN)


def test_addresses_from_the_body():
    addresses = proxy_addresses("sip-proxy-3", "127.0.1.4:5070", None, "{name}", 5060, 8080)
    # the HTTP address defaults to the SIP host with the configured port
    assert addresses.sip_uri == "sip:127.0.1.4:5070"
    assert addresses.http_url == "http://127.0.1.4:8080"


def test_addresses_from_the_name_are_resolved():
    addresses = proxy_addresses("localhost", None, None, "{name}", 5060, 8080)
    assert addresses.sip_uri in ("sip:127.0.0.1:5060", "sip:[::1]:5060")


def test_unresolvable_name_is_unknown():
    with pytest.raises(UnknownProxy, match=re.escape("cannot resolve 'sip-proxy-0.invalid'")):
        proxy_addresses("sip-proxy-0", None, None, "{name}.invalid", 5060, 8080)
