"""A live analyzer (`python -m analyzer`, AF_PACKET on loopback, needs root as CI has) fed
hostile datagrams: its capture goes on, /health stays 200, and later calls are still paired.

Addresses 127.0.8.220-221 are this module's own (test_live_capture.py uses .200-.210).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

LB = ("127.0.8.220", 5060)
PROXY = ("127.0.8.221", 5060)

REGISTER = (
    b"REGISTER sip:testbed.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.8.220;branch=z9hG4bK-h;rport\r\n"
    b"From: <sip:0001@testbed.local>;tag=abc\r\nTo: <sip:0001@testbed.local>\r\n"
    b"Call-ID: hostile\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
HOSTILE = [
    # the datagram: '²' passes str.isdigit(), int() raised ValueError in the parser
    REGISTER.replace(b"CSeq: 1 REGISTER", "CSeq: ² INVITE".encode()),
    REGISTER.replace(b"CSeq: 1 REGISTER", "CSeq: ² REGISTER".encode()),
    REGISTER.replace(b"Content-Length: 0", b"Content-Length: " + b"9" * 5000),
    REGISTER.replace(b"Max-Forwards: 70", "Max-Forwards: ²".encode()),
    REGISTER.replace(b";rport", ";rport=\u0663".encode()),
    REGISTER.replace(b"tag=abc\r\n", b"tag=abc\nX-Injected: 1\r\n"),
    "SIP/2.0 \u0662\u0660\u0660 OK\r\n".encode() + REGISTER.split(b"\r\n", 1)[1],
    b"SIP/2.0 200 OK\r\n\xff\xfe\x00\r\n\r\n",
    b"INVITE sip:a@b SIP/2.0\r\n" + b"X: " + b"\xc2\xb2" * 20000 + b"\r\n\r\n",
    REGISTER[:40],
]


def request(method: str, call_id: str, cseq: int, auth: str | None = None) -> bytes:
    lines = [
        f"{method} sip:0101@testbed.local SIP/2.0",
        f"Via: SIP/2.0/UDP {LB[0]};branch=z9hG4bK-{call_id}-{cseq}",
        "From: <sip:0001@testbed.local>;tag=abc",
        "To: <sip:0101@testbed.local>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
    ]
    if auth:
        lines.append(f'{auth}: Digest username="0001", realm="testbed.local", nonce="n"')
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


def response(status: int, reason: str, call_id: str, cseq: int, method: str) -> bytes:
    return (
        f"SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP {LB[0]};branch=z9hG4bK-x\r\n"
        f"From: <sip:0001@testbed.local>;tag=abc\r\nTo: <sip:0101@testbed.local>;tag=t\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def registration(sockets: dict[str, socket.socket], call_id: str) -> None:
    """REGISTER in, 401 out, REGISTER with credentials in, 200 out: two pairs."""
    lb, proxy = sockets["lb"], sockets["proxy"]
    lb.sendto(request("REGISTER", call_id, 1), PROXY)
    proxy.sendto(response(401, "Unauthorized", call_id, 1, "REGISTER"), LB)
    lb.sendto(request("REGISTER", call_id, 2, auth="Authorization"), PROXY)
    proxy.sendto(response(200, "OK", call_id, 2, "REGISTER"), LB)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def analyzer(tmp_path: Path) -> Iterator[httpx.Client]:
    port = _free_port()
    env = {
        **os.environ,
        "ANALYZER_PROXY_ADDRESS": f"{PROXY[0]}:{PROXY[1]}",
        "ANALYZER_INTERFACE": "lo",
        "ANALYZER_HTTP_PORT": str(port),
        "ANALYZER_PCAP_FILE": "",
    }
    log = (tmp_path / "analyzer.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "analyzer"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "analyzer.log").read_text()
            assert time.monotonic() < deadline, "the analyzer did not come up within 30 s"
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def sockets() -> Iterator[dict[str, socket.socket]]:
    made = {"lb": socket.socket(socket.AF_INET, socket.SOCK_DGRAM)}
    made["lb"].bind(LB)
    made["proxy"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    made["proxy"].bind(PROXY)
    yield made
    for sock in made.values():
        sock.close()


def _wait_for_pairs(client: httpx.Client, call_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        items = [i for i in client.get("/samples").json()["items"] if i["call_id"] == call_id]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_hostile_datagrams_never_stop_a_live_analyzer(analyzer, sockets):
    registration(sockets, "before")
    assert len(_wait_for_pairs(analyzer, "before", 2)) == 2

    for data in HOSTILE:
        sockets["lb"].sendto(data, PROXY)  # toward the proxy: what a rogue peer can send
        sockets["proxy"].sendto(data, LB)
    time.sleep(0.5)  # the capture thread has them all by now

    health = analyzer.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok"
    assert body["capture"]["error"] is None
    assert body["skipped"]["malformed"] >= 2 * (len(HOSTILE) - 1)
    assert "analysis_error" not in body["skipped"]

    registration(sockets, "after")
    after = _wait_for_pairs(analyzer, "after", 2)
    assert sorted(i["pair"] for i in after) == ["register_challenge", "register_ok"]
    assert analyzer.get("/health").status_code == 200
    metrics = analyzer.get("/metrics").text
    malformed = next(
        line
        for line in metrics.splitlines()
        if line.startswith('analyzer_packets_skipped_total{reason="malformed"}')
    )
    assert float(malformed.split()[-1]) == body["skipped"]["malformed"]
