"""The fast live backend: an AF_PACKET socket, a kernel BPF filter and a large receive buffer.

Only the proxy's datagrams cross into user space (bpf.py); each comes with the kernel's receive
timestamp (SO_TIMESTAMPNS), the same one dumpcap writes into a pcap. The kernel's own counters
(PACKET_STATISTICS) tell how many packets matched and how many it dropped because this reader
fell behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from analyzer.capture.base import CaptureError, CaptureStats, PacketSource
from analyzer.capture.bpf import pack, proxy_filter
from analyzer.endpoints import Endpoint
from analyzer.packets import LINKTYPE_IPV4, Frame

# linux/socket.h, linux/if_packet.h, linux/if_ether.h (not all are in Python's socket module)
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
# every protocol: a socket bound to one (ETH_P_IP) gets only the packets the interface
# receives, never those it sends, so on a pod's eth0 the proxy's answers would be missed
# (on loopback each packet is sent and received, which hid this); the filter keeps IPv4
ETH_P_ALL = 0x0003
IFF_LOOPBACK = 0x8

_TIMESPEC = struct.Struct("qq")
_STATS = struct.Struct("II")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
_POLL_SECONDS = 0.25

log = logging.getLogger(__name__)


def is_loopback(interface: str) -> bool:
    try:
        flags = int(Path(f"/sys/class/net/{interface}/flags").read_text(), 16)
    except (OSError, ValueError):
        return interface == "lo"
    return bool(flags & IFF_LOOPBACK)


def open_filtered_socket(interface: str, proxy: Endpoint, buffer_bytes: int) -> socket.socket:
    """A packet socket that only ever holds the proxy's datagrams (filter before bind)."""
    try:
        # protocol 0: nothing arrives until bind, so no unfiltered packet slips in first
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    except PermissionError:
        raise CaptureError(
            "live capture needs root or CAP_NET_RAW (AF_PACKET socket refused)"
        ) from None
    try:
        program = pack(proxy_filter(proxy[0], proxy[1], is_loopback(interface)))
        buffer = ctypes.create_string_buffer(program)
        fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
        except PermissionError:  # without CAP_NET_ADMIN: capped by net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.bind((interface, ETH_P_ALL))
    except OSError as exc:
        sock.close()
        if exc.errno == 19:  # ENODEV
            raise CaptureError(f"no network interface named {interface!r}") from None
        raise CaptureError(f"cannot capture on {interface!r}: {exc}") from exc
    return sock


class KernelCounter:
    """How many packets the kernel matched with the filter, and how many were dropped.

    PACKET_STATISTICS resets on every read, so the totals are kept here. The reported packet
    count already includes the drops.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.seen = 0
        self.dropped = 0

    def update(self) -> tuple[int, int]:
        with self._lock:
            with contextlib.suppress(OSError):  # closed: keep the last totals
                packets, drops = _STATS.unpack(
                    self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
                )
                self.seen += packets
                self.dropped += drops
            return self.seen, self.dropped


class AfPacketSource(PacketSource):
    backend = "fast"

    def __init__(self, interface: str, proxy: Endpoint, buffer_bytes: int = 32 << 20) -> None:
        self.interface = interface
        self._sock = open_filtered_socket(interface, proxy, buffer_bytes)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.settimeout(_POLL_SECONDS)
        # the kernel reports twice what it was asked for (its bookkeeping share); less than
        # asked means SO_RCVBUFFORCE was refused and net.core.rmem_max capped it
        self.buffer_bytes = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if self.buffer_bytes < buffer_bytes:
            log.warning(
                "capture buffer %d bytes, not the %d asked for: without CAP_NET_ADMIN the "
                "kernel caps it at net.core.rmem_max, and packets are lost sooner under load",
                self.buffer_bytes // 2,
                buffer_bytes,
            )
        self._counter = KernelCounter(self._sock)
        self._closing = threading.Event()
        self._started = False
        self._finished = False
        self._delivered = 0
        self._lag: float | None = None

    def frames(self) -> Iterator[Frame]:
        self._started = True
        sock = self._sock
        recvmsg = sock.recvmsg
        unpack = _TIMESPEC.unpack
        try:
            while not self._closing.is_set():
                try:
                    data, ancillary, _flags, _address = recvmsg(65535, _CMSG_SPACE)
                except TimeoutError:
                    continue
                timestamp = None
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        seconds, nanoseconds = unpack(value)
                        timestamp = seconds + nanoseconds * 1e-9
                if timestamp is None:  # cannot happen with SO_TIMESTAMPNS; never invent order
                    timestamp = time.time()
                self._delivered += 1
                self._lag = time.time() - timestamp
                yield Frame(timestamp, LINKTYPE_IPV4, data)
        finally:
            self._counter.update()
            self._finished = True
            sock.close()

    def stats(self) -> CaptureStats:
        seen, dropped = self._counter.update()
        return CaptureStats(
            backend=self.backend,
            source=self.interface,
            live=True,
            delivered=self._delivered,
            kernel_seen=seen,
            dropped=dropped,
            lag_seconds=self._lag,
            finished=self._finished,
        )

    def close(self) -> None:
        self._closing.set()
        if not self._started:  # frames() would have closed it on its way out
            self._counter.update()
            self._sock.close()
