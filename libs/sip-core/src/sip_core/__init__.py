"""sip-core: a sans-I/O SIP library. Bytes and the current time go in; events and bytes come out.

- `parse_message` / `Message.to_bytes`: RFC 3261 messages (compact forms, folding, lists).
- `digest`: Digest authentication for 401/407 (MD5, SHA-256, qop=auth, stale=true); the
  httpx-shaped `DigestAuth.auth_flow` and `next_request` to drive it one response at a time.
- `TransactionLayer`: RFC 3261 17 transactions over UDP with timers A-K and explicit `now`.
- `Dialog`: tags, CSeq and remote target for in-dialog ACK and BYE.
- `LogLimiter`: how often a receive loop logs about bad input; `RateLimitedLog` wraps a logger
  with one.
"""

from sip_core.build import IdSource, make_request, make_response
from sip_core.dialog import Dialog
from sip_core.digest import (
    AuthFlow,
    Challenge,
    DigestAuth,
    challenge_of,
    credentials,
    next_request,
    parse_challenge,
)
from sip_core.errors import (
    ChallengeError,
    LocalProtocolError,
    ParseError,
    RemoteProtocolError,
    SipError,
    UnsupportedVersion,
)
from sip_core.headers import Headers
from sip_core.message import Message, Request, Response, parse_message
from sip_core.ratelimit import LogLimiter, RateLimitedLog, held_note
from sip_core.syntax import CSeq, NameAddr, SipUri, Via, parse_name_addr, parse_uri, parse_via
from sip_core.transaction import (
    AckReceived,
    Address,
    ClientTransaction,
    Event,
    MalformedDatagram,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    StrayResponse,
    TimerSettings,
    TransactionLayer,
    TransactionTimedOut,
)

__all__ = [
    "AckReceived",
    "Address",
    "AuthFlow",
    "CSeq",
    "Challenge",
    "ChallengeError",
    "ClientTransaction",
    "Dialog",
    "DigestAuth",
    "Event",
    "Headers",
    "IdSource",
    "LocalProtocolError",
    "LogLimiter",
    "MalformedDatagram",
    "Message",
    "NameAddr",
    "ParseError",
    "RateLimitedLog",
    "RemoteProtocolError",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "ServerTransaction",
    "SipError",
    "SipUri",
    "State",
    "StrayResponse",
    "TimerSettings",
    "TransactionLayer",
    "TransactionTimedOut",
    "UnsupportedVersion",
    "Via",
    "challenge_of",
    "credentials",
    "held_note",
    "make_request",
    "make_response",
    "next_request",
    "parse_challenge",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
]
