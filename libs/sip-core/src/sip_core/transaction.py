"""RFC 3261 section 17 transactions over UDP, as state machines driven by explicit time.

Shaped like aioquic's connection: `receive_datagram(data, addr, now)` returns events,
`datagrams_to_send()` drains what to put on the wire, `get_timer()` says when to call
`handle_timer(now)` next. No sockets, no clocks, no asyncio: tests drive time by hand.

Timers: A/B/D (INVITE client), E/F/K (non-INVITE client), G/H/I (INVITE server), J (non-INVITE
server); with RFC 6026, INVITE transactions that saw a 2xx stay "accepted" for 64*T1 (timers M
and L) so 2xx retransmissions reach the UAC core, and the server side retransmits its 2xx until
the ACK arrives (the UAS core's job in RFC 3261 13.3.1.4, done here so every UA gets it right).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sip_core.build import BRANCH_COOKIE, make_response
from sip_core.errors import LocalProtocolError, ParseError
from sip_core.headers import Headers
from sip_core.message import Request, Response, parse_message

Address = tuple[str, int]

_TRYING_DELAY = 0.2  # RFC 3261 17.2.1: send 100 if the TU has not answered within 200 ms


@dataclass(frozen=True)
class TimerSettings:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0  # at least 32 s over UDP

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J, L, M."""
        return 64 * self.t1


