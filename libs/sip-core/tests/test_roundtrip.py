"""Byte-level properties: what we build we parse back; no input crashes the parser."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from sip_core import (
    Headers,
    IdSource,
    NameAddr,
    ParseError,
    Request,
    Response,
    TransactionLayer,
    Via,
    make_request,
    make_response,
    parse_message,
)

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
user = st.from_regex(r"\A[0-9]{4}\Z")


@given(
    caller=user,
    callee=user,
    cseq=st.integers(1, 2**31 - 1),
    port=st.integers(1, 65535),
    body=st.binary(max_size=300),
    display=st.text(max_size=20).filter(lambda t: "\r" not in t and "\n" not in t),
)
def test_built_requests_parse_back_field_by_field(caller, callee, cseq, port, body, display):
    ids = IdSource()
    request = make_request(
        "INVITE",
        f"sip:{callee}@testbed.local",
        via=Via("UDP", "127.0.0.1", port, {"branch": ids.branch(), "rport": None}),
        from_=NameAddr(f"sip:{caller}@testbed.local", display or None, {"tag": ids.tag()}),
        to=NameAddr(f"sip:{callee}@testbed.local"),
        call_id=ids.call_id("127.0.0.1"),
        cseq=cseq,
        contact=NameAddr(f"sip:{caller}@127.0.0.1:{port}"),
        body=body,
        content_type="application/sdp",
    )
    parsed = parse_message(request.to_bytes())
    assert isinstance(parsed, Request)
    assert parsed.to_bytes() == request.to_bytes()
    assert (
        parsed.from_.display == (display.strip(" \t") or None if display else None)
        or parsed.from_.display == display
    )
    assert parsed.from_.tag == request.from_.tag
    assert parsed.cseq == request.cseq
    assert parsed.top_via.port == port
    assert parsed.body == body

    response = make_response(parsed, 180, to_tag="t1")
    back = parse_message(response.to_bytes())
    assert isinstance(back, Response)
    assert (back.status, back.to.tag, back.call_id) == (180, "t1", request.call_id)


VALID = (
    b"REGISTER sip:testbed.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bKx;rport\r\n"
    b"From: <sip:0100@testbed.local>;tag=1\r\nTo: <sip:0100@testbed.local>\r\nCall-ID: c@h\r\n"
    b"CSeq: 1 REGISTER\r\nContact: <sip:0100@127.0.0.1:5092>\r\nContent-Length: 0\r\n\r\n"
)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_parse_error(data):
    with contextlib.suppress(ParseError):
        parse_message(data)


@settings(max_examples=500)
@given(
    position=st.integers(0, len(VALID) - 1),
    octet=st.integers(0, 255),
    cut=st.integers(0, len(VALID)),
)
def test_mutated_messages_only_ever_raise_parse_error(position, octet, cut):
    mutated = (VALID[:position] + bytes([octet]) + VALID[position + 1 :])[:cut]
    layer = TransactionLayer()
    with contextlib.suppress(ParseError):
        parse_message(mutated)
    # the transaction layer turns the same input into events, never exceptions
    layer.receive_datagram(mutated, ("127.0.0.1", 5060), 0.0)


def test_headers_are_case_insensitive_and_keep_order():
    headers = Headers([("v", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("X-Y", "1")])
    assert headers.get_all("VIA") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert headers.replace("x-y", "2").get("X-Y") == "2"
    assert headers.remove("via").get("v") is None
    assert list(headers.add("Z", "3"))[-1] == ("Z", "3")


@given(
    transport=st.sampled_from(["UDP", "udp", "Tcp"]),
    port=st.none() | st.integers(min_value=1, max_value=65535),
    cseq=st.integers(min_value=1, max_value=2**31 - 1),
    method=st.sampled_from(["INVITE", "BYE", "REGISTER", "OPTIONS"]),
    branch=token,
)
def test_what_a_built_request_knows_of_itself_is_what_parsing_it_gives(
    transport: str, port: int | None, cseq: int, method: str, branch: str
) -> None:
    """make_request records the Via and CSeq it wrote, so the transaction layer skips parsing
    them: those values must be the very ones a peer parses from the bytes."""
    via = Via(transport, "127.0.0.1", port, {"branch": f"z9hG4bK{branch}", "rport": None})
    request = make_request(
        method, "sip:0100@testbed.local", via=via, from_=NameAddr("sip:0001@testbed.local",
        params={"tag": "a"}), to=NameAddr("sip:0100@testbed.local"), call_id="c@h", cseq=cseq,
    )  # fmt: skip
    parsed = parse_message(request.to_bytes())
    assert request.top_via == parsed.top_via
    assert request.cseq == parsed.cseq
