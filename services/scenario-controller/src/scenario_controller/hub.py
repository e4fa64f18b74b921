"""The client hub: sip-client pods connect over WebSocket, say hello, and take commands.

Each pod has its own outgoing queue and sender task, so a slow pod never holds up the
scheduler; the send time written to the run log is when the frame really went out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from testbed_messages import (
    CallRecordMessage,
    Hello,
    MessageError,
    Refused,
    RegistrationMessage,
    Stats,
    Welcome,
    decode_client,
    encode,
)

log = logging.getLogger(__name__)


class Socket(Protocol):
    """What the hub needs of a WebSocket (FastAPI's, or a test double)."""

    async def send_text(self, data: str) -> None: ...

    async def receive_text(self) -> str: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


# called with (message text, when it was written) after each frame goes out
Sent = Callable[[float], None]


@dataclass
class PodState:
    pod: str
    phones: int
    version: str = ""
    connected: bool = True
    connected_at: float = field(default_factory=time.time)
    disconnected_at: float | None = None
    connections: int = 1
    stats: Stats | None = None
    registrations_ok: int = 0
    registrations_failed: int = 0
    calls: int = 0
    queue: asyncio.Queue[tuple[str, Sent | None]] = field(default_factory=asyncio.Queue)
    socket: Socket | None = None

    def view(self) -> dict[str, object]:
        stats = self.stats
        return {
            "pod": self.pod,
            "phones": self.phones,
            "version": self.version,
            "connected": self.connected,
            "connected_at": self.connected_at,
            "disconnected_at": self.disconnected_at,
            "connections": self.connections,
            "registered": stats.registered if stats else 0,
            "registrations_ok": self.registrations_ok,
            "registrations_failed": self.registrations_failed,
            "calls_started": stats.calls_started if stats else 0,
            "calls_succeeded": stats.calls_succeeded if stats else 0,
            "calls_failed": stats.calls_failed if stats else 0,
            "calls_active": stats.calls_active if stats else 0,
            "queued": self.queue.qsize(),
        }


class ClientHub:
    def __init__(self) -> None:
        self.pods: dict[str, PodState] = {}
        self.on_change: list[Callable[[], None]] = []
        self.on_call: list[Callable[[CallRecordMessage], None]] = []

    @property
    def connected(self) -> int:
        return sum(1 for p in self.pods.values() if p.connected)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def serve(self, socket: Socket) -> None:
        """One pod's connection, from hello to disconnect."""
        try:
            hello = decode_client(await asyncio.wait_for(socket.receive_text(), timeout=10))
        except (MessageError, TimeoutError) as exc:
            await _refuse(socket, f"expected a hello message: {exc}")
            return
        if not isinstance(hello, Hello):
            await _refuse(socket, f"expected a hello message, got {hello.type}")
            return
        state = self.pods.get(hello.pod)
        if state is not None and state.connected:
            await _refuse(socket, f"pod {hello.pod} is already connected")
            return
        if state is None:
            state = PodState(hello.pod, hello.phones, hello.version)
            self.pods[hello.pod] = state
        else:  # a reconnect: keep the counters, start a fresh queue
            state.phones, state.version = hello.phones, hello.version
            state.connected, state.disconnected_at = True, None
            state.connected_at = time.time()
            state.connections += 1
            state.queue = asyncio.Queue()
        state.socket = socket
        await socket.send_text(encode(Welcome(pod=hello.pod)))
        log.info("pod %s connected (%d phones)", hello.pod, hello.phones)
        self._changed()
        sender = asyncio.create_task(self._sender(state, socket))
        try:
            while True:
                self._receive(state, await socket.receive_text())
        except Exception as exc:  # the socket closed (FastAPI raises WebSocketDisconnect)
            log.info("pod %s disconnected: %s", hello.pod, type(exc).__name__)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            if state.socket is socket:
                state.connected, state.disconnected_at, state.socket = False, time.time(), None
            self._changed()

    def _receive(self, state: PodState, text: str) -> None:
        try:
            message = decode_client(text)
        except MessageError as exc:
            log.warning("pod %s sent a malformed message: %s", state.pod, exc)
            return
        if isinstance(message, Stats):
            state.stats = message
        elif isinstance(message, CallRecordMessage):
            state.calls += 1
            for callback in self.on_call:
                callback(message)
        elif isinstance(message, RegistrationMessage):
            if message.ok:
                state.registrations_ok += 1
            else:
                state.registrations_failed += 1

    async def _sender(self, state: PodState, socket: Socket) -> None:
        queue = state.queue
        while True:
            text, sent = await queue.get()
            await socket.send_text(text)
            if sent is not None:
                sent(time.monotonic())

    def send(self, pod: str, text: str, sent: Sent | None = None) -> bool:
        """Queue a message for a pod; False when the pod is not connected (undeliverable)."""
        state = self.pods.get(pod)
        if state is None or not state.connected:
            return False
        state.queue.put_nowait((text, sent))
        return True

    def broadcast(self, text: str) -> list[str]:
        """Queue for every connected pod; returns their ids."""
        return [pod for pod in sorted(self.pods) if self.send(pod, text)]

    def views(self) -> list[dict[str, object]]:
        return [self.pods[p].view() for p in sorted(self.pods)]


async def _refuse(socket: Socket, reason: str) -> None:
    log.warning("refused a client: %s", reason)
    with contextlib.suppress(Exception):
        await socket.send_text(encode(Refused(reason=reason)))
        await socket.close(code=1008, reason=reason[:120])
