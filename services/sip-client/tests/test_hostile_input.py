"""Hostile input at the pod: unusable challenges fail that registration or call with a recorded
reason, bad datagrams are counted and never stop the socket, and nothing from the REST API
reaches a SIP header unchecked."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api_token import bearer
from sip_client.config import Settings
from sip_client.main import create_app
from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.runtime import PodRuntime
from sip_client.ua import PodConfig, SoftphonePod
from sip_core import (
    IdSource,
    NameAddr,
    Request,
    Response,
    make_response,
    parse_message,
)

LB = ("127.0.0.1", 5060)
LOCAL = ("127.0.2.1", 5070)
GOOD = 'Digest realm="testbed.local", nonce="n1", qop="auth"'
AKA = 'Digest realm="ims.testbed.local", nonce="bm9uY2U=", algorithm=AKAv1-MD5, qop="auth"'


def pod(phones: int = 2) -> SoftphonePod:
    config = PodConfig(pod="00", phones=phones, local=LOCAL, outbound=LB)
    return SoftphonePod(config, IdSource(random.Random(1)))


def sent(p: SoftphonePod) -> list[Request | Response]:
    return [parse_message(data) for data, _peer in p.datagrams_to_send()]


def answer(p: SoftphonePod, request: Request, status: int, now: float, **kwargs) -> None:
    p.receive_datagram(make_response(request, status, **kwargs).to_bytes(), LB, now)


@pytest.mark.parametrize(
    ("challenge", "why"),
    [
        (AKA, "unsupported algorithm 'AKAv1-MD5'"),
        ('Basic realm="testbed.local"', "scheme 'Basic' is not Digest"),
        ('Digest realm="testbed.local", qop="auth"', "no nonce"),
    ],
)
def test_an_unusable_challenge_fails_the_call_with_the_reason(challenge, why):
    p = pod()
    p.call("0001", "0100", now=0.0, call_id="aka-1")
    (invite,) = sent(p)
    assert isinstance(invite, Request)
    answer(p, invite, 407, 0.1, to_tag="p", extra=[("Proxy-Authenticate", challenge)])
    assert [m.method for m in sent(p) if isinstance(m, Request)] == ["ACK"]  # no new INVITE
    (record,) = p.take_events()
    assert isinstance(record, CallRecord)
    assert record.outcome == "failed"
    assert record.final_status == 407
    assert record.reason == f"407 Proxy Authentication Required: Proxy-Authenticate: {why}"
    assert p.counters["calls_failed"] == 1
    assert p.active_calls == 0


@pytest.mark.parametrize(
    ("challenge", "why"),
    [
        (AKA, "unsupported algorithm 'AKAv1-MD5'"),
        ('Basic realm="testbed.local"', "scheme 'Basic' is not Digest"),
        ('Digest realm="testbed.local"', "no nonce"),
    ],
)
def test_an_unusable_challenge_fails_the_registration_with_the_reason(challenge, why):
    p = pod(phones=1)
    p.register_all(0.0)
    (register,) = sent(p)
    assert isinstance(register, Request)
    answer(p, register, 401, 0.01, to_tag="r", extra=[("WWW-Authenticate", challenge)])
    assert sent(p) == []
    (result,) = p.take_events()
    assert isinstance(result, RegistrationResult)
    assert (result.ok, result.reason) == (False, f"401 Unauthorized: WWW-Authenticate: {why}")
    assert p.registration_state(1.0)[0]["last"] == result.reason
    assert p.counters["registrations_failed"] == 1


def test_a_usable_challenge_beside_an_aka_one_is_answered():
    p = pod(phones=1)
    p.register_all(0.0)
    (register,) = sent(p)
    assert isinstance(register, Request)
    challenges = [("WWW-Authenticate", AKA), ("WWW-Authenticate", GOOD)]
    answer(p, register, 401, 0.01, to_tag="r", extra=challenges)
    (again,) = sent(p)
    assert isinstance(again, Request)
    assert 'realm="testbed.local"' in (again.headers.get("authorization") or "")


def test_a_hostile_expiry_in_the_200_keeps_the_configured_one():
    p = pod(phones=1)
    p.register_all(0.0)
    (register,) = sent(p)
    assert isinstance(register, Request)
    hostile = NameAddr("sip:0000@127.0.2.1:5070", params={"expires": "\u00b2"})  # '²'
    answer(p, register, 200, 0.01, to_tag="r", contact=hostile, extra=[("Expires", "\u00b2")])
    (result,) = p.take_events()
    assert isinstance(result, RegistrationResult)
    assert result.ok
    assert p.registered(3599.0) == ["0000"]  # REGISTER_EXPIRES, 3600 s


def test_the_issues_datagram_is_counted_malformed():
    p = pod()
    datagram = (
        b"INVITE sip:0001@testbed.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"
        b"\r\nFrom: <sip:0100@testbed.local>;tag=a\r\nTo: <sip:0001@testbed.local>\r\n"
        b"Call-ID: x\r\n" + "CSeq: ² INVITE".encode() + b"\r\nContent-Length: 0\r\n\r\n"
    )
    p.receive_datagram(datagram, LB, 0.0)
    (event,) = p.take_events()
    assert isinstance(event, MalformedInput)
    assert "CSeq" in event.reason
    assert p.counters["malformed"] == 1


@pytest.mark.parametrize(
    ("call_id", "callee"),
    [("x\r\nX-Injected: 1", "0100"), ("a b", "0100"), ("ok", "\u00b2\u00b2\u00b2\u00b2")],
)
def test_the_ua_refuses_values_that_would_break_a_header(call_id, callee):
    with pytest.raises(ValueError, match=r"call_id|callee"):
        pod().call("0001", callee, now=0.0, call_id=call_id)


# -- the real socket -------------------------------------------------------------------------


def _options(call_id: str, port: int) -> bytes:
    return (
        f"OPTIONS sip:0000@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id}\r\n"
        "From: <sip:probe@testbed.local>;tag=p\r\nTo: <sip:0000@testbed.local>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_a_live_pod_survives_hostile_datagrams_and_answers_after_them(caplog):
    """The pod on a real UDP socket: before, one 200 with `expires=²` raised out of
    datagram_received and asyncio closed the socket, so the pod went deaf."""

    async def scenario() -> tuple[list[int], int, int]:
        runtime = PodRuntime(PodConfig(pod="00", phones=1, local=("127.0.0.1", 0),
                                       outbound=("127.0.0.1", 5999)), 1000, 1 << 16)  # fmt: skip
        host, port = await runtime.start()
        seen: list[object] = []
        runtime.listeners.append(seen.append)

        def broken(event: object) -> None:
            raise ZeroDivisionError  # a broken listener changes nothing

        runtime.listeners.append(broken)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 5999))
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            runtime.register_all()
            register = parse_message(await loop.sock_recv(peer, 65535))
            assert isinstance(register, Request)
            hostile = NameAddr("sip:0000@127.0.0.1", params={"expires": "\u00b2"})
            ok = make_response(register, 200, to_tag="r", contact=hostile).to_bytes()
            for data in (
                ok,
                "SIP/2.0 200 OK\r\nCSeq: ² REGISTER\r\n\r\n".encode(),
                b"\x00\xff" * 100,
                b"INVITE sip:x SIP/2.0\r\n" + b"\n" * 50 + b"\r\n\r\n",
            ):
                peer.sendto(data, (host, port))
            statuses = []
            for n in range(3):
                peer.sendto(_options(f"probe{n}", port), (host, port))
                answer = parse_message(await asyncio.wait_for(loop.sock_recv(peer, 65535), 5))
                assert isinstance(answer, Response)
                statuses.append(answer.status)
            pod = runtime.require_pod()
            return statuses, pod.counters["malformed"], len(pod.registered(runtime.now()))
        finally:
            peer.close()
            runtime.close()

    with caplog.at_level(logging.WARNING, logger="sip_client.runtime"):
        statuses, malformed, registered = asyncio.run(scenario())
    assert statuses == [200, 200, 200]
    assert malformed == 3
    assert registered == 1
    assert sum("listener" in r.getMessage() for r in caplog.records) <= 5  # rate-limited


def test_an_unexpected_error_in_the_handler_is_counted_not_raised(monkeypatch):
    """The runtime's last resort (beside the real socket test above): whatever the pod raises
    for one datagram is counted as malformed and the socket stays open."""

    async def scenario() -> tuple[int, bool]:
        runtime = PodRuntime(PodConfig(pod="00", phones=1, local=("127.0.0.1", 0),
                                       outbound=("127.0.0.1", 5999)), 1000, 1 << 16)  # fmt: skip
        await runtime.start()
        pod = runtime.require_pod()

        def broken(data: bytes, source: tuple[str, int], now: float) -> None:
            raise KeyError("a bug")

        monkeypatch.setattr(pod, "receive_datagram", broken)
        try:
            runtime.on_datagram(b"anything", ("127.0.0.9", 1234))
            return pod.counters["malformed"], runtime.is_open
        finally:
            runtime.close()

    assert asyncio.run(scenario()) == (1, True)


# -- the REST API ------------------------------------------------------------------------------


@pytest.fixture
def api():
    token = "test-token-of-the-sip-client"
    settings = Settings(
        pod_id="00",
        phones=2,
        sip_client_port=0,
        outbound_proxy="127.0.0.1:5999",
        api_token=token,
    )
    # with the API token: these tests are about the body (tests/test_auth.py: without it)
    with TestClient(create_app(settings, CollectorRegistry()), headers=bearer(token)) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"caller": "0001", "callee": "0100", "call_id": "x\r\nX-Injected: 1"}, "call_id"),
        ({"caller": "0001", "callee": "0100", "call_id": "a b"}, "call_id"),
        ({"caller": "0001", "callee": "0100", "call_id": "x" * 300}, "call_id"),
        ({"caller": "0001", "callee": "01\n0"}, "callee"),
        ({"caller": "0001\n", "callee": "0100"}, "caller"),
    ],
)
def test_the_rest_api_refuses_header_breaking_values_naming_the_field(api, body, field):
    response = api.post("/calls", json=body)
    assert response.status_code == 422
    assert [e["loc"][-1] for e in response.json()["detail"]] == [field]


def test_the_rest_api_accepts_a_call_id_of_the_grammar(api):
    response = api.post(
        "/calls", json={"caller": "0001", "callee": "0100", "call_id": "run-7.call-12@pod00"}
    )
    assert response.status_code == 202
    assert response.json() == {"call_id": "run-7.call-12@pod00"}
