"""The pod's WebSocket link to the scenario controller: hello, commands in, stats and calls out.

Reconnects with exponential backoff; while disconnected, finished calls wait in a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

import websockets

from sip_client import __version__
from sip_client.records import CallRecord, RegistrationResult
from sip_client.runtime import PodRuntime
from sip_client.ua import PodEvent
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


class ControllerLink:
    def __init__(
        self, url: str, runtime: PodRuntime, stats_interval: float, default_hold_ms: int
    ) -> None:
        self.url = url
        self.runtime = runtime
        self.stats_interval = stats_interval
        self.default_hold_ms = default_hold_ms
        self.connected = False
        self.refused_reason = ""
        self.dropped_events = 0
        self.rejected_commands = 0
        self._pending: deque[str] = deque()
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
        backoff = _BACKOFF_FIRST
        while True:
            try:
                # no permessage-deflate: small JSON messages at a high rate, CPU matters more
                async with websockets.connect(
                    self.url, max_queue=None, ping_interval=20, compression=None
                ) as ws:
                    backoff = _BACKOFF_FIRST if await self._session(ws) else _BACKOFF_MAX
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                log.info("scenario controller %s not reachable: %s", self.url, exc)
            self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _session(self, ws: websockets.ClientConnection) -> bool:
        """One connection; returns False if the controller refused us (retry slowly)."""
        pod = self.runtime.require_pod()
        await ws.send(
            encode(Hello(pod=pod.config.pod, phones=pod.config.phones, version=__version__))
        )
        answer = decode_controller(await asyncio.wait_for(ws.recv(), timeout=10))
        if isinstance(answer, Refused):
            self.refused_reason = answer.reason
            log.error("scenario controller refused pod %s: %s", pod.config.pod, answer.reason)
            return False
        if not isinstance(answer, Welcome):
            log.error("scenario controller answered hello with %s", answer.type)
            return False
        self.connected = True
        self.refused_reason = ""
        log.info("connected to scenario controller %s as pod %s", self.url, pod.config.pod)
        sender = asyncio.create_task(self._send_loop(ws))
        try:
            async for raw in ws:
                self._command(raw)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return True

    def _command(self, raw: str | bytes) -> None:
        try:
            message = decode_controller(raw)
        except MessageError as exc:
            self.rejected_commands += 1
            log.warning("ignored a malformed command from the controller: %s", exc)
            return
        if isinstance(message, RegisterAll):
            self.runtime.register_all()
        elif isinstance(message, Invite):
            hold = message.hold_ms if message.hold_ms else self.default_hold_ms
            try:
                self.runtime.call(message.caller, message.callee, hold, message.call_id)
            except ValueError as exc:
                self.rejected_commands += 1
                log.warning("invite refused: %s", exc)
        elif isinstance(message, Stop):
            log.info("controller says stop")

    async def _send_loop(self, ws: websockets.ClientConnection) -> None:
        while True:
            while self._pending:
                await ws.send(self._pending[0])
                self._pending.popleft()
            await ws.send(encode(self.stats()))
            await asyncio.sleep(self.stats_interval)
