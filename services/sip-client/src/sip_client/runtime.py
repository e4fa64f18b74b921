"""The thin asyncio adapter: one UDP socket, the event loop's clock, and the pod's timers."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import socket
import time
from collections.abc import Callable

from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.ua import PodConfig, PodEvent, SoftphonePod
from sip_core import LogLimiter, held_note

log = logging.getLogger(__name__)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, runtime: PodRuntime) -> None:
        self.runtime = runtime

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # an exception here would make asyncio close the socket: the pod would go deaf
        self.runtime.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class PodRuntime:
    """Runs a SoftphonePod on a real socket; listeners get the pod's events."""

    def __init__(self, config: PodConfig, records_limit: int, socket_buffer: int) -> None:
        self.config = config
        self.records_limit = records_limit
        self.socket_buffer = socket_buffer
        self.pod: SoftphonePod | None = None
        self.listeners: list[Callable[[PodEvent], None]] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._log_limiter = LogLimiter()

    async def start(self) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        # Every message allocates many small objects; with the default thresholds the cyclic
        # collector ran constantly and rescanned the growing call records (11% of a busy pod).
        # Reference counting frees almost everything here, so collect rarely.
        gc.freeze()
        gc.set_threshold(100_000, 50, 1000)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.socket_buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.socket_buffer)
        sock.bind(self.config.local)
        transport, _ = await self._loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transport = transport
        bound = sock.getsockname()
        # the pod's Via and Contact must carry the port actually bound (port 0 = any)
        config = dataclasses.replace(self.config, local=(bound[0], bound[1]))
        self.config = config
        self.pod = SoftphonePod(
            config, epoch=time.time() - self._loop.time(), records_limit=self.records_limit
        )
        return bound[0], bound[1]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._transport.close()

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def require_pod(self) -> SoftphonePod:
        if self.pod is None:
            raise RuntimeError("the pod has not started")
        return self.pod

    # -- inputs ----------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram in; never raises (a bug hit by one message must not stop the rest)."""
        pod = self.require_pod()
        try:
            pod.receive_datagram(data, addr, self.now())
        except Exception as exc:
            pod.malformed(f"internal error: {type(exc).__name__}: {exc}", addr, len(data))
            if (held := self._log_limiter.allow(self.now())) is not None:
                log.exception("datagram from %s:%d not handled%s", *addr, held_note(held))
        self._flush()

    def register_all(self) -> None:
        self.require_pod().register_all(self.now())
        self._flush()

    def call(
        self, caller: str, callee: str, hold_ms: int, call_id: str | None = None
    ) -> CallRecord:
        record = self.require_pod().call(caller, callee, self.now(), hold_ms, call_id)
        self._flush()
        return record

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.require_pod().handle_timer(self.now())
        except Exception:  # logged; the next timers must still be armed by _flush
            if (held := self._log_limiter.allow(self.now())) is not None:
                log.exception("a timer of the pod failed%s", held_note(held))
        self._flush()

    # -- outputs ---------------------------------------------------------------------------

    def _flush(self) -> None:
        pod = self.require_pod()
        transport = self._transport
        assert transport is not None
        for data, peer in pod.datagrams_to_send():
            transport.sendto(data, peer)
        for event in pod.take_events():
            if isinstance(event, MalformedInput):
                if (held := self._log_limiter.allow(self.now())) is not None:
                    log.warning(
                        "malformed datagram (%d octets) from %s:%d: %s%s",
                        event.size,
                        *event.source,
                        event.reason,
                        held_note(held),
                    )
            elif isinstance(event, RegistrationResult) and not event.ok:
                log.warning("registration of %s failed: %s", event.phone, event.reason)
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # one listener's bug must not cost the socket or the others
                    if (held := self._log_limiter.allow(self.now())) is not None:
                        log.exception(
                            "listener %r failed on %r%s", listener, event, held_note(held)
                        )
        self._rearm(pod.get_timer())

    def _rearm(self, deadline: float | None) -> None:
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)
