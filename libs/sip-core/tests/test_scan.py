"""The fast scan against the full parser: the same fields or None, never a different answer.

Messages are generated from header lines that parse_message accepts and lines it refuses (or
that only a full parse handles: folded, compact, repeated, quoted), and mutated byte by byte
from real ones (SIPp and Kamailio at the testbed's proxy). One scanner is kept across the
examples, as in a capture loop, so what it remembers from one message is tested on the next.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from sip_core import Request, Response, parse_message
from sip_core.scan import Scanned, Scanner

FUZZ = settings.get_profile("fuzz")

# as captured at a proxy in benchmarks/analyzer_throughput.py
REAL = [
    b"INVITE sip:0100@testbed.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.10.1;branch=z9hG4bK7718.3fc2dc60c125dcd6894278094702b4bd.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.10.4:5092;rport=5092;branch=z9hG4bK-12508-101-4\r\n"
    b"From: <sip:0000@testbed.local>;tag=12508SIPpTag01101\r\n"
    b"To: <sip:0100@testbed.local>\r\n"
    b"Call-ID: 101-12508@127.0.10.4\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:0000@127.0.10.4:5092>\r\n"
    b'Proxy-Authorization: Digest username="0000",realm="testbed.local",nonce="axGM",'
    b'uri="sip:127.0.10.1:5060",response="1efd5196c44ca8f9a0b7a70635cfc156",algorithm=MD5\r\n'
    b"Max-Forwards: 69\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length:   131\r\n\r\n"
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.10.4\r\ns=-\r\nc=IN IP4 127.0.10.4\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    b"SIP/2.0 100 trying -- your call is important to us\r\n"
    b"Via: SIP/2.0/UDP 127.0.10.1;branch=z9hG4bK354f.118dc8a9d6f48dd57379.0;rport=5060\r\n"
    b"Via: SIP/2.0/UDP 127.0.10.4:5092;rport=5092;branch=z9hG4bK-12508-66-4\r\n"
    b"From: <sip:0065@testbed.local>;tag=12508SIPpTag0166\r\n"
    b"To: <sip:0165@testbed.local>\r\n"
    b"Call-ID: 66-12508@127.0.10.4\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.11.1;rport=5060;branch=z9hG4bK5feb.d84f.0, "
    b"SIP/2.0/UDP 127.0.10.1;rport=5060;branch=z9hG4bK5feb.7748.0, "
    b"SIP/2.0/UDP 127.0.10.4:5092;rport=5092;branch=z9hG4bK-12508-2-4\r\n"
    b"Record-Route: <sip:127.0.11.1;lr>, <sip:127.0.10.1;lr>\r\n"
    b"From: <sip:0001@testbed.local>;tag=12508SIPpTag012\r\n"
    b"To: <sip:0101@testbed.local>;tag=3042SIPpTag012\r\n"
    b"Call-ID: 2-12508@127.0.10.4\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:127.0.10.2:5090;transport=UDP>\r\n"
    b"Content-Length: 0\r\n\r\n",
]

START_LINES = [
    "INVITE sip:0100@testbed.local SIP/2.0",
    "REGISTER sip:testbed.local SIP/2.0",
    "BYE sip:0100@127.0.10.2:5090 SIP/2.0",
    "INVITE sip:a@b?x=y SIP/2.0",  # headers in a Request-URI: refused
    "INVITE sip:a@b:99999 SIP/2.0",
    "INVITE  sip:a@b SIP/2.0",
    "INV<TE sip:a@b SIP/2.0",
    "INVITE sip:a@b SIP/3.0",
    "SIP/2.0 200 OK",
    "SIP/2.0 407 Proxy Authentication Required",
    "SIP/2.0 180",
    "SIP/2.0 099 Low",
    "SIP/2.0  200 OK",
    "SIP/2.1 200 OK",
    "SIP/2.0 \u0662\u0660\u0660 OK",
]
LINES = [
    "Via: SIP/2.0/UDP 127.0.10.1;branch=z9hG4bK-1",
    "Via: SIP/2.0/UDP 127.0.10.4:5092;rport=5092;branch=z9hG4bK-2",
    "v: SIP/2.0/UDP h;rport;branch=z9hG4bK-3",
    "Via: SIP/2.0/UDP h, SIP/2.0/UDP g:5061",
    "Via: SIP/2.0/UDP h,,SIP/2.0/UDP g",
    "Via: SIP/2.0/UDP h;rport=0",
    "Via: SIP/2.0/UDP h;rport=65536",
    "Via: SIP/2.0/UDP h;RPORT=x",
    "Via: SIP/2.0/UDP h:0",
    'Via: SIP/2.0/UDP h;branch="q;x"',
    "Via: SIP / 2.0 / UDP h",
    "Via: garbage",
    "Via: SIP/2.0/UDP h;rport=5060 , SIP/2.0/UDP g;branch=x ",
    "Via: SIP/2.0/UDP h,",
    "Via: SIP/2.0/UDP h, \t,SIP/2.0/UDP g",
    'Via: SIP/2.0/UDP h, SIP/2.0/UDP "g,h"',
    "Via: SIP/2.0/UDP h, <SIP/2.0/UDP g,h>",
    "Via: SIP/2.0/UDP h, SIP/2.0/UDP g\u00e9",
    "Via: SIP/2.0/UDP h;branch=a\u00e9",
    "Via:  SIP/2.0/UDP h",
    "Via: SIP/2.0/UDP h\t",
    "Via: SIP/2.0/UDP h;rport=5060;rport",
    "Via: SIP/2.0/UDP h;rport=5060x",
    "Via: SIP/2.0/UDP h\rx",
    "From: <sip:0000@testbed.local>;tag=abc",
    "f: sip:0000@testbed.local;tag=abc",
    'From: "Anna" <sip:a@b>;tag=1',
    "From: <sip:a@b",
    "From: <sip:a@b:0>;tag=x",
    "To: <sip:a@b:65536>",
    "To: <sip:a@b:5060>;tag=",
    "To: <sip:a@b>;tag",
    "To: <sip:a@b>;=x",
    "From: <sip:a@b>;tag=x;",
    "To: <sip:@b>",
    "From: <sip:a@b;x=y>;tag=1",
    "To: <sip:a@b>, <sip:c@d>",
    "To: <sip:a@b> ;tag=1",
    "From: <sip:a@b\u00e9>;tag=1",
    "To: <sip:0100@testbed.local>",
    "t: <sip:0100@testbed.local>;tag=x",
    "To: <>",
    "Call-ID: 101-12508@127.0.10.4",
    "i: abc",
    "call-id: abc",
    "Call-ID:",
    "Call-ID :  spaced ",
    "CSeq: 1 INVITE",
    "CSeq: 2 REGISTER",
    "CSeq: 1 BYE",
    "CSeq: 1 invite",
    "CSeq: \u00b2 INVITE",
    "CSeq: 99999999999 INVITE",
    "CSeq: 1  INVITE",
    "CSeq:1 INVITE",
    "CSeq: 0001 INVITE",
    "cseq: 3 INVITE ",
    "Max-Forwards: 70",
    "Max-Forwards: 256",
    "Max-Forwards: \u00b2",
    "Content-Length: 0",
    "Content-Length: 5",
    "l: 0",
    "Content-Length: 99999999999",
    "Content-Length: -1",
    "Content-Type: application/sdp",
    "c: text/plain",
    "Contact: *",
    "Contact: <sip:0000@127.0.10.4:5092>",
    "m: <sip:a@b>, <sip:c@d>",
    "Contact: <sip:a@b>,",
    "Route: <sip:127.0.11.1;lr>",
    "Record-Route: <sip:127.0.11.1;lr>, <sip:127.0.10.1;lr>",
    "Record-Route: garbage<",
    'Proxy-Authorization: Digest username="0000"',
    'Authorization: Digest username="0000"',
    "Authorization:",
    "Date: Sat, 13 Nov 2010 23:29:00 GMT",
    "Date: Sat, 13 Nov 2010 23:29:00 PST",
    "Server: kamailio",
    "X-Odd: a\rb",
    "X-Odd: a\nb",
    " folded: continuation",
    "\tcontinuation",
    "No colon here",
    "Bad Name: x",
    ": empty name",
    "X-\u00e9: non-ascii",
]
BODIES = [b"", b"12345", b"v=0\r\n"]

_SHARED = Scanner()


def _torture() -> ModuleType:
    # the RFC 4475 corpus lives in the torture test module; loaded by path (tests are no package)
    spec = importlib.util.spec_from_file_location(
        "sip_core_torture_corpus_scan", Path(__file__).with_name("test_torture.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CORPUS = _torture()
TORTURE = [
    *(_CORPUS.VALID[name] for name in sorted(_CORPUS.VALID)),
    *(_CORPUS.INVALID[name][0] for name in sorted(_CORPUS.INVALID)),
]
HOSTILE = [
    "\u00b2",
    "\u0663",
    "\u00a0",
    "\r",
    "\n",
    "\r\n ",
    "\x00",
    "-1",
    "9" * 30,
    ";",
    ",",
    '"',
    "<",
    " ",
]


def fields(message: Request | Response) -> Scanned:
    """What the scan should say, from the full parse."""
    cseq = message.cseq
    headers = message.headers
    authenticated = (
        headers.get("proxy-authorization") is not None or headers.get("authorization") is not None
    )
    if isinstance(message, Request):
        return Scanned(message.method, 0, message.call_id, cseq.number, authenticated)
    return Scanned(cseq.method, message.status, message.call_id, cseq.number, authenticated)


def agree(data: bytes) -> Scanned | None:
    """The scan (fresh and remembering) gives the parser's fields, or None; never another."""
    answers = [Scanner().scan(data), _SHARED.scan(data)]
    try:
        parsed = parse_message(data)
    except Exception:  # whatever the parser raises, the scan must not have accepted it
        assert answers == [None, None], data
        return None
    expected = fields(parsed)
    for answer in answers:
        assert answer is None or answer == expected, (data, answer, expected)
    return answers[0]


