"""Header values: comma lists, parameters, name-addr, Via, CSeq, SIP URIs (RFC 3261 25.1).

Strict where RFC 4475 says a message must be rejected (empty list elements and parameters,
unbalanced quotes, spaces inside <>), liberal about linear white space where it is allowed.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from sip_core.errors import ParseError

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 3261 25.1 word: Call-ID = word ["@" word]
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(rf"{_WORD}(?:@{_WORD})?")
_WS = " \t"
MAX_CSEQ = 2**31 - 1
MAX_PORT = 65535


def is_token(text: str) -> bool:
    # most tokens are plain alphanumerics (tags, branches, method names): skip the regex
    if text.isalnum() and text.isascii():
        return True
    return _TOKEN.fullmatch(text) is not None


def is_call_id(text: str) -> bool:
    """Whether `text` is a Call-ID by the RFC 3261 grammar (printable ASCII, no spaces)."""
    return _CALL_ID.fullmatch(text) is not None


def number(text: str, maximum: int) -> int | None:
    """The value of ASCII digits if it is at most `maximum`, else None.

    str.isdigit() alone accepts '²' and other digits that int() refuses with ValueError, and
    int() refuses more than 4300 digits: neither may escape a parser as anything but its
    ParseError, so the digits are checked (and counted) here first.
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0")
    if len(significant) > len(str(maximum)):
        return None
    value = int(significant or "0")
    return value if value <= maximum else None


