"""Byte-level helpers for the analyzer's unit tests: SIP messages, IPv4/UDP frames, pcap files.

pytest runs with --import-mode=importlib, so helpers reach the tests as fixtures.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import settings

from analyzer.packets import LINKTYPE_ETHERNET, LINKTYPE_IPV4, Datagram, Frame, decode

# no example database: it would write .hypothesis/ into the shared checkout
settings.register_profile("analyzer", database=None, deadline=None)
settings.load_profile("analyzer")

PROXY = ("127.0.9.1", 5060)
LB = ("127.0.8.1", 5060)
UA = ("127.0.8.3", 5092)


class Sip:
    """SIP messages as the load balancer and the proxy exchange them."""

    @staticmethod
    def request(
        method: str,
        call_id: str,
        cseq: int,
        auth: str | None = None,
        branch: str = "z9hG4bK-1",
        body: bytes = b"",
    ) -> bytes:
        lines = [
            f"{method} sip:0101@testbed.local SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.8.1;branch={branch}",
            "From: <sip:0001@testbed.local>;tag=abc",
            "To: <sip:0101@testbed.local>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
        ]
        if auth:
            lines.append(
                f'{auth}: Digest username="0001", realm="testbed.local", nonce="n", '
                'uri="sip:0101@testbed.local", response="00"'
            )
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    @staticmethod
    def response(status: int, reason: str, call_id: str, cseq: int, method: str) -> bytes:
        return (
            f"SIP/2.0 {status} {reason}\r\n"
            "Via: SIP/2.0/UDP 127.0.8.1;branch=z9hG4bK-1\r\n"
            "From: <sip:0001@testbed.local>;tag=abc\r\n"
            "To: <sip:0101@testbed.local>;tag=xyz\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()


def ipv4_udp(
    src: tuple[str, int],
    dst: tuple[str, int],
    payload: bytes,
    fragment: int = 0,
    total: int | None = None,
) -> bytes:
    """An IPv4 packet carrying one UDP datagram (checksums left zero: nobody checks them)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    length = 20 + len(udp) if total is None else total
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, length, 1, fragment, 64, 17, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    return header + udp


def ethernet(packet: bytes, ethertype: int = 0x0800) -> bytes:
    return b"\x00" * 12 + struct.pack("!H", ethertype) + packet


def frame(timestamp: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> Frame:
    return Frame(timestamp, LINKTYPE_IPV4, ipv4_udp(src, dst, payload))


def payload(frame: Frame) -> bytes:
    """The UDP payload a frame carries; a frame decode() skips (its reason) fails the test."""
    datagram = decode(frame.linktype, frame.data)
    assert isinstance(datagram, Datagram), datagram
    return datagram.payload


def write_pcap(
    path: Path,
    records: Iterable[tuple[float, bytes]],
    linktype: int = LINKTYPE_ETHERNET,
    nanoseconds: bool = False,
    big_endian: bool = False,
) -> Path:
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    per_second = 10**9 if nanoseconds else 10**6
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for timestamp, data in records:
        ticks = round(timestamp * per_second)
        seconds, fraction = divmod(ticks, per_second)
        out.append(struct.pack(order + "IIII", seconds, fraction, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def write_pcapng(
    path: Path,
    records: Iterable[tuple[float, bytes]],
    linktype: int = LINKTYPE_ETHERNET,
    tsresol: int | None = 9,
) -> Path:
    """One section, one interface (with if_tsresol 10^-tsresol unless None), enhanced blocks."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    options = b""
    if tsresol is not None:
        options = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb = _block(1, struct.pack("<HHI", linktype, 0, 262144) + options)
    per_second = 10 ** (6 if tsresol is None else tsresol)
    blocks = [shb, idb]
    for timestamp, data in records:
        ticks = round(timestamp * per_second)
        blocks.append(
            _block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                  len(data)) + data)
        )  # fmt: skip
    path.write_bytes(b"".join(blocks))
    return path


def call_flow(
    call_id: str, t0: float = 1000.0
) -> list[tuple[float, tuple[str, int], tuple[str, int], bytes]]:
    """One authenticated call at the proxy, 1 ms apart: (time, src, dst, payload)."""
    s = Sip
    msgs = [
        (LB, PROXY, s.request("INVITE", call_id, 1)),
        (PROXY, LB, s.response(407, "Proxy Authentication Required", call_id, 1, "INVITE")),
        (LB, PROXY, s.request("ACK", call_id, 1)),
        (LB, PROXY, s.request("INVITE", call_id, 2, auth="Proxy-Authorization")),
        (PROXY, LB, s.response(100, "Trying", call_id, 2, "INVITE")),
        (PROXY, LB, s.request("INVITE", call_id, 2, branch="z9hG4bK-proxy")),
        (LB, PROXY, s.response(100, "Trying", call_id, 2, "INVITE")),
        (LB, PROXY, s.response(180, "Ringing", call_id, 2, "INVITE")),
        (PROXY, LB, s.response(180, "Ringing", call_id, 2, "INVITE")),
        (LB, PROXY, s.response(200, "OK", call_id, 2, "INVITE")),
        (PROXY, LB, s.response(200, "OK", call_id, 2, "INVITE")),
        (LB, PROXY, s.request("ACK", call_id, 2)),
        (PROXY, LB, s.request("ACK", call_id, 2)),
        (LB, PROXY, s.request("BYE", call_id, 3)),
        (PROXY, LB, s.request("BYE", call_id, 3)),
        (LB, PROXY, s.response(200, "OK", call_id, 3, "BYE")),
        (PROXY, LB, s.response(200, "OK", call_id, 3, "BYE")),
    ]
    return [(t0 + i * 0.001, src, dst, payload) for i, (src, dst, payload) in enumerate(msgs)]


def register_flow(
    call_id: str, t0: float = 1000.0
) -> list[tuple[float, tuple[str, int], tuple[str, int], bytes]]:
    s = Sip
    msgs = [
        (LB, PROXY, s.request("REGISTER", call_id, 1)),
        (PROXY, LB, s.response(401, "Unauthorized", call_id, 1, "REGISTER")),
        (LB, PROXY, s.request("REGISTER", call_id, 2, auth="Authorization")),
        (PROXY, LB, s.response(200, "OK", call_id, 2, "REGISTER")),
    ]
    return [(t0 + i * 0.002, src, dst, payload) for i, (src, dst, payload) in enumerate(msgs)]


class Helpers:
    sip = Sip
    ipv4_udp = staticmethod(ipv4_udp)
    ethernet = staticmethod(ethernet)
    frame = staticmethod(frame)
    payload = staticmethod(payload)
    write_pcap = staticmethod(write_pcap)
    write_pcapng = staticmethod(write_pcapng)
    PROXY = PROXY
    LB = LB
    UA = UA
    call_flow = staticmethod(call_flow)
    register_flow = staticmethod(register_flow)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers
