"""Fuzz target: the analyzer's pairing, on sequences of arbitrary and mutated datagrams.

Seeds: the registration and call flows the helpers build, and the SIP payloads of the real
loopback capture (fixtures/). Whatever arrives, in whatever order and direction, `feed` and
`Analyzer.process` never raise, count every datagram exactly once (as a message or a skip),
never need their last-resort catch (`analysis_error`), and only ever pair forward in time.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer.analysis import ANALYSIS_ERROR, Analyzer
from analyzer.capture.pcapfile import read_frames
from analyzer.packets import LINKTYPE_IPV4, Frame, decode
from analyzer.pairing import PAIRS, PairTracker

FUZZ = settings.get_profile("fuzz")
PROXY = ("127.0.8.231", 5060)
LB = ("127.0.8.230", 5060)
CAPTURE = Path(__file__).parent / "fixtures" / "loopback-register-call.pcapng"

# the real capture's datagrams (from the LB or from the proxy), in capture order
REAL = [decode(f.linktype, f.data) for f in read_frames(CAPTURE)]
PAYLOADS = [d.payload for d in REAL if not isinstance(d, str)]
assert len(PAYLOADS) == 21, "the fixture holds a registration and a call"
HOSTILE = [
    "CSeq: ² INVITE",
    "CSeq: 99999999999999999999 INVITE",
    "Content-Length: " + "9" * 5000,
    "Call-ID: ",
    "Via: SIP/2.0/UDP 127.0.8.230;rport=²",
    "X: a\nInjected: 1",
    "\u0661",
    "\x00",
    "",
]


@st.composite
def payload(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(PAYLOADS))
    kind = draw(st.sampled_from(["as is", "line", "byte", "cut", "random"]))
    if kind == "as is":
        return base
    if kind == "random":
        return draw(st.binary(max_size=300))
    lines = base.split(b"\r\n")
    index = draw(st.integers(0, len(lines) - 1))
    if kind == "line":
        lines[index] = draw(st.sampled_from(HOSTILE) | st.text(max_size=30)).encode()
        return b"\r\n".join(lines)
    data = bytearray(base)
    position = draw(st.integers(0, len(data) - 1))
    if kind == "byte":
        data[position] = draw(st.integers(0, 255))
        return bytes(data)
    return bytes(data[:position])


datagram = st.tuples(
    st.floats(0, 100, allow_nan=False),
    st.sampled_from([(LB, PROXY), (PROXY, LB), (PROXY, PROXY), (LB, LB)]),
    payload(),
)


@FUZZ
@given(st.lists(datagram, max_size=30))
@example([(1.0, (LB, PROXY), PAYLOADS[0].replace(b"CSeq: 1 REGISTER", "CSeq: ² INVITE".encode()))])
def test_fuzz_pairing_counts_every_datagram_and_never_raises(messages):
    tracker = PairTracker(PROXY, timeout=5.0)
    pairs = []
    for timestamp, (src, dst), data in sorted(messages, key=lambda m: m[0]):
        pair = tracker.feed(timestamp, src, dst, data)
        if pair is not None:
            pairs.append(pair)
        # what reaches the CSV, the HTTP answers and the log is valid UTF-8 (strict)
        (tracker.last_malformed or "").encode("utf-8")
    for pair in pairs:
        pair.call_id.encode("utf-8")
    counted = sum(tracker.stats.skipped.values()) + sum(tracker.stats.messages.values())
    assert counted == len(messages)
    assert all(p.name in PAIRS and p.end >= p.start for p in pairs)
    assert sum(tracker.stats.pairs.values()) == len(pairs)


def _ipv4_frame(timestamp: float, src, dst, data: bytes) -> Frame:
    import socket

    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0) + data
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    return Frame(timestamp, LINKTYPE_IPV4, header + udp)


@FUZZ
@given(
    st.lists(
        datagram.map(lambda d: _ipv4_frame(d[0], *d[1], d[2]))
        | st.builds(Frame, st.floats(0, 100), st.sampled_from([0, 1, 101, 113, 228, 276, 999]),
                    st.binary(max_size=120)),
        max_size=30,
    )
)  # fmt: skip
def test_fuzz_analyzer_takes_any_frame_without_its_last_resort(frames):
    analyzer = Analyzer(PROXY, 5.0)
    for frame in frames:
        analyzer.process(frame)
    stats, _, _ = analyzer.snapshot()
    assert ANALYSIS_ERROR not in stats.skipped
    assert analyzer.frames == len(frames)
