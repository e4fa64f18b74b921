"""Sans-I/O pairing of the SIP messages seen at one proxy into response times.

Fed with `(timestamp, src, dst, payload)` of each UDP datagram and, optionally, the current
time; returns the pair a message completes and keeps counters. No sockets and no clocks:
offline files, live capture and tests drive it the same way.

A pair is measured in the proxy's own terms, from the first copy of the message that reached
the proxy to the first copy of the proxy's answer or relay (both matched by Call-ID, CSeq
number and method):

| pair (`PairName`)    | starts with (in)              | ends with (out)           |
|----------------------|-------------------------------|---------------------------|
| `register_challenge` | REGISTER                      | 401 for it                |
| `register_ok`        | REGISTER with credentials     | 200 for it                |
| `invite_challenge`   | INVITE                        | 407 for it                |
| `invite_forward`     | INVITE with credentials       | the INVITE relayed        |
| `ok_forward`         | 200 for an INVITE             | the 200 relayed           |

Copies that arrive again while a pair is open or after it closed are retransmissions: counted,
never paired twice. Open entries older than the timeout are dropped and counted as expired;
closed ones are remembered just as long, to recognise late retransmissions. So memory is
bounded by the message rate times the timeout, however long the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple, TypeVar

from analyzer.endpoints import Endpoint
from sip_core import ParseError, Request, Response, parse_message
from sip_core.scan import Scanned, Scanner


def printable(text: str) -> str:
    """`text` as valid UTF-8: bytes that were not (sip-core keeps them as lone surrogates) become
    backslash escapes. A hostile Call-ID must not break the samples CSV, the HTTP answer or a
    log line that carries it, all encoded as strict UTF-8."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class PairName(StrEnum):
    """The kinds of pair (the table above); the values are the `pair` label, CSV and JSON field."""

    REGISTER_CHALLENGE = "register_challenge"
    REGISTER_OK = "register_ok"
    INVITE_CHALLENGE = "invite_challenge"
    INVITE_FORWARD = "invite_forward"
    OK_FORWARD = "ok_forward"


# in the order of the table (metrics list every pair, also those not seen yet)
PAIRS: Final = tuple(PairName)

IN: Final = "in"
OUT: Final = "out"

# skip reasons of the SIP layer (the packet layer has its own, see packets.py)
NOT_SIP: Final = "not_sip"
MALFORMED: Final = "malformed"
NOT_PROXY: Final = "not_proxy"

# why an open entry ended without a pair
EXPIRED: Final = "expired"
OTHER_ANSWER: Final = "other_answer"
UNMATCHED: Final = "unmatched"

# method label values; anything else is "other", so the wire cannot grow the label set
KNOWN_METHODS: Final = frozenset(
    [
        "ACK",
        "BYE",
        "CANCEL",
        "INFO",
        "INVITE",
        "KDMQ",
        "MESSAGE",
        "NOTIFY",
        "OPTIONS",
        "PRACK",
        "PUBLISH",
        "REFER",
        "REGISTER",
        "SUBSCRIBE",
        "UPDATE",
    ]
)
_RELAYED: Final = 0  # "closing status" of an INVITE that the proxy relayed


class Pair(NamedTuple):
    """One measured response time: the message in, and the proxy's answer or relay out
    (a NamedTuple: immutable, and built without a Python-level __init__)."""

    name: PairName
    call_id: str
    cseq: int
    start: float
    end: float
    start_src: Endpoint
    start_dst: Endpoint
    end_src: Endpoint
    end_dst: Endpoint

    @property
    def response_time(self) -> float:
        return self.end - self.start


@dataclass
class TrackerStats:
    """Counters, keyed as the Prometheus labels of the same name."""

    # (direction, method, status); status is "" for requests
    messages: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    retransmissions: Counter[PairName] = field(default_factory=Counter)
    pairs: Counter[PairName] = field(default_factory=Counter)
    # (pair, reason): expired, other_answer (closed by an answer that forms no pair), unmatched
    # (an answer or relay whose request was never seen, e.g. captured mid-transaction)
    unpaired: Counter[tuple[PairName, str]] = field(default_factory=Counter)


class _Open(NamedTuple):
    time: float
    src: Endpoint
    dst: Endpoint
    kind: PairName  # the pair it is expected to form (for counters)
    authenticated: bool


class _Closed(NamedTuple):
    time: float
    closing: int  # status that closed it, or _RELAYED
    kind: PairName


# builds a NamedTuple from a tuple of its fields in order: its own __new__ is a Python-level
# call, a third of a microsecond per packet at these rates
_new: Final = tuple.__new__


def looks_like_sip(payload: bytes) -> bool:
    """A start line of a SIP request or response, before parsing tells whether it is valid."""
    end = payload.find(b"\n", 0, 1024)
    first = payload[: end if end >= 0 else 1024]
    return first.startswith(b"SIP/") or b" SIP/" in first


