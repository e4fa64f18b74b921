"""The live backends against the real kernel on the loopback device (needs root, as CI has).

Addresses 127.0.8.200-210 are this module's own, so parallel runs of other tests don't meet it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from analyzer.capture import CaptureError, open_live
from analyzer.capture.afpacket import AfPacketSource
from analyzer.capture.bpf import proxy_filter
from analyzer.packets import FRAGMENT, Frame, decode

PROXY = ("127.0.8.201", 5060)
PEER = ("127.0.8.200", 5060)
# linux/in.h, not in Python's socket module: netfilter leaves this raw socket's fragments
# alone (man 7 ip)
IP_NODEFRAG = 22


class Collector:
    def __init__(self, source) -> None:
        self.source = source
        self.frames: list[Frame] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for frame in self.source.frames():
            self.frames.append(frame)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Frame]:
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.frames

    def stop(self) -> None:
        self.source.close()
        self.thread.join(5)


def _payload(frame: Frame) -> bytes:
    """The UDP payload a frame carries; a frame decode() skips (its reason) fails the test."""
    datagram = decode(frame.linktype, frame.data)
    assert not isinstance(datagram, str), datagram
    return datagram.payload


def _udp(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture
def sockets() -> Iterator[dict[str, socket.socket]]:
    made = {
        "peer": _udp(PEER),
        "proxy": _udp(PROXY),
        "dmq": _udp((PROXY[0], 5061)),
        "other": _udp(("127.0.8.202", 5060)),
    }
    yield made
    for sock in made.values():
        sock.close()


def test_only_the_proxys_datagrams_arrive_once_each_with_kernel_times(sockets):
    collector = Collector(AfPacketSource("lo", PROXY))
    try:
        sent = []
        for i in range(20):
            sent.append(time.time())
            sockets["peer"].sendto(b"in %d" % i, PROXY)
            sockets["proxy"].sendto(b"out %d" % i, PEER)
            sockets["dmq"].sendto(b"dmq", ("127.0.8.202", 5061))  # the proxy's DMQ port
            sockets["other"].sendto(b"other", PEER)  # another proxy
            sockets["peer"].sendto(b"to other", ("127.0.8.202", 5060))
        frames = collector.wait_for(40)
        time.sleep(0.3)  # anything more would arrive now
    finally:
        collector.stop()
    payloads = [_payload(f) for f in collector.frames]
    assert payloads == [p for i in range(20) for p in (b"in %d" % i, b"out %d" % i)]
    for i in range(20):
        assert 0 <= frames[2 * i].timestamp - sent[i] < 0.5
    stats = collector.source.stats()
    assert (stats.delivered, stats.kernel_seen, stats.dropped, stats.queued) == (40, 40, 0, 0)
    assert stats.finished


def test_fragments_to_the_proxy_pass_the_filter_to_be_counted(sockets):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    # where conntrack or NAT rules are active (containers, Kubernetes), nf_defrag_ipv4 would
    # hold the lone fragment at LOCAL_OUT, waiting for the rest, so it would never reach lo
    raw.setsockopt(socket.IPPROTO_IP, IP_NODEFRAG, 1)
    collector = Collector(AfPacketSource("lo", PROXY))
    try:
        header = bytes.fromhex("4500 0030 0001 2000 4011 0000") + socket.inet_aton(PEER[0])
        header += socket.inet_aton(PROXY[0])
        first = header + bytes.fromhex("13c4 13c4 0400 0000") + b"INVITE sip:a@b SIP/"
        raw.sendto(first, (PROXY[0], 0))  # more fragments follow (they never come)
        sockets["peer"].sendto(b"whole", PROXY)
        frames = collector.wait_for(2)
    finally:
        collector.stop()
        raw.close()
    assert decode(frames[0].linktype, frames[0].data) == FRAGMENT
    assert _payload(frames[1]) == b"whole"


def test_a_reader_that_falls_behind_is_told_how_many_the_kernel_dropped(sockets):
    source = AfPacketSource("lo", PROXY, buffer_bytes=65536)
    for _ in range(3000):  # nobody reads meanwhile
        sockets["peer"].sendto(b"x" * 1000, PROXY)
    stats = source.stats()
    assert stats.kernel_seen == 3000
    assert stats.dropped is not None
    assert stats.dropped > 0
    collector = Collector(source)
    collector.wait_for(3000 - stats.dropped, timeout=5)
    time.sleep(0.3)
    collector.stop()
    final = source.stats()
    assert final.dropped is not None
    assert final.delivered + final.dropped == final.kernel_seen == 3000
    assert final.queued == 0


def test_the_filter_program_is_small_and_loopback_aware():
    assert len(proxy_filter("127.0.1.1", 5060, skip_outgoing=True)) == 2 + len(
        proxy_filter("127.0.1.1", 5060, skip_outgoing=False)
    )
    assert len(proxy_filter("10.1.2.3", 5060, skip_outgoing=False)) < 30


def test_capture_problems_are_named():
    with pytest.raises(CaptureError, match="no network interface named 'nope0'"):
        open_live("fast", "nope0", PROXY, 1 << 20)


@pytest.mark.slow
def test_pyshark_live_source_delivers_the_same_datagrams(sockets):
    source = open_live("pyshark", "lo", PROXY, 1 << 20)
    collector = Collector(source)
    try:
        # tshark takes a moment to start capturing: probe until the first copy arrives
        deadline = time.monotonic() + 30
        while not collector.frames and time.monotonic() < deadline:
            sockets["peer"].sendto(b"probe", PROXY)
            time.sleep(0.2)
        assert collector.frames, "pyshark delivered nothing within 30 s"
        probes = len(collector.frames)
        for i in range(10):
            sockets["peer"].sendto(b"in %d" % i, PROXY)
            sockets["dmq"].sendto(b"dmq", PEER)
        # pyshark hands a packet over when the next one begins: one more lets the last out
        sockets["peer"].sendto(b"probe", PROXY)
        collector.wait_for(probes + 10)
        time.sleep(0.5)
    finally:
        collector.stop()
    payloads = [_payload(f) for f in collector.frames]
    assert [p for p in payloads if p != b"probe"] == [b"in %d" % i for i in range(10)]
    stats = source.stats()
    assert stats.backend == "pyshark"
    assert stats.kernel_seen is not None
    assert stats.kernel_seen >= stats.delivered


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """A veth pair: one end in the root namespace with the proxy's address (like a pod's eth0,
    the analyzer's interface), the other in a namespace of this test's own with the peer's.
    Yields (interface, proxy address, namespace)."""
    import os
    import subprocess

    tag = f"{os.getpid() % 100000}"
    ns, here, there = f"anlz{tag}", f"anlz{tag}a", f"anlz{tag}b"
    proxy_ip, peer_ip = "10.253.7.1", "10.253.7.2"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    ip("netns", "add", ns)
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there)
        ip("link", "set", there, "netns", ns)
        ip("addr", "add", f"{proxy_ip}/30", "dev", here)
        ip("link", "set", here, "up")
        ip("-n", ns, "addr", "add", f"{peer_ip}/30", "dev", there)
        ip("-n", ns, "link", "set", there, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield here, proxy_ip, ns
    finally:
        subprocess.run(["ip", "link", "delete", here], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


def test_on_a_real_interface_both_directions_arrive(veth: tuple[str, str, str]) -> None:
    """What a sidecar sees on the pod's eth0: the requests the proxy receives and the answers it
    sends. A packet socket bound to ETH_P_IP gets only the received ones there (on loopback
    every packet is both sent and received, so the loopback tests cannot tell)."""
    import subprocess
    import sys

    interface, proxy_ip, ns = veth
    proxy = _udp((proxy_ip, 5060))
    collector = Collector(AfPacketSource(interface, (proxy_ip, 5060)))
    peer_script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('10.253.7.2', 5070)); s.settimeout(5)\n"
        "for i in range(5):\n"
        f"    s.sendto(b'in %d' % i, ('{proxy_ip}', 5060))\n"
        "    print(s.recvfrom(100)[0].decode(), flush=True)\n"
    )
    try:
        peer = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", peer_script],
            stdout=subprocess.PIPE,
            text=True,
        )
        proxy.settimeout(5)
        for i in range(5):
            _data, source = proxy.recvfrom(100)
            proxy.sendto(b"out %d" % i, source)
        answered = peer.communicate(timeout=10)[0].split()
        frames = collector.wait_for(10, timeout=5)
    finally:
        collector.stop()
        proxy.close()
    assert answered == [w for i in range(5) for w in ("out", str(i))]
    payloads = [_payload(f) for f in frames]
    assert payloads == [p for i in range(5) for p in (b"in %d" % i, b"out %d" % i)]
