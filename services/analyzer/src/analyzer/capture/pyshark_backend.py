"""The pyshark backend (the requested package): tshark dissects, pyshark hands us raw frames.

It runs tshark with JSON output and the raw bytes of every frame, so pairing works on the same
bytes as with the fast backend. It is slow (hundreds of packets per second here). Live, tshark
reads from dumpcap through a pipe that hides the kernel's counters, so a second packet socket
with the same kernel filter counts what the kernel matched: what it saw and pyshark has not
delivered is queued or lost, and shows in the stats as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyshark  # type: ignore[import-untyped]  # no stubs published
from pyshark.capture.capture import TSharkCrashException  # type: ignore[import-untyped]

from analyzer.capture.afpacket import KernelCounter, open_filtered_socket
from analyzer.capture.base import CaptureError, CaptureStats, PacketSource
from analyzer.endpoints import Endpoint
from analyzer.packets import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Frame,
)

# the first dissected layer names the link type of the raw bytes
_LINK_LAYERS = {
    "eth": LINKTYPE_ETHERNET,
    "sll": LINKTYPE_LINUX_SLL,
    "ip": LINKTYPE_RAW,
    "raw": LINKTYPE_RAW,
    "null": LINKTYPE_NULL,
    "loop": LINKTYPE_LOOP,
}


def capture_filter(proxy: Endpoint) -> str:
    """libpcap syntax for what bpf.proxy_filter accepts (fragments included)."""
    host, port = proxy
    return (
        f"(udp and ((src host {host} and src port {port}) or (dst host {host} and dst port "
        f"{port}))) or (udp and host {host} and ip[6:2] & 0x3fff != 0)"
    )


def _frame(packet: Any) -> Frame:
    raw: bytes = packet.get_raw_packet()
    linktype = _LINK_LAYERS.get(packet.layers[0].layer_name, LINKTYPE_ETHERNET)
    return Frame(float(packet.sniff_timestamp), linktype, raw)


def _tshark_error(exc: Exception) -> str:
    """tshark's own last error line from pyshark's exception text, else the whole text."""
    for line in str(exc).splitlines():
        if line.startswith("Last error line:"):
            return line.removeprefix("Last error line:").strip().removeprefix("tshark: ")
    return str(exc)


def _current_event_loop() -> None:
    """pyshark runs tshark on the thread's current event loop (get_event_loop). After an
    asyncio.run() or anyio.run() in the main thread there is none, and asyncio no longer makes
    one on demand: give the thread a loop when it has none."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def _thread_safe_child_watcher() -> None:
    """pyshark installs asyncio's SafeChildWatcher, bound to its loop, when it runs in the
    main thread; a later capture in another thread then cannot start tshark ("child watcher
    is not activated"). The threaded watcher works from any thread, but only the main thread
    may replace the other (it owns the SIGCHLD handler): so this runs when a source is made."""
    if threading.current_thread() is not threading.main_thread():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # child watchers: 3.12+
        set_watcher = getattr(asyncio, "set_child_watcher", None)
        watcher_class = getattr(asyncio, "ThreadedChildWatcher", None)
        if set_watcher is not None and watcher_class is not None:
            set_watcher(watcher_class())


def _stop_tshark(capture: Any) -> None:
    """Stop tshark from another thread: its output ends, so the reading loop ends."""
    for process in list(getattr(capture, "_running_processes", ())):
        with contextlib.suppress(ProcessLookupError, OSError):
            process.send_signal(signal.SIGTERM)


class PysharkFileSource(PacketSource):
    backend = "pyshark"

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise CaptureError(f"no such capture file: {path}")
        self.path = path
        _thread_safe_child_watcher()
        self._delivered = 0
        self._finished = False
        self._closing = threading.Event()
        self._capture: Any = None

    def frames(self) -> Iterator[Frame]:
        _current_event_loop()
        capture = pyshark.FileCapture(
            str(self.path), use_json=True, include_raw=True, keep_packets=False
        )
        self._capture = capture
        # tshark failing (a file cut short, a corrupt block) shows while reading or on close
        crash: Exception | None = None
        try:
            for packet in capture:
                if self._closing.is_set():
                    break
                self._delivered += 1
                yield _frame(packet)
        except TSharkCrashException as exc:
            crash = exc
        finally:
            self._finished = True
            try:
                capture.close()
            except TSharkCrashException as exc:
                crash = crash or exc
            except Exception:  # closing is best effort; the frames are all read
                pass
            # reported here: pyshark's __del__ would close (and raise) once more
            getattr(capture, "_running_processes", set()).clear()
            _thread_safe_child_watcher()  # pyshark's SafeChildWatcher dies with its loop
        if crash is not None:
            raise CaptureError(
                f"{self.path}: tshark stopped: {_tshark_error(crash)}; "
                f"the {self._delivered} frames before it were read"
            )

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
        self._closing.set()
        if self._capture is not None:
            _stop_tshark(self._capture)


class PysharkLiveSource(PacketSource):
    backend = "pyshark"

    def __init__(self, interface: str, proxy: Endpoint, buffer_bytes: int = 32 << 20) -> None:
        self.interface = interface
        self.proxy = proxy
        self.buffer_bytes = buffer_bytes
        _thread_safe_child_watcher()
        # counts what the kernel matched; tiny buffer, never read: every match is counted
        self._witness = open_filtered_socket(interface, proxy, 4096)
        self._counter = KernelCounter(self._witness)
        self._delivered = 0
        self._lag: float | None = None
        self._finished = False
        self._closing = threading.Event()
        self._capture: Any = None

    def frames(self) -> Iterator[Frame]:
        _current_event_loop()
        capture = pyshark.LiveCapture(
            interface=self.interface,
            bpf_filter=capture_filter(self.proxy),
            use_json=True,
            include_raw=True,
        )
        self._capture = capture
        try:
            for packet in capture.sniff_continuously():
                if self._closing.is_set():
                    break
                frame = _frame(packet)
                self._delivered += 1
                self._lag = time.time() - frame.timestamp
                yield frame
        finally:
            self._finished = True
            with contextlib.suppress(Exception):
                capture.close()
            _thread_safe_child_watcher()  # pyshark's SafeChildWatcher dies with its loop

    def stats(self) -> CaptureStats:
        seen, _ = self._counter.update()
        return CaptureStats(
            backend=self.backend,
            source=self.interface,
            live=True,
            delivered=self._delivered,
            kernel_seen=seen,
            dropped=None,  # dumpcap's drops do not reach pyshark: seen - delivered tells
            lag_seconds=self._lag,
            finished=self._finished,
        )

    def close(self) -> None:
        self._closing.set()
        if self._capture is not None:
            _stop_tshark(self._capture)
        self._counter.update()
        self._witness.close()
