"""The one host:port parser: what it accepts, and errors that name the field and the problem."""

from __future__ import annotations

import pytest

from service_kit import AddressError, HostPort, parse_host_port


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.1.1:5060", "127.0.1.1", 5060),
        (" 10.0.0.7:8080 ", "10.0.0.7", 8080),
        ("[::1]:5060", "::1", 5060),
        ("::1:5060", "::1", 5060),  # unbracketed v6: the port is after the last colon
        ("sip-proxy-0.sip-proxy.ims.svc:5060", "sip-proxy-0.sip-proxy.ims.svc", 5060),
        ("localhost:65535", "localhost", 65535),
    ],
)
def test_host_and_port(text: str, host: str, port: int) -> None:
    parsed = parse_host_port(text, "OUTBOUND_PROXY")
    assert parsed == HostPort(host, port)
    assert (parsed.host, parsed.port) == (host, port)
    unpacked_host, unpacked_port = parsed
    assert (unpacked_host, unpacked_port) == (host, port)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("127.0.0.1", "'127.0.0.1' is not host:port"),
        (":5060", "is not host:port"),
        ("h:", "is not host:port"),
        ("h:0", "port 0 in 'h:0' is out of range 1-65535"),
        ("h:65536", "out of range"),
        ("h:http", "port 'http' in 'h:http' is not a number"),
        ("h:+80", "is not a number"),
        ("h: 80", "is not a number"),
        ("under_score:5060", "host 'under_score' in 'under_score:5060' is neither"),
        ("-x:5060", "neither an IP address nor a hostname"),
        ("[::1:5060", "unclosed IPv6 bracket"),
        ("[::1]", "is not host:port"),
    ],
)
def test_a_bad_address_names_the_field_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(AddressError) as raised:
        parse_host_port(text, "sip_address")
    assert str(raised.value).startswith("sip_address: ")
    assert problem in raised.value.problem
    assert raised.value.field == "sip_address"
    assert isinstance(raised.value, ValueError)  # a pydantic validator may let it through


def test_str_brackets_a_v6_host() -> None:
    assert str(HostPort("::1", 5060)) == "[::1]:5060"
    assert str(HostPort("10.0.0.1", 80)) == "10.0.0.1:80"
    assert parse_host_port(str(HostPort("::1", 5060)), "x") == HostPort("::1", 5060)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:127.0.1.1:5060", HostPort("127.0.1.1", 5060)),
        ("SIP:127.0.1.1:5060", HostPort("127.0.1.1", 5060)),
        ("http://10.0.0.7:8080/", HostPort("10.0.0.7", 8080)),
        ("http://[::1]:8080", HostPort("::1", 8080)),
        ("10.0.0.7:8080", HostPort("10.0.0.7", 8080)),
    ],
)
def test_a_scheme_is_taken_off_when_given(text: str, expected: HostPort) -> None:
    assert parse_host_port(text, "http_address", "http" if "http" in text else "sip") == expected


def test_without_a_scheme_a_url_is_refused_quoting_all_of_it() -> None:
    with pytest.raises(
        AddressError, match=r"port '8080/' in 'http://10\.0\.0\.7:8080/' is not a number"
    ):
        parse_host_port("http://10.0.0.7:8080/", "x")
    with pytest.raises(AddressError, match=r"^x: port 'x' in 'sip://h:x' is not a number$"):
        parse_host_port("sip://h:x", "x", "sip")
