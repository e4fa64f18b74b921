"""The analyzer against real traffic: SIPp registers and calls through Kamailio (LB + 2 proxies)
while tshark records a pcap and analyzers capture live (fast backend for each proxy, pyshark
for one). Then every pair the analyzer finds offline in the pcap is checked against times
computed independently from tshark's frame times, and the live captures against the offline
run on the same pcap.

This module brings up its own testbed on 127.0.8.x (LB, controller, SIPp, analyzers) and
127.0.9.x (proxies), so it never meets another test run's addresses.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from testbed.config import TestbedSettings
from testbed.local import processes
from testbed.local.testbed import LocalTestbed
from testbed.sipp import SippResult, SippRunner

pytestmark = pytest.mark.integration

LB = "127.0.8.1"
PROXIES = ("127.0.9.1", "127.0.9.2")
UAS = ("127.0.8.2", 5090)
CALLEES = [f"01{n:02d}" for n in range(20)]
CALLERS = [f"00{n:02d}" for n in range(20)]
CALLS = 150
RATE = 25.0
TOLERANCE_S = 0.0001  # 0.1 ms
PAIR_NAMES = (
    "register_challenge",
    "register_ok",
    "invite_challenge",
    "invite_forward",
    "ok_forward",
)
IP_NODEFRAG = 22  # linux/in.h, not in Python's socket module (man 7 ip)


@dataclass
class Analyzer:
    name: str
    proxy: str
    backend: str
    url: str
    handle: processes.ProcessHandle
    log: Path


@dataclass
class Run:
    pcap: Path
    registered: SippResult
    calls: SippResult
    samples: dict[str, list[dict[str, str]]]  # analyzer name -> /samples rows
    metrics: dict[str, str]
    health: dict[str, dict[str, Any]]  # analyzer name -> /health body


def _wait_healthy(url: str, handle: processes.ProcessHandle, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not handle.alive():
            raise RuntimeError(f"analyzer exited:\n{processes.tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"analyzer not healthy:\n{processes.tail(log)}")


def _start_analyzer(workdir: Path, name: str, proxy: str, backend: str, port: int) -> Analyzer:
    log = workdir / f"analyzer-{name}.log"
    env = {
        **os.environ,
        "ANALYZER_PROXY_ADDRESS": f"{proxy}:5060",
        "ANALYZER_PROXY_NAME": name,
        "ANALYZER_INTERFACE": "lo",
        "ANALYZER_BACKEND": backend,
        "ANALYZER_HTTP_HOST": LB,
        "ANALYZER_HTTP_PORT": str(port),
        "ANALYZER_DEBUG": "true",
    }
    env.pop("ANALYZER_PCAP_FILE", None)
    handle = processes.spawn([sys.executable, "-m", "analyzer"], env, log)
    url = f"http://{LB}:{port}"
    _wait_healthy(url, handle, log)
    return Analyzer(name, proxy, backend, url, handle, log)


def _options(call_id: str, proxy: str, sock: socket.socket) -> None:
    host, port = sock.getsockname()
    sock.sendto(
        (
            f"OPTIONS sip:{proxy}:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"From: <sip:probe@testbed.local>;tag=p\r\nTo: <sip:{proxy}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode(),
        (proxy, 5060),
    )


def _options_seen(analyzer: Analyzer) -> bool:
    metrics = httpx.get(f"{analyzer.url}/metrics", timeout=5).text
    return 'analyzer_sip_messages_total{direction="in",method="OPTIONS",status=""}' in metrics


def _inject_junk(proxy: str) -> None:
    """Non-SIP, a truncated SIP message and the first fragment of a datagram, to the proxy."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.8.9", 0))
        sock.sendto(b"\x00\x01 definitely not SIP", (proxy, 5060))
        sock.sendto(
            b"INVITE sip:0100@testbed.local SIP/2.0\r\nCall-ID: junk-1\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 500\r\n\r\nv=0\r\n",
            (proxy, 5060),
        )
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        # where conntrack or NAT rules are active (containers, Kubernetes), nf_defrag_ipv4
        # would hold the lone fragment at LOCAL_OUT, before lo and every capture on it
        raw.setsockopt(socket.IPPROTO_IP, IP_NODEFRAG, 1)
        header = bytes.fromhex("4500 0030 0002 2000 4011 0000") + socket.inet_aton("127.0.8.9")
        udp = bytes.fromhex("13c5 13c4 0400 0000") + b"REGISTER sip:x SIP/"
        raw.sendto(header + socket.inet_aton(proxy) + udp, (proxy, 0))


