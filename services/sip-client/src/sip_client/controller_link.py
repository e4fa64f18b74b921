"""The pod's WebSocket link to the scenario controller: hello, commands in, stats and calls out.

Reconnects with exponential backoff after anything that ends a connection (a drop, a restart of
the controller, a refusal, an answer that is not a message); while disconnected, finished calls
wait in a bounded queue and go out after the next welcome. A command that does not validate is
counted, logged rate-limited and ignored: nothing the controller sends ends the link task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import websockets
from prometheus_client import CollectorRegistry, Counter, Gauge

from api_token import bearer
from sip_client import __version__
from sip_client.records import CallRecord, RegistrationResult
from sip_client.runtime import PodRuntime
from sip_client.ua import PodEvent
from sip_core import RateLimitedLog
from testbed_messages import (
    CallRecordMessage,
    Hello,
    Invite,
    MessageError,
    Refused,
    RegisterAll,
    RegistrationMessage,
    Stats,
    Stop,
    Welcome,
    decode_controller,
    encode,
)

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 10.0
_PENDING_LIMIT = 100_000
_WELCOME_TIMEOUT = 10.0


class LinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.malformed = Counter(
            "sip_client_scenario_controller_messages_malformed",
            "Messages from the scenario controller that were not valid (ignored)",
            registry=registry,
        )
        self.sessions = Counter(
            "sip_client_scenario_controller_sessions",
            "Times the scenario controller welcomed this pod (the first connection and every "
            "reconnection)",
            registry=registry,
        )
        self.connected = Gauge(
            "sip_client_scenario_controller_connected",
            "1 while the link to the scenario controller is up",
            registry=registry,
        )


class ControllerLink:
    def __init__(
        self,
        url: str,
        runtime: PodRuntime,
        stats_interval: float,
        default_hold_ms: int,
        registry: CollectorRegistry | None = None,
        backoff: tuple[float, float] = (_BACKOFF_FIRST, _BACKOFF_MAX),
        token: str | None = None,
    ) -> None:
        self.url = url
        # the API token goes in the handshake's Authorization header (never in the URL)
        self._headers = bearer(token) if token else {}
        self.runtime = runtime
        self.stats_interval = stats_interval
        self.default_hold_ms = default_hold_ms
        self.backoff_first, self.backoff_max = backoff
        self.metrics = LinkMetrics(registry or CollectorRegistry())
        self.connected = False
        self.refused_reason = ""
        self.dropped_events = 0
        self.rejected_commands = 0  # valid commands the pod could not carry out
        self.malformed_messages = 0  # messages that did not validate
        self._pending: deque[str] = deque()
        self._bad = RateLimitedLog(log)
        runtime.listeners.append(self._on_event)

    def _on_event(self, event: PodEvent) -> None:
        if isinstance(event, CallRecord):
            message: CallRecordMessage | RegistrationMessage = CallRecordMessage(
                call_id=event.call_id,
                caller=event.caller,
                callee=event.callee,
                outcome="succeeded" if event.outcome == "succeeded" else "failed",
                reason=event.reason,
                invite_at=event.invite_at,
                challenge_at=event.challenge_at,
                ok_at=event.ok_at,
                ended_at=event.ended_at,
            )
        elif isinstance(event, RegistrationResult):
            message = RegistrationMessage(phone=event.phone, ok=event.ok, reason=event.reason)
        else:
            return
        if len(self._pending) >= _PENDING_LIMIT:
            self._pending.popleft()
            self.dropped_events += 1
        self._pending.append(encode(message))

    def stats(self) -> Stats:
        pod = self.runtime.require_pod()
        c = pod.counters
        return Stats(
            pod=pod.config.pod,
            phones=pod.config.phones,
            registered=len(pod.registered(self.runtime.now())),
            calls_started=c["calls_started"],
            calls_succeeded=c["calls_succeeded"],
            calls_failed=c["calls_failed"],
            calls_active=pod.active_calls,
            calls_answered=c["calls_answered"],
            malformed=c["malformed"],
        )

    async def run(self) -> None:
        """Connect, serve, and connect again, until cancelled."""
        backoff = self.backoff_first
        while True:
            welcomed = False
            try:
                # no permessage-deflate: small JSON messages at a high rate, CPU matters more
                async with websockets.connect(
                    self.url,
                    additional_headers=self._headers,
                    max_queue=None,
                    ping_interval=20,
                    compression=None,
                ) as ws:
                    welcomed = await self._session(ws)
            except websockets.InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):  # closed with 1008 before accept: the token
                    self.refused_reason = (
                        f"the handshake was refused (HTTP {status}): API_TOKEN missing or "
                        "not the scenario controller's"
                    )
                    log.error("scenario controller %s: %s", self.url, self.refused_reason)
                else:
                    log.info("scenario controller %s refused the handshake: %s", self.url, exc)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.info("scenario controller %s not reachable: %s", self.url, exc)
            except Exception as exc:  # whatever it was, the link task must live on
                log.exception("controller link failed (%s); reconnecting", exc)
            self._set_connected(False)
            if welcomed:  # it worked until the link dropped: come back quickly
                backoff = self.backoff_first
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max)

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        self.metrics.connected.set(1 if up else 0)

    async def _session(self, ws: websockets.ClientConnection) -> bool:
        """One connection; returns whether the controller welcomed us."""
        pod = self.runtime.require_pod()
        await ws.send(
            encode(Hello(pod=pod.config.pod, phones=pod.config.phones, version=__version__))
        )
        raw = await asyncio.wait_for(ws.recv(), timeout=_WELCOME_TIMEOUT)
        try:
            answer = decode_controller(raw)
        except MessageError as exc:
            self._malformed(f"answer to hello: {exc}")
            return False
        if isinstance(answer, Refused):
            self.refused_reason = answer.reason
            log.error("scenario controller refused pod %s: %s", pod.config.pod, answer.reason)
            return False
        if not isinstance(answer, Welcome):
            log.error("scenario controller answered hello with %s", answer.type)
            return False
        self._set_connected(True)
        self.metrics.sessions.inc()
        self.refused_reason = ""
        log.info("connected to scenario controller %s as pod %s", self.url, pod.config.pod)
        sender = asyncio.create_task(self._send_loop(ws))
        receiver = asyncio.create_task(self._receive_loop(ws))
        try:
            # either direction failing ends the connection; run() makes the next one
            done, _ = await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.info("controller link ended: %r", task.exception())
        finally:
            self._set_connected(False)
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        return True

    async def _receive_loop(self, ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            self._command(raw)

    def _malformed(self, reason: str) -> None:
        self.malformed_messages += 1
        self.metrics.malformed.inc()
        self._bad.warning("ignored a message from the controller: %s", reason[:300])

    def _command(self, raw: str | bytes) -> None:
        """One message from the controller; never raises."""
        try:
            message = decode_controller(raw)
        except MessageError as exc:
            self._malformed(str(exc))
            return
        try:
            if isinstance(message, RegisterAll):
                self.runtime.register_all()
            elif isinstance(message, Invite):
                hold = message.hold_ms if message.hold_ms else self.default_hold_ms
                self.runtime.call(message.caller, message.callee, hold, message.call_id)
            elif isinstance(message, Stop):
                log.info("controller says stop")
            else:  # welcome or refused out of turn
                self._malformed(f"unexpected {message.type} message")
        except ValueError as exc:
            self.rejected_commands += 1
            self._bad.warning("%s refused: %s", message.type, exc)
        except Exception as exc:  # one command lost, not the link
            self.rejected_commands += 1
            self._bad.warning("%s failed: %s: %s", message.type, type(exc).__name__, exc)

    async def _send_loop(self, ws: websockets.ClientConnection) -> None:
        while True:
            while self._pending:
                await ws.send(self._pending[0])
                self._pending.popleft()
            await ws.send(encode(self.stats()))
            await asyncio.sleep(self.stats_interval)
