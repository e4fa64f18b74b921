"""A fast scan of the few fields a passive observer pairs on, with parse_message's verdict.

`Scanner.scan(data)` returns the start line's method or status, the Call-ID, the CSeq and
whether the message carries credentials, for a message that `parse_message` accepts, and None
for everything else: a message the full parser refuses, and one the scan does not handle
(leading CRLFs, non-ASCII octets in the header section, folded lines). The caller then runs
the full parser, which gives the verdict and the reason. So a scan never answers differently
from the parser; it only answers less often.

The speed comes from skipping the objects (str header section, Headers, Message, Via, NameAddr)
and from remembering the header values already validated: at a proxy, From, To, Contact,
Record-Route and the top Via repeat from message to message of a call, and the Request-URIs
from call to call. Each value is validated once by sip-core's own parsing functions (the same
calls parse_message makes), so the checks cannot drift apart from the parser's. The lines new
at every hop or call (Via, From, To in their common forms) are first tried against regexes on
the raw bytes that accept a subset of what those functions accept (test_scan.py checks that
property); a line they do not match takes the parser's functions.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from sip_core.headers import header_key
from sip_core.syntax import (
    is_token,
    parse_int,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_list,
)

_SIP_VERSION: Final = "SIP/2.0"
_MAX_FORWARDS: Final = 255
_MEMO_LIMIT: Final = 65536  # lines and values come from the network: bounded, cleared when full
_STATUS: Final = re.compile(r"[1-6][0-9][0-9]")
_DATE_GMT: Final = re.compile(r"GMT\s*$")
_NAME_ADDR_LISTS: Final = {"contact": "Contact", "route": "Route", "record-route": "Record-Route"}
# a CSeq and a Content-Length that parse_cseq and parse_int accept (nine digits at most)
_CSEQ_VALUE: Final = re.compile(r"([0-9]{1,9}) ([A-Z]+)")
_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]+"
# a top Via value parse_via accepts (a subset of its grammar, checked without building a Via):
# token parameters, a port and an rport from 1 to 59999, no quotes
_PORT: Final = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4})"
_TOP_VIA: Final = re.compile(
    rf"SIP/2\.0/{_TOKEN} [A-Za-z0-9\-.]+(?::{_PORT})?"
    rf"(?:;(?:[Rr][Pp][Oo][Rr][Tt](?:={_PORT})?|(?![Rr][Pp][Oo][Rr][Tt]=){_TOKEN}(?:={_TOKEN})?))*"
)
# further values after a comma: split_list only refuses an empty one (the parser parses the top
# one alone); without quotes or "<" its split is a plain split on commas
_EMPTY_ELEMENT: Final = re.compile(r",[ \t]*(?:,|\Z)")
# the same checks on a whole "Via: " line as bytes, before any decode: the top value as
# _TOP_VIA, further values printable ASCII (no CR or LF) without quotes or "<", none empty
_VALUE_CHAR: Final = rb"[\t\x20\x21\x23-\x2b\x2d-\x3b\x3d-\x7e]"  # not '"', ',' or '<'
_FIRST_CHAR: Final = rb"[\x21\x23-\x2b\x2d-\x3b\x3d-\x7e]"  # and not a space or tab
_VIA_LINE: Final = re.compile(
    b"Via: "
    + _TOP_VIA.pattern.encode()
    + rb"[ \t]*(?:,[ \t]*"
    + _FIRST_CHAR
    + _VALUE_CHAR
    + rb"*)*"
)
# a Via line below the top one: the parser only needs it to be a header line (no CR or LF)
_LOWER_VIA_LINE: Final = re.compile(rb"Via: [\t\x20-\x7e]*")
# a From or To line parse_name_addr accepts (a subset: <sip:user@host[:port]> with token
# parameters), new in every call (its tags)
_NAME_ADDR_LINE: Final = re.compile(
    rb"(From|To): <sip:[A-Za-z0-9\-.!%*_+`'~]+@[A-Za-z0-9\-.]+(?::"
    + _PORT.encode()
    + rb")?>(?:;"
    + _TOKEN.encode()
    + rb"(?:="
    + _TOKEN.encode()
    + rb")?)*"
)
_START_LIMIT: Final = 1000  # longer start lines go to the caller's checks (looks_like_sip)

# what a header field is to the scan
_OTHER, _VIA, _FROM, _TO, _CALL_ID, _CSEQ, _CONTENT_LENGTH, _MAX_FORWARDS_KIND = range(8)
_CONTENT_TYPE, _AUTHORIZATION, _DATE, _CONTACT, _ROUTE, _RECORD_ROUTE = range(8, 14)
_OTHER_VIA, _BAD_DATE = 14, 15  # a Via or Date that would be refused at the top
_KINDS: Final = {
    "via": _VIA,
    "from": _FROM,
    "to": _TO,
    "call-id": _CALL_ID,
    "cseq": _CSEQ,
    "content-length": _CONTENT_LENGTH,
    "max-forwards": _MAX_FORWARDS_KIND,
    "content-type": _CONTENT_TYPE,
    "authorization": _AUTHORIZATION,
    "proxy-authorization": _AUTHORIZATION,
    "date": _DATE,
    "contact": _CONTACT,
    "route": _ROUTE,
    "record-route": _RECORD_ROUTE,
}
_VALIDATED: Final = {
    _FROM: "from",
    _TO: "to",
    _MAX_FORWARDS_KIND: "max-forwards",
    _CONTACT: "contact",
    _ROUTE: "route",
    _RECORD_ROUTE: "record-route",
}


class Scanned(NamedTuple):
    """What pairing needs from a message; `status` is 0 for a request, whose `method` is the
    request method (for a response it is the CSeq method)."""

    method: str
    status: int
    call_id: str
    cseq: int
    authenticated: bool  # a Proxy-Authorization or Authorization field is present


class Scanner:
    """Remembers the header lines already validated (one per receive loop: not thread-safe).

    A line is remembered whole, as bytes, with its kind and, for Call-ID, CSeq and
    Content-Length, its value: a message made of remembered lines is checked with one C-level
    pass over its lines (their kinds, as a tuple) and one look-up of that tuple, without
    decoding or looking into a line again.
    """

    __slots__ = (
        "_call_ids",
        "_cseqs",
        "_kinds",
        "_lengths",
        "_names",
        "_shapes",
        "_starts",
        "_valid",
    )

    def __init__(self) -> None:
        self._kinds: dict[bytes, int] = {}  # validated header lines -> their kind
        # the values of remembered Call-ID, CSeq and Content-Length lines
        self._call_ids: dict[bytes, str] = {}
        self._cseqs: dict[bytes, tuple[int, str]] = {}
        self._lengths: dict[bytes, int] = {}
        self._names: dict[str, int] = {}  # header names as received -> their kind
        self._valid: set[tuple[str, str]] = set()  # (key, value) parse_message accepts
        # start lines -> (method, status); requests: their Request-URI checked
        self._starts: dict[bytes, tuple[str, int]] = {}
        # the kinds of a message's lines, in order -> where its fields are (see _shape)
        self._shapes: dict[tuple[int | None, ...], tuple[int, int, int, bool]] = {}

    def scan(self, data: bytes) -> Scanned | None:
        """The fields, if parse_message accepts `data` and the scan handles it; else None.

        A message it answers for has its start line in its first 1,000 bytes, as SIP's
        (`SIP/` first, or ` SIP/2.0` last).
        """
        end = data.find(b"\r\n\r\n")
        if end <= 0 or data.startswith(b"\r\n"):
            return None
        lines = data[:end].split(b"\r\n")
        start = self._starts.get(lines[0])
        if start is None:
            start = self._start(lines[0])
            if start is None:
                return None
        del lines[0]
        if len(self._kinds) >= _MEMO_LIMIT:  # never while a message is half classified
            for memo in (self._kinds, self._call_ids, self._cseqs, self._lengths):
                memo.clear()
        signature = tuple(map(self._kinds.get, lines))
        shape = self._shapes.get(signature)  # never holds an unknown line (None)
        if shape is None:
            if None in signature:
                classified = self._classify_new(lines, list(signature))
                if classified is None:
                    return None  # the full parser decides (and says why)
                signature = classified
                shape = self._shapes.get(signature)
            if shape is None:
                shape = _shape(signature)
                if shape is None:
                    return None
                if len(self._shapes) >= _MEMO_LIMIT:
                    self._shapes.clear()
                self._shapes[signature] = shape
        call_id_at, cseq_at, length_at, authenticated = shape
        if length_at >= 0 and self._lengths[lines[length_at]] > len(data) - end - 4:
            return None  # the body is shorter than Content-Length says
        number, cseq_method = self._cseqs[lines[cseq_at]]
        method, status = start
        if status:
            method = cseq_method
        elif cseq_method != method:
            return None
        # tuple.__new__: a NamedTuple's own __new__ is a Python-level call (a third of a µs)
        return tuple.__new__(
            Scanned, (method, status, self._call_ids[lines[call_id_at]], number, authenticated)
        )

    def _start(self, line: bytes) -> tuple[str, int] | None:
        """The start line's method and status, remembered; None where the parser refuses it."""
        if len(line) > _START_LIMIT or not line.isascii():
            return None
        start = _start_line(line.decode("ascii"))
        if start is None or not (start[1] or self._valid_value("uri", start[2])):
            return None
        if len(self._starts) >= _MEMO_LIMIT:
            self._starts.clear()
        self._starts[line] = start[:2]
        return start[:2]

    def _classify_new(
        self, lines: list[bytes], kinds: list[int | None]
    ) -> tuple[int | None, ...] | None:
        """The kinds of all lines, the new ones classified; None if one is not accepted."""
        at = kinds.index(None)
        while True:
            before = kinds[:at]  # no Via before: this is the top Via, the only one parsed
            top = _VIA not in before and _OTHER_VIA not in before
            line = lines[at]
            # Via lines, new at every hop (a new branch), checked whole without a decode
            if line.startswith(b"Via: ") and (_VIA_LINE if top else _LOWER_VIA_LINE).fullmatch(
                line
            ):
                kind: int | None = _VIA if top else _OTHER_VIA
                self._kinds[line] = _VIA if top else _OTHER_VIA
            elif (name_addr := _NAME_ADDR_LINE.fullmatch(line)) is not None:
                kind = self._kinds[line] = _FROM if name_addr[1] == b"From" else _TO
            else:
                kind = self._classify(line, top)
            if kind is None:
                return None
            kinds[at] = kind
            if None not in kinds:
                return tuple(kinds)
            at = kinds.index(None, at + 1)

    def _classify(self, raw: bytes, top: bool) -> int | None:
        """The kind of a header line parse_message accepts on its own; None for any other.

        A Via below the top one is not checked (the parser does not parse it): _OTHER_VIA,
        which sends the message to the full parser should the same line come first later.
        """
        if not raw.isascii():
            return None
        line = raw.decode("ascii")
        if "\r" in line or "\n" in line:
            return None
        name, colon, value = line.partition(":")
        if not colon:
            return None
        kind = self._names.get(name)
        if kind is None:
            if name[:1] in (" ", "\t"):
                return None  # a folded line: the parser joins it to the one before
            stripped = name.rstrip(" \t")
            if not is_token(stripped):
                return None
            kind = _KINDS.get(header_key(stripped), _OTHER)
            if len(self._names) < 4096:
                self._names[name] = kind
        value = value.strip(" \t")
        if kind == _VIA:
            if not (top and self._top_via(value)):
                kind = _OTHER_VIA  # only the top Via is parsed: fine elsewhere
        elif kind == _DATE:
            if not _DATE_GMT.search(value):
                kind = _BAD_DATE  # only the first Date is checked
        elif kind == _CALL_ID:
            if not value:
                return None
            self._call_ids[raw] = value
        elif kind == _CSEQ:
            cseq = _CSEQ_VALUE.fullmatch(value)
            if cseq is None:
                return None
            self._cseqs[raw] = (int(cseq[1]), cseq[2])
        elif kind == _CONTENT_LENGTH:
            if not (value.isdigit() and len(value) < 10):
                return None
            self._lengths[raw] = int(value)
        elif kind in _VALIDATED and not self._valid_value(_VALIDATED[kind], value):
            return None
        self._kinds[raw] = kind
        return kind

    def _top_via(self, value: str) -> bool:
        """Whether parse_message accepts this Via line at the top (the first value parsed)."""
        top, comma, rest = value.partition(",")
        if _TOP_VIA.fullmatch(top.rstrip(" \t")) and (
            not comma or ('"' not in rest and "<" not in rest and not _EMPTY_ELEMENT.search(value))
        ):
            return True
        return self._valid_value("via", value)

    def _valid_value(self, key: str, value: str) -> bool:
        """Whether parse_message accepts this value for this field (each value checked once)."""
        if (key, value) in self._valid:
            return True
        try:
            _validate(key, value)
        except Exception:  # a ParseError, or whatever the parser itself would raise
            return False
        if len(self._valid) >= _MEMO_LIMIT:
            self._valid.clear()
        self._valid.add((key, value))
        return True


