"""Read pcap and pcapng files with struct over an mmap: fast, and no packet objects.

Classic pcap (microsecond or nanosecond magic, either byte order) and pcapng (section header,
interface descriptions with their timestamp resolution and offset, enhanced and obsolete packet
blocks; other blocks are skipped) as written by dumpcap, tshark and tcpdump.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

from analyzer.capture.base import CaptureError, CaptureStats, PacketSource
from analyzer.packets import Frame

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 10**6),
    b"\xa1\xb2\xc3\xd4": (">", 10**6),
    b"\x4d\x3c\xb2\xa1": ("<", 10**9),
    b"\xa1\xb2\x3c\x4d": (">", 10**9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_SHB, _IDB, _OPB, _EPB = 0x0A0D0D0A, 1, 2, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14


class PcapFormatError(CaptureError):
    pass


def read_frames(path: Path) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in file order."""
    try:
        with path.open("rb") as file:
            if path.stat().st_size == 0:
                raise PcapFormatError(f"{path}: empty file, not a pcap or pcapng capture")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                magic = data[:4]
                if magic in _PCAP_MAGIC:
                    yield from _pcap(path, data, *_PCAP_MAGIC[magic])
                elif magic == _PCAPNG_SHB:
                    yield from _pcapng(path, data)
                else:
                    raise PcapFormatError(
                        f"{path}: not a pcap or pcapng file (starts with {magic.hex()})"
                    )
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _pcap(path: Path, data: mmap.mmap, order: str, per_second: int) -> Iterator[Frame]:
    if len(data) < 24:
        raise PcapFormatError(f"{path}: pcap header cut short")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset, end = 24, len(data)
    unpack = record.unpack_from
    while offset + 16 <= end:
        seconds, fraction, caplen, _wire = unpack(data, offset)
        offset += 16
        if offset + caplen > end:
            return  # a capture cut off while writing: keep what is whole
        yield Frame(seconds + fraction / per_second, linktype, data[offset : offset + caplen])
        offset += caplen


class _Interface:
    __slots__ = ("linktype", "offset", "per_second")

    def __init__(self, linktype: int, per_second: int, offset: int) -> None:
        # dividing by ticks per second rounds once; multiplying by 1e-6 would round twice
        self.linktype, self.per_second, self.offset = linktype, per_second, offset


def _pcapng(path: Path, data: mmap.mmap) -> Iterator[Frame]:
    end = len(data)
    offset = 0
    order = "<"
    interfaces: list[_Interface] = []
    while offset + 12 <= end:
        if data[offset : offset + 4] == _PCAPNG_SHB:
            magic = data[offset + 8 : offset + 12]
            if magic == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise PcapFormatError(f"{path}: bad pcapng byte-order magic at {offset}")
            interfaces = []  # a new section describes its interfaces anew
        block_type, length = struct.unpack_from(order + "II", data, offset)
        if length < 12 or length % 4 or offset + length > end:
            return  # cut off while writing
        body = offset + 8
        if block_type == _EPB:
            iface, high, low, caplen, _wire = struct.unpack_from(order + "IIIII", data, body)
            yield _frame(path, interfaces, iface, high, low, data, body + 20, caplen)
        elif block_type == _OPB:
            iface, _drops, high, low, caplen, _wire = struct.unpack_from(
                order + "HHIIII", data, body
            )
            yield _frame(path, interfaces, iface, high, low, data, body + 20, caplen)
        elif block_type == _IDB:
            linktype = struct.unpack_from(order + "H", data, body)[0]
            per_second, ts_offset = _interface_options(data, order, body + 8, offset + length - 4)
            interfaces.append(_Interface(linktype, per_second, ts_offset))
        offset += length


def _frame(
    path: Path,
    interfaces: list[_Interface],
    iface: int,
    high: int,
    low: int,
    data: mmap.mmap,
    start: int,
    caplen: int,
) -> Frame:
    if iface >= len(interfaces):
        raise PcapFormatError(f"{path}: packet names interface {iface}, which is not described")
    interface = interfaces[iface]
    timestamp = ((high << 32) | low) / interface.per_second + interface.offset
    return Frame(timestamp, interface.linktype, data[start : start + caplen])


def _interface_options(data: mmap.mmap, order: str, start: int, end: int) -> tuple[int, int]:
    per_second, ts_offset = 10**6, 0
    option = struct.Struct(order + "HH")
    while start + 4 <= end:
        code, length = option.unpack_from(data, start)
        value = start + 4
        if code == 0:
            break
        if code == _OPT_TSRESOL and length >= 1:
            raw = data[value]
            per_second = 2 ** (raw & 0x7F) if raw & 0x80 else 10**raw
        elif code == _OPT_TSOFFSET and length >= 8:
            ts_offset = struct.unpack_from(order + "q", data, value)[0]
        start = value + (length + 3) // 4 * 4
    return per_second, ts_offset


class PcapFileSource(PacketSource):
    """The fast backend, offline."""

    backend = "fast"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._delivered = 0
        self._finished = False
        self._closed = False

    def frames(self) -> Iterator[Frame]:
        try:
            for frame in read_frames(self.path):
                if self._closed:
                    break
                self._delivered += 1
                yield frame
        finally:
            self._finished = True

    def stats(self) -> CaptureStats:
        return CaptureStats(
            backend=self.backend,
            source=str(self.path),
            live=False,
            delivered=self._delivered,
            kernel_seen=None,
            dropped=None,
            lag_seconds=None,
            finished=self._finished,
        )

    def close(self) -> None:
        self._closed = True
