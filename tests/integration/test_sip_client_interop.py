"""The sip-client pod against independent peers: SIPp both ways, and our caller pod calling our
callee pod through the real Kamailio load balancer and proxies, over a lossy link too."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from support import ClientProcess, SipSystem, start_sip_client, wait_for

import api_token
from testbed.local import processes
from testbed.sipp import SippRunner
from testbed_messages import (
    CallRecordMessage,
    Hello,
    Invite,
    Refused,
    Stats,
    Welcome,
    decode_client,
    encode,
)

pytestmark = pytest.mark.integration

SQLITE_ONLY = pytest.mark.parametrize("sip_system", ["sqlite"], indirect=True)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[list[ClientProcess]]:
    started: list[ClientProcess] = []
    yield started
    for pod in started:
        processes.stop(pod.handle)


def _wait_calls(
    pod: ClientProcess, http: httpx.Client, count: int, timeout: float = 60
) -> list[dict[str, object]]:
    wait_for(lambda: len(pod.calls(http)) >= count, timeout, f"{count} finished calls")
    return pod.calls(http)


def _seconds(record: dict[str, object], field: str) -> float:
    """A call record's time stamp (seconds), which must be a number."""
    value = record[field]
    assert isinstance(value, int | float), f"{field}: {value!r}"
    return value