def split_list(value: str, header: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and <...>."""
    if "," not in value and '"' not in value:  # the common case: one element
        single = value.strip(_WS)
        if not single:
            raise ParseError(f"{header}: empty element in comma-separated list '{value}'")
        return [single]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip(_WS))
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError(f"{header}: unterminated quoted string in '{value}'")
    parts.append(value[start:].strip(_WS))
    if any(not p for p in parts):
        raise ParseError(f"{header}: empty element in comma-separated list '{value}'")
    return parts


def _unquote(text: str, header: str) -> str:
    if len(text) < 2 or not text.endswith('"'):
        raise ParseError(f"{header}: unterminated quoted string {text!r}")
    out = []
    i = 1
    end = len(text) - 1
    while i < end:
        c = text[i]
        if c == "\\":
            i += 1
            if i >= end:
                raise ParseError(f"{header}: dangling escape in {text!r}")
            out.append(text[i])
        elif c == '"':
            raise ParseError(f"{header}: stray quote in {text!r}")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def parse_params(text: str, header: str) -> dict[str, str | None]:
    """';a=b;c;d="q"' -> {'a': 'b', 'c': None, 'd': 'q'}; names are lower-cased."""
    params: dict[str, str | None] = {}
    if not text.strip(_WS):
        return params
    rest = text.strip(_WS)
    if not rest.startswith(";"):
        raise ParseError(f"{header}: expected ';' before parameters in '{text}'")
    for raw in _split_semicolons(rest[1:], header):
        name, eq, value = raw.partition("=")
        name = name.strip(_WS)
        if not name:
            raise ParseError(f"{header}: empty parameter in '{text}'")
        if not is_token(name):
            raise ParseError(f"{header}: parameter name {name!r} is not a token")
        if eq:
            value = value.strip(_WS)
            params[name.lower()] = _unquote(value, header) if value.startswith('"') else value
        else:
            params[name.lower()] = None
    return params


def _split_semicolons(text: str, header: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts = []
    start = 0
    in_quotes = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise ParseError(f"{header}: unterminated quoted string in '{text}'")
    parts.append(text[start:])
    return parts


def format_params(params: dict[str, str | None]) -> str:
    out = []
    for name, value in params.items():
        if value is None:
            out.append(f";{name}")
        elif value and (value.isalnum() or all(is_token(part) for part in value.split(":"))):
            out.append(f";{name}={value}")
        else:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f';{name}="{escaped}"')
    return "".join(out)


# -- URIs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user is not None else ""
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}{headers}"


_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::([0-9]{1,5}))?")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")


def parse_uri(text: str, header: str) -> SipUri | str:
    """A sip:/sips: URI as SipUri; any other absolute URI is returned as text (tel:, mailto:).

    The result is shared between equal texts (URIs repeat from message to message): treat it
    as read-only.
    """
    try:
        return _parse_uri_cached(text)
    except _UriError as exc:
        raise ParseError(f"{header}: {exc}") from None


class _UriError(Exception):
    pass


@functools.lru_cache(maxsize=8192)
def _parse_uri_cached(text: str) -> SipUri | str:
    try:
        return _parse_uri(text, "URI")
    except ParseError as exc:
        raise _UriError(exc.reason.removeprefix("URI: ")) from None


def _parse_uri(text: str, header: str) -> SipUri | str:
    if not text or any(c in text for c in " \t\r\n<>"):
        raise ParseError(f"{header}: malformed URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not _SCHEME.fullmatch(scheme):
        raise ParseError(f"{header}: URI {text!r} has no scheme")
    if scheme.lower() not in ("sip", "sips"):
        return text
    user: str | None = None
    at = rest.rfind("@")
    if at >= 0:
        user, rest = rest[:at], rest[at + 1 :]
        if not user:
            raise ParseError(f"{header}: empty user part in {text!r}")
    rest, qmark, headers = rest.partition("?")
    hostport, _, params_text = rest.partition(";")
    match = _HOSTPORT.fullmatch(hostport)
    if not match:
        raise ParseError(f"{header}: bad host or port in URI {text!r}")
    port = int(match.group(2)) if match.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise ParseError(f"{header}: port {port} out of range in {text!r}")
    params: dict[str, str | None] = {}
    if params_text:
        for raw in params_text.split(";"):
            name, eq, value = raw.partition("=")
            if not name:
                raise ParseError(f"{header}: empty URI parameter in {text!r}")
            params[name.lower()] = value if eq else None
    return SipUri(scheme.lower(), user, match.group(1), port, params, headers if qmark else None)


# -- name-addr (From, To, Contact, Route, Record-Route) -----------------------------------


@dataclass(frozen=True)
class NameAddr:
    uri: str
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return NameAddr(self.uri, self.display, {**self.params, "tag": tag})

    def __str__(self) -> str:
        display = ""
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str, header: str) -> NameAddr:
    """The value of From, To, Contact, Route or Record-Route (one list element).

    The result is shared between equal texts (a call's From and To come back in every
    message of it): treat it and its `params` as read-only.
    """
    return _parse_name_addr_cached(value, header)


@functools.lru_cache(maxsize=8192)
def _parse_name_addr_cached(value: str, header: str) -> NameAddr:
    text = value.strip(_WS)
    if not text:
        raise ParseError(f"{header}: empty value")
    display: str | None = None
    if text.startswith('"'):
        end = _closing_quote(text, header)
        display = _unquote(text[: end + 1], header)
        text = text[end + 1 :].lstrip(_WS)
        if not text.startswith("<"):
            raise ParseError(f"{header}: quoted display name must be followed by <URI>")
    if "<" in text:
        before, _, after = text.partition("<")
        before = before.strip(_WS)
        if before:
            words = before.split()
            if not all(is_token(w) for w in words):
                raise ParseError(f"{header}: display name {before!r} must be tokens or quoted")
            display = " ".join(words)
        uri, closing, params = after.partition(">")
        if not closing:
            raise ParseError(f"{header}: '<' without '>' in '{value}'")
        if uri != uri.strip(_WS) or not uri:
            raise ParseError(f"{header}: white space inside <{uri}>")
        parse_uri(uri, header)
        return NameAddr(uri, display, parse_params(params, header))
    # addr-spec: parameters after ';' belong to the header, so the URI cannot carry any,
    # nor ',' or '?' (RFC 3261 20.10)
    uri, semi, params = text.partition(";")
    uri = uri.strip(_WS)
    if any(c in uri for c in "?,") or " " in uri:
        raise ParseError(f"{header}: URI {uri!r} with '?', ',' or spaces must be enclosed in <>")
    parse_uri(uri, header)
    return NameAddr(uri, None, parse_params(semi + params, header))


def _closing_quote(text: str, header: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    raise ParseError(f"{header}: unterminated quoted string in '{text}'")


# -- Via ---------------------------------------------------------------------------------

_VIA = re.compile(
    r"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(.*)",
    re.S,
)


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"

    def response_address(self) -> tuple[str, int]:
        """Where a UDP response goes (RFC 3261 18.2.2 with RFC 3581 rport)."""
        host = self.params.get("received") or self.host
        rport = self.params.get("rport")
        port = number(rport, MAX_PORT) if rport else None
        return host.strip("[]"), port or self.port or 5060

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


def parse_via(value: str, header: str = "Via") -> Via:
    """One Via value; shared between equal texts (the responses of a transaction repeat its
    request's Via): treat it and its `params` as read-only."""
    return _parse_via_cached(value, header)


@functools.lru_cache(maxsize=8192)
def _parse_via_cached(value: str, header: str) -> Via:
    match = _VIA.fullmatch(value.strip(_WS))
    if not match:
        raise ParseError(f"{header}: malformed value '{value}'")
    transport, host, port_text, rest = match.groups()
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port < 65536:
        raise ParseError(f"{header}: port {port} out of range")
    params = parse_params(rest, header)
    rport = params.get("rport")
    if rport is not None and number(rport, MAX_PORT) is None:
        raise ParseError(f"{header}: rport={rport!r} is not a port number")
    return Via(transport.upper(), host, port, params)


# -- CSeq and integers -------------------------------------------------------------------


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """The CSeq header; shared between equal texts (a handful repeat all the time)."""
    return _parse_cseq_cached(value)


@functools.lru_cache(maxsize=1024)
def _parse_cseq_cached(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not is_token(parts[1]):
        raise ParseError(f"CSeq: malformed value {value!r}")
    return CSeq(parse_int(parts[0], "CSeq", MAX_CSEQ), parts[1])


def parse_int(value: str, header: str, maximum: int) -> int:
    text = value.strip(_WS)
    parsed = number(text, maximum)
    if parsed is not None:
        return parsed
    if text.isascii() and text.isdigit():
        raise ParseError(f"{header}: {text[:20]!r} exceeds {maximum}")
    raise ParseError(f"{header}: {value[:40]!r} is not a number in ASCII digits")
