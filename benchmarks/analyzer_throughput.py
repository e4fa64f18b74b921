"""Benchmark: how fast the analyzer processes SIP packets, offline and live.

1. Live: SIPp places authenticated calls (INVITE, 407, ACK, INVITE, 180, 200, ACK, BYE)
   through the local chain (LB + 2 proxies) at 500 and 1000 calls/s while one analyzer per
   proxy captures live with the default (fast) backend. Per rate: packets the kernel matched
   at the proxies, packets it dropped because an analyzer fell behind, packets the analyzers
   processed, and the pairs recorded (3 per call that reached the callee: invite_challenge,
   invite_forward, ok_forward).
2. Offline: a pcap of proxy 0's SIP traffic (at least 100,000 packets, recorded by dumpcap at
   1000 calls/s) read by each backend; SIP packets per second through the whole pipeline
   (read, decode, parse, pair). The fast backend reads the whole file (best of three runs);
   pyshark, at a few hundred packets per second, reads its first --pyshark-packets.

It brings up its own testbed on 127.0.10.x (LB, controller, SIPp, analyzers) and 127.0.11.x
(proxies) and takes it down again. The last line holds the headline figures as key=value.

    uv run python benchmarks/analyzer_throughput.py [--rates 500,1000] [--step-seconds 10]
        [--keep-pcap FILE] [--pcap FILE --proxy-address 127.0.11.1]

--keep-pcap copies the recorded pcap to FILE; --pcap skips the testbed and the live part and
measures the offline path on FILE (for profiling and iterating without a testbed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from analyzer.analysis import Analyzer
from analyzer.capture import open_file
from testbed.config import TestbedSettings
from testbed.local import processes
from testbed.local.testbed import LocalTestbed
from testbed.sipp import SippRunner

LB = "127.0.10.1"
PROXY_BASE = "127.0.11.1"
UAS = ("127.0.10.2", 5090)
CALLEES = [f"01{n:02d}" for n in range(100)]
PAIRS = [(f"00{n:02d}", f"01{n:02d}") for n in range(100)]
MIN_PCAP_PACKETS = 100_000
OFFLINE_GOAL = 100_000  # SIP packets/s through read, decode, parse and pair (issue 19)


@dataclass
class LiveStep:
    rate: float
    calls: int
    successful: int
    seen: int
    dropped: int
    delivered: int
    pairs: int

    @property
    def loss(self) -> float:
        """Share of the packets at the proxies that no analyzer processed."""
        return (self.seen - self.delivered) / self.seen if self.seen else 0.0

    def row(self) -> str:
        return (
            f"{self.rate:>8g} {self.calls:>7} {self.successful:>7} {self.seen:>9} "
            f"{self.dropped:>8} {self.delivered:>10} {self.pairs:>7} {self.loss:>8.5f}"
        )


LIVE_HEADER = (
    f"{'calls/s':>8} {'calls':>7} {'ok':>7} {'seen':>9} {'dropped':>8} {'delivered':>10} "
    f"{'pairs':>7} {'loss':>8}"
)


@dataclass
class AnalyzerProcess:
    url: str
    handle: processes.ProcessHandle
    log: Path


def start_analyzers(workdir: Path, proxies: list[str], buffer_bytes: int) -> list[AnalyzerProcess]:
    started = []
    for index, proxy in enumerate(proxies):
        log = workdir / f"analyzer-{index}.log"
        port = 19201 + index
        env = {
            **os.environ,
            "ANALYZER_PROXY_ADDRESS": f"{proxy}:5060",
            "ANALYZER_INTERFACE": "lo",
            "ANALYZER_BACKEND": "fast",
            "ANALYZER_HTTP_HOST": LB,
            "ANALYZER_HTTP_PORT": str(port),
            "ANALYZER_SOCKET_BUFFER_BYTES": str(buffer_bytes),
        }
        handle = processes.spawn([sys.executable, "-m", "analyzer"], env, log)
        started.append(AnalyzerProcess(f"http://{LB}:{port}", handle, log))
    for analyzer in started:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{analyzer.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not analyzer.handle.alive():
                raise SystemExit(f"analyzer did not start:\n{processes.tail(analyzer.log)}")
            time.sleep(0.1)
    return started


def live_step(
    workdir: Path,
    sipp: SippRunner,
    proxies: list[str],
    rate: float,
    seconds: float,
    buffer_bytes: int,
) -> LiveStep:
    analyzers = start_analyzers(workdir / f"live-{rate:g}", proxies, buffer_bytes)
    try:
        count = round(rate * seconds)
        result = sipp.calls(
            PAIRS, f"{LB}:5060", "127.0.10.4:5092", rate=rate, count=count,
            timeout=seconds * 4 + 60, tag=f"live-{rate:g}",
        )  # fmt: skip
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:  # let the analyzers drain their socket buffers
                captures = [http.get(f"{a.url}/health").json()["capture"] for a in analyzers]
                if all(c["queued"] == 0 for c in captures) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            pairs = sum(
                http.get(f"{a.url}/samples", params={"limit": 1}).json()["total"] for a in analyzers
            )
        return LiveStep(
            rate=rate,
            calls=count,
            successful=result.successful,
            seen=sum(c["kernel_seen"] for c in captures),
            dropped=sum(c["dropped"] for c in captures),
            delivered=sum(c["delivered"] for c in captures),
            pairs=pairs,
        )
    finally:
        for analyzer in analyzers:
            processes.stop(analyzer.handle)


@contextmanager
def recording(pcap: Path, capture_filter: str) -> Iterator[None]:
    log = pcap.with_suffix(".log")
    with log.open("wb") as err:
        dumpcap = subprocess.Popen(
            ["dumpcap", "-q", "-i", "lo", "-B", "64", "-f", capture_filter, "-w", str(pcap)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    while b"Capturing on" not in log.read_bytes():
        if dumpcap.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"dumpcap did not start: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    try:
        yield
    finally:
        time.sleep(1.0)
        dumpcap.send_signal(signal.SIGINT)
        dumpcap.wait(30)


def offline_rate(pcap: Path, proxy: str, backend: str, limit: int | None) -> tuple[int, float]:
    """(packets processed, packets per second) through read, decode, parse and pair."""
    analyzer = Analyzer((proxy, 5060), 32.0)
    source = open_file("fast" if backend == "fast" else "pyshark", pcap)
    process = analyzer.process
    started = time.perf_counter()
    frames = 0
    for frame in source.frames():
        process(frame)
        frames += 1
        if limit is not None and frames >= limit:
            break
    elapsed = time.perf_counter() - started
    source.close()
    return frames, frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="500,1000", help="live call rates (calls/s)")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--proxies", type=int, default=2)
    parser.add_argument("--record-calls", type=int, default=13_000)
    parser.add_argument(
        "--pyshark-packets", type=int, default=20_000, help="0: the whole file; -1: skip pyshark"
    )
    parser.add_argument(
        "--buffer-mib",
        type=float,
        default=32,
        help="the analyzers' capture buffer (ANALYZER_SOCKET_BUFFER_BYTES), MiB",
    )
    parser.add_argument("--keep-pcap", type=Path, help="copy the recorded pcap here")
    parser.add_argument("--pcap", type=Path, help="offline only, on this file (no testbed)")
    parser.add_argument("--proxy-address", default=PROXY_BASE, help="the proxy in --pcap")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    if args.pcap is not None:
        offline(args.pcap, args.proxy_address, args.pyshark_packets)
        return

    with tempfile.TemporaryDirectory(prefix="analyzer-throughput-") as tmp:
        workdir = Path(tmp)
        settings = TestbedSettings(
            testbed_state_dir=workdir / "state",
            database_url=None,
            lb_address=LB,
            sip_controller_host=LB,
            proxy_address_base=PROXY_BASE,
        )
        testbed = LocalTestbed(settings)
        testbed.up(args.proxies, None, "sqlite")
        proxies = [settings.proxy_address(i) for i in range(args.proxies)]
        sipp = SippRunner(workdir / "sipp", domain=settings.sip_domain)
        uas = sipp.start_uas(*UAS)
        try:
            registered = sipp.register(
                CALLEES, f"{UAS[0]}:{UAS[1]}", f"{LB}:5060", "127.0.10.3:5091"
            )
            if registered.successful != len(CALLEES):
                raise SystemExit(f"only {registered.successful} callees registered")
            print(
                f"# live: {args.proxies} proxies, one analyzer each (fast backend, AF_PACKET), "
                f"{args.step_seconds:g} s of calls per rate, capture buffer "
                f"{args.buffer_mib:g} MiB; ok = calls SIPp completed, seen = "
                "packets the kernel filters matched, loss = share of them no analyzer processed, "
                "pairs = pairs recorded (3 per call that reached the callee)"
            )
            print(LIVE_HEADER, flush=True)
            steps = []
            for rate in rates:
                step = live_step(
                    workdir, sipp, proxies, rate, args.step_seconds, int(args.buffer_mib * 2**20)
                )
                steps.append(step)
                print(step.row(), flush=True)
                time.sleep(3)
            pcap = workdir / "proxy0.pcapng"
            with recording(pcap, f"udp and host {proxies[0]} and port 5060"):
                sipp.calls(
                    PAIRS, f"{LB}:5060", "127.0.10.4:5092", rate=1000, count=args.record_calls,
                    timeout=args.record_calls / 1000 * 4 + 60, tag="record",
                )  # fmt: skip
        finally:
            processes.stop(uas)
            testbed.down()
            testbed.close()

        if args.keep_pcap is not None:
            shutil.copyfile(pcap, args.keep_pcap)
        fast_rate, pyshark_rate = offline(pcap, proxies[0], args.pyshark_packets)

    loss_1000 = next((s.loss for s in steps if s.rate == 1000), float("nan"))
    verdicts = []
    verdicts.append("offline goal met" if fast_rate >= OFFLINE_GOAL else "offline goal MISSED")
    verdicts.append("no live loss at 1000 calls/s" if loss_1000 == 0 else "live LOSS at 1000")
    print("# " + "; ".join(verdicts))
    print(
        f"fast_packets_per_s={fast_rate:.0f} pyshark_packets_per_s={pyshark_rate:.0f} "
        f"live_loss_1000cps={loss_1000:.5f}"
    )


def offline(pcap: Path, proxy: str, pyshark_packets: int) -> tuple[float, float]:
    """Prints and returns the packets/s of the fast (best of three) and pyshark backends."""
    packets = sum(1 for _ in open_file("fast", pcap).frames())
    print(f"# offline: {pcap.name}, {packets} SIP packets at {proxy}:5060")
    if packets < MIN_PCAP_PACKETS:
        print(f"# warning: fewer than {MIN_PCAP_PACKETS} packets; raise --record-calls")
    fast_runs = [offline_rate(pcap, proxy, "fast", None) for _ in range(3)]
    fast_frames, fast_rate = max(fast_runs, key=lambda r: r[1])
    print(
        f"# fast    (struct pcapng reader): {fast_frames} packets, "
        f"{fast_rate:,.0f} packets/s (runs: " + ", ".join(f"{r:,.0f}" for _, r in fast_runs) + ")",
        flush=True,
    )
    if pyshark_packets < 0:
        return fast_rate, float("nan")
    limit = pyshark_packets or None
    pyshark_frames, pyshark_rate = offline_rate(pcap, proxy, "pyshark", limit)
    print(
        f"# pyshark (tshark JSON + raw):    {pyshark_frames} packets, "
        f"{pyshark_rate:,.0f} packets/s; fast/pyshark = {fast_rate / pyshark_rate:.0f}x"
    )
    return fast_rate, pyshark_rate


if __name__ == "__main__":
    main()