def _start_line(line: str) -> tuple[str, int, str] | None:
    """(method, 0, Request-URI) of a request line, ("", status, "") of a status line, or None
    where parse_message would refuse the line (the Request-URI is checked by the caller)."""
    if "\r" in line or "\n" in line:
        return None  # a bare CR or LF: refused by the parser (header lines: _classify)
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0] != _SIP_VERSION or not _STATUS.fullmatch(parts[1]):
            return None
        return "", int(parts[1]), ""
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != _SIP_VERSION or not parts[0] or not parts[1]:
        return None
    if not is_token(parts[0]):
        return None
    return parts[0], 0, parts[1]


def _shape(kinds: tuple[int | None, ...]) -> tuple[int, int, int, bool] | None:
    """Where the Call-ID, the CSeq and the Content-Length (-1: none) are, and whether there
    are credentials, for a list of header kinds parse_message accepts; else None."""
    count = kinds.count
    if (
        count(_CALL_ID) != 1
        or count(_CSEQ) != 1
        or count(_FROM) != 1
        or count(_TO) != 1
        or count(_MAX_FORWARDS_KIND) > 1
        or count(_CONTENT_LENGTH) > 1
        or count(_CONTENT_TYPE) > 1
    ):
        return None  # missing or repeated: the full parser says which
    vias = [kind for kind in kinds if kind in (_VIA, _OTHER_VIA)]
    if not vias or vias[0] != _VIA:
        return None  # no Via, or a top Via the scan did not check
    dates = [kind for kind in kinds if kind in (_DATE, _BAD_DATE)]
    if dates and dates[0] != _DATE:
        return None  # the first Date is not in GMT
    length_at = kinds.index(_CONTENT_LENGTH) if _CONTENT_LENGTH in kinds else -1
    return kinds.index(_CALL_ID), kinds.index(_CSEQ), length_at, _AUTHORIZATION in kinds


def _validate(key: str, value: str) -> None:
    """The checks parse_message makes on one field value (message.py, _validate)."""
    if key == "uri":
        parsed = parse_uri(value, "Request-URI")
        if not isinstance(parsed, str) and parsed.headers is not None:
            raise ValueError("a Request-URI with headers")
    elif key == "via":  # only the top Via is parsed on receipt
        parse_via(split_list(value, "Via")[0])
    elif key == "from":
        parse_name_addr(value, "From")
    elif key == "to":
        parse_name_addr(value, "To")
    elif key == "max-forwards":
        parse_int(value, "Max-Forwards", _MAX_FORWARDS)
    else:
        name = _NAME_ADDR_LISTS[key]
        for part in split_list(value, name):
            if part != "*":  # the parser takes a lone "*" in any of the three
                parse_name_addr(part, name)
