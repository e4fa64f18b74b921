"""Fuzz target: the pcap/pcapng reader, on arbitrary bytes and on mutated real captures.

Seeds: two dumpcap captures of a registration and a call (fixtures/) and files written by the
test helpers in both formats, byte orders and resolutions. Whatever the file, the reader yields
frames and then either ends or raises `PcapFormatError` naming a byte offset inside the file;
the frames before the damage are the file's own, in order.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer.analysis import ANALYSIS_ERROR, Analyzer
from analyzer.capture.pcapfile import PcapFormatError, read_frames
from analyzer.packets import Frame

FUZZ = settings.get_profile("fuzz")
FIXTURES = Path(__file__).parent / "fixtures"
PROXY = ("127.0.8.231", 5060)


def _written_seeds() -> list[bytes]:
    # the helpers' writers, imported by path like the fixtures (tests are no package)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "analyzer_test_helpers", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None
    assert spec.loader is not None
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    records = [
        (t, helpers.ethernet(helpers.ipv4_udp(src, dst, payload)))
        for t, src, dst, payload in helpers.register_flow("seed", t0=1_795_000_000.0)
    ]
    seeds = []
    with tempfile.TemporaryDirectory() as folder:
        for name, write in (
            ("a.pcap", lambda p: helpers.write_pcap(p, records)),
            ("b.pcap", lambda p: helpers.write_pcap(p, records, nanoseconds=True, big_endian=True)),
            ("c.pcapng", lambda p: helpers.write_pcapng(p, records, tsresol=6)),
            ("d.pcapng", lambda p: helpers.write_pcapng(p, records, tsresol=None)),
        ):
            seeds.append(write(Path(folder) / name).read_bytes())
    return seeds


SEEDS = [
    (FIXTURES / "loopback-register-call.pcapng").read_bytes(),
    (FIXTURES / "loopback-register-call.pcap").read_bytes(),
    *_written_seeds(),
]
# values that break length and count fields: zero, tiny, unaligned, huge, negative as signed
FIELD_VALUES = [0, 1, 3, 11, 12, 13, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 65536]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["byte", "field", "cut", "splice"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if edit == "byte" and data:
            data[position] = draw(st.integers(0, 255))
        elif edit == "field" and position + 4 <= len(data):
            order = draw(st.sampled_from("<>"))
            struct.pack_into(order + "I", data, position, draw(st.sampled_from(FIELD_VALUES)))
        elif edit == "cut":
            data = data[:position]
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _read(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.cap"
        path.write_bytes(data)
        frames: list[Frame] = []
        error: PcapFormatError | None = None
        try:
            frames.extend(read_frames(path))
        except PcapFormatError as exc:
            error = exc
        if error is not None:
            assert str(path) in str(error)
            if error.offset is not None:  # damage inside the file, after the frames read
                assert 0 <= error.offset <= len(data)
                assert error.frames == len(frames)
                assert f"at byte {error.offset}" in str(error)
        for frame in frames:
            assert len(frame.data) <= len(data)
        # and the analyzer takes whatever frames came out, without an analysis error
        analyzer = Analyzer(PROXY, 32.0)
        analyzer.process_all(frames)
        stats, _, _ = analyzer.snapshot()
        assert ANALYSIS_ERROR not in stats.skipped


@FUZZ
@given(st.binary(max_size=400))
@example(b"\xd4\xc3\xb2\xa1")  # a pcap magic and nothing else
@example(b"\x0a\x0d\x0d\x0a\x0c\x00\x00\x00")  # a pcapng section header cut short
def test_fuzz_arbitrary_files_raise_only_pcap_format_error(data):
    _read(data)


@FUZZ
@given(mutated())
def test_fuzz_mutated_captures_raise_only_pcap_format_error(data):
    _read(data)


def _layout(data: bytes) -> tuple[set[int], list[int]]:
    """Where a file may end whole (block or record boundaries) and where each packet ends."""
    boundaries, packet_ends = set(), []
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        offset = 0
        while offset < len(data):
            block_type, length = struct.unpack_from("<II", data, offset)
            offset += length
            boundaries.add(offset)
            if block_type in (2, 6):
                packet_ends.append(offset)
    else:
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        offset = 24
        boundaries.add(offset)
        while offset < len(data):
            offset += 16 + struct.unpack_from(order + "I", data, offset + 8)[0]
            boundaries.add(offset)
            packet_ends.append(offset)
    return boundaries, packet_ends


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_fuzz_a_capture_cut_anywhere_keeps_the_whole_frames_and_says_where(seed, data):
    cut = data.draw(st.integers(1, len(seed) - 1))
    boundaries, packet_ends = _layout(seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cut.cap"
        path.write_bytes(seed[:cut])
        frames: list[Frame] = []
        error: PcapFormatError | None = None
        try:
            frames.extend(read_frames(path))
        except PcapFormatError as exc:
            error = exc
    assert len(frames) == sum(1 for end in packet_ends if end <= cut)
    assert [f.data for f in frames] == [f.data for f in list(_frames_of(seed))[: len(frames)]]
    if cut in boundaries:
        assert error is None  # a shorter file, but a whole one
    else:
        assert error is not None, f"a file cut at byte {cut} was read without an error"
        assert error.offset is not None
        assert error.offset <= cut
        assert "cut short" in str(error)


def _frames_of(data: bytes) -> list[Frame]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "whole.cap"
        path.write_bytes(data)
        return list(read_frames(path))


def test_the_real_captures_read_whole():
    for name in ("loopback-register-call.pcapng", "loopback-register-call.pcap"):
        analyzer = Analyzer(PROXY, 32.0)
        pairs = analyzer.process_all(read_frames(FIXTURES / name))
        assert [p.name for p in pairs] == [
            "register_challenge",
            "register_ok",
            "invite_challenge",
            "invite_forward",
            "ok_forward",
        ]
        assert analyzer.frames == 21
