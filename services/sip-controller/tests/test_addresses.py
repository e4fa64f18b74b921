import re

import pytest

from sip_controller.addresses import parse_host_port, resolve_all, validate_name
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


def test_resolve_all_passes_ips_through_normalized_and_resolves_names():
    assert resolve_all("127.0.1.4") == ("127.0.1.4",)
    assert resolve_all("::0001") == ("::1",)
    assert set(resolve_all("localhost")) & {"127.0.0.1", "::1"}


def test_unresolvable_name_is_unknown():
    with pytest.raises(UnknownProxy, match=re.escape("cannot resolve 'sip-proxy-0.invalid'")):
        resolve_all("sip-proxy-0.invalid")
