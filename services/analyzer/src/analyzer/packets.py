"""Link, IPv4 and UDP headers of captured frames, decoded with struct (no packet objects).

Whatever is not a whole, unfragmented IPv4 UDP datagram comes back as a skip reason, so the
caller counts it instead of guessing.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

# pcap LINKTYPE_* values (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_LINUX_SLL2: Final = 276

ETHERTYPE_IPV4: Final = 0x0800
_VLAN_TAGS: Final = (0x8100, 0x88A8, 0x9100)
IPPROTO_UDP: Final = 17

# skip reasons, the label values of analyzer_packets_skipped_total
NOT_IPV4: Final = "not_ipv4"
NOT_UDP: Final = "not_udp"
FRAGMENT: Final = "fragment"
TRUNCATED: Final = "truncated"
UNSUPPORTED_LINK: Final = "unsupported_link"

_U16 = struct.Struct("!H")
# version/IHL, total length, flags/offset, protocol, source and destination address
_IPV4 = struct.Struct("!BxHxxHxBxx4s4s")
_UDP = struct.Struct("!HHH")  # source port, destination port, length


class Frame(NamedTuple):
    """One captured frame: when it was seen, how its link layer looks, its bytes."""

    timestamp: float
    linktype: int
    data: bytes


_new: Final = tuple.__new__


class Datagram(NamedTuple):
    """A UDP datagram; addresses are the 4 raw IPv4 octets (compared without formatting)."""

    src: bytes
    sport: int
    dst: bytes
    dport: int
    payload: bytes


def ip_offset(linktype: int, data: bytes) -> int | str:
    """Where the IPv4 header starts in a frame of that link type, or a skip reason."""
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return 0
    if linktype == LINKTYPE_ETHERNET:
        offset = 12
        while True:
            if len(data) < offset + 2:
                return TRUNCATED
            ethertype = _U16.unpack_from(data, offset)[0]
            if ethertype not in _VLAN_TAGS:
                break
            offset += 4
        return offset + 2 if ethertype == ETHERTYPE_IPV4 else NOT_IPV4
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return TRUNCATED
        return 16 if _U16.unpack_from(data, 14)[0] == ETHERTYPE_IPV4 else NOT_IPV4
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return TRUNCATED
        return 20 if _U16.unpack_from(data, 0)[0] == ETHERTYPE_IPV4 else NOT_IPV4
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return TRUNCATED
        # the address family in host (NULL) or network (LOOP) order; AF_INET is 2 everywhere
        return 4 if data[0] == 2 or data[3] == 2 else NOT_IPV4
    return UNSUPPORTED_LINK


def decode(linktype: int, data: bytes) -> Datagram | str:
    """The UDP datagram carried by a frame, or why there is none."""
    if linktype == LINKTYPE_ETHERNET and data[12:14] == b"\x08\x00":
        return decode_ipv4(data, 14)  # the common frame, untagged IPv4: no ip_offset call
    offset = ip_offset(linktype, data)
    if isinstance(offset, str):
        return offset
    return decode_ipv4(data, offset)


def decode_ipv4(data: bytes, offset: int = 0) -> Datagram | str:
    available = len(data) - offset
    if available < 20:
        return TRUNCATED
    version_ihl, total, fragment, protocol, src, dst = _IPV4.unpack_from(data, offset)
    if version_ihl >> 4 != 4:
        return NOT_IPV4
    if protocol != IPPROTO_UDP:
        return NOT_UDP
    # more-fragments flag or a fragment offset: only part of a datagram is here
    if fragment & 0x3FFF:
        return FRAGMENT
    ihl = (version_ihl & 0x0F) * 4
    # total length bounds the packet (Ethernet pads short frames); a short capture truncates it
    if ihl < 20 or total < ihl + 8 or total > available:
        return TRUNCATED
    udp = offset + ihl
    sport, dport, length = _UDP.unpack_from(data, udp)
    if length < 8 or length > total - ihl:
        return TRUNCATED
    # tuple.__new__: a NamedTuple's own __new__ is a Python-level call
    return _new(Datagram, (src, sport, dst, dport, data[udp + 8 : udp + length]))
