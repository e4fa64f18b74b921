"""Capture backends behind one interface: `fast` (AF_PACKET live, struct pcap reader offline)
and `pyshark` (tshark). `fast` is the default: the benchmark shows it keeps up at 1000 calls/s
where pyshark handles a few hundred packets per second. pyshark is an optional extra (the
image leaves it out with tshark): it is imported only when its backend is chosen."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from analyzer.capture.base import CaptureError, CaptureStats, PacketSource
from analyzer.endpoints import Endpoint

Backend = Literal["fast", "pyshark"]
BACKENDS: tuple[Backend, ...] = ("fast", "pyshark")
DEFAULT_BACKEND: Backend = "fast"
PYSHARK_MISSING = (
    "the pyshark backend needs the analyzer's pyshark extra, which is not installed: "
    "pip install 'analyzer[pyshark]' (from a clone: uv sync --extra pyshark in services/analyzer)"
)


@contextlib.contextmanager
def _pyshark_extra() -> Iterator[None]:
    """Turns pyshark's absence, while importing the backend, into a CaptureError naming the
    extra; anything else missing is not the extra's doing and stays as it is."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != "pyshark":
            raise
        raise CaptureError(PYSHARK_MISSING) from None


def require_backend(backend: Backend) -> None:
    """Raise CaptureError if `backend` cannot run here (its extra is not installed), so a
    service can refuse to start with that line instead of failing at its first capture."""
    if backend == "pyshark":
        with _pyshark_extra():
            import analyzer.capture.pyshark_backend  # noqa: F401


def open_file(backend: Backend, path: Path) -> PacketSource:
    if backend == "fast":
        from analyzer.capture.pcapfile import PcapFileSource

        return PcapFileSource(path)
    with _pyshark_extra():
        from analyzer.capture.pyshark_backend import PysharkFileSource
    return PysharkFileSource(path)


def open_live(backend: Backend, interface: str, proxy: Endpoint, buffer_bytes: int) -> PacketSource:
    if backend == "fast":
        from analyzer.capture.afpacket import AfPacketSource

        return AfPacketSource(interface, proxy, buffer_bytes)
    with _pyshark_extra():
        from analyzer.capture.pyshark_backend import PysharkLiveSource
    return PysharkLiveSource(interface, proxy, buffer_bytes)


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Backend",
    "CaptureError",
    "CaptureStats",
    "PacketSource",
    "open_file",
    "open_live",
    "require_backend",
]
