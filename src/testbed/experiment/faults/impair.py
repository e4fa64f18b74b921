"""Packet loss and delay on one address's UDP traffic, in path, for the `netem` fault.

This kernel (and others without sch_netem/sch_prio) cannot run tc netem, so the packets are
taken out of the kernel's path instead: two iptables rules in the mangle table's OUTPUT chain
(every datagram on the loopback interface passes OUTPUT once) send UDP from or to the address
to an NFQUEUE; this module reads that queue over netlink and, per packet, drops it (loss) or
gives it back after a delay (delay +- uniform jitter). Only UDP is touched: SIP and DMQ, not
the HTTP the sampler and the hooks use. Analyzers capture after OUTPUT, so they see what a
receiver sees. `--queue-bypass` lets packets through if the reader is gone, so a crashed run
never black-holes an address; `lift()` deletes exactly the rules it added and releases every
packet still held.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import random
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass

from testbed.local.packet_rules import COMMENT, owner_tag

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_DROP, NF_ACCEPT = 0, 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
QUEUE_BASE = 3400  # queue numbers tried: 3400-3499


class ImpairmentError(RuntimeError):
    pass


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    # nfgenmsg: family AF_UNSPEC, version 0, resource id (the queue) in network order
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return (
        struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body
    )


def parse_packets(data: bytes) -> list[int]:
    """Packet ids of the NFQNL_MSG_PACKET messages in one netlink read (errors and other
    messages skipped)."""
    ids: list[int] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16 or offset + length > len(data):
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # after nlmsghdr and nfgenmsg
            while at + 4 <= offset + length:
                alen, atype = struct.unpack_from("=HH", data, at)
                if alen < 4:
                    break
                if atype & 0x3FFF == NFQA_PACKET_HDR and alen >= 8:
                    ids.append(struct.unpack_from("!I", data, at + 4)[0])
                at += (alen + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def _iptables(op: str, address: str, direction: str, queue: int, tag: str) -> list[str]:
    return [
        "iptables", "-w", "-t", "mangle", op, "OUTPUT", "-p", "udp", direction, address,
        "-m", "comment", "--comment", f"{COMMENT} {tag}",
        "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass",
    ]  # fmt: skip


@dataclass
class ImpairmentStats:
    packets: int = 0
    dropped: int = 0
    delayed: int = 0


class Impairment:
    """Loss and delay on UDP from and to `address` until `lift()`; thread-safe to lift once
    from another thread."""

    def __init__(
        self,
        address: str,
        loss_percent: float,
        delay_ms: float,
        jitter_ms: float = 0.0,
        seed: int = 0,
        tag: str = "",
    ) -> None:
        self.address = address
        self.loss = loss_percent / 100
        self.delay = delay_ms / 1000
        self.jitter = jitter_ms / 1000
        self.tag = tag or f"{address} {owner_tag(os.getpid())}"
        self.stats = ImpairmentStats()
        self._random = random.Random(seed)
        self._sock: socket.socket | None = None
        self._queue = -1
        self._rules: list[str] = []  # directions added
        self._held: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0

    def apply(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((0, 0))
            self._sock = sock
            self._queue = self._bind_free_queue()
            params = struct.pack("!IB", 0, NFQNL_COPY_META)
            self._request(_attr(NFQA_CFG_PARAMS, params))
            self._request(_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)))
            flags = struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)
            self._request(_attr(NFQA_CFG_FLAGS, flags) + _attr(NFQA_CFG_MASK, flags))
            self._thread = threading.Thread(target=self._run, name="netem", daemon=True)
            self._thread.start()
            for direction in ("-d", "-s"):
                self._run_iptables("-I", direction)
                self._rules.append(direction)
        except BaseException:
            self.lift()
            raise

    def lift(self) -> None:
        """Delete the rules, release every held packet, unbind the queue. Idempotent."""
        errors: list[str] = []
        for direction in list(self._rules):
            try:
                self._run_iptables("-D", direction)
                self._rules.remove(direction)
            except ImpairmentError as exc:
                errors.append(str(exc))
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                for _when, packet in self._held:
                    sock.send(self._verdict(packet, NF_ACCEPT))
                self._held.clear()
                cmd = struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET)
                sock.send(_message(NFQNL_MSG_CONFIG, self._queue, _attr(NFQA_CFG_CMD, cmd)))
            sock.close()
        if errors:
            raise ImpairmentError("; ".join(errors))

    @property
    def rules_left(self) -> list[str]:
        return list(self._rules)

    # -- netlink -------------------------------------------------------------------------

    def _bind_free_queue(self) -> int:
        last: Exception | None = None
        for queue in range(QUEUE_BASE, QUEUE_BASE + 100):
            self._queue = queue
            cmd = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)
            try:
                self._request(_attr(NFQA_CFG_CMD, cmd))
                return queue
            except OSError as exc:  # EBUSY: another reader has it
                last = exc
        raise ImpairmentError(f"no free NFQUEUE in {QUEUE_BASE}-{QUEUE_BASE + 99}: {last}")

    def _request(self, attrs: bytes) -> None:
        assert self._sock is not None
        self._seq += 1
        self._sock.send(
            _message(NFQNL_MSG_CONFIG, self._queue, attrs, NLM_F_REQUEST | NLM_F_ACK, self._seq)
        )
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            data = self._sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _f, seq, _p = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR and seq == self._seq:
                    error = struct.unpack_from("=i", data, offset + 16)[0]
                    if error:
                        raise OSError(-error, os.strerror(-error))
                    return
                offset += max(16, (length + 3) & ~3)
        raise ImpairmentError("no answer from the kernel's nfnetlink_queue")

    def _verdict(self, packet: int, verdict: int) -> bytes:
        payload = struct.pack("!II", verdict, packet)
        return _message(NFQNL_MSG_VERDICT, self._queue, _attr(NFQA_VERDICT_HDR, payload))

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                _when, packet = heapq.heappop(self._held)
                self._send(sock, self._verdict(packet, NF_ACCEPT))
            wait = min(0.1, self._held[0][0] - now) if self._held else 0.1
            try:
                readable, _, _ = select.select([sock], [], [], max(0.0, wait))
                if not readable:
                    continue
                data = sock.recv(1 << 16)
            except OSError as exc:  # ENOBUFS: the kernel queue overflowed; fail-open passes
                if self._stop.is_set():
                    return
                log.warning("netem %s: %s", self.address, exc)
                continue
            for packet in parse_packets(data):
                self.stats.packets += 1
                if self.loss and self._random.random() < self.loss:
                    self.stats.dropped += 1
                    self._send(sock, self._verdict(packet, NF_DROP))
                elif self.delay:
                    self.stats.delayed += 1
                    spread = self._random.uniform(-self.jitter, self.jitter)
                    heapq.heappush(self._held, (now + max(0.0, self.delay + spread), packet))
                else:
                    self._send(sock, self._verdict(packet, NF_ACCEPT))

    def _send(self, sock: socket.socket, message: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.send(message)

    def _run_iptables(self, op: str, direction: str) -> None:
        argv = _iptables(op, self.address, direction, self._queue, self.tag)
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if result.returncode != 0:
            raise ImpairmentError(f"{' '.join(argv)}: {result.stderr.strip()}")