def test_real_messages_take_the_fast_path():
    for data in REAL:
        scanned = agree(data)
        assert scanned is not None
        assert scanned == fields(parse_message(data))
    assert Scanner().scan(REAL[0]) == Scanned("INVITE", 0, "101-12508@127.0.10.4", 2, True)
    assert Scanner().scan(REAL[2]) == Scanned("INVITE", 200, "2-12508@127.0.10.4", 2, False)


def test_the_rfc_4475_torture_messages():
    accepted = [data for data in TORTURE if agree(data) is not None]
    assert accepted  # some take the fast path, and agree with the parser there


def test_the_same_message_again_gives_the_same_answer():
    scanner = Scanner()
    first = [scanner.scan(data) for data in REAL]
    assert [scanner.scan(data) for data in REAL] == first


def test_a_body_shorter_than_content_length_is_left_to_the_parser():
    scanner = Scanner()
    assert scanner.scan(REAL[0]) is not None
    assert scanner.scan(REAL[0][:-10]) is None  # the same lines, remembered: still refused


def test_what_is_remembered_is_bounded():
    scanner = Scanner()
    for n in range(70_000):
        data = REAL[1].replace(b"Call-ID: 66-", f"Call-ID: {n}-".encode())
        assert scanner.scan(data) is not None
    assert len(scanner._kinds) <= 65536 + 20
    assert len(scanner._call_ids) <= 65536 + 20