def _start_tshark(pcap: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        tshark = subprocess.Popen(
            ["tshark", "-q", "-n", "-i", "lo", "-f", "udp and net 127.0.8.0/23", "-w", str(pcap)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while b"Capturing on" not in log.read_bytes():
        if tshark.poll() is not None or time.monotonic() > deadline:
            tshark.kill()
            raise RuntimeError(f"tshark did not start: {log.read_text(errors='replace')}")
        time.sleep(0.1)
    return tshark


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("analyzer-validation")
    settings = TestbedSettings(
        testbed_state_dir=workdir / "state",
        database_url=None,
        lb_address=LB,
        sip_controller_host=LB,
        proxy_address_base=PROXIES[0],
    )
    testbed = LocalTestbed(settings)
    testbed.up(len(PROXIES), None, "sqlite")
    analyzers: list[Analyzer] = []
    uas = None
    tshark = None
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.8.8", 0))
    try:
        pcap = workdir / "run.pcapng"
        tshark = _start_tshark(pcap, workdir / "tshark.log")
        for index, proxy in enumerate(PROXIES):
            analyzers.append(
                _start_analyzer(workdir, f"fast-{index}", proxy, "fast", 19101 + index)
            )
        analyzers.append(_start_analyzer(workdir, "pyshark-0", PROXIES[0], "pyshark", 19109))
        # every capture sees the proxies before the traffic starts (tshark starts slowly)
        deadline = time.monotonic() + 60
        while not all(_options_seen(a) for a in analyzers):
            assert time.monotonic() < deadline, "analyzers did not see the OPTIONS probes"
            for proxy in PROXIES:
                _options(f"probe-{uuid.uuid4().hex}", proxy, probe)
            time.sleep(0.3)

        sipp = SippRunner(workdir / "sipp")
        uas = sipp.start_uas(*UAS)
        registered = sipp.register(
            CALLEES, f"{UAS[0]}:{UAS[1]}", f"{LB}:5060", "127.0.8.3:5091", tag="callees"
        )
        assert registered.successful == len(CALLEES), registered.errors
        for proxy in PROXIES:
            _inject_junk(proxy)
        pairs = [(CALLERS[i % 20], CALLEES[i % 20]) for i in range(CALLS)]
        calls = sipp.calls(pairs, f"{LB}:5060", "127.0.8.4:5092", rate=RATE, count=CALLS)
        assert calls.successful == CALLS, calls.errors
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=30) as http:

            def caught_up() -> bool:
                fast = [a for a in analyzers if a.backend == "fast"]
                if any(http.get(f"{a.url}/health").json()["capture"]["queued"] for a in fast):
                    return False
                # pyshark hands a packet over only once later packets follow: the probes
                # keep traffic flowing until it has every pair the fast capture has
                totals: dict[str, int] = {
                    a.name: http.get(f"{a.url}/samples", params={"limit": 1}).json()["total"]
                    for a in analyzers
                }
                return totals["pyshark-0"] == totals["fast-0"]

            while not caught_up():
                assert time.monotonic() < deadline, "the captures did not catch up in 120 s"
                for proxy in PROXIES:
                    _options(f"probe-{uuid.uuid4().hex}", proxy, probe)
                time.sleep(0.5)
            samples = {
                a.name: list(
                    csv.DictReader(
                        io.StringIO(
                            http.get(
                                f"{a.url}/samples", params={"format": "csv", "limit": 100000}
                            ).text
                        )
                    )
                )
                for a in analyzers
            }
            metrics = {a.name: http.get(f"{a.url}/metrics").text for a in analyzers}
            health = {a.name: http.get(f"{a.url}/health").json() for a in analyzers}
        tshark.send_signal(signal.SIGINT)
        tshark.wait(30)
        yield Run(pcap, registered, calls, samples, metrics, health)
    finally:
        probe.close()
        for analyzer in analyzers:
            processes.stop(analyzer.handle)
        if tshark is not None and tshark.poll() is None:
            tshark.kill()
            tshark.wait()
        if uas is not None:
            processes.stop(uas)
        testbed.down()
        testbed.close()


# -- an independent reading of the pcap, from tshark's dissection ------------------------


def tshark_pairs(pcap: Path, proxy: str) -> dict[tuple[str, str], tuple[float, float]]:
    """(pair, Call-ID) -> (time in, time out), from tshark's frame times alone: the first
    frame of the request at the proxy and the first frame of the proxy's answer or relay."""
    fields = [
        "frame.time_epoch", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "sip.Call-ID",
        "sip.CSeq.seq", "sip.CSeq.method", "sip.Method", "sip.Status-Code",
        "sip.Authorization", "sip.Proxy-Authorization",
    ]  # fmt: skip
    output = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", f"sip and ip.addr == {proxy} and udp.port == 5060",
         "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
        + [arg for f in fields for arg in ("-e", f)],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    first_in: dict[tuple[str, str, str], tuple[float, bool]] = {}
    first_out: dict[tuple[str, str, str, str], float] = {}
    for line in output.splitlines():
        t, src, sport, dst, dport, call_id, seq, cseq_method, method, status, auth, pauth = (
            line.split("\t") + [""] * 12
        )[:12]
        if not call_id or not seq:
            continue
        inbound = dst == proxy and dport == "5060"
        outbound = src == proxy and sport == "5060"
        what = method or status  # request method, or the status of a response
        if inbound and method in ("REGISTER", "INVITE"):
            first_in.setdefault((call_id, seq, method), (float(t), bool(auth or pauth)))
        elif inbound and status == "200" and cseq_method == "INVITE":
            first_in.setdefault((call_id, seq, "200"), (float(t), False))
        elif outbound:
            first_out.setdefault((call_id, seq, cseq_method, what), float(t))
    pairs: dict[tuple[str, str], tuple[float, float]] = {}
    for (call_id, seq, kind), (start, authenticated) in first_in.items():
        candidates = []
        if kind == "REGISTER":
            candidates.append(("register_challenge", (call_id, seq, "REGISTER", "401")))
            if authenticated:
                candidates.append(("register_ok", (call_id, seq, "REGISTER", "200")))
        elif kind == "INVITE":
            candidates.append(("invite_challenge", (call_id, seq, "INVITE", "407")))
            if authenticated:
                candidates.append(("invite_forward", (call_id, seq, "INVITE", "INVITE")))
        else:
            candidates.append(("ok_forward", (call_id, seq, "INVITE", "200")))
        for name, out_key in candidates:
            end = first_out.get(out_key)
            if end is not None and end >= start:
                pairs[(name, call_id)] = (start, end)
    return pairs


def analyzer_offline(pcap: Path, proxy: str, backend: str = "fast") -> list[dict[str, str]]:
    script = shutil.which("analyzer")
    assert script is not None, "uv sync installs the analyzer console script"
    result = subprocess.run(
        [script, "offline", str(pcap), "--proxy", f"{proxy}:5060", "--backend", backend],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader(io.StringIO(result.stdout)))


def _by_key(
    rows: list[dict[str, str]], time_field: str
) -> dict[tuple[str, str], tuple[float, float]]:
    keyed: dict[tuple[str, str], tuple[float, float]] = {}
    for row in rows:
        key = (row["pair"], row["call_id"])
        assert key not in keyed, f"{key} recorded twice"
        keyed[key] = (float(row[time_field]), float(row["response_time_ms"]) / 1000)
    return keyed


# -- the checks ----------------------------------------------------------------------------


def test_every_pair_matches_tsharks_frame_times_within_a_tenth_of_a_millisecond(run: Run):
    totals = dict.fromkeys(PAIR_NAMES, 0)
    for proxy in PROXIES:
        expected = tshark_pairs(run.pcap, proxy)
        found = _by_key(analyzer_offline(run.pcap, proxy), "time")
        assert set(found) == set(expected)
        for key, (start, end) in expected.items():
            time_in, response_time = found[key]
            assert abs(time_in - start) <= TOLERANCE_S, key
            assert abs(response_time - (end - start)) <= TOLERANCE_S, key
        for name, _ in found:
            totals[name] += 1
    # every registration and every call, across the two proxies, each exactly once
    assert totals == {
        "register_challenge": len(CALLEES),
        "register_ok": len(CALLEES),
        "invite_challenge": CALLS,
        "invite_forward": CALLS,
        "ok_forward": CALLS,
    }


@pytest.mark.parametrize("index", range(len(PROXIES)))
def test_live_capture_gives_the_pairs_of_the_offline_run(run: Run, index: int):
    offline = _by_key(analyzer_offline(run.pcap, PROXIES[index]), "time")
    live = _by_key(run.samples[f"fast-{index}"], "timestamp")
    assert set(live) == set(offline)
    for key, (start, response_time) in offline.items():
        assert abs(live[key][0] - start) <= TOLERANCE_S, key
        assert abs(live[key][1] - response_time) <= TOLERANCE_S, key
    capture = run.health[f"fast-{index}"]["capture"]
    assert capture["dropped"] == 0
    assert capture["delivered"] == capture["kernel_seen"]


def test_pyshark_live_capture_gives_the_same_pairs(run: Run):
    offline = _by_key(analyzer_offline(run.pcap, PROXIES[0]), "time")
    live = _by_key(run.samples["pyshark-0"], "timestamp")
    assert set(live) == set(offline)
    for key, (start, response_time) in offline.items():
        assert abs(live[key][0] - start) <= TOLERANCE_S, key
        assert abs(live[key][1] - response_time) <= TOLERANCE_S, key


def test_the_pyshark_backend_reads_the_pcap_to_the_same_pairs(run: Run):
    fast = _by_key(analyzer_offline(run.pcap, PROXIES[1]), "time")
    slow = _by_key(analyzer_offline(run.pcap, PROXIES[1], backend="pyshark"), "time")
    assert slow == fast


@pytest.mark.parametrize("name", ["fast-0", "fast-1", "pyshark-0"])
def test_junk_at_the_proxy_is_counted_and_skipped(run: Run, name: str):
    metrics = run.metrics[name]
    for reason in ("not_sip", "malformed", "fragment"):
        assert f'analyzer_packets_skipped_total{{reason="{reason}"}} 1.0' in metrics, reason
    assert run.health[name]["status"] == "ok"
    # the analyzer kept going: the calls after the junk were all measured
    assert sum(1 for row in run.samples[name] if row["pair"] == "ok_forward") > 0


def test_metrics_count_messages_by_direction_method_and_status(run: Run):
    totals = {"in_invite": 0.0, "out_407": 0.0}
    for index in range(len(PROXIES)):
        metrics = run.metrics[f"fast-{index}"]
        for line in metrics.splitlines():
            if line.startswith(
                'analyzer_sip_messages_total{direction="out",method="INVITE",status="407"}'
            ):
                totals["out_407"] += float(line.split()[-1])
            if line.startswith(
                'analyzer_sip_messages_total{direction="in",method="INVITE",status=""}'
            ):
                totals["in_invite"] += float(line.split()[-1])
        assert (
            'analyzer_sip_response_time_seconds_bucket{le="1.0",pair="invite_forward"}' in metrics
        )
    assert totals["out_407"] >= CALLS
    assert totals["in_invite"] >= 2 * CALLS