def _scan_parsed(message: Request | Response) -> Scanned:
    """The fields pairing needs, from a fully parsed message (raises ParseError like it)."""
    cseq = message.cseq
    call_id = printable(message.call_id)
    headers = message.headers
    authenticated = (
        headers.get("proxy-authorization") is not None or headers.get("authorization") is not None
    )
    if isinstance(message, Request):
        return Scanned(message.method, 0, call_id, cseq.number, authenticated)
    return Scanned(cseq.method, message.status, call_id, cseq.number, authenticated)


def _request_kind(method: str, authenticated: bool) -> PairName:
    if method == "REGISTER":
        return PairName.REGISTER_OK if authenticated else PairName.REGISTER_CHALLENGE
    return PairName.INVITE_FORWARD if authenticated else PairName.INVITE_CHALLENGE


class PairTracker:
    """Pairs the messages of one proxy; see the module docstring for the rules."""

    def __init__(self, proxy: Endpoint, timeout: float = 32.0) -> None:
        if timeout <= 0:
            raise ValueError(f"pair timeout must be positive, got {timeout}")
        self.proxy = proxy
        self.timeout = timeout
        self.stats = TrackerStats()
        # REGISTER / INVITE in, waiting for the proxy's answer or relay; key (Call-ID, CSeq, method)
        self._requests: dict[tuple[str, int, str], _Open] = {}
        self._requests_closed: dict[tuple[str, int, str], _Closed] = {}
        # 200 for an INVITE in, waiting to be relayed; key (Call-ID, CSeq)
        self._oks: dict[tuple[str, int], _Open] = {}
        self._oks_closed: dict[tuple[str, int], _Closed] = {}
        self._next_expiry = float("-inf")
        self._expiry_step = min(1.0, timeout / 10)
        # why the last message was counted malformed (the caller logs it, rate-limited)
        self.last_malformed: str | None = None
        self._scanner = Scanner()

    @property
    def open_entries(self) -> int:
        return len(self._requests) + len(self._oks)

    @property
    def remembered_entries(self) -> int:
        return len(self._requests_closed) + len(self._oks_closed)

    def count_skip(self, reason: str) -> None:
        """Count a packet dropped before it reached the tracker (fragment, truncated, ...)."""
        self.stats.skipped[reason] += 1

    def feed(
        self,
        timestamp: float,
        src: Endpoint,
        dst: Endpoint,
        payload: bytes,
        now: float | None = None,
    ) -> Pair | None:
        """One UDP datagram seen at `timestamp`; returns the pair it completes, if any."""
        if dst == self.proxy and src != self.proxy:
            direction = IN
        elif src == self.proxy and dst != self.proxy:
            direction = OUT
        else:
            self.stats.skipped[NOT_PROXY] += 1
            return None
        # a message the scan answers for has a SIP start line in its first 1,000 bytes, so it
        # passes looks_like_sip: only the others need that check
        scanned = self._scanner.scan(payload)
        if scanned is None:  # not the common shape, or malformed: the full parser decides
            if not looks_like_sip(payload):
                self.stats.skipped[NOT_SIP] += 1
                return None
            try:
                scanned = _scan_parsed(parse_message(payload))
            except ParseError as exc:
                self.stats.skipped[MALFORMED] += 1
                self.last_malformed = printable(exc.reason)  # it may quote the bad bytes
                return None
        method, status, call_id, cseq, authenticated = scanned
        clock = timestamp if now is None else now
        if clock >= self._next_expiry:
            self.expire(clock)

        if not status:
            self.stats.messages[
                (direction, method if method in KNOWN_METHODS else "other", "")
            ] += 1
            if method != "REGISTER" and method != "INVITE":
                return None
            key = (call_id, cseq, method)
            if direction == IN:
                self._request_in(key, timestamp, src, dst, authenticated)
                return None
            if method == "INVITE":
                return self._invite_out(key, timestamp, src, dst)
            return None

        self.stats.messages[
            (direction, method if method in KNOWN_METHODS else "other", str(status))
        ] += 1
        if method == "INVITE" and status == 200:
            ok_key = (call_id, cseq)
            if direction == IN:
                self._ok_in(ok_key, timestamp, src, dst)
                return None
            return self._ok_out(ok_key, timestamp, src, dst)
        if direction == OUT and status >= 200 and (method == "REGISTER" or method == "INVITE"):
            return self._answer_out((call_id, cseq, method), status, timestamp, src, dst)
        return None

    def expire(self, now: float) -> int:
        """Drop entries older than the timeout; returns how many open ones expired."""
        limit = now - self.timeout
        expired = _drop_older(self._requests, limit) + _drop_older(self._oks, limit)
        for entry in expired:
            self.stats.unpaired[(entry.kind, EXPIRED)] += 1
        _drop_older(self._requests_closed, limit)
        _drop_older(self._oks_closed, limit)
        self._next_expiry = now + self._expiry_step
        return len(expired)

    # -- the four kinds of message that open or close pairs -------------------------------

    def _request_in(
        self,
        key: tuple[str, int, str],
        timestamp: float,
        src: Endpoint,
        dst: Endpoint,
        authenticated: bool,
    ) -> None:
        open_entry = self._requests.get(key)
        if open_entry is not None:
            self.stats.retransmissions[open_entry.kind] += 1
            return
        closed = self._requests_closed.get(key)
        if closed is not None:
            self.stats.retransmissions[closed.kind] += 1
            return
        kind = _request_kind(key[2], authenticated)
        self._requests[key] = _new(_Open, (timestamp, src, dst, kind, authenticated))

    def _answer_out(
        self,
        key: tuple[str, int, str],
        status: int,
        timestamp: float,
        src: Endpoint,
        dst: Endpoint,
    ) -> Pair | None:
        """A final answer out for a REGISTER or INVITE (not a 200 for an INVITE)."""
        entry = self._requests.pop(key, None)
        if entry is None:
            closed = self._requests_closed.get(key)
            if closed is not None:
                if closed.closing == status:
                    self.stats.retransmissions[closed.kind] += 1
                # else: e.g. the callee's final answer relayed after the INVITE went out
                return None
            if (key[2], status) in ((_REGISTER, 401), (_REGISTER, 200), (_INVITE, 407)):
                self.stats.unpaired[(_answer_kind(key[2], status), UNMATCHED)] += 1
            return None
        name: PairName | None = None
        if key[2] == _REGISTER:
            if status == 401:
                name = PairName.REGISTER_CHALLENGE
            elif status == 200 and entry.authenticated:
                name = PairName.REGISTER_OK
        elif status == 407:
            name = PairName.INVITE_CHALLENGE
        self._requests_closed[key] = _Closed(timestamp, status, name or entry.kind)
        if name is None:
            self.stats.unpaired[(entry.kind, OTHER_ANSWER)] += 1
            return None
        return self._pair(name, key[0], key[1], entry, timestamp, src, dst)

    def _invite_out(
        self, key: tuple[str, int, str], timestamp: float, src: Endpoint, dst: Endpoint
    ) -> Pair | None:
        """The proxy relays an INVITE (toward the callee, through the load balancer)."""
        entry = self._requests.pop(key, None)
        if entry is None:
            closed = self._requests_closed.get(key)
            if closed is not None:
                if closed.closing == _RELAYED:
                    self.stats.retransmissions[PairName.INVITE_FORWARD] += 1
                return None
            self.stats.unpaired[(PairName.INVITE_FORWARD, UNMATCHED)] += 1
            return None
        self._requests_closed[key] = _Closed(timestamp, _RELAYED, PairName.INVITE_FORWARD)
        if not entry.authenticated:  # an in-dialog re-INVITE: relayed without a challenge
            self.stats.unpaired[(entry.kind, OTHER_ANSWER)] += 1
            return None
        return self._pair(PairName.INVITE_FORWARD, key[0], key[1], entry, timestamp, src, dst)

    def _ok_in(self, key: tuple[str, int], timestamp: float, src: Endpoint, dst: Endpoint) -> None:
        if key in self._oks or key in self._oks_closed:
            self.stats.retransmissions[PairName.OK_FORWARD] += 1
            return
        self._oks[key] = _Open(timestamp, src, dst, PairName.OK_FORWARD, False)

    def _ok_out(
        self, key: tuple[str, int], timestamp: float, src: Endpoint, dst: Endpoint
    ) -> Pair | None:
        entry = self._oks.pop(key, None)
        if entry is None:
            if key in self._oks_closed:
                self.stats.retransmissions[PairName.OK_FORWARD] += 1
            else:
                self.stats.unpaired[(PairName.OK_FORWARD, UNMATCHED)] += 1
            return None
        self._oks_closed[key] = _Closed(timestamp, 200, PairName.OK_FORWARD)
        return self._pair(PairName.OK_FORWARD, key[0], key[1], entry, timestamp, src, dst)

    def _pair(
        self,
        name: PairName,
        call_id: str,
        cseq: int,
        entry: _Open,
        timestamp: float,
        src: Endpoint,
        dst: Endpoint,
    ) -> Pair:
        self.stats.pairs[name] += 1
        return _new(
            Pair, (name, call_id, cseq, entry.time, timestamp, entry.src, entry.dst, src, dst)
        )


_REGISTER: Final = "REGISTER"
_INVITE: Final = "INVITE"


_Key = TypeVar("_Key")
_Entry = TypeVar("_Entry", _Open, _Closed)


def _drop_older(table: dict[_Key, _Entry], limit: float) -> list[_Entry]:
    """Remove the entries from before `limit`, oldest first (a dict keeps arrival order).

    Keys are collected first and deleted by key: popping the first item again and again
    would rescan the deleted slots at the front of the dict each time.
    """
    old: list[tuple[_Key, _Entry]] = []
    for item in table.items():
        if item[1].time >= limit:
            break
        old.append(item)
    for key, _ in old:
        del table[key]
    return [entry for _, entry in old]


def _answer_kind(method: str, status: int) -> PairName:
    if method == _INVITE:
        return PairName.INVITE_CHALLENGE
    return PairName.REGISTER_CHALLENGE if status == 401 else PairName.REGISTER_OK
