"""Fuzz targets: the SIP parser and the transaction layer, on arbitrary and mutated datagrams.

Seeds are the RFC 4475 torture messages (test_torture.py) and a REGISTER as the testbed's
phones send it. Whatever the bytes, `parse_message` and every typed view raise only
`ParseError`, and what parses serializes and parses back; the transaction layer never raises.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sip_core import (
    ParseError,
    Request,
    TransactionLayer,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_via,
)
from sip_core.syntax import parse_cseq, parse_params, split_list

FUZZ = settings.get_profile("fuzz")


def _torture() -> ModuleType:
    # the corpus lives in the torture test module; loaded by path (tests are no package)
    spec = importlib.util.spec_from_file_location(
        "sip_core_torture_corpus", Path(__file__).with_name("test_torture.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CORPUS = _torture()
REGISTER = (
    b"REGISTER sip:testbed.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bKx;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:0100@testbed.local>;tag=1\r\nTo: <sip:0100@testbed.local>\r\nCall-ID: c@h\r\n"
    b"CSeq: 1 REGISTER\r\nContact: <sip:0100@127.0.0.1:5092>;expires=3600\r\n"
    b"Content-Length: 0\r\n\r\n"
)
SEEDS = [
    REGISTER,
    *(_CORPUS.VALID[name] for name in sorted(_CORPUS.VALID)),
    *(_CORPUS.INVALID[name][0] for name in sorted(_CORPUS.INVALID)),
]
# text that str methods and int() disagree on, line breaks, controls, and oversized numbers
HOSTILE = [
    "²",
    "\u0661\u0662",  # Arabic-Indic digits: int() takes them, SIP does not
    "\u0663",
    "\u2460",  # circled one
    "\u00a0",
    "\u2028",
    "\ufeff",
    "\r",
    "\n",
    "\r\n",
    "\r\n ",
    "\x00",
    "\x7f",
    "ß",
    "-1",
    "0" * 30 + "1",
    "9" * 5000,
    "65536",
    "2147483648",
    ";",
    ",",
    '"',
    "\\",
    "<",
    ">",
    "@",
    ":",
    "=",
    " ",
    "",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few edits: bytes replaced, hostile text put in, lines cut or repeated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["byte", "insert", "replace_token", "cut", "line"]))
        position = draw(st.integers(0, len(data)))
        if edit == "byte" and data:
            data[min(position, len(data) - 1)] = draw(st.integers(0, 255))
        elif edit == "insert":
            text = draw(st.sampled_from(HOSTILE) | st.text(max_size=8))
            data[position:position] = text.encode("utf-8", "surrogatepass")
        elif edit == "replace_token":
            # a field value (digits, a name ...) swapped for hostile text
            end = position
            while end < len(data) and data[end] not in b" ;\r:":
                end += 1
            data[position:end] = draw(st.sampled_from(HOSTILE)).encode("utf-8")
        elif edit == "cut":
            data = data[:position]
        else:
            lines = bytes(data).split(b"\r\n")
            index = min(position, len(lines) - 1)
            if draw(st.booleans()):
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def _parse_everything(data: bytes) -> None:
    """Parse and touch every typed view; only ParseError may come out."""
    try:
        message = parse_message(data)
        _ = (message.via, message.contact, message.route, message.record_route)
        _ = (message.max_forwards, message.cseq, message.from_.tag, message.to.tag)
        for via in message.via:
            via.response_address()
    except ParseError as exc:
        refused: ParseError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.reason  # names what is wrong
        return
    # what parses can be written and parses back to the same start line and fields
    again = parse_message(message.to_bytes())
    assert again.start_line() == message.start_line()
    assert again.body == message.body
    assert again.call_id == message.call_id
    assert again.cseq == message.cseq
    if isinstance(message, Request):
        assert isinstance(again, Request)


@FUZZ
@given(st.binary(max_size=700))
def test_fuzz_random_bytes_raise_only_parse_error(data):
    _parse_everything(data)


@FUZZ
@given(mutated())
@example(REGISTER.replace(b"CSeq: 1 REGISTER", "CSeq: ² REGISTER".encode()))
@example(REGISTER.replace(b"Content-Length: 0", b"Content-Length: " + b"9" * 5000))
@example(REGISTER.replace(b"rport", "rport=\u0663".encode()))
@example(REGISTER.replace(b"tag=1\r\n", b"tag=1\nX-Injected: 1\r\n"))
def test_fuzz_mutated_messages_raise_only_parse_error(data):
    _parse_everything(data)


@FUZZ
@given(st.lists(mutated() | st.binary(max_size=300), min_size=1, max_size=6))
@example([REGISTER.replace(b"CSeq: 1 REGISTER", "CSeq: ² REGISTER".encode()), REGISTER])
def test_fuzz_transaction_layer_never_raises(datagrams):
    layer = TransactionLayer()
    now = 0.0
    for data in datagrams:
        now += 0.1
        events = layer.receive_datagram(data, ("127.0.0.1", 5060), now)
        assert isinstance(events, list)
        layer.handle_timer(now + 40)
    assert layer.counters["malformed"] <= len(datagrams)


HEADER_VALUES = [
    "SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bKx;rport=5092;received=10.0.0.1",
    '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com;lr>;tag=98asjd8;q=0.33',
    "sip:0100@testbed.local:5060;transport=udp?subject=x",
    "1 INVITE",
]


@st.composite
def header_value(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(HEADER_VALUES) | st.text(max_size=60))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(HOSTILE)) + text[position:]
    return text


@FUZZ
@given(header_value())
@example("SIP/2.0/UDP h;rport=\u00b2")
@example("\u00b2 INVITE")
def test_fuzz_header_value_parsers_raise_only_parse_error(value):
    for parse in (
        lambda v: parse_via(v).response_address(),
        lambda v: parse_name_addr(v, "To"),
        lambda v: parse_uri(v, "Contact"),
        parse_cseq,
        lambda v: parse_params(v, "Via"),
        lambda v: split_list(v, "Route"),
    ):
        try:
            parse(value)
        except ParseError as exc:
            refused: ParseError | None = exc
        else:
            refused = None
        assert refused is None or refused.reason  # a refusal names what is wrong
