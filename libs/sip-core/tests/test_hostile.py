"""Hostile bytes, one defect at a time: each gets a ParseError naming the field (never another
exception), and nothing we write can carry a line break into a header."""

from __future__ import annotations

import pytest

from sip_core import (
    ChallengeError,
    Headers,
    LocalProtocolError,
    LogLimiter,
    NameAddr,
    ParseError,
    Request,
    Response,
    Via,
    challenge_of,
    credentials,
    make_request,
    parse_challenge,
    parse_message,
)
from sip_core.syntax import is_call_id, is_token

REGISTER = (
    "REGISTER sip:testbed.local SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bKx;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:0100@testbed.local>;tag=1\r\nTo: <sip:0100@testbed.local>\r\nCall-ID: c@h\r\n"
    "CSeq: 1 REGISTER\r\nContact: <sip:0100@127.0.0.1:5092>\r\nContent-Length: 0\r\n\r\n"
)


def _with(old: str, new: str) -> bytes:
    assert old in REGISTER
    return REGISTER.replace(old, new, 1).encode("utf-8")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        # str.isdigit() accepts these, int() does not (or only up to 4300 digits)
        (_with("CSeq: 1 REGISTER", "CSeq: ² REGISTER"), "CSeq"),
        (_with("CSeq: 1 REGISTER", "CSeq: ①② REGISTER"), "CSeq"),
        (_with("Max-Forwards: 70", "Max-Forwards: ²"), "Max-Forwards"),
        (_with("Content-Length: 0", "Content-Length: " + "9" * 5000), "Content-Length"),
        (_with(";rport", ";rport=²"), "rport"),
        # digits of other scripts (int() takes them) are not SIP's DIGIT either
        (_with(";rport", ";rport=\u0663"), "rport"),
        (_with("CSeq: 1 REGISTER", "CSeq: \u0661 REGISTER"), "CSeq"),
        (_with("127.0.0.1:5092>", "127.0.0.1:\u0665\u0660\u0669\u0662>"), "Contact"),
        (_with("127.0.0.1:5092;branch", "127.0.0.1:\u0665\u0660\u0669\u0662;branch"), "Via"),
    ],
)
def test_numbers_are_ascii_digits_or_a_parse_error_naming_the_field(data, field):
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert type(info.value) is ParseError
    assert field in info.value.reason


def test_a_leading_zero_run_is_still_a_number():
    message = parse_message(_with("CSeq: 1 REGISTER", "CSeq: " + "0" * 40 + "7 REGISTER"))
    assert message.cseq.number == 7


def test_a_status_code_is_three_ascii_digits():
    arabic_100 = "\u0661\u0660\u0660"  # int() reads 100
    response = REGISTER.replace("REGISTER sip:testbed.local SIP/2.0", f"SIP/2.0 {arabic_100} x", 1)
    with pytest.raises(ParseError, match="status code"):
        parse_message(response.encode())


@pytest.mark.parametrize(
    "data",
    [
        _with("tag=1\r\n", "tag=1\nX-Injected: 1\r\n"),
        _with("Call-ID: c@h", "Call-ID: c@h\rX-Injected: 1"),
        _with("Max-Forwards: 70\r\n", "Max-Forwards: 70\n\r\n"),
    ],
)
def test_a_lone_cr_or_lf_in_the_header_section_is_refused(data):
    with pytest.raises(ParseError, match="CR or LF"):
        parse_message(data)


def test_a_blank_continuation_line_adds_nothing():
    message = parse_message(_with("Call-ID: c@h\r\n", "Call-ID: c@h\r\n \r\n"))
    assert message.call_id == "c@h"
    assert parse_message(message.to_bytes()).call_id == "c@h"


def test_tokens_and_call_ids_end_where_the_text_ends():
    assert is_token("INVITE")
    assert not is_token("INVITE\n")
    assert is_call_id("a84b4c76e66710@pc33.atlanta.com")
    assert is_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    for bad in ("", "a b", "a\r\nX: 1", "a\n", "a@b@c", "ünicode", "a@"):
        assert not is_call_id(bad), bad


def _register(call_id: str) -> Request:
    return make_request(
        "REGISTER",
        "sip:testbed.local",
        via=Via("UDP", "127.0.0.1", 5092, {"branch": "z9hG4bK1"}),
        from_=NameAddr("sip:0100@testbed.local", params={"tag": "1"}),
        to=NameAddr("sip:0100@testbed.local"),
        call_id=call_id,
        cseq=1,
    )


@pytest.mark.parametrize("call_id", ["x\r\nX-Injected: 1", "x\ny", "x y", ""])
def test_make_request_refuses_a_call_id_outside_the_grammar(call_id):
    with pytest.raises(LocalProtocolError, match="Call-ID"):
        _register(call_id)


def test_no_message_is_written_with_a_line_break_inside_a_header():
    request = _register("ok@host")
    smuggled = request.with_headers(request.headers.add("Subject", "hi\r\nX-Injected: 1"))
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        smuggled.to_bytes()
    lone = request.with_headers(request.headers.add("Subject", "hi\nX-Injected: 1"))
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        lone.to_bytes()


# -- unusable challenges -------------------------------------------------------------------


def _401(*values: str) -> Response:
    return Response(401, "Unauthorized", Headers([("WWW-Authenticate", v) for v in values]))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Digest realm="ims", nonce="bm9uY2U=", algorithm=AKAv1-MD5', "unsupported algorithm"),
        ('Basic realm="testbed.local"', "not Digest"),
        ('Digest realm="testbed.local", qop="auth"', "no nonce"),
        ('Digest realm="r\nX-Injected: 1", nonce="n"', "control characters in realm"),
        ("Digest", "no realm"),
    ],
)
def test_an_unusable_challenge_is_a_challenge_error_naming_why(value, reason):
    with pytest.raises(ChallengeError, match=reason):
        challenge_of(_401(value))
    with pytest.raises(ParseError):  # still a ParseError for callers that catch those
        parse_challenge(value)


def test_the_first_usable_of_several_challenges_is_answered():
    challenge = challenge_of(
        _401(
            'Digest realm="ims", nonce="a", algorithm=AKAv1-MD5',
            'Digest realm="testbed.local", nonce="b", algorithm=MD5',
        )
    )
    assert challenge is not None
    assert (challenge.realm, challenge.nonce) == ("testbed.local", "b")
    assert challenge_of(Response(401, "Unauthorized", Headers())) is None


def test_echoed_values_are_quoted_with_escapes():
    challenge = parse_challenge(r'Digest realm="a\"b", nonce="c\\d", opaque="\""', proxy=True)
    assert (challenge.realm, challenge.nonce, challenge.opaque) == ('a"b', "c\\d", '"')
    value = credentials(challenge, "0100", "pw", "INVITE", "sip:0101@testbed.local")
    assert 'realm="a\\"b"' in value
    assert 'nonce="c\\\\d"' in value
    assert 'opaque="\\""' in value
    again = parse_challenge(value.replace("Digest username", "Digest x"), proxy=True)
    assert (again.realm, again.nonce, again.opaque) == ('a"b', "c\\d", '"')


# -- rate-limited logging ------------------------------------------------------------------


def test_log_limiter_lets_a_burst_through_then_counts_what_it_held_back():
    limiter = LogLimiter(interval=10.0, burst=2)
    assert [limiter.allow(t) for t in (0.0, 0.1, 0.2, 0.3)] == [0, 0, None, None]
    assert limiter.allow(10.0) == 2  # the next window says how many were not logged
    assert limiter.allow(10.1) == 0
    with pytest.raises(ValueError, match="interval"):
        LogLimiter(interval=0)
