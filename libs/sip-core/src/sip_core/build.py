"""Building new messages: requests a UAC sends and the responses a UAS answers with."""

from __future__ import annotations

import random
from collections.abc import Iterable

from sip_core.errors import LocalProtocolError
from sip_core.headers import Headers
from sip_core.message import Request, Response
from sip_core.syntax import CSeq, NameAddr, Via, is_call_id

BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7: branches made by RFC 3261 elements start with it

REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
}


class IdSource:
    """Branches, tags and Call-IDs from one random source (seed it to make tests repeatable)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def _hex(self, bits: int) -> str:
        return f"{self._rng.getrandbits(bits):0{bits // 4}x}"

    def branch(self) -> str:
        return BRANCH_COOKIE + self._hex(64)

    def tag(self) -> str:
        return self._hex(32)

    def call_id(self, host: str) -> str:
        return f"{self._hex(96)}@{host}"


def make_request(
    method: str,
    uri: str,
    *,
    via: Via,
    from_: NameAddr,
    to: NameAddr,
    call_id: str,
    cseq: int,
    contact: NameAddr | None = None,
    max_forwards: int = 70,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Request:
    if not is_call_id(call_id):
        raise LocalProtocolError(
            f"Call-ID {call_id[:60]!r} is not word[@word] of RFC 3261 (printable ASCII)"
        )
    sequence = CSeq(cseq, method)
    fields = [
        ("Via", str(via)),
        ("Max-Forwards", str(max_forwards)),
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", str(sequence)),
    ]
    if contact is not None:
        fields.append(("Contact", str(contact)))
    fields.extend(extra)
    if body and content_type:
        fields.append(("Content-Type", content_type))
    request = Request(method, uri, Headers(fields), body)
    request.known(via, sequence)
    return request


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    contact: NameAddr | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response copying Via, From, To, Call-ID and CSeq from the request (RFC 3261 8.2.6).

    `to_tag` is added to To unless the request already carries one (in-dialog requests).
    """
    headers = request.headers
    to = headers.get("to") or ""
    if to_tag and request.to.tag is None and status != 100:
        to = str(request.to.with_tag(to_tag))
    fields: list[tuple[str, str]] = [("Via", v) for v in headers.get_all("via")]
    fields += [
        ("From", headers.get("from") or ""),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", headers.get("cseq") or ""),
    ]
    if contact is not None:
        fields.append(("Contact", str(contact)))
    fields.extend(extra)
    if body and content_type:
        fields.append(("Content-Type", content_type))
    return Response(status, reason or REASONS.get(status, ""), Headers(fields), body)
