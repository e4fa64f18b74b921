"""Link, IPv4 and UDP decoding of captured frames."""

from __future__ import annotations

import struct

import pytest

from analyzer.packets import (
    FRAGMENT,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    NOT_IPV4,
    NOT_UDP,
    TRUNCATED,
    UNSUPPORTED_LINK,
    Datagram,
    decode,
)

SRC, DST, PAYLOAD = ("127.0.8.1", 5060), ("127.0.9.1", 5060), b"OPTIONS sip:x SIP/2.0\r\n\r\n"
EXPECTED = Datagram(bytes([127, 0, 8, 1]), 5060, bytes([127, 0, 9, 1]), 5060, PAYLOAD)


def _sll(packet: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 772, 6, b"", 0x0800) + packet


def _sll2(packet: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"") + packet


@pytest.mark.parametrize(
    ("linktype", "wrap"),
    [
        (LINKTYPE_IPV4, lambda p: p),
        (LINKTYPE_RAW, lambda p: p),
        (LINKTYPE_ETHERNET, lambda p: b"\x00" * 12 + b"\x08\x00" + p),
        (LINKTYPE_ETHERNET, lambda p: b"\x00" * 12 + b"\x81\x00\x00\x05\x08\x00" + p),  # VLAN
        (LINKTYPE_LINUX_SLL, _sll),
        (LINKTYPE_LINUX_SLL2, _sll2),
        (LINKTYPE_NULL, lambda p: b"\x02\x00\x00\x00" + p),
    ],
)
def test_every_supported_link_type_yields_the_datagram(h, linktype, wrap):
    assert decode(linktype, wrap(h.ipv4_udp(SRC, DST, PAYLOAD))) == EXPECTED


def test_ethernet_padding_after_the_ip_packet_is_ignored(h):
    short = h.ipv4_udp(SRC, DST, b"x")
    datagram = decode(LINKTYPE_ETHERNET, h.ethernet(short) + b"\x00" * 20)
    assert isinstance(datagram, Datagram)
    assert datagram.payload == b"x"


@pytest.mark.parametrize(
    ("fragment", "reason"),
    [(0x2000, FRAGMENT), (0x0010, FRAGMENT), (0x2010, FRAGMENT), (0x4000, None)],
)
def test_fragments_are_recognised_and_dont_fragment_is_not_one(h, fragment, reason):
    result = decode(LINKTYPE_IPV4, h.ipv4_udp(SRC, DST, PAYLOAD, fragment=fragment))
    assert result == (reason or EXPECTED)


def test_truncated_and_foreign_packets_name_the_reason(h):
    packet = h.ipv4_udp(SRC, DST, PAYLOAD)
    assert decode(LINKTYPE_IPV4, packet[:-5]) == TRUNCATED  # capture shorter than IP length
    assert decode(LINKTYPE_IPV4, packet[:12]) == TRUNCATED
    assert decode(LINKTYPE_ETHERNET, b"\x00" * 10) == TRUNCATED
    bad_udp_length = packet[:24] + struct.pack("!H", 9999) + packet[26:]
    assert decode(LINKTYPE_IPV4, bad_udp_length) == TRUNCATED
    tcp = packet[:9] + b"\x06" + packet[10:]
    assert decode(LINKTYPE_IPV4, tcp) == NOT_UDP
    assert decode(LINKTYPE_IPV4, b"\x60" + packet[1:]) == NOT_IPV4
    assert decode(LINKTYPE_ETHERNET, h.ethernet(packet, ethertype=0x86DD)) == NOT_IPV4
    assert decode(LINKTYPE_ETHERNET, h.ethernet(packet, ethertype=0x0806)) == NOT_IPV4
    assert decode(147, packet) == UNSUPPORTED_LINK
