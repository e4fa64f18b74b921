"""pcap and pcapng files: both formats, byte orders and timestamp resolutions."""

from __future__ import annotations

import struct

import pytest

from analyzer.capture import CaptureError, open_file
from analyzer.capture.pcapfile import PcapFormatError, read_frames
from analyzer.packets import LINKTYPE_ETHERNET, LINKTYPE_IPV4, decode

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
    assert [decode(f.linktype, f.data).payload for f in frames] == [b"p%d" % i for i in range(5)]
    for i, f in enumerate(frames):
        assert f.timestamp == pytest.approx(T0 + i * 0.000731, abs=1e-6)


@pytest.mark.parametrize("tsresol", [None, 6, 9])
def test_pcapng_with_its_timestamp_resolution(h, tmp_path, tsresol):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h), tsresol=tsresol)
    frames = list(read_frames(path))
    assert [decode(f.linktype, f.data).payload for f in frames] == [b"p%d" % i for i in range(5)]
    for i, f in enumerate(frames):
        assert f.timestamp == pytest.approx(T0 + i * 0.000731, abs=1e-6)


def test_a_file_cut_off_while_writing_keeps_the_whole_frames(h, tmp_path):
    path = h.write_pcapng(tmp_path / "c.pcapng", _records(h))
    path.write_bytes(path.read_bytes()[:-7])
    assert len(list(read_frames(path))) == 4
    classic = h.write_pcap(tmp_path / "c.pcap", _records(h))
    classic.write_bytes(classic.read_bytes()[:-3])
    assert len(list(read_frames(classic))) == 4


def test_raw_ipv4_link_type(h, tmp_path):
    path = h.write_pcap(tmp_path / "raw.pcap", [(T0, h.ipv4_udp(h.LB, h.PROXY, b"x"))],
                        linktype=LINKTYPE_IPV4)  # fmt: skip
    [frame] = read_frames(path)
    assert decode(frame.linktype, frame.data).payload == b"x"


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
