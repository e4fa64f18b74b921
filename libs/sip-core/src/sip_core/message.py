"""SIP requests and responses: parse from bytes, build, serialize (RFC 3261 section 7)."""

from __future__ import annotations

import abc
import re
from typing import Any

from sip_core.errors import LocalProtocolError, ParseError, UnsupportedVersion
from sip_core.headers import Headers, canonical_name, header_key
from sip_core.syntax import (
    MAX_CSEQ,
    CSeq,
    NameAddr,
    Via,
    is_token,
    parse_cseq,
    parse_int,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_list,
)

SIP_VERSION = "SIP/2.0"
MAX_FORWARDS_LIMIT = 255
MAX_CONTENT_LENGTH = 2**31 - 1
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_SINGLE_VALUED = ("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type")
_SINGLE_VALUED_SET = frozenset(_SINGLE_VALUED)
_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+")
_DATE_GMT = re.compile(r"GMT\s*$")
# header names already checked to be tokens, with their lookup keys (skips the check)
_TOKEN_NAMES: dict[str, str] = {}


class Message(abc.ABC):
    """Common part of requests and responses. Immutable by convention: `with_*` copies."""

    __slots__ = ("_cache", "body", "headers")

    def __init__(self, headers: Headers, body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._cache: dict[str, Any] = {}

    def known(self, top_via: Via | None = None, cseq: CSeq | None = None) -> None:
        """Record the values the top Via and CSeq were written from, so that the transaction
        layer does not parse the message we built (the same values parsing would give)."""
        if top_via is not None:
            self._cache["top_via"] = Via(
                top_via.transport.upper(), top_via.host, top_via.port, top_via.params
            )
        if cseq is not None:
            self._cache["cseq"] = cseq

    # -- typed views of the core headers (parsed once, on first use) ----------------------

    def _cached(self, key: str) -> Any:
        if key in self._cache:
            return self._cache[key]
        value: Any
        if key == "via":
            value = tuple(
                parse_via(part)
                for line in self.headers.get_all("via")
                for part in split_list(line, "Via")
            )
        elif key in ("from", "to"):
            raw = self.headers.get(key)
            if raw is None:
                raise ParseError(f"{canonical_name(key)}: missing")
            value = parse_name_addr(raw, canonical_name(key))
        elif key in ("contact", "route", "record-route"):
            name = canonical_name(key)
            values = [p for line in self.headers.get_all(key) for p in split_list(line, name)]
            value = tuple(NameAddr("*") if v == "*" else parse_name_addr(v, name) for v in values)
        elif key == "cseq":
            raw = self.headers.get("cseq")
            if raw is None:
                raise ParseError("CSeq: missing")
            value = parse_cseq(raw)
        else:
            raise KeyError(key)
        self._cache[key] = value
        return value

    @property
    def via(self) -> tuple[Via, ...]:
        vias: tuple[Via, ...] = self._cached("via")
        return vias

    @property
    def top_via(self) -> Via:
        """The first Via (transactions match on it); parsed without parsing the others."""
        if "via" in self._cache:
            vias: tuple[Via, ...] = self._cache["via"]
            if not vias:
                raise ParseError("Via: missing")
            return vias[0]
        top = self._cache.get("top_via")
        if top is None:
            first = self.headers.get("via")
            if first is None:
                raise ParseError("Via: missing")
            top = parse_via(split_list(first, "Via")[0])
            self._cache["top_via"] = top
        return top

    @property
    def from_(self) -> NameAddr:
        value: NameAddr | None = self._cache.get("from")  # parse_message fills it
        return value if value is not None else self._cached("from")

    @property
    def to(self) -> NameAddr:
        value: NameAddr | None = self._cache.get("to")  # parse_message fills it
        return value if value is not None else self._cached("to")

    @property
    def cseq(self) -> CSeq:
        value: CSeq | None = self._cache.get("cseq")  # parse_message fills it
        return value if value is not None else self._cached("cseq")

    @property
    def call_id(self) -> str:
        value = self.headers.get("call-id")
        if value is None:
            raise ParseError("Call-ID: missing")
        return value

    @property
    def contact(self) -> tuple[NameAddr, ...]:
        value: tuple[NameAddr, ...] = self._cached("contact")
        return value

    @property
    def route(self) -> tuple[NameAddr, ...]:
        value: tuple[NameAddr, ...] = self._cached("route")
        return value

    @property
    def record_route(self) -> tuple[NameAddr, ...]:
        value: tuple[NameAddr, ...] = self._cached("record-route")
        return value

    @property
    def max_forwards(self) -> int | None:
        raw = self.headers.get("max-forwards")
        return None if raw is None else parse_int(raw, "Max-Forwards", MAX_FORWARDS_LIMIT)

    # -- serialization --------------------------------------------------------------------

    @abc.abstractmethod
    def start_line(self) -> str: ...

    def to_bytes(self) -> bytes:
        """Wire form; Content-Length always states the body's real length."""
        lines = [self.start_line()]
        lines += [
            f"{name}: {value}"
            for key, name, value in self.headers._fields
            if key != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        # one CRLF per line and no other CR or LF: a value with a line break would add a
        # header line (header injection), so such a message is never written
        if head.count("\n") != len(lines) + 1 or head.count("\r") != len(lines) + 1:
            culprit = next(line for line in lines if "\r" in line or "\n" in line)
            raise LocalProtocolError(f"a CR or LF inside the line {culprit[:60]!r}")
        return head.encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class Request(Message):
    __slots__ = ("method", "uri")

    def __init__(self, method: str, uri: str, headers: Headers, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def with_headers(self, headers: Headers, same_via_and_cseq: bool = False) -> Request:
        """A copy with other headers; `same_via_and_cseq` says the new ones keep this
        request's top Via and CSeq (as credentials added to it do), so their parses carry."""
        request = Request(self.method, self.uri, headers, self.body)
        if same_via_and_cseq:
            for key in ("top_via", "cseq"):
                if key in self._cache:
                    request._cache[key] = self._cache[key]
        return request

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} Call-ID={self.headers.get('call-id')}>"


class Response(Message):
    __slots__ = ("reason", "status")

    def __init__(self, status: int, reason: str, headers: Headers, body: bytes = b"") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def with_headers(self, headers: Headers) -> Response:
        return Response(self.status, self.reason, headers, self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} Call-ID={self.headers.get('call-id')}>"


# -- parsing -------------------------------------------------------------------------------


def parse_message(data: bytes) -> Request | Response:
    """Parse one UDP datagram; raises ParseError (with the reason) on anything malformed.

    Octets after the body that Content-Length announces are ignored (RFC 4475 3.1.1.8).
    """
    start = 0
    while data.startswith(b"\r\n", start):  # keep-alive CRLFs before the start line
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise ParseError("no blank line ends the header section")
    head = data[start:end].decode("utf-8", "surrogateescape")
    body = data[end + 4 :]
    lines = head.split("\r\n")
    breaks = len(lines) - 1
    if head.count("\n") != breaks or head.count("\r") != breaks:
        _bare_line_break(lines)
    message = _start_line(lines[0])
    fields = _header_fields(lines)
    message.headers = Headers._from_keyed(fields)
    first: dict[str, str] = {}  # the first value of each header, found in one pass
    repeated: list[str] = []
    for key, _name, value in fields:
        if key not in first:
            first[key] = value
        elif key in _SINGLE_VALUED_SET:
            repeated.append(key)
    message.body = _body(first.get("content-length"), body)
    _validate(message, first, repeated)
    return message


def _bare_line_break(lines: list[str]) -> None:
    # a lone CR or LF would end the line for some peers and not for others: refused, so that
    # nothing we forward or copy into a response can smuggle a header line in
    for number, line in enumerate(lines, start=1):
        if "\r" in line or "\n" in line:
            raise ParseError(f"line {number} holds a CR or LF that is not a CRLF: {line[:60]!r}")


def _start_line(line: str) -> Request | Response:
    if not line:
        raise ParseError("empty start line")
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if len(parts) < 2:
            raise ParseError(f"status line {line!r} has no status code")
        if parts[0] != SIP_VERSION:
            raise UnsupportedVersion(f"unsupported SIP version in status line {line!r}")
        code = parts[1]
        if not (len(code) == 3 and code.isascii() and code.isdigit() and "1" <= code[0] <= "6"):
            raise ParseError(f"status code {parts[1]!r} is not a number from 100 to 699")
        return Response(int(parts[1]), parts[2] if len(parts) == 3 else "", Headers())
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError(f"request line {line!r} is not 'METHOD SP Request-URI SP SIP/2.0'")
    method, uri, version = parts
    if version != SIP_VERSION:
        if _VERSION.fullmatch(version):
            raise UnsupportedVersion(f"unsupported SIP version {version!r}")
        raise ParseError(f"request line {line!r} does not end with SIP/2.0")
    if not is_token(method):
        raise ParseError(f"method {method!r} is not a token")
    parsed = parse_uri(uri, "Request-URI")
    if not isinstance(parsed, str) and parsed.headers is not None:
        raise ParseError(f"Request-URI {uri!r} must not carry headers ('?')")
    return Request(method, uri, Headers())


def _header_fields(lines: list[str]) -> tuple[tuple[str, str, str], ...]:
    """(key, name, value) of every header line (lines[0] is the start line)."""
    fields: list[tuple[str, str, str]] = []
    keys = _TOKEN_NAMES
    for i in range(1, len(lines)):
        line = lines[i]
        if line[:1] in (" ", "\t"):
            if not fields:
                raise ParseError("continuation line before the first header field")
            last_key, last_name, last = fields[-1]
            folded = line.strip(" \t")
            joined = f"{last} {folded}" if last and folded else last or folded
            fields[-1] = (last_key, last_name, joined)
            continue
        name, colon, value = line.partition(":")
        key: str | None = keys.get(name)
        if key is None:  # a name not seen before (or with white space before the colon)
            name = name.rstrip(" \t")
            if not colon or not is_token(name):
                raise ParseError(f"header line {line[:60]!r} is not 'name: value'")
            key = header_key(name)
            if len(keys) < 4096:  # bounded: names come from the network
                keys[name] = key
        elif not colon:
            raise ParseError(f"header line {line[:60]!r} is not 'name: value'")
        fields.append((key, name, value.strip(" \t")))
    return tuple(fields)


def _body(raw: str | None, rest: bytes) -> bytes:
    if raw is None:
        return rest  # over UDP the body runs to the end of the datagram
    length = parse_int(raw, "Content-Length", MAX_CONTENT_LENGTH)
    if length > len(rest):
        raise ParseError(f"Content-Length {length} exceeds the {len(rest)} octets received")
    return rest[:length]


def _validate(message: Request | Response, first: dict[str, str], repeated: list[str]) -> None:
    """The checks every message passes; fills the message's cache with the parsed core
    headers, so the transaction layer and the UA find them ready."""
    missing = [canonical_name(k) for k in _REQUIRED if k not in first]
    if missing:
        raise ParseError("missing required header field(s): " + ", ".join(missing))
    for key in _SINGLE_VALUED:
        if key in repeated:
            times = message.headers.keys().count(key)
            raise ParseError(f"{canonical_name(key)}: appears {times} times")
    if not first["call-id"]:
        raise ParseError("Call-ID: empty")
    cache = message._cache
    cache["cseq"] = cseq = parse_cseq(first["cseq"])
    if cseq.number > MAX_CSEQ:
        raise ParseError(f"CSeq: {cseq.number} too large")
    if isinstance(message, Request) and cseq.method != message.method:
        raise ParseError(
            f"CSeq method {cseq.method} does not match request method {message.method}"
        )
    # the top Via is what a UA needs; the others are parsed when someone asks for `via`
    cache["top_via"] = parse_via(split_list(first["via"], "Via")[0])
    cache["from"] = parse_name_addr(first["from"], "From")
    cache["to"] = parse_name_addr(first["to"], "To")
    max_forwards = first.get("max-forwards")
    if max_forwards is not None:
        parse_int(max_forwards, "Max-Forwards", MAX_FORWARDS_LIMIT)
    for key in ("contact", "route", "record-route"):
        if key in first:
            message._cached(key)
    date = first.get("date")
    if date is not None and not _DATE_GMT.search(date):
        raise ParseError(f"Date: {date!r} is not in GMT")
