"""The client hub over real WebSockets: uvicorn on 127.0.0.1 (conftest.py), the websockets
library as the pods."""

from __future__ import annotations

import csv
import io
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame
from websockets.sync.client import ClientConnection, connect
from websockets.uri import parse_uri

from testbed_messages import (
    Hello,
    Invite,
    Refused,
    RegisterAll,
    Stats,
    Welcome,
    decode_controller,
    encode,
)

HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"


def scenario(rate: int, seconds: int) -> str:
    """Pod 00 calls pod 01 at `rate` invites a second."""
    wait = 1000 // rate
    return (
        HEADER
        + "\n"
        + "".join(
            f"00{i % 100:02d};01{i % 100:02d};{wait};{i // rate};{rate}\n"
            for i in range(rate * seconds)
        )
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def say_hello(ws: ClientConnection, pod: str) -> object:
    ws.send(encode(Hello(pod=pod, phones=100)))
    return decode_controller(ws.recv(timeout=5))


class StalledPod:
    """A pod that says hello, then stops reading (its receive window stays tiny): the hub's
    sends back up as they do to a pod whose host froze. websockets' sans-I/O client on a raw
    socket, so nothing reads behind the test's back."""

    def __init__(self, url: str, port: int, pod: str, auth: dict[str, str]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(5)
        self.protocol = ClientProtocol(parse_uri(url))
        request = self.protocol.connect()
        request.headers.update(auth)  # the API token, as a pod sends it
        self.protocol.send_request(request)
        self._flush()
        frames = self._receive()  # the handshake's answer
        self.protocol.send_text(encode(Hello(pod=pod, phones=100)).encode())
        self._flush()
        while not frames:
            frames = self._receive()
        self.first = decode_controller(bytes(frames[0].data))  # then it reads no more

    def _receive(self) -> list[Frame]:
        self.protocol.receive_data(self.sock.recv(4096))
        self._flush()
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            self.sock.sendall(data)

    def drop(self) -> None:
        self.sock.close()  # unread data: the kernel resets the connection


def pod_view(live, pod: str) -> dict[str, Any]:
    pods: dict[str, dict[str, Any]] = {
        p["pod"]: p for p in live.http.get("/clients").json()["pods"]
    }
    return pods[pod]


def metric(live, name: str) -> float:
    for line in live.http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


@pytest.mark.slow
def test_a_pod_dropped_mid_run_is_marked_gone_its_invites_undeliverable_and_it_resumes(
    start_controller,
):
    live = start_controller(send_buffer=16384)  # so that a stalled pod backs up in ~1 s
    assert live.http.post("/scenarios", params={"name": "s"}, content=scenario(1000, 5)).is_success
    pod = StalledPod(live.ws, live.port, "00", live.auth)
    assert isinstance(pod.first, Welcome)
    run = live.http.post("/runs", json={"scenario": "s"}).json()
    wait_until(lambda: pod_view(live, "00")["queued"] > 100, 4, "invites to back up")

    pod.drop()  # the pod's connection drops mid-run
    wait_until(lambda: not pod_view(live, "00")["connected"], 5, "the hub to notice")
    assert pod_view(live, "00")["queued"] == 0
    view = live.http.get(f"/runs/{run['id']}").json()
    # nothing is left pending: every invite so far is sent or undeliverable, at once
    assert view["scheduled"] == view["sent"] + view["undeliverable"]
    assert view["undeliverable"] > 100  # the backlog, reported rather than lost
    time.sleep(0.3)

    with connect(
        live.ws, additional_headers=live.auth, compression=None
    ) as again:  # the pod comes back
        assert isinstance(say_hello(again, "00"), Welcome)
        seqs: list[int] = []
        while not seqs or seqs[-1] < 4999:
            message = decode_controller(again.recv(timeout=5))
            assert isinstance(message, Invite)
            assert message.seq is not None
            seqs.append(message.seq)
        assert pod_view(live, "00")["connections"] == 2
    wait_until(
        lambda: live.http.get(f"/runs/{run['id']}").json()["state"] == "finished", 5, "the end"
    )
    rows = list(csv.DictReader(io.StringIO(live.http.get(f"/runs/{run['id']}/log").text)))
    assert len(rows) == 5000
    status = {int(r["seq"]): r["status"] for r in rows}
    assert set(status.values()) == {"sent", "undeliverable"}
    assert all(status[seq] == "sent" for seq in seqs)  # what the reconnected pod got
    final = live.http.get(f"/runs/{run['id']}").json()
    assert final["undeliverable"] == list(status.values()).count("undeliverable")
    assert metric(live, "scenario_controller_invites_undeliverable_total") == final["undeliverable"]
    assert metric(live, "scenario_controller_client_disconnects_total") == 2


def test_hostile_frames_are_counted_and_the_link_goes_on(live, caplog: pytest.LogCaptureFixture):
    hostile: list[str | bytes] = [
        "not json",
        '{"type": "stats", "pod": "02", "registered": "many"}',  # wrong type
        '{"type": "teleport"}',  # unknown type
        b"\x00\xff\xfe binary garbage",
        "[" * 100_000,  # nesting bomb
        '{"type": "stats", "pod": "02", "pad": "' + "x" * 1_000_000 + '"}',  # huge
        encode(Hello(pod="02", phones=1)),  # a second hello
    ]
    hostile += ["garbage"] * 50
    with connect(live.ws, additional_headers=live.auth, compression=None, max_size=None) as pod:
        assert isinstance(say_hello(pod, "02"), Welcome)
        for frame in hostile:
            pod.send(frame)
        pod.send(encode(Stats(pod="02", registered=7)))
        wait_until(lambda: pod_view(live, "02")["registered"] == 7, 5, "the good message")
        view = pod_view(live, "02")
        assert (view["connected"], view["connections"]) == (True, 1)
        assert view["malformed"] == len(hostile)
        assert metric(live, "scenario_controller_client_messages_malformed_total") == len(hostile)
        # and the other direction still works
        assert live.http.post("/register").json() == {"pods": ["02"]}
        assert isinstance(decode_controller(pod.recv(timeout=5)), RegisterAll)
    ignored = [r for r in caplog.records if "ignored a message" in r.getMessage()]
    assert 1 <= len(ignored) <= 5  # rate-limited, not one line per frame


def test_a_disconnect_before_hello_is_not_an_error(live, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.INFO):
        with connect(live.ws, additional_headers=live.auth, compression=None):
            pass  # a clean close before hello
        rude = connect(live.ws, additional_headers=live.auth, compression=None)
        rude.socket.shutdown(socket.SHUT_RDWR)  # a drop before hello
        rude.close()
        wait_until(
            lambda: sum("left before saying hello" in r.getMessage() for r in caplog.records) == 2,
            5,
            "both departures",
        )
        with connect(live.ws, additional_headers=live.auth, compression=None) as pod:
            assert isinstance(say_hello(pod, "04"), Welcome)
        with connect(
            live.ws, additional_headers=live.auth, compression=None
        ) as bad:  # an invalid hello is refused
            bad.send("{}")
            assert isinstance(decode_controller(bad.recv(timeout=5)), Refused)
            with pytest.raises(ConnectionClosed):
                bad.recv(timeout=5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
