"""pcap and pcapng files: both formats, byte orders and timestamp resolutions."""

from __future__ import annotations

import struct

import pytest

from analyzer.capture import CaptureError, open_file
from analyzer.capture.pcapfile import PcapFormatError, read_frames
from analyzer.packets import LINKTYPE_ETHERNET, LINKTYPE_IPV4

T0 = 1_795_000_000.123456


def _records(h, n=5):
    return [
        (T0 + i * 0.000731, h.ethernet(h.ipv4_udp(h.LB, h.PROXY, b"p%d" % i))) for i in range(n)
    ]


@pytest.mark.parametrize("nanoseconds", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_classic_pcap(h, tmp_path, nanoseconds, big_endian):
    path = h.write_pcap(tmp_path / "c.pcap", _records(h), nanoseconds=nanoseconds,
                        big_endian=big_endian)  # fmt: skip
    frames = list(read_frames(path))
    assert [f.linktype for f in frames] == [LINKTYPE_ETHERNET] * 5
    assert [h.payload(f) for f in frames] == [b"p%d" % i for i in range(5)]
    for i, f in enumerate(frames):
        assert f.timestamp == pytest.approx(T0 + i * 0.000731, abs=1e-6)


@pytest.mark.parametrize("tsresol", [None, 6, 9])
def test_pcapng_with_its_timestamp_resolution(h, tmp_path, tsresol):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h), tsresol=tsresol)
    frames = list(read_frames(path))
    assert [h.payload(f) for f in frames] == [b"p%d" % i for i in range(5)]
    for i, f in enumerate(frames):
        assert f.timestamp == pytest.approx(T0 + i * 0.000731, abs=1e-6)


def _read_until_error(path):
    """The frames read before the reader raised, and the error (None if it did not)."""
    frames = []
    try:
        for frame in read_frames(path):
            frames.append(frame)
    except PcapFormatError as exc:
        return frames, exc
    return frames, None


def _block_offsets(data: bytes) -> list[int]:
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += struct.unpack_from("<I", data, offset + 4)[0]
    return offsets


def test_a_pcapng_cut_short_keeps_the_whole_frames_and_names_the_offset(h, tmp_path):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h))
    whole = path.read_bytes()
    last_block = _block_offsets(whole)[-1]
    path.write_bytes(whole[:-7])
    frames, error = _read_until_error(path)
    assert [h.payload(f) for f in frames] == [b"p%d" % i for i in range(4)]
    assert error is not None
    assert (error.offset, error.frames) == (last_block, 4)
    assert f"cut short at byte {last_block}" in str(error)
    assert "the 4 frames before it were read" in str(error)


def test_a_pcap_cut_short_keeps_the_whole_frames_and_names_the_offset(h, tmp_path):
    classic = h.write_pcap(tmp_path / "c.pcap", _records(h))
    whole = classic.read_bytes()
    record = (len(whole) - 24) // 5  # five records of equal size
    classic.write_bytes(whole[:-3])
    frames, error = _read_until_error(classic)
    assert len(frames) == 4
    assert error is not None
    assert error.offset == 24 + 4 * record
    assert f"cut short at byte {24 + 4 * record}" in str(error)
    # cut inside a record header
    classic.write_bytes(whole[: 24 + 2 * record + 5])
    frames, error = _read_until_error(classic)
    assert len(frames) == 2
    assert error is not None
    assert "5 of a 16-byte record header" in str(error)
    assert error.offset == 24 + 2 * record


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # the second packet block's length field: not a multiple of 4
        (lambda data, at: struct.pack_into("<I", data, at + 4, 13), "not a multiple of 4"),
        # its trailing copy of the length disagrees
        (lambda data, at: struct.pack_into("<I", data, at + 4, 32), "trailing length"),
        # its captured length runs past the block (and would read the next one)
        (lambda data, at: struct.pack_into("<I", data, at + 20, 4000), "too short for its 4000"),
    ],
)
def test_a_corrupt_pcapng_block_is_named_by_offset(h, tmp_path, damage, message):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h))
    data = bytearray(path.read_bytes())
    second_packet = _block_offsets(bytes(data))[3]  # SHB, IDB, EPB 0, EPB 1
    damage(data, second_packet)
    path.write_bytes(bytes(data))
    frames, error = _read_until_error(path)
    assert len(frames) == 1
    assert error is not None
    assert error.offset == second_packet
    assert f"corrupt at byte {second_packet}" in str(error)
    assert message in str(error)


def test_an_interface_option_running_past_its_block_is_corrupt(h, tmp_path):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h, 1), tsresol=9)
    data = bytearray(path.read_bytes())
    idb = _block_offsets(bytes(data))[1]
    option = idb + 16  # after type, length, link type, reserved, snap length
    struct.pack_into("<H", data, option + 2, 200)  # if_tsresol claims 200 bytes
    path.write_bytes(bytes(data))
    frames, error = _read_until_error(path)
    assert frames == []
    assert error is not None
    assert error.offset == option
    assert "option 9 of 200 bytes runs past its block" in str(error)


def test_raw_ipv4_link_type(h, tmp_path):
    path = h.write_pcap(tmp_path / "raw.pcap", [(T0, h.ipv4_udp(h.LB, h.PROXY, b"x"))],
                        linktype=LINKTYPE_IPV4)  # fmt: skip
    [frame] = read_frames(path)
    assert h.payload(frame) == b"x"


def test_files_that_are_no_capture_are_refused_by_name(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not a capture")
    with pytest.raises(PcapFormatError, match=r"notes.txt: not a pcap or pcapng file"):
        list(read_frames(text))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(PcapFormatError, match="empty file"):
        list(read_frames(empty))
    with pytest.raises(CaptureError, match="cannot read"):
        list(read_frames(tmp_path / "missing.pcap"))


def test_a_packet_for_an_undescribed_interface_is_an_error(h, tmp_path):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h, 1))
    data = bytearray(path.read_bytes())
    epb = data.index(struct.pack("<I", 6))  # the first enhanced packet block
    data[epb + 8 : epb + 12] = struct.pack("<I", 3)
    path.write_bytes(bytes(data))
    with pytest.raises(PcapFormatError, match="interface 3"):
        list(read_frames(path))


def test_both_backends_read_the_same_frames(h, tmp_path):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h, 20), tsresol=6)
    fast = list(open_file("fast", path).frames())
    slow = list(open_file("pyshark", path).frames())
    assert [f.data for f in slow] == [f.data for f in fast]
    assert [f.linktype for f in slow] == [f.linktype for f in fast]
    assert [round(f.timestamp, 6) for f in slow] == [round(f.timestamp, 6) for f in fast]


def test_a_pyshark_read_leaves_asyncio_able_to_start_processes(h, tmp_path):
    """pyshark binds a SafeChildWatcher to its own loop in the main thread; once that loop is
    gone, no asyncio subprocess could start in this process (Playwright's driver, for one)."""
    import asyncio

    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h, 3), tsresol=6)
    assert len(list(open_file("pyshark", path).frames())) == 3
    asyncio.get_event_loop_policy().get_event_loop().close()  # pyshark's loop, closed

    async def run_true() -> int:
        process = await asyncio.create_subprocess_exec("true")
        return await process.wait()

    loop = asyncio.new_event_loop()  # as Playwright's sync API does: not made current
    try:
        assert loop.run_until_complete(run_true()) == 0
    finally:
        loop.close()
