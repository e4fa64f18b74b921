"""Benchmark: Python CPU per call of two SoftphonePods, in process, without sockets.

A caller pod (00) and a callee pod (01) place N calls through a stand-in proxy that works on
bytes the way the testbed's Kamailio does for this flow: it challenges an INVITE without
Proxy-Authorization with a 407 (digest, qop=auth, like `proxy_authorize`; the credentials are
not checked) and absorbs the ACK of that 407; it relays everything else, adding its Via and a
Record-Route to requests (filling the caller's `rport`), removing its Route from in-dialog
requests and its Via from responses. Time is a fake clock: the pods' timers fire on it, calls
start at `--rate` per simulated second and hold for `--hold-ms`.

The pods' work is the run's CPU time (time.process_time) less the proxy's, measured by
replaying the proxy's inputs into a fresh one: the SIP stack, transactions, dialogs, digest
and the pods' bookkeeping, plus this driver's small event loop; no sockets, asyncio or
WebSocket.
The baseline, in the same run, over the very datagrams the pods received: the cheapest
pure-Python look at them, splitting each into lines and each header line into name and value.

    uv run python benchmarks/sip_stack.py [--calls 20000] [--rate 1000] [--hold-ms 0]
    uv run python benchmarks/sip_stack.py --profile out.prof   # cProfile of the pods' part
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from sip_client.ua import PodConfig, SoftphonePod
from sip_core import Address, IdSource

PROXY: Address = ("127.0.0.10", 5060)
CALLER: Address = ("127.0.2.1", 5060)
CALLEE: Address = ("127.0.2.2", 5060)
CHALLENGE = (
    b'Proxy-Authenticate: Digest realm="testbed.local", '
    b'nonce="5f1c2a3b4d5e6f708192a3b4c5d6e7f8", qop="auth"\r\n'
)
RECORD_ROUTE = b"Record-Route: <sip:127.0.0.10;lr>\r\n"
OWN_ROUTE = b"Route: <sip:127.0.0.10;lr>\r\n"
LATENCY = 0.0002  # one hop, seconds of simulated time


class Proxy:
    """A stateless relay on bytes, enough for REGISTER-less calls between two pods."""

    def __init__(self) -> None:
        self._branches = itertools.count()
        self._back: dict[bytes, Address] = {}  # our branch -> where its responses go
        self.messages = 0

    def handle(self, data: bytes, source: Address) -> list[tuple[bytes, Address]]:
        self.messages += 1
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if lines[0].startswith(b"SIP/2.0 "):
            return self._response(lines, body)
        method, uri, _version = lines[0].split(b" ")
        if method == b"ACK" and b";tag=px" in _header(lines, b"To:"):
            return []  # the ACK of our 407: hop by hop, it ends here
        if method == b"INVITE" and not _header(lines, b"Proxy-Authorization:"):
            return [(self._challenge(lines), source)]
        branch = b"z9hG4bKpx%d" % next(self._branches)
        self._back[branch] = source
        out = [lines[0], b"Via: SIP/2.0/UDP 127.0.0.10;branch=" + branch]
        via_seen = False
        for line in lines[1:]:
            if line + b"\r\n" == OWN_ROUTE:
                continue
            if not via_seen and line.startswith(b"Via:"):
                via_seen = True
                line = line.replace(
                    b";rport", b";received=%s;rport=%d" % (source[0].encode(), source[1]), 1
                )
            out.append(line)
        if method == b"INVITE":
            out.insert(2, RECORD_ROUTE[:-2])
        user = uri.split(b":", 1)[1][:2]
        target = CALLER if user == b"00" else CALLEE
        return [(b"\r\n".join(out) + b"\r\n\r\n" + body, target)]

    def _response(self, lines: list[bytes], body: bytes) -> list[tuple[bytes, Address]]:
        for i, line in enumerate(lines):
            if line.startswith(b"Via:"):
                branch = line.rsplit(b"branch=", 1)[1].split(b";", 1)[0]
                peer = self._back.get(branch)
                if peer is None:
                    return []
                if lines[0].split(b" ", 2)[1][:1] != b"1" and not lines[
                    _index(lines, b"CSeq:")
                ].endswith(b"INVITE"):
                    self._back.pop(branch, None)
                del lines[i]
                return [(b"\r\n".join(lines) + b"\r\n\r\n" + body, peer)]
        return []

    def _challenge(self, lines: list[bytes]) -> bytes:
        out = [b"SIP/2.0 407 Proxy Authentication Required"]
        for line in lines[1:]:
            if line.startswith((b"Via:", b"From:", b"Call-ID:", b"CSeq:")):
                out.append(line)
            elif line.startswith(b"To:"):
                out.append(line + b";tag=px%d" % next(self._branches))
        return b"\r\n".join(out) + b"\r\n" + CHALLENGE + b"Content-Length: 0\r\n\r\n"


def _header(lines: list[bytes], prefix: bytes) -> bytes:
    for line in lines:
        if line.startswith(prefix):
            return line
    return b""


def _index(lines: list[bytes], prefix: bytes) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


class Bench:
    def __init__(self, calls: int, rate: float, hold_ms: int, keep: bool) -> None:
        def make(pod: str, local: Address, seed: int) -> SoftphonePod:
            config = PodConfig(pod=pod, phones=100, local=local, outbound=PROXY)
            return SoftphonePod(config, IdSource(random.Random(seed)))

        self.caller = make("00", CALLER, 1)
        self.callee = make("01", CALLEE, 2)
        self.pods = {CALLER: self.caller, CALLEE: self.callee}
        self.proxy = Proxy()
        self.calls, self.rate, self.hold_ms = calls, rate, hold_ms
        self.to_proxy: list[tuple[bytes, Address]] = []  # replayed to time the proxy alone
        self.received: list[bytes] = []  # what the pods were fed, for the baseline
        self.keep = keep
        self.cpu = 0.0
        self.pod_messages = 0  # datagrams in + out of the pods
        self._wire: list[tuple[float, int, bytes, Address, Address]] = []  # (at, seq, ...)
        self._seq = itertools.count()

    def _timed(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)  # no clock per call: process_time() is a system call and cost 20% here

    def _drain(self, pod: SoftphonePod, local: Address, now: float) -> None:
        out = pod.datagrams_to_send()
        pod.take_events()
        self.pod_messages += len(out)
        for data, peer in out:
            assert peer == PROXY, peer
            heapq.heappush(self._wire, (now + LATENCY, next(self._seq), data, local, PROXY))

    def run(self) -> None:
        now = 0.0
        started = 0
        while True:
            next_call = started / self.rate if started < self.calls else None
            timers = [t for t in (p.get_timer() for p in self.pods.values()) if t is not None]
            wire = self._wire[0][0] if self._wire else None
            candidates = [t for t in (next_call, wire, *timers) if t is not None]
            # done when every call ended and only the pods' long timers (Forget, M, L) remain
            if next_call is None and wire is None and not self.caller.active_calls:
                break
            now = max(now, min(candidates))
            if next_call is not None and next_call <= now:
                n = started % 100
                self._timed(self.caller.call, f"00{n:02d}", f"01{n:02d}", now, self.hold_ms)
                started += 1
                self._drain(self.caller, CALLER, now)
            while self._wire and self._wire[0][0] <= now:
                _at, _seq, data, source, dest = heapq.heappop(self._wire)
                if dest == PROXY:
                    self.to_proxy.append((data, source))
                    for out, peer in self.proxy.handle(data, source):
                        heapq.heappush(
                            self._wire, (now + LATENCY, next(self._seq), out, PROXY, peer)
                        )
                    continue
                pod = self.pods[dest]
                self.pod_messages += 1
                if self.keep:
                    self.received.append(data)
                self._timed(pod.receive_datagram, data, source, now)
                self._drain(pod, dest, now)
            for local, pod in self.pods.items():
                timer = pod.get_timer()
                if timer is not None and timer <= now:
                    self._timed(pod.handle_timer, now)
                    self._drain(pod, local, now)


def proxy_cpu(inputs: list[tuple[bytes, Address]]) -> float:
    """CPU seconds the stand-in proxy took: the same inputs replayed into a fresh one."""
    proxy = Proxy()
    started = time.process_time()
    for data, source in inputs:
        proxy.handle(data, source)
    return time.process_time() - started


def baseline(datagrams: list[bytes]) -> float:
    """CPU seconds to split every datagram into lines and each header line at its colon."""
    started = time.process_time()
    for data in datagrams:
        head, _, _body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        _fields = [line.partition(":") for line in lines[1:]]
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--hold-ms", type=int, default=0)
    parser.add_argument("--profile", help="write a cProfile of the whole run to this file")
    args = parser.parse_args()
    bench = Bench(args.calls, args.rate, args.hold_ms, keep=not args.profile)
    # as the pod's runtime does (sip_client.runtime): rare cyclic collections
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    started = time.process_time()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(bench.run)
        profiler.dump_stats(args.profile)
    else:
        bench.run()
    total = time.process_time() - started
    # the pods' share: the whole run less the proxy's (the event loop of this driver, a heap
    # of datagrams in flight, stays in: a few percent)
    bench.cpu = total - proxy_cpu(bench.to_proxy)
    c = bench.caller.counters
    ok, failed = c["calls_succeeded"], c["calls_failed"]
    if ok != args.calls:
        raise SystemExit(f"{ok} of {args.calls} calls succeeded, {failed} failed: {c}")
    per_call = 1e6 * bench.cpu / args.calls
    per_message = 1e6 * bench.cpu / bench.pod_messages
    base = 1e6 * baseline(bench.received) / args.calls if bench.received else float("nan")
    messages_per_call = bench.pod_messages / args.calls
    print(
        f"# {args.calls} calls, caller pod -> stand-in proxy (407 once) -> callee pod, "
        f"{messages_per_call:.1f} datagrams in+out of the pods per call"
    )
    print(f"pods (both):           {per_call:8.1f} us CPU per call, {per_message:6.1f} us/datagram")
    print(f"baseline (split lines):{base:8.1f} us CPU per call over the same datagrams received")
    print(f"pods/baseline = {per_call / base:.1f}")
    print(
        f"us_per_call={per_call:.1f} us_per_datagram={per_message:.1f} "
        f"baseline_us_per_call={base:.1f} ratio={per_call / base:.1f}"
    )


if __name__ == "__main__":
    main()