@FUZZ
@given(
    start=st.sampled_from(START_LINES),
    lines=st.lists(st.sampled_from(LINES), max_size=14),
    body=st.sampled_from(BODIES),
)
def test_generated_messages(start, lines, body):
    head = "\r\n".join([start, *lines]).encode("utf-8", "surrogateescape")
    agree(head + b"\r\n\r\n" + body)


@FUZZ
@given(
    start=st.sampled_from(START_LINES[:3] + START_LINES[8:10]),
    extra=st.lists(st.sampled_from(LINES), max_size=3),
    body=st.sampled_from(BODIES),
)
def test_generated_messages_near_the_common_shape(start, extra, body):
    # mostly valid: the required fields, then a few lines more
    base = [LINES[0], LINES[12], LINES[16], LINES[19], LINES[24], LINES[37]]
    head = "\r\n".join([start, *base, *extra]).encode("utf-8", "surrogateescape")
    agree(head + b"\r\n\r\n" + body)


@FUZZ
@given(
    seed=st.sampled_from(REAL),
    edits=st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 3), st.binary(min_size=0, max_size=3)),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_real_messages(seed, edits):
    data = bytearray(seed)
    for at, cut, insert in edits:
        at %= len(data) + 1
        data[at : at + cut] = insert
    agree(bytes(data))


@FUZZ
@given(
    seed=st.sampled_from([*REAL, *TORTURE]),
    at=st.integers(0, 2000),
    cut=st.integers(0, 4),
    text=st.sampled_from(HOSTILE),
)
def test_hostile_text_in_real_and_torture_messages(seed, at, cut, text):
    at %= len(seed) + 1
    agree(seed[:at] + text.encode("utf-8") + seed[at + cut :])


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data):
    agree(data)
