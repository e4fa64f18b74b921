"""`SoftphonePod`: the phones of one pod on sip-core's transaction layer and digest flow.

Outgoing call (caller PPxx): INVITE -> 407 (the transaction ACKs it) -> INVITE with
Proxy-Authorization -> 100/180 -> 200 -> ACK -> BYE after the hold time -> 200. Incoming call:
180 at once, 200 after the ring delay, the transaction retransmits the 200 until the ACK, then
the BYE is answered. Every request leaves through the outbound proxy (the load balancer).
REGISTER and INVITE answer challenges with `DigestAuth.auth_flow`: once, plus one retry for a
stale nonce.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import assert_never

from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.ua.contexts import (
    Answer,
    ByeTx,
    CallDeadline,
    Forget,
    HangUp,
    InviteTx,
    RegisterTx,
    Reregister,
    Timer,
    TxContext,
)
from sip_client.ua.pod_config import PodConfig
from sip_client.ua.state import IncomingCall, OutgoingCall, Registration
from sip_core import (
    AckReceived,
    Address,
    ChallengeError,
    ClientTransaction,
    CSeq,
    Dialog,
    DigestAuth,
    Event,
    IdSource,
    LocalProtocolError,
    MalformedDatagram,
    NameAddr,
    ParseError,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    ServerTransaction,
    SipError,
    StrayResponse,
    TransactionLayer,
    TransactionTimedOut,
    Via,
    make_request,
    make_response,
    next_request,
    parse_uri,
)
from sip_core.syntax import is_call_id, number

SDP_TEMPLATE = (
    "v=0\r\no=- {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)

PodEvent = CallRecord | RegistrationResult | MalformedInput
_FORGET_ANSWERED_AFTER = 3600.0
_MAX_EXPIRES = 2**32 - 1  # RFC 3261 20.19: delta-seconds up to 2**32-1


class SoftphonePod:
    def __init__(
        self,
        config: PodConfig,
        ids: IdSource | None = None,
        epoch: float = 0.0,
        records_limit: int = 1_000_000,
    ) -> None:
        self.config = config
        self.ids = ids or IdSource()
        self.epoch = epoch  # wall-clock seconds at `now == 0`, for the records
        self.layer = TransactionLayer(config.timers)
        self._phones = set(config.phone_ids())
        self._registrations = {
            phone: Registration(
                phone, DigestAuth(phone, self._password(phone)), self.ids.call_id(config.local[0])
            )
            for phone in config.phone_ids()
        }
        self._calls: dict[str, OutgoingCall] = {}
        self._incoming: dict[tuple[str, str], IncomingCall] = {}  # (Call-ID, our tag)
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._events: list[PodEvent] = []
        self.records: deque[CallRecord] = deque(maxlen=records_limit)
        self.counters: dict[str, int] = {
            "calls_started": 0,
            "calls_succeeded": 0,
            "calls_failed": 0,
            "calls_answered": 0,
            "registrations_ok": 0,
            "registrations_failed": 0,
            "malformed": 0,
            "stray_responses": 0,
        }

    # -- public API ------------------------------------------------------------------------

    def phone_ids(self) -> list[str]:
        return self.config.phone_ids()

    def registered(self, now: float) -> list[str]:
        return [p for p, r in self._registrations.items() if r.registered_until > now]

    def registration_state(self, now: float) -> list[dict[str, object]]:
        return [
            {
                "phone": r.phone,
                "registered": r.registered_until > now,
                "expires_in": max(0.0, r.registered_until - now),
                "last": r.last_reason,
            }
            for r in self._registrations.values()
        ]

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def register_all(self, now: float) -> None:
        spread = self.config.register_spread
        if spread <= 0:
            for phone in self._registrations:
                self.register(phone, now)
            return
        step = spread / len(self._registrations)
        for index, registration in enumerate(self._registrations.values()):
            if index == 0:
                self.register(registration.phone, now)
            else:
                self._schedule(now + index * step, Reregister(registration))

    def register(self, phone: str, now: float) -> None:
        registration = self._registrations.get(phone)
        if registration is None:
            raise ValueError(f"phone {phone} is not in pod {self.config.pod}")
        registration.started_at = now
        # each try is a fresh REGISTER (CSeq + 1, new branch and From tag) with credentials
        flow = registration.auth.auth_flow(
            self._register_request(registration),
            lambda _challenged: self._register_request(registration),
        )
        self._send(next(flow), RegisterTx(registration, flow), now)

    def call(
        self, caller: str, callee: str, now: float, hold_ms: int = 0, call_id: str | None = None
    ) -> CallRecord:
        if caller not in self._phones:
            raise ValueError(f"caller {caller} is not a phone of pod {self.config.pod}")
        if len(callee) != 4 or number(callee, 9999) is None:
            raise ValueError(f"callee {callee!r} is not a four-digit phone id")
        if call_id is not None and not is_call_id(call_id):
            # it goes into the Call-ID header: no spaces, CR or LF (header injection)
            raise ValueError(
                f"call_id {call_id[:60]!r} is not a Call-ID: word[@word] of printable ASCII "
                "without spaces (RFC 3261 25.1)"
            )
        local_ip, local_port = self.config.local
        call_id = call_id or self.ids.call_id(local_ip)
        if call_id in self._calls:
            raise ValueError(f"call {call_id} is already in progress")
        domain = self.config.domain
        body = SDP_TEMPLATE.format(session=next(self._seq), ip=local_ip, port=40000).encode()
        invite = make_request(
            "INVITE",
            f"sip:{callee}@{domain}",
            via=self._via(),
            from_=NameAddr(f"sip:{caller}@{domain}", params={"tag": self.ids.tag()}),
            to=NameAddr(f"sip:{callee}@{domain}"),
            call_id=call_id,
            cseq=1,
            contact=NameAddr(f"sip:{caller}@{local_ip}:{local_port}"),
            body=body,
            content_type="application/sdp",
        )
        record = CallRecord(call_id, caller, callee, hold_ms, invite_at=self._wall(now))
        call = OutgoingCall(record, DigestAuth(caller, self._password(caller)))
        self._calls[call_id] = call
        self.counters["calls_started"] += 1
        flow = call.auth.auth_flow(invite, self._renew)
        self._send(next(flow), InviteTx(call, flow), now)
        self._schedule(now + self.config.call_timeout, CallDeadline(call))
        return record

    def receive_datagram(self, data: bytes, source: Address, now: float) -> None:
        """Feed one datagram. A message the layer parsed but that fails later (a header parsed
        on use, a state the peer cannot drive us into) is counted malformed, not raised."""
        for event in self.layer.receive_datagram(data, source, now):
            try:
                self._dispatch(event, now)
            except SipError as exc:
                self.malformed(f"{type(exc).__name__}: {exc}", source, len(data))

    def malformed(self, reason: str, source: Address, size: int) -> None:
        """Count input that could not be handled (the runtime reports its own failures here)."""
        self.counters["malformed"] += 1
        self._events.append(MalformedInput(reason, source, size))

    def get_timer(self) -> float | None:
        layer = self.layer.get_timer()
        own = self._timers[0][0] if self._timers else None
        if layer is None or (own is not None and own < layer):
            return own
        return layer

    def handle_timer(self, now: float) -> None:
        for event in self.layer.handle_timer(now):
            self._dispatch(event, now)
        while self._timers and self._timers[0][0] <= now:
            _when, _seq, timer = heapq.heappop(self._timers)
            self._fire(timer, now)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        return self.layer.datagrams_to_send()

    def take_events(self) -> list[PodEvent]:
        events, self._events = self._events, []
        return events

    # -- helpers ---------------------------------------------------------------------------

    def _wall(self, now: float) -> float:
        return self.epoch + now

    def _password(self, phone: str) -> str:
        return self.config.password_template.format(username=phone, domain=self.config.domain)

    def _via(self) -> Via:
        ip, port = self.config.local
        return Via("UDP", ip, port, {"branch": self.ids.branch(), "rport": None})

    def _send(self, request: Request, context: TxContext, now: float) -> None:
        self.layer.send_request(request, self.config.outbound, now, context=context)

    def _schedule(self, when: float, timer: Timer) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), timer))

    def _renew(self, request: Request) -> Request:
        """The same request as a new transaction: new branch, CSeq + 1 (RFC 3261 22.2)."""
        via = self._via()
        cseq = CSeq(request.cseq.number + 1, request.method)
        headers = request.headers.replace("via", str(via)).replace("cseq", str(cseq))
        renewed = Request(request.method, request.uri, headers, request.body)
        renewed.known(via, cseq)
        return renewed

    # -- registration ----------------------------------------------------------------------

    def _register_request(self, registration: Registration) -> Request:
        ip, port = self.config.local
        domain = self.config.domain
        registration.cseq += 1
        return make_request(
            "REGISTER",
            f"sip:{domain}",
            via=self._via(),
            from_=NameAddr(f"sip:{registration.phone}@{domain}", params={"tag": self.ids.tag()}),
            to=NameAddr(f"sip:{registration.phone}@{domain}"),
            call_id=registration.call_id,
            cseq=registration.cseq,
            contact=NameAddr(f"sip:{registration.phone}@{ip}:{port}"),
            extra=[("Expires", str(self.config.register_expires))],
        )

    def _on_register_response(self, tx: RegisterTx, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            return
        registration = tx.registration
        try:
            again = next_request(tx.flow, response)
        except ChallengeError as exc:
            reason = f"{status} {response.reason}".strip()
            self._registration_done(registration, False, f"{reason}: {exc.reason}", now)
            return
        if again is not None:  # challenged: the REGISTER with credentials
            self._send(again, tx, now)
            return
        ok = 200 <= status < 300
        if ok:
            granted = self._granted_expiry(response)
            registration.registered_until = now + granted
            refresh = min(self.config.reregister_interval, granted * 0.9)
            self._schedule(now + refresh, Reregister(registration))
        self._registration_done(registration, ok, f"{status} {response.reason}".strip(), now)

    def _granted_expiry(self, response: Response) -> float:
        for contact in response.contact:
            expires = number(contact.params.get("expires") or "", _MAX_EXPIRES)
            if expires is not None:
                return float(expires)
        granted = number((response.headers.get("expires") or "").strip(), _MAX_EXPIRES)
        return float(self.config.register_expires if granted is None else granted)

    def _registration_done(
        self, registration: Registration, ok: bool, reason: str, now: float
    ) -> None:
        registration.last_reason = reason
        self.counters["registrations_ok" if ok else "registrations_failed"] += 1
        if not ok and self.config.register_retry > 0:
            spread = (number(registration.phone, 9999) or 0) % 10 / 10
            self._schedule(
                now + self.config.register_retry * (1 + spread), Reregister(registration)
            )
        self._events.append(
            RegistrationResult(
                registration.phone,
                ok,
                reason,
                self._wall(now),
                (now - registration.started_at) * 1000,
            )
        )

    # -- outgoing calls --------------------------------------------------------------------

    def _on_invite_response(self, tx: InviteTx, event: ResponseReceived, now: float) -> None:
        call = tx.call
        if call.done:
            if event.retransmission and call.ack is not None:
                self.layer.send_stateless(call.ack, self.config.outbound)
            return
        response = event.response
        status = response.status
        record = call.record
        if status < 200:
            if status in (180, 183) and record.ringing_at is None:
                record.ringing_at = self._wall(now)
            return
        if status < 300:
            if event.retransmission and call.ack is not None:
                self.layer.send_stateless(call.ack, self.config.outbound)  # our ACK was lost
                return
            record.ok_at = self._wall(now)
            record.final_status = status
            try:
                call.dialog = Dialog.from_uac(event.transaction.request, response)
            except LocalProtocolError as exc:
                self._finish(call, False, f"unusable 2xx: {exc}", now)
                return
            call.ack = call.dialog.ack(event.transaction.request.cseq.number, self._via())
            self.layer.send_stateless(call.ack, self.config.outbound)
            self._schedule(now + record.hold_ms / 1000, HangUp(call))
            return
        try:
            again = next_request(tx.flow, response)
        except ChallengeError as exc:
            record.final_status = status
            self._finish(call, False, f"{status} {response.reason}: {exc.reason}".strip(), now)
            return
        if again is not None:  # challenged: the INVITE with credentials
            if record.challenge_at is None:
                record.challenge_at = self._wall(now)
            record.authenticated_invite_at = self._wall(now)
            self._send(again, tx, now)
            return
        record.final_status = status
        self._finish(call, False, f"{status} {response.reason}".strip(), now)

    def _send_bye(self, call: OutgoingCall, now: float) -> None:
        if call.done or call.dialog is None:
            return
        self._send(call.dialog.request("BYE", self._via()), ByeTx(call), now)

    def _on_bye_response(self, call: OutgoingCall, response: Response, now: float) -> None:
        if response.status < 200 or call.done:
            return
        if response.status < 300:
            self._finish(call, True, "", now)
        else:
            self._finish(
                call, False, f"BYE answered {response.status} {response.reason}".strip(), now
            )

    def _finish(self, call: OutgoingCall, ok: bool, reason: str, now: float) -> None:
        if call.done:
            return
        call.done = True
        record = call.record
        record.outcome = "succeeded" if ok else "failed"
        record.reason = reason
        record.ended_at = self._wall(now)
        self._calls.pop(record.call_id, None)
        self.counters["calls_succeeded" if ok else "calls_failed"] += 1
        self.records.append(record)
        self._events.append(record)

    def _call_deadline(self, call: OutgoingCall, now: float) -> None:
        if not call.done and call.record.ok_at is None:
            self._finish(call, False, f"no final answer within {self.config.call_timeout:g} s", now)

    # -- incoming requests -----------------------------------------------------------------

    def _on_request(self, event: RequestReceived, now: float) -> None:
        request = event.request
        match request.method:
            case "INVITE":
                self._on_invite(event, now)
            case "BYE":
                self._on_bye(request, now)
            case "CANCEL":
                self._on_cancel(request, now)
            case "OPTIONS":
                self.layer.send_response(make_response(request, 200), now)
            case _:
                self.layer.send_response(make_response(request, 501), now)

    def _callee(self, request: Request) -> str | None:
        try:
            uri = parse_uri(request.uri, "Request-URI")
        except ParseError:
            return None
        user = None if isinstance(uri, str) else uri.user
        return user if user in self._phones else None

    def _on_invite(self, event: RequestReceived, now: float) -> None:
        request = event.request
        callee = self._callee(request)
        if callee is None:
            self.layer.send_response(make_response(request, 404), now)
            return
        if request.to.tag is not None:  # re-INVITE: we do not renegotiate
            self.layer.send_response(make_response(request, 488, "Not Acceptable Here"), now)
            return
        tag = self.ids.tag()
        try:
            dialog = Dialog.from_uas(request, tag)
        except LocalProtocolError:  # no Contact or From tag: cannot answer within a dialog
            self.layer.send_response(
                make_response(request, 400, "Missing Contact or From tag"), now
            )
            return
        call = IncomingCall(request, event.transaction, dialog)
        self._incoming[(request.call_id, tag)] = call
        self.layer.send_response(
            make_response(request, 180, to_tag=tag, contact=self._contact(callee)), now
        )
        if self.config.ring_delay > 0:
            self._schedule(now + self.config.ring_delay, Answer(call))
        else:
            self._answer(call, now)

    def _contact(self, phone: str) -> NameAddr:
        ip, port = self.config.local
        return NameAddr(f"sip:{phone}@{ip}:{port}")

    def _answer(self, call: IncomingCall, now: float) -> None:
        if call.answered:
            return
        call.answered = True
        callee = call.dialog.local_uri.split(":", 1)[1].split("@", 1)[0]
        ip = self.config.local[0]
        body = SDP_TEMPLATE.format(session=next(self._seq), ip=ip, port=40002).encode()
        ok = make_response(
            call.request,
            200,
            to_tag=call.dialog.local_tag,
            contact=self._contact(callee),
            body=body,
            content_type="application/sdp",
        )
        self.layer.send_response(ok, now)
        self.counters["calls_answered"] += 1
        # a caller that never hangs up must not keep the entry forever
        self._schedule(now + _FORGET_ANSWERED_AFTER, Forget(call))

    def _on_bye(self, request: Request, now: float) -> None:
        tag = request.to.tag or ""
        incoming = self._incoming.pop((request.call_id, tag), None)
        if incoming is not None:
            self.layer.send_response(make_response(request, 200), now)
            return
        outgoing = self._calls.get(request.call_id)
        if (
            outgoing is not None
            and outgoing.dialog is not None
            and outgoing.dialog.matches(request)
        ):
            self.layer.send_response(make_response(request, 200), now)
            self._finish(outgoing, True, "remote hung up", now)
            return
        self.layer.send_response(make_response(request, 481), now)

    def _on_cancel(self, request: Request, now: float) -> None:
        for key, call in list(self._incoming.items()):
            if key[0] == request.call_id and not call.answered:
                self.layer.send_response(make_response(request, 200), now)
                self.layer.send_response(make_response(call.request, 487, to_tag=key[1]), now)
                del self._incoming[key]
                return
        self.layer.send_response(make_response(request, 481), now)

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, event: Event, now: float) -> None:
        match event:
            case ResponseReceived(response, ClientTransaction(context=RegisterTx() as tx)):
                self._on_register_response(tx, response, now)
            case ResponseReceived(transaction=ClientTransaction(context=InviteTx() as tx)):
                self._on_invite_response(tx, event, now)
            case ResponseReceived(response, ClientTransaction(context=ByeTx(call))):
                self._on_bye_response(call, response, now)
            case RequestReceived():
                self._on_request(event, now)
            case AckReceived(request):
                incoming = self._incoming.get((request.call_id, request.to.tag or ""))
                if incoming is not None:
                    incoming.confirmed = True
            case TransactionTimedOut():
                self._on_timeout(event, now)
            case MalformedDatagram(reason, source, size):
                self.counters["malformed"] += 1
                self._events.append(MalformedInput(reason, source, size))
            case StrayResponse():
                self.counters["stray_responses"] += 1

    def _on_timeout(self, event: TransactionTimedOut, now: float) -> None:
        why = f"timeout (timer {event.timer})"
        match event.transaction:
            case ClientTransaction(context=RegisterTx(registration)):
                self._registration_done(registration, False, why, now)
            case ClientTransaction(context=InviteTx(call)):
                self._finish(call, False, f"INVITE {why}", now)
            case ClientTransaction(context=ByeTx(call)):
                self._finish(call, False, f"BYE {why}", now)
            case ServerTransaction(request=request, last_response=Response() as last):
                # our 2xx (timer L) or negative answer (timer H) was never acknowledged: forget it
                self._incoming.pop((request.call_id, last.to.tag or ""), None)

    def _fire(self, timer: Timer, now: float) -> None:
        match timer:
            case HangUp(call):
                self._send_bye(call, now)
            case CallDeadline(call):
                self._call_deadline(call, now)
            case Answer(call):
                self._answer(call, now)
            case Forget(call):
                self._incoming.pop((call.request.call_id, call.dialog.local_tag), None)
            case Reregister(registration):
                self.register(registration.phone, now)
            case _:
                assert_never(timer)