def test_our_caller_against_a_sipp_uas(
    tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    sipp = SippRunner(tmp_path / "sipp")
    uas = sipp.start_uas("127.0.0.1", 5190)
    try:
        caller = start_sip_client(tmp_path, "00", 5, ("127.0.0.1", 5191), 8191, "127.0.0.1:5190")
        pods.append(caller)
        for n in range(5):
            response = http.post(
                f"{caller.url}/calls",
                json={"caller": f"000{n}", "callee": "0100", "hold_ms": 100},
                headers=caller.auth,
            )
            assert response.status_code == 202
        records = _wait_calls(caller, http, 5)
    finally:
        processes.stop(uas)
    assert [r["outcome"] for r in records] == ["succeeded"] * 5, records
    assert all(r["challenge_at"] is None and r["ok_at"] for r in records)


def test_a_sipp_caller_against_our_callee_pod(
    tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    callee = start_sip_client(tmp_path, "01", 10, ("127.0.0.1", 5192), 8192, "127.0.0.1:5060")
    pods.append(callee)
    result = subprocess.run(
        [
            "sipp",
            "127.0.0.1:5192",
            "-sn",
            "uac",
            "-s",
            "0103",
            "-m",
            "10",
            "-r",
            "10",
            "-i",
            "127.0.0.1",
            "-p",
            "5193",
            "-nostdin",
            "-timeout",
            "30s",
            "-timeout_error",
            "-recv_timeout",
            "5000",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    metrics = http.get(f"{callee.url}/metrics").text
    assert "sip_client_calls_active 0.0" in metrics


@SQLITE_ONLY
def test_our_pods_call_each_other_through_kamailio_with_auth(
    sip_system: SipSystem, tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    caller = start_sip_client(tmp_path, "20", 10, ("127.0.2.20", 5060), 8120, sip_system.lb)
    callee = start_sip_client(tmp_path, "21", 10, ("127.0.2.21", 5060), 8121, sip_system.lb)
    pods += [caller, callee]
    assert http.post(f"{callee.url}/register", headers=callee.auth).status_code == 202
    wait_for(
        lambda: (
            {f"21{n:02d}" for n in range(10)}
            <= set(http.get(f"{sip_system.controller}/registrations").json()["users"])
        ),
        15,
        "the callee pod's 10 phones registered",
    )
    for n in range(20):
        body = {"caller": f"20{n % 10:02d}", "callee": f"21{n % 10:02d}", "hold_ms": 200}
        assert http.post(f"{caller.url}/calls", json=body, headers=caller.auth).status_code == 202
    records = _wait_calls(caller, http, 20)
    assert [r["outcome"] for r in records] == ["succeeded"] * 20, [r["reason"] for r in records]
    for record in records:
        assert record["challenge_at"] is not None  # the proxy challenged with 407
        stamps = [_seconds(record, f) for f in ("invite_at", "challenge_at", "ok_at", "ended_at")]
        assert stamps == sorted(stamps), record
    phones = http.get(f"{callee.url}/phones").json()
    assert all(p["registered"] for p in phones)


class LossyRelay:
    """Forwards datagrams between one client and the LB, dropping a share of them both ways."""

    def __init__(
        self, listen: tuple[str, int], upstream: tuple[str, int], loss: float, seed: int
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.sock.settimeout(0.2)
        self.upstream = upstream
        self.loss = loss
        self.rng = random.Random(seed)
        self.client: tuple[str, int] | None = None
        self.dropped = 0
        self.forwarded = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if source != self.upstream:
                self.client = source
                target = self.upstream
            elif self.client is not None:
                target = self.client
            else:
                continue
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            self.forwarded += 1
            self.sock.sendto(data, target)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


@SQLITE_ONLY
def test_calls_complete_over_a_lossy_link_by_retransmission(
    sip_system: SipSystem, tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    relay = LossyRelay(("127.0.0.1", 5262), ("127.0.0.1", 5060), loss=0.15, seed=7)
    try:
        callee = start_sip_client(tmp_path, "23", 10, ("127.0.2.23", 5060), 8123, sip_system.lb)
        caller = start_sip_client(tmp_path, "22", 10, ("127.0.2.22", 5060), 8122, "127.0.0.1:5262")
        pods += [caller, callee]
        http.post(f"{callee.url}/register", headers=callee.auth).raise_for_status()
        wait_for(
            lambda: http.get(f"{callee.url}/health").json()["registered"] == 10,
            15,
            "callee registered",
        )
        for n in range(20):
            body = {"caller": f"22{n % 10:02d}", "callee": f"23{n % 10:02d}", "hold_ms": 100}
            http.post(f"{caller.url}/calls", json=body, headers=caller.auth).raise_for_status()
        records = _wait_calls(caller, http, 20, timeout=90)
    finally:
        relay.close()
    assert relay.dropped > 10, "the relay should have dropped a fair number of datagrams"
    assert [r["outcome"] for r in records] == ["succeeded"] * 20, [r["reason"] for r in records]


@SQLITE_ONLY
def test_malformed_datagrams_are_counted_and_calls_carry_on(
    sip_system: SipSystem, tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    callee = start_sip_client(tmp_path, "25", 10, ("127.0.2.25", 5060), 8125, sip_system.lb)
    caller = start_sip_client(tmp_path, "24", 10, ("127.0.2.24", 5060), 8124, sip_system.lb)
    pods += [caller, callee]
    http.post(f"{callee.url}/register", headers=callee.auth).raise_for_status()
    wait_for(
        lambda: http.get(f"{callee.url}/health").json()["registered"] == 10, 15, "callee registered"
    )
    for n in range(10):
        http.post(
            f"{caller.url}/calls",
            json={"caller": f"24{n:02d}", "callee": f"25{n:02d}", "hold_ms": 1500},
            headers=caller.auth,
        ).raise_for_status()
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for datagram in (
        b"\x00\xffnot sip",
        b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n",
        b"INVITE x\r\n\r\n",
    ):
        for pod in (caller, callee):
            junk.sendto(datagram, pod.sip)
    junk.close()
    records = _wait_calls(caller, http, 10)
    assert [r["outcome"] for r in records] == ["succeeded"] * 10
    for pod in (caller, callee):
        assert "sip_client_malformed_datagrams_total 3.0" in http.get(f"{pod.url}/metrics").text
        assert "malformed datagram" in pod.log.read_text()


def test_controller_link_hello_commands_stats_and_reconnect(
    tmp_path: Path, pods: list[ClientProcess], http: httpx.Client
):
    """A stand-in controller (a plain websockets server) drives the pod: hello, invites, stats,
    call events; after the server drops the connection the pod comes back, and a refusal is
    reported on /health."""

    import websockets

    sipp = SippRunner(tmp_path / "sipp")
    uas = sipp.start_uas("127.0.0.1", 5194)
    seen: dict[str, list[object]] = {"hello": [], "stats": [], "call": []}
    token = api_token.generate()
    handshakes: list[str | None] = []

    async def scenario() -> None:
        connections = 0
        done = asyncio.Event()

        async def handler(ws: websockets.ServerConnection) -> None:
            nonlocal connections
            connections += 1
            assert ws.request is not None
            handshakes.append(ws.request.headers.get("Authorization"))
            hello = decode_client(await ws.recv())
            assert isinstance(hello, Hello)
            seen["hello"].append(hello)
            if connections == 1:
                await ws.send(encode(Welcome(pod=hello.pod)))
                for n in range(3):
                    await ws.send(
                        encode(Invite(caller=f"30{n:02d}", callee="0100", hold_ms=50, seq=n))
                    )
                await ws.send('{"type": "invite", "caller": "700"}')  # malformed: must be ignored
                while len(seen["call"]) < 3 or not seen["stats"]:
                    message = decode_client(await ws.recv())
                    seen["stats" if isinstance(message, Stats) else "call"].append(message)
                await ws.close()  # the pod must reconnect
            else:
                await ws.send(encode(Refused(reason="pod 30 is already connected")))
                done.set()

        async with websockets.serve(handler, "127.0.0.1", 8196):
            pod = start_sip_client(
                tmp_path,
                "30",
                3,
                ("127.0.0.1", 5195),
                8195,
                "127.0.0.1:5194",
                token,
                SCENARIO_CONTROLLER_URL="ws://127.0.0.1:8196/ws",
                STATS_INTERVAL_SECONDS="0.2",
            )
            pods.append(pod)
            await asyncio.wait_for(done.wait(), timeout=30)

    try:
        asyncio.run(scenario())
    finally:
        processes.stop(uas)
    assert [h.pod for h in seen["hello"]] == ["30", "30"]  # type: ignore[attr-defined]
    # the pod's API_TOKEN in each handshake (the scenario controller refuses it otherwise)
    assert handshakes == [f"Bearer {token}"] * 2
    calls = [c for c in seen["call"] if isinstance(c, CallRecordMessage)]
    assert sorted(c.caller for c in calls) == ["3000", "3001", "3002"]
    assert all(c.outcome == "succeeded" for c in calls)
    last = seen["stats"][-1]
    assert isinstance(last, Stats)
    assert last.phones == 3
    wait_for(
        lambda: http.get(f"{pods[0].url}/health").json()["controller"]["refused"] is not None,
        10,
        "refusal shown",
    )
    assert "already connected" in http.get(f"{pods[0].url}/health").json()["controller"]["refused"]
