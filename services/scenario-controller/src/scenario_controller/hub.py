"""The client hub: sip-client pods connect over WebSocket, say hello, and take commands.

Each pod has its own outgoing queue and sender task, so a slow pod never holds up the
scheduler; the send time written to the run log is when the frame really went out.

A connection ends when either direction fails. The pod is marked disconnected before anything
else is awaited (a failed send must not leave it "connected" with a queue nobody drains), and
what was still queued for it is reported undeliverable at once, so the run log stays whole and
the pod can reconnect. A message that does not validate is counted and ignored, never the end
of the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from scenario_controller.metrics import ControllerMetrics
from sip_core import RateLimitedLog
from testbed_messages import (
    CallRecordMessage,
    ClientMessage,
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

HELLO_TIMEOUT = 10.0
# a stats or call message is a few hundred characters; far more is not a pod talking
MAX_MESSAGE_CHARS = 64 * 1024
_CLOSE_TIMEOUT = 2.0


class Socket(Protocol):
    """What the hub needs of a WebSocket (Starlette's, or a test double): ASGI messages in."""

    async def send_text(self, data: str) -> None: ...

    async def receive(self) -> Mapping[str, Any]: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


# called once per queued message: with the monotonic time it was written, or with None when it
# never went out (the pod disconnected first)
Sent = Callable[[float | None], None]


class _Closed(Exception):
    """The pod closed the connection."""


async def _frame(socket: Socket) -> str | bytes:
    message = await socket.receive()
    if message["type"] == "websocket.disconnect":
        raise _Closed(f"closed by the pod (code {message.get('code', '?')})")
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else b""


def decode_frame(frame: str | bytes) -> ClientMessage:
    """A pod's message; MessageError for anything else, including an oversized frame."""
    if len(frame) > MAX_MESSAGE_CHARS:
        raise MessageError(f"message of {len(frame)} characters, the limit is {MAX_MESSAGE_CHARS}")
    return decode_client(frame)


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
    malformed: int = 0  # messages from this pod that were ignored
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
            "malformed": self.malformed,
        }


class ClientHub:
    def __init__(self, metrics: ControllerMetrics) -> None:
        self.metrics = metrics
        self.pods: dict[str, PodState] = {}
        self.on_change: list[Callable[[], None]] = []
        self.on_call: list[Callable[[CallRecordMessage], None]] = []
        self._bad = RateLimitedLog(log)

    @property
    def connected(self) -> int:
        return sum(1 for p in self.pods.values() if p.connected)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def serve(self, socket: Socket) -> None:
        """One pod's connection, from hello to disconnect; nothing the pod sends or does makes
        this raise."""
        try:
            frame = await asyncio.wait_for(_frame(socket), timeout=HELLO_TIMEOUT)
        except TimeoutError:
            await _refuse(socket, f"expected a hello message within {HELLO_TIMEOUT:g} s")
            return
        except Exception as exc:  # gone before hello: there is no state to clean up
            log.info("a client left before saying hello: %s", exc)
            return
        try:
            hello = decode_frame(frame)
        except MessageError as exc:
            self._malformed(None, str(exc))
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
        else:  # a reconnect: keep the counters (the queue was emptied at the disconnect)
            state.phones, state.version = hello.phones, hello.version
            state.connected, state.disconnected_at = True, None
            state.connected_at = time.time()
            state.connections += 1
        state.socket = socket
        log.info("pod %s connected (%d phones)", hello.pod, hello.phones)
        self._changed()
        await self._session(state, socket)

    async def _session(self, state: PodState, socket: Socket) -> None:
        sender: asyncio.Task[None] | None = None
        receiver: asyncio.Task[tuple[bool, str]] | None = None
        closed_by_pod, reason = False, "the controller is shutting down"
        try:
            await socket.send_text(encode(Welcome(pod=state.pod)))
            sender = asyncio.create_task(self._sender(state, socket))
            receiver = asyncio.create_task(self._receiver(state, socket))
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                closed_by_pod, reason = receiver.result()
            else:
                reason = f"send failed: {_failure(sender)}"
        except Exception as exc:  # the welcome could not be sent
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            # state first, and nothing awaited here: whatever happens next (even this task
            # being cancelled), the pod is disconnected and its queue reported
            self._disconnected(state, socket, reason)
            for task in (sender, receiver):
                if task is not None:
                    task.add_done_callback(_retrieve)
                    task.cancel()
        if not closed_by_pod:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT):  # a half-open peer never answers
                    await socket.close()

    def _disconnected(self, state: PodState, socket: Socket, reason: str) -> None:
        self.metrics.disconnects.inc()
        if state.socket is not socket:
            return
        state.connected, state.disconnected_at, state.socket = False, time.time(), None
        queue, state.queue = state.queue, asyncio.Queue()
        dropped = 0
        while not queue.empty():
            _text, sent = queue.get_nowait()
            dropped += 1
            if sent is not None:
                _report(sent, None)
        log.info(
            "pod %s disconnected (%s); %d queued message(s) undeliverable",
            state.pod,
            reason,
            dropped,
        )
        self._changed()

    async def _receiver(self, state: PodState, socket: Socket) -> tuple[bool, str]:
        """Reads until the pod goes; returns (closed by the pod, why)."""
        while True:
            try:
                frame = await _frame(socket)
            except _Closed as exc:
                return True, str(exc)
            except Exception as exc:
                return False, f"receive failed: {type(exc).__name__}: {exc}"
            try:
                self._receive(state, decode_frame(frame))
            except MessageError as exc:
                self._malformed(state, str(exc))
            except Exception as exc:  # a handler's fault: one message lost, not the link
                self._malformed(state, f"failed while handled: {type(exc).__name__}: {exc}")

    def _malformed(self, state: PodState | None, reason: str) -> None:
        self.metrics.malformed.inc()
        if state is not None:
            state.malformed += 1
        pod = state.pod if state is not None else "(before hello)"
        self._bad.warning("pod %s: ignored a message: %s", pod, reason[:300])

    def _receive(self, state: PodState, message: ClientMessage) -> None:
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
        else:
            raise MessageError("a second hello on the same connection")

    async def _sender(self, state: PodState, socket: Socket) -> None:
        queue = state.queue
        while True:
            text, sent = await queue.get()
            try:
                await socket.send_text(text)
            except BaseException:  # failed or cancelled: this one did not (surely) go out
                if sent is not None:
                    _report(sent, None)
                raise
            if sent is not None:
                _report(sent, time.monotonic())

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


def _failure(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "-" if exc is None else f"{type(exc).__name__}: {exc}"


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Its outcome was already logged as the reason of the disconnect."""
    if not task.cancelled():
        task.exception()


def _report(sent: Sent, at: float | None) -> None:
    try:
        sent(at)
    except Exception:  # the run's bookkeeping must not take the link down with it
        log.exception("a send callback failed")


async def _refuse(socket: Socket, reason: str) -> None:
    log.warning("refused a client: %s", reason)
    with contextlib.suppress(Exception):
        await socket.send_text(encode(Refused(reason=reason)))
        await socket.close(code=1008, reason=reason[:120])
