"""The thin asyncio adapter: one UDP socket, the event loop's clock, and the pod's timers.

The socket is read by our own reader callback, not an asyncio DatagramProtocol: one wake-up
reads up to `_READ_BATCH` datagrams and sends the pod's answers once, and sends go straight to
the non-blocking socket (queued only while its buffer is full)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable

from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.ua import PodConfig, PodEvent, SoftphonePod
from sip_core import LogLimiter, held_note

log = logging.getLogger(__name__)


# datagrams read per wake-up before the pod's output goes out and the loop runs other work
# (timers, the controller's WebSocket): one wake-up per datagram cost more than the datagram
_READ_BATCH = 64
_MAX_DATAGRAM = 65535
# the loop's timer fires on this grid: the pod's and the transactions' timers due within one
# grain share a wake-up (at 800 calls/s they came due at thousands of distinct times a second,
# each a wake-up and a TimerHandle); a timer fires at most this much late
_TIMER_GRAIN = 0.005


class PodRuntime:
    """Runs a SoftphonePod on a real socket; listeners get the pod's events."""

    def __init__(self, config: PodConfig, records_limit: int, socket_buffer: int) -> None:
        self.config = config
        self.records_limit = records_limit
        self.socket_buffer = socket_buffer
        self.pod: SoftphonePod | None = None
        self.listeners: list[Callable[[PodEvent], None]] = []
        self._sock: socket.socket | None = None
        self._backlog: deque[tuple[bytes, tuple[str, int]]] = deque()  # socket buffer was full
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
        sock.setblocking(False)
        # our own reader instead of a DatagramProtocol: it drains the socket in one wake-up
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._sock = sock
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
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
                self._loop.remove_writer(self._sock.fileno())
            self._sock.close()
            self._sock = None

    @property
    def is_open(self) -> bool:
        """Whether the SIP socket is still open (and read)."""
        return self._sock is not None

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def require_pod(self) -> SoftphonePod:
        if self.pod is None:
            raise RuntimeError("the pod has not started")
        return self.pod

    # -- inputs ----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        # one clock reading per wake-up: the batch arrived together
        pod, now = self.require_pod(), self.now()
        for _ in range(_READ_BATCH):
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error reported on the socket: keep reading
                log.debug("UDP error: %s", exc)
                break
            self._receive(pod, data, addr, now)
        self._flush()

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """One datagram in; never raises (a bug hit by one message must not stop the rest)."""
        self._receive(self.require_pod(), data, addr, self.now())
        self._flush()

    def _receive(self, pod: SoftphonePod, data: bytes, addr: tuple[str, int], now: float) -> None:
        try:
            pod.receive_datagram(data, addr, now)
        except Exception as exc:
            pod.malformed(f"internal error: {type(exc).__name__}: {exc}", addr, len(data))
            if (held := self._log_limiter.allow(now)) is not None:
                log.exception("datagram from %s:%d not handled%s", *addr, held_note(held))

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
        out = pod.datagrams_to_send()
        if out:
            self._send(out)
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

    def _send(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        """Straight to the socket; what does not fit waits for it to become writable."""
        sock = self._sock
        if sock is None:
            return
        backlog = self._backlog
        if backlog:
            backlog.extend(datagrams)
            return
        for i, (data, peer) in enumerate(datagrams):
            try:
                sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                backlog.extend(datagrams[i:])
                assert self._loop is not None
                self._loop.add_writer(sock.fileno(), self._on_writable)
                return
            except OSError as exc:  # this datagram is lost, as UDP may lose it anyway
                log.debug("UDP send to %s:%d failed: %s", *peer, exc)

    def _on_writable(self) -> None:
        sock = self._sock
        backlog = self._backlog
        while sock is not None and backlog:
            data, peer = backlog[0]
            try:
                sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("UDP send to %s:%d failed: %s", *peer, exc)
            backlog.popleft()
        if sock is not None:
            assert self._loop is not None
            self._loop.remove_writer(sock.fileno())

    def _rearm(self, deadline: float | None) -> None:
        if deadline is None:
            return
        # max(): rounding must never move a deadline earlier
        at = max(deadline, math.ceil(deadline / _TIMER_GRAIN) * _TIMER_GRAIN)
        if self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)
