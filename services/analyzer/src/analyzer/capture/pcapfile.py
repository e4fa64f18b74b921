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
_MAGICS = (*_PCAP_MAGIC, _PCAPNG_SHB)
_SHB, _IDB, _OPB, _EPB = 0x0A0D0D0A, 1, 2, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14


class PcapFormatError(CaptureError):
    """Not a capture file, or one that is cut short or corrupt; `offset` is the byte where the
    reading stopped (None for the whole file) and `frames` how many were read before it."""

    def __init__(self, message: str, offset: int | None = None, frames: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.frames = frames


def read_frames(path: Path) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in file order.

    A file cut short or corrupt yields the frames before the damage, then raises
    PcapFormatError naming the byte offset (the reader never guesses past it).
    """
    try:
        with path.open("rb") as file:
            if path.stat().st_size == 0:
                raise PcapFormatError(f"{path}: empty file, not a pcap or pcapng capture")
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                magic = data[:4]
                if magic in _PCAP_MAGIC:
                    reader = _pcap(data, *_PCAP_MAGIC[magic])
                elif magic == _PCAPNG_SHB:
                    reader = _pcapng(data)
                elif len(magic) < 4 and any(m.startswith(magic) for m in _MAGICS):
                    raise PcapFormatError(
                        f"{path}: cut short at byte 0: {len(magic)} of a 4-byte magic number", 0
                    )
                else:
                    raise PcapFormatError(
                        f"{path}: not a pcap or pcapng file (starts with {magic.hex()})"
                    )
                try:
                    # yield from: no Python-level step per frame in this layer
                    yield from reader
                except _Damage as damage:
                    raise PcapFormatError(
                        f"{path}: {damage.kind} at byte {damage.offset}: {damage.detail}; "
                        f"the {damage.frames} frames before it were read",
                        damage.offset,
                        damage.frames,
                    ) from None
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror or exc}") from exc


class _Damage(Exception):
    def __init__(self, offset: int, detail: str, cut_short: bool = False) -> None:
        super().__init__(detail)
        self.offset = offset
        self.kind = "cut short" if cut_short else "corrupt"
        self.detail = detail
        self.frames = 0  # set by the reader that raised it: the frames it yielded before


def _pcap(data: mmap.mmap, order: str, per_second: int) -> Iterator[Frame]:
    frames = 0
    try:
        end = len(data)
        if end < 24:
            raise _Damage(0, f"the file header has {end} of 24 bytes", cut_short=True)
        linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
        record = struct.Struct(order + "IIII")
        offset = 24
        unpack = record.unpack_from
        while offset + 16 <= end:
            seconds, fraction, caplen, _wire = unpack(data, offset)
            if offset + 16 + caplen > end:
                raise _Damage(
                    offset,
                    f"the packet record announces {caplen} bytes, {end - offset - 16} follow",
                    cut_short=True,
                )
            offset += 16
            yield Frame(seconds + fraction / per_second, linktype, data[offset : offset + caplen])
            frames += 1
            offset += caplen
        if offset < end:
            raise _Damage(offset, f"{end - offset} of a 16-byte record header", cut_short=True)
    except _Damage as damage:
        damage.frames = frames
        raise


# the smallest body (after type and length) of the blocks we read: EPB/OPB 20, IDB 8, SHB 16
_MIN_BODY = {_EPB: 20, _OPB: 20, _IDB: 8, _SHB: 16}


def _pcapng(data: mmap.mmap) -> Iterator[Frame]:
    end = len(data)
    offset = 0
    frames = 0
    order = "<"
    # per interface (linktype, ticks per second, offset): a tuple unpacks in one step
    interfaces: list[tuple[int, int, int]] = []
    # the per-block formats, compiled once per byte order (the loop runs once per packet)
    header, word = struct.Struct("<II"), struct.Struct("<I")
    epb, opb = struct.Struct("<IIIII"), struct.Struct("<HHIIII")
    new = tuple.__new__  # a NamedTuple's own __new__ is a Python-level call, per packet
    try:
        while offset + 12 <= end:
            block_type, length = header.unpack_from(data, offset)
            if block_type == _SHB:  # the same number in either byte order
                magic = data[offset + 8 : offset + 12]
                if magic == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif magic == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    raise _Damage(offset, f"bad byte-order magic {magic.hex()}")
                interfaces = []  # a new section describes its interfaces anew
                header, word = struct.Struct(order + "II"), struct.Struct(order + "I")
                epb, opb = struct.Struct(order + "IIIII"), struct.Struct(order + "HHIIII")
                block_type, length = header.unpack_from(data, offset)
            if length < 12 or length % 4:
                raise _Damage(offset, f"block length {length} is not a multiple of 4 >= 12")
            if offset + length > end:
                raise _Damage(
                    offset,
                    f"the block announces {length} bytes, {end - offset} follow",
                    cut_short=True,
                )
            body, body_end = offset + 8, offset + length - 4
            if word.unpack_from(data, body_end)[0] != length:
                raise _Damage(offset, "the block's trailing length differs from its length")
            if body_end - body < _MIN_BODY.get(block_type, 0):
                raise _Damage(offset, f"a block of type {block_type} too short ({length} bytes)")
            if block_type == _EPB:
                iface, high, low, caplen, _wire = epb.unpack_from(data, body)
            elif block_type == _OPB:
                iface, _drops, high, low, caplen, _wire = opb.unpack_from(data, body)
            else:
                if block_type == _IDB:
                    linktype = struct.unpack_from(order + "H", data, body)[0]
                    per_second, ts_offset = _interface_options(data, order, body + 8, body_end)
                    interfaces.append((linktype, per_second, ts_offset))
                offset += length
                continue
            if body + 20 + caplen > body_end:
                raise _Damage(offset, f"a packet block too short for its {caplen} captured bytes")
            if iface >= len(interfaces):
                raise _Damage(offset, f"packet names interface {iface}, which is not described")
            linktype, per_second, ts_offset = interfaces[iface]
            start = body + 20
            # dividing by ticks per second rounds once; multiplying by 1e-6 would round twice
            yield new(
                Frame,
                (
                    ((high << 32) | low) / per_second + ts_offset,
                    linktype,
                    data[start : start + caplen],
                ),
            )
            frames += 1
            offset += length
        if offset < end:
            raise _Damage(offset, f"{end - offset} of a 12-byte block header", cut_short=True)
    except _Damage as damage:
        damage.frames = frames
        raise


def _interface_options(data: mmap.mmap, order: str, start: int, end: int) -> tuple[int, int]:
    per_second, ts_offset = 10**6, 0
    option = struct.Struct(order + "HH")
    while start + 4 <= end:
        code, length = option.unpack_from(data, start)
        value = start + 4
        if code == 0:
            break
        if value + length > end:
            raise _Damage(start, f"interface option {code} of {length} bytes runs past its block")
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
