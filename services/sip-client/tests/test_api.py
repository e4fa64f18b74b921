"""The pod's HTTP API in-process (TestClient, a fresh CollectorRegistry), with a stand-in load
balancer on a UDP socket that answers the pod's SIP: what the POSTs start shows up in the GETs
and in /metrics. tests/test_auth.py has the token's finer cases (503, CORS, the controller link);
test_hostile_input.py the header-breaking values."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api_token import bearer
from sip_client.config import Settings
from sip_client.main import create_app
from sip_core import NameAddr, Request, make_response, parse_message

TOKEN = "test-token-of-the-sip-client-api"
CHALLENGE = 'Digest realm="testbed.local", nonce="api-nonce", qop="auth"'


@dataclass
class Proxy:
    """The stand-in load balancer: every SIP request of the pod arrives here."""

    sock: socket.socket
    seen: set[tuple[str, str]] = field(default_factory=set)  # (branch, method): retransmissions

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def next(self, method: str, timeout: float = 5.0) -> tuple[Request, tuple[str, int]]:
        """The next new request of `method` (retransmissions and other methods skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            message = parse_message(data)
            if not isinstance(message, Request) or message.method != method:
                continue
            key = (message.top_via.branch or "", message.method)
            if key not in self.seen:
                self.seen.add(key)
                return message, source
        raise AssertionError(f"no {method} from the pod within {timeout} s")

    def answer(self, request: Request, to: tuple[str, int], status: int, **kwargs: Any) -> None:
        self.sock.sendto(make_response(request, status, **kwargs).to_bytes(), to)

    def nothing_sent(self) -> bool:
        self.sock.settimeout(0.3)
        try:
            self.sock.recv(65536)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(0.2)
        return False


@dataclass
class Pod:
    api: TestClient
    proxy: Proxy


@pytest.fixture
def pod() -> Iterator[Pod]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        proxy = Proxy(sock)
        settings = Settings(
            pod_id="00",
            phones=2,
            sip_client_address="127.0.0.1",
            sip_client_port=0,
            outbound_proxy=proxy.address,
            api_token=TOKEN,
        )
        with TestClient(create_app(settings, CollectorRegistry())) as api:
            yield Pod(api, proxy)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the pod did not get there"
        time.sleep(0.02)


def metric(api: TestClient, line_start: str) -> float:
    """The value of the /metrics sample whose line starts with `line_start` (name{labels})."""
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {line_start} in /metrics")


AUTH = bearer(TOKEN)
CALL = {"caller": "0001", "callee": "0100", "hold_ms": 0, "call_id": "api-1@pod00"}


@pytest.mark.parametrize(("path", "body"), [("/register", None), ("/calls", CALL)])
def test_the_posts_refuse_a_missing_or_wrong_token_and_send_nothing(pod: Pod, path, body):
    missing = pod.api.post(path, json=body)
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = pod.api.post(path, json=body, headers=bearer("another-token-of-the-right-size"))
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "wrong API token"
    assert pod.proxy.nothing_sent()
    assert pod.api.get("/calls").json()["total"] == 0
    assert all(phone["last"] == "" for phone in pod.api.get("/phones").json())


def test_register_registers_every_phone_as_phones_health_and_metrics_show(pod: Pod):
    assert pod.api.get("/health").json()["registered"] == 0
    answer = pod.api.post("/register", headers=AUTH)
    assert (answer.status_code, answer.json()) == (202, {"phones": 2})
    first = dict(
        (register.from_.uri, (register, source))
        for register, source in (pod.proxy.next("REGISTER") for _ in range(2))
    )
    assert sorted(first) == ["sip:0000@testbed.local", "sip:0001@testbed.local"]
    pod.proxy.answer(*first["sip:0001@testbed.local"], 200, to_tag="r", extra=[("Expires", "600")])
    # 0000 is challenged first, as the proxies do
    pod.proxy.answer(
        *first["sip:0000@testbed.local"], 401, to_tag="r", extra=[("WWW-Authenticate", CHALLENGE)]
    )
    register, source = pod.proxy.next("REGISTER")
    assert 'username="0000"' in (register.headers.get("authorization") or "")
    pod.proxy.answer(register, source, 200, to_tag="r", extra=[("Expires", "600")])

    wait_until(lambda: all(p["registered"] for p in pod.api.get("/phones").json()))
    phones = pod.api.get("/phones").json()
    assert [(p["phone"], p["last"]) for p in phones] == [("0000", "200 OK"), ("0001", "200 OK")]
    assert all(590 < p["expires_in"] <= 600 for p in phones)  # the granted 600 s, not 3600
    health = pod.api.get("/health").json()
    assert (health["status"], health["pod"], health["phones"], health["registered"]) == (
        "ok",
        "00",
        2,
        2,
    )
    assert health["controller"] is None
    host, port = health["sip"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) == source[1]  # the port actually bound, where the REGISTERs came from
    assert metric(pod.api, 'sip_client_registrations_total{outcome="ok"}') == 2
    assert metric(pod.api, "sip_client_phones_registered") == 2


def test_calls_are_placed_recorded_paged_and_counted(pod: Pod):
    placed = pod.api.post("/calls", json=CALL, headers=AUTH)
    assert (placed.status_code, placed.json()) == (202, {"call_id": "api-1@pod00"})
    invite, source = pod.proxy.next("INVITE")
    assert (invite.uri, invite.call_id) == ("sip:0100@testbed.local", "api-1@pod00")
    pod.proxy.answer(invite, source, 407, to_tag="p", extra=[("Proxy-Authenticate", CHALLENGE)])
    invite, source = pod.proxy.next("INVITE")
    assert 'username="0001"' in (invite.headers.get("proxy-authorization") or "")
    callee = NameAddr(f"sip:0100@{pod.proxy.address}")
    pod.proxy.answer(invite, source, 200, to_tag="callee", contact=callee)
    pod.proxy.next("ACK")
    bye, source = pod.proxy.next("BYE")  # hold_ms 0: at once
    pod.proxy.answer(bye, source, 200)

    refused = pod.api.post(
        "/calls", json={"caller": "0000", "callee": "0101", "call_id": "api-2"}, headers=AUTH
    )
    assert refused.status_code == 202
    invite, source = pod.proxy.next("INVITE")
    pod.proxy.answer(invite, source, 486, to_tag="busy")
    wait_until(lambda: pod.api.get("/calls").json()["total"] == 2)

    calls = pod.api.get("/calls").json()
    assert [
        (c["call_id"], c["outcome"], c["reason"], c["final_status"]) for c in calls["items"]
    ] == [
        ("api-1@pod00", "succeeded", "", 200),
        ("api-2", "failed", "486 Busy Here", 486),
    ]
    first = calls["items"][0]
    assert first["challenge_at"] is not None
    assert first["setup_ms"] is not None
    assert first["setup_ms"] >= 0
    failed = pod.api.get("/calls", params={"outcome": "failed"}).json()
    assert (failed["total"], [c["call_id"] for c in failed["items"]]) == (1, ["api-2"])
    page = pod.api.get("/calls", params={"offset": 1, "limit": 1}).json()
    assert (page["total"], page["offset"], [c["call_id"] for c in page["items"]]) == (
        2,
        1,
        ["api-2"],
    )
    assert metric(pod.api, 'sip_client_calls_total{outcome="succeeded"}') == 1
    assert metric(pod.api, 'sip_client_calls_total{outcome="failed"}') == 1
    assert metric(pod.api, "sip_client_call_setup_seconds_count") == 1
    assert metric(pod.api, "sip_client_calls_active") == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"caller": "0150", "callee": "0100"}, "caller 0150 is not a phone of pod 00"),
        ({"caller": "0001", "callee": "0100", "hold_ms": -1}, "hold_ms"),
        ({"caller": "0001"}, "callee"),
        ({"caller": "1", "callee": "0100"}, "caller"),
        ({"caller": "0001", "callee": "0100", "extra": 1, "hold_ms": "long"}, "hold_ms"),
    ],
)
def test_a_bad_call_is_422_naming_the_problem_and_sends_nothing(pod: Pod, body, reason):
    answer = pod.api.post("/calls", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert reason in str(answer.json()["detail"])
    assert pod.proxy.nothing_sent()
    assert pod.api.get("/calls").json()["total"] == 0


def test_a_body_that_is_not_json_is_422(pod: Pod):
    answer = pod.api.post(
        "/calls", content=b"caller=0001", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert "JSON decode error" in str(answer.json()["detail"])


def test_a_call_id_already_in_progress_is_422(pod: Pod):
    assert pod.api.post("/calls", json=CALL, headers=AUTH).status_code == 202
    pod.proxy.next("INVITE")  # never answered: the call stays in progress
    again = pod.api.post("/calls", json=CALL, headers=AUTH)
    assert again.status_code == 422
    assert again.json()["detail"] == "call api-1@pod00 is already in progress"


@pytest.mark.parametrize(
    ("params", "field_name"),
    [({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"outcome": "maybe"}, "outcome")],
)
def test_bad_call_queries_are_422_naming_the_parameter(pod: Pod, params, field_name):
    answer = pod.api.get("/calls", params=params)
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["detail"]] == [["query", field_name]]