class State(enum.StrEnum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(eq=False, slots=True)
class Transaction:
    request: Request
    key: tuple[str, ...]
    state: State
    is_invite: bool
    peer: Address
    last_response: Response | None = None
    # the transaction user's own data (a call, a registration ...)
    context: Any = None
    timers: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class ClientTransaction(Transaction):
    ack: Request | None = None


@dataclass(eq=False, slots=True)
class ServerTransaction(Transaction):
    acked: bool = False


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestReceived:
    request: Request
    source: Address
    transaction: ServerTransaction


@dataclass(frozen=True)
class AckReceived:
    """An ACK for a 2xx (its own transaction); `transaction` is the INVITE it acknowledges."""

    request: Request
    source: Address
    transaction: ServerTransaction | None


@dataclass(frozen=True)
class ResponseReceived:
    response: Response
    transaction: ClientTransaction
    retransmission: bool = False


@dataclass(frozen=True)
class TransactionTimedOut:
    transaction: Transaction
    timer: str


@dataclass(frozen=True)
class StrayResponse:
    response: Response
    source: Address


@dataclass(frozen=True)
class MalformedDatagram:
    reason: str
    source: Address
    size: int


Event = (
    RequestReceived
    | AckReceived
    | ResponseReceived
    | TransactionTimedOut
    | StrayResponse
    | MalformedDatagram
)


def _server_key(message: Request | Response, method: str) -> tuple[str, ...]:
    via = message.top_via
    branch = via.branch or ""
    method = "INVITE" if method == "ACK" else method
    if branch.startswith(BRANCH_COOKIE):
        return (branch, via.sent_by, method)
    # RFC 2543 peers: match on the dialog-ish fields instead
    return (message.call_id, str(message.cseq.number), message.from_.tag or "", via.sent_by, method)


def _client_key(message: Request | Response) -> tuple[str, ...]:
    return (message.top_via.branch or "", message.cseq.method)


def response_destination(request: Request, source: Address) -> Address:
    """Where to send responses to `request` received from `source` (RFC 3261 18.2.2 +
    RFC 3581: the source address, and its port when the Via asks with rport)."""
    via = request.top_via
    port = source[1] if "rport" in via.params else (via.port or 5060)
    return source[0], port


class TransactionLayer:
    def __init__(self, timers: TimerSettings | None = None, send_trying: bool = True) -> None:
        self.timers = timers or TimerSettings()
        self.send_trying = send_trying
        self._client: dict[tuple[str, ...], ClientTransaction] = {}
        self._server: dict[tuple[str, ...], ServerTransaction] = {}
        # INVITE server transactions that sent a 2xx, by (Call-ID, CSeq number), to match the ACK
        self._awaiting_ack: dict[tuple[str, int], ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = itertools.count()
        self._out: list[tuple[bytes, Address]] = []
        self.counters: Counter[str] = Counter()

    # -- output ----------------------------------------------------------------------------

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def _send(self, message: Request | Response, peer: Address) -> None:
        self._out.append((message.to_bytes(), peer))

    def send_stateless(self, message: Request | Response, peer: Address) -> None:
        """Send outside any transaction: the ACK for a 2xx, or a response to a stray request."""
        self._send(message, peer)

    # -- timers ----------------------------------------------------------------------------

    def _arm(self, tx: Transaction, name: str, now: float, delay: float) -> None:
        deadline = now + delay
        tx.timers[name] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), tx, name))

    def get_timer(self) -> float | None:
        while self._heap:
            deadline, _seq, tx, name = self._heap[0]
            if tx.state is not State.TERMINATED and tx.timers.get(name) == deadline:
                return deadline
            heapq.heappop(self._heap)  # stale entry
        return None

    def handle_timer(self, now: float) -> list[Event]:
        events: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _seq, tx, name = heapq.heappop(self._heap)
            if tx.state is State.TERMINATED or tx.timers.get(name) != deadline:
                continue
            del tx.timers[name]
            self._fire(tx, name, now, events)
        return events

    def _fire(self, tx: Transaction, name: str, now: float, events: list[Event]) -> None:
        t = self.timers
        if name in ("A", "E", "G", "2xx"):
            message: Request | Response | None = (
                tx.request if name in ("A", "E") else tx.last_response
            )
            if message is None or (
                name == "2xx" and isinstance(tx, ServerTransaction) and tx.acked
            ):
                return
            self._send(message, tx.peer)
            self.counters["retransmissions_sent"] += 1
            interval = tx.intervals[name]
            if name == "A":
                interval *= 2
            elif name == "E" and tx.state is State.PROCEEDING:
                interval = t.t2
            else:
                interval = min(interval * 2, t.t2)
            tx.intervals[name] = interval
            self._arm(tx, name, now, interval)
        elif name == "trying":
            if tx.last_response is None and tx.state is State.PROCEEDING:
                self.send_response(make_response(tx.request, 100), now)
        elif name in ("B", "F", "H"):
            self._terminate(tx)
            events.append(TransactionTimedOut(tx, name))
        elif name == "L":
            acked = isinstance(tx, ServerTransaction) and tx.acked
            self._terminate(tx)
            if not acked:
                events.append(TransactionTimedOut(tx, name))
        else:  # D, I, J, K, M: the wait for retransmissions is over
            self._terminate(tx)

    def _terminate(self, tx: Transaction) -> None:
        tx.state = State.TERMINATED
        tx.timers.clear()
        if isinstance(tx, ClientTransaction):
            self._client.pop(tx.key, None)
        else:
            self._server.pop(tx.key, None)
            dialog_key = (tx.request.call_id, tx.request.cseq.number)
            if self._awaiting_ack.get(dialog_key) is tx:
                del self._awaiting_ack[dialog_key]

    # -- client side -----------------------------------------------------------------------

    def send_request(
        self, request: Request, peer: Address, now: float, context: Any = None
    ) -> ClientTransaction:
        if request.method == "ACK":
            raise LocalProtocolError("an ACK is not a transaction: use send_stateless")
        key = _client_key(request)
        if key in self._client:
            raise LocalProtocolError(f"a client transaction with branch {key[0]} exists")
        invite = request.method == "INVITE"
        tx = ClientTransaction(
            request, key, State.CALLING if invite else State.TRYING, invite, peer, context=context
        )
        self._client[key] = tx
        self._send(request, peer)
        retransmit = "A" if invite else "E"
        tx.intervals[retransmit] = self.timers.t1
        self._arm(tx, retransmit, now, self.timers.t1)
        self._arm(tx, "B" if invite else "F", now, self.timers.timeout)
        return tx

    def _on_response(self, response: Response, source: Address, now: float) -> list[Event]:
        tx = self._client.get(_client_key(response))
        if tx is None:
            self.counters["stray_responses"] += 1
            return [StrayResponse(response, source)]
        status = response.status
        if tx.is_invite:
            return self._client_invite(tx, response, now, status)
        if tx.state in (State.TRYING, State.PROCEEDING):
            if status < 200:
                tx.state = State.PROCEEDING
                tx.last_response = response
                return [ResponseReceived(response, tx)]
            tx.state = State.COMPLETED
            tx.last_response = response
            tx.timers.clear()
            self._arm(tx, "K", now, self.timers.t4)
            return [ResponseReceived(response, tx)]
        self.counters["retransmissions_received"] += 1
        return []

    def _client_invite(
        self, tx: ClientTransaction, response: Response, now: float, status: int
    ) -> list[Event]:
        if tx.state in (State.CALLING, State.PROCEEDING):
            tx.last_response = response
            if status < 200:
                if tx.state is State.CALLING:
                    tx.state = State.PROCEEDING
                    tx.timers.pop("A", None)
                    tx.timers.pop("B", None)
                return [ResponseReceived(response, tx)]
            tx.timers.clear()
            if status < 300:
                tx.state = State.ACCEPTED
                self._arm(tx, "M", now, self.timers.timeout)
                return [ResponseReceived(response, tx)]
            tx.state = State.COMPLETED
            tx.ack = _ack_for(tx.request, response)
            self._send(tx.ack, tx.peer)
            self._arm(tx, "D", now, self.timers.timer_d)
            return [ResponseReceived(response, tx)]
        if tx.state is State.ACCEPTED and 200 <= status < 300:
            # a retransmitted (or forked) 2xx: the UAC core must ACK it again
            self.counters["retransmissions_received"] += 1
            return [ResponseReceived(response, tx, retransmission=True)]
        if tx.state is State.COMPLETED and status >= 300 and tx.ack is not None:
            self.counters["retransmissions_received"] += 1
            self._send(tx.ack, tx.peer)
        return []

    # -- server side -----------------------------------------------------------------------

    def _on_request(self, request: Request, source: Address, now: float) -> list[Event]:
        key = _server_key(request, request.method)
        tx = self._server.get(key)
        if request.method == "ACK":
            return self._on_ack(request, source, tx, now)
        if tx is not None:  # a retransmission
            self.counters["retransmissions_received"] += 1
            if tx.last_response is not None and tx.state in (State.PROCEEDING, State.COMPLETED):
                self._send(tx.last_response, tx.peer)
            return []
        invite = request.method == "INVITE"
        tx = ServerTransaction(
            request,
            key,
            State.PROCEEDING if invite else State.TRYING,
            invite,
            response_destination(request, source),
        )
        self._server[key] = tx
        if invite and self.send_trying:
            self._arm(tx, "trying", now, _TRYING_DELAY)
        return [RequestReceived(request, source, tx)]

    def _on_ack(
        self, ack: Request, source: Address, tx: ServerTransaction | None, now: float
    ) -> list[Event]:
        if tx is not None and tx.state in (State.COMPLETED, State.CONFIRMED):
            # ACK for our negative final response: absorbed
            if tx.state is State.COMPLETED:
                tx.state = State.CONFIRMED
                tx.timers.clear()
                self._arm(tx, "I", now, self.timers.t4)
            return []
        invite = self._awaiting_ack.get((ack.call_id, ack.cseq.number))
        if invite is not None:
            if invite.acked:
                return []  # a retransmitted ACK
            invite.acked = True
            invite.timers.pop("2xx", None)
        return [AckReceived(ack, source, invite)]

    def send_response(self, response: Response, now: float) -> ServerTransaction | None:
        """Send a response within its server transaction (found by Via branch and CSeq)."""
        tx = self._server.get(_server_key(response, response.cseq.method))
        if tx is None:
            raise LocalProtocolError(f"no server transaction for {response!r}")
        status = response.status
        if tx.state not in (State.TRYING, State.PROCEEDING):
            raise LocalProtocolError(f"cannot send {status} in state {tx.state}")
        tx.last_response = response
        self._send(response, tx.peer)
        tx.timers.pop("trying", None)
        if status < 200:
            tx.state = State.PROCEEDING
            return tx
        t = self.timers
        if tx.is_invite and status < 300:
            tx.state = State.ACCEPTED
            self._awaiting_ack[(tx.request.call_id, tx.request.cseq.number)] = tx
            tx.intervals["2xx"] = t.t1
            self._arm(tx, "2xx", now, t.t1)
            self._arm(tx, "L", now, t.timeout)
        elif tx.is_invite:
            tx.state = State.COMPLETED
            tx.intervals["G"] = t.t1
            self._arm(tx, "G", now, t.t1)
            self._arm(tx, "H", now, t.timeout)
        else:
            tx.state = State.COMPLETED
            self._arm(tx, "J", now, t.timeout)
        return tx

    # -- input -----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Address, now: float) -> list[Event]:
        """Feed one datagram; malformed input becomes a MalformedDatagram event, never an error."""
        if not data.strip(b"\r\n"):
            return []  # keep-alive
        try:
            message = parse_message(data)
            if isinstance(message, Response):
                return self._on_response(message, source, now)
            return self._on_request(message, source, now)
        except ParseError as exc:
            self.counters["malformed"] += 1
            return [MalformedDatagram(exc.reason, source, len(data))]

    @property
    def active(self) -> int:
        return len(self._client) + len(self._server)


def _ack_for(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 3xx-6xx (RFC 3261 17.1.1.3)."""
    headers = invite.headers
    fields = [("Via", str(invite.top_via))]
    fields += [("Route", r) for r in headers.get_all("route")]
    fields += [
        ("Max-Forwards", "70"),
        ("From", headers.get("from") or ""),
        ("To", response.headers.get("to") or ""),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} ACK"),
    ]
    return Request("ACK", invite.uri, Headers(fields))
