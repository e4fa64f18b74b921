"""A classic BPF program for the kernel: only the proxy's SIP datagrams reach user space.

Built by hand (no libpcap needed) for an AF_PACKET SOCK_DGRAM socket bound to every protocol
(so that it sees what the interface sends as well as what it receives): the program first keeps
IPv4 only (the packet's protocol, an ancillary load), whose header it then sees at offset 0. It
accepts UDP with (source = proxy address and
source port = proxy port) or (destination = proxy address and destination port = proxy
port), plus IP fragments to or from the proxy's address (a fragment after the first has no
UDP header; they are accepted so that they are counted, not lost without a trace). On the
loopback device every packet passes twice, outgoing and incoming; `skip_outgoing` keeps one
copy, as libpcap does there.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

# opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_SKF_AD_PROTOCOL = -0x1000 + 0  # ancillary loads: the packet's protocol (host order)
_SKF_AD_PKTTYPE = -0x1000 + 4  # and its type
_ETH_P_IP = 0x0800
_PACKET_OUTGOING = 4

SNAPLEN = 262144


@dataclass(frozen=True)
class Instruction:
    code: int
    jt: int
    jf: int
    k: int


def proxy_filter(address: str, port: int, skip_outgoing: bool) -> list[Instruction]:
    ip = int(ipaddress.IPv4Address(address))
    # (code, jump-if-true label, jump-if-false label, k); labels resolve to relative jumps
    program: list[tuple[int, str | None, str | None, int]] = [
        (_LD_W_ABS, None, None, _SKF_AD_PROTOCOL & 0xFFFFFFFF),
        (_JEQ_K, None, "drop", _ETH_P_IP),
    ]
    if skip_outgoing:
        program += [
            (_LD_W_ABS, None, None, _SKF_AD_PKTTYPE & 0xFFFFFFFF),
            (_JEQ_K, "drop", None, _PACKET_OUTGOING),
        ]
    program += [
        (_LD_B_ABS, None, None, 9),  # IP protocol
        (_JEQ_K, None, "drop", 17),
        (_LD_W_ABS, None, None, 12),  # source address
        (_JEQ_K, "from_proxy", "check_dst", ip),
    ]
    labels: dict[str, int] = {}
    labels["from_proxy"] = len(program)
    program += [
        (_LD_H_ABS, None, None, 6),  # flags and fragment offset
        (_JSET_K, "accept", None, 0x3FFF),
        (_LDX_B_MSH, None, None, 0),  # X = IP header length
        (_LD_H_IND, None, None, 0),  # UDP source port
        (_JEQ_K, "accept", "check_dst", port),
    ]
    labels["check_dst"] = len(program)
    program += [
        (_LD_W_ABS, None, None, 16),  # destination address
        (_JEQ_K, None, "drop", ip),
        (_LD_H_ABS, None, None, 6),
        (_JSET_K, "accept", None, 0x3FFF),
        (_LDX_B_MSH, None, None, 0),
        (_LD_H_IND, None, None, 2),  # UDP destination port
        (_JEQ_K, "accept", "drop", port),
    ]
    labels["accept"] = len(program)
    program.append((_RET_K, None, None, SNAPLEN))
    labels["drop"] = len(program)
    program.append((_RET_K, None, None, 0))

    def jump(at: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - at - 1

    return [
        Instruction(code, jump(i, jt), jump(i, jf), k)
        for i, (code, jt, jf, k) in enumerate(program)
    ]


def pack(program: list[Instruction]) -> bytes:
    """struct sock_filter[] as the kernel reads it."""
    return b"".join(struct.pack("HBBI", i.code, i.jt, i.jf, i.k) for i in program)
