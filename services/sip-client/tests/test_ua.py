"""The softphone pod's call and registration logic, driven message by message with explicit
time (the same flows run against Kamailio and SIPp in tests/test_sip_client_interop.py)."""

from __future__ import annotations

import random

import pytest

from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.ua import PodConfig, SoftphonePod
from sip_core import (
    Headers,
    IdSource,
    Request,
    Response,
    TimerSettings,
    make_request,
    make_response,
    parse_message,
)
from sip_core.syntax import NameAddr, Via

LB = ("127.0.0.1", 5060)
LOCAL = ("127.0.2.1", 5070)
CHALLENGE = 'Digest realm="testbed.local", nonce="n1", qop="auth"'


def pod(phones: int = 2, pod_id: str = "00", **kwargs) -> SoftphonePod:
    config = PodConfig(pod=pod_id, phones=phones, local=LOCAL, outbound=LB, **kwargs)
    return SoftphonePod(config, IdSource(random.Random(1)))


def sent(p: SoftphonePod) -> list[Request | Response]:
    out = []
    for data, peer in p.datagrams_to_send():
        assert peer == LB or peer[0].startswith("127.")
        out.append(parse_message(data))
    return out


def only(messages: list[Request | Response]) -> Request | Response:
    assert len(messages) == 1, messages
    return messages[0]


def answer(p: SoftphonePod, request: Request, status: int, now: float, **kwargs) -> None:
    p.receive_datagram(make_response(request, status, **kwargs).to_bytes(), LB, now)


def test_call_with_challenge_hold_and_bye():
    p = pod()
    p.call("0001", "0100", now=0.0, hold_ms=2000, call_id="call-1")
    invite = only(sent(p))
    assert isinstance(invite, Request)
    assert (invite.method, invite.uri, invite.call_id) == (
        "INVITE",
        "sip:0100@testbed.local",
        "call-1",
    )
    assert invite.headers.get("proxy-authorization") is None

    answer(p, invite, 407, 0.01, to_tag="proxy", extra=[("Proxy-Authenticate", CHALLENGE)])
    ack407, second = sent(p)
    assert isinstance(ack407, Request)
    assert isinstance(second, Request)
    assert ack407.method == "ACK"
    assert ack407.top_via.branch == invite.top_via.branch
    assert second.method == "INVITE"
    assert second.cseq.number == 2
    assert second.top_via.branch != invite.top_via.branch
    credentials = second.headers.get("proxy-authorization") or ""
    assert 'username="0001"' in credentials
    assert 'uri="sip:0100@testbed.local"' in credentials

    answer(p, second, 100, 0.02)
    answer(p, second, 180, 0.03, to_tag="callee", contact=NameAddr("sip:0100@127.0.2.2:5070"))
    answer(p, second, 200, 0.05, to_tag="callee", contact=NameAddr("sip:0100@127.0.2.2:5070"))
    ack = only(sent(p))
    assert isinstance(ack, Request)
    assert (ack.method, ack.uri, ack.cseq.number) == ("ACK", "sip:0100@127.0.2.2:5070", 2)
    assert ack.to.tag == "callee"

    # the BYE waits for the hold time
    p.handle_timer(1.9)
    assert sent(p) == []
    assert p.get_timer() == pytest.approx(2.05)
    p.handle_timer(2.05)
    bye = only(sent(p))
    assert isinstance(bye, Request)
    assert (bye.method, bye.uri, bye.cseq.number) == ("BYE", "sip:0100@127.0.2.2:5070", 3)
    answer(p, bye, 200, 2.06)

    (record,) = [e for e in p.take_events() if isinstance(e, CallRecord)]
    assert (record.outcome, record.reason, record.final_status) == ("succeeded", "", 200)
    assert (record.challenge_at, record.ringing_at, record.ok_at, record.ended_at) == (
        0.01,
        0.03,
        0.05,
        2.06,
    )
    assert record.setup_ms == pytest.approx(50)
    assert record.srd_ms == pytest.approx(20)  # authenticated INVITE -> 180
    assert p.counters["calls_succeeded"] == 1
    assert p.active_calls == 0


def test_a_lost_ack_is_resent_when_the_200_comes_again():
    p = pod()
    p.call("0001", "0100", now=0.0)
    invite = only(sent(p))
    assert isinstance(invite, Request)
    answer(p, invite, 200, 0.1, to_tag="c", contact=NameAddr("sip:0100@127.0.2.2:5070"))
    first_ack = sent(p)[0]
    answer(p, invite, 200, 0.6, to_tag="c", contact=NameAddr("sip:0100@127.0.2.2:5070"))
    assert [m.to_bytes() for m in sent(p)] == [first_ack.to_bytes()]


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "404 Not Found"), (486, "486 Busy Here"), (503, "503 Service Unavailable")],
)
def test_a_refused_call_records_the_status(status, reason):
    p = pod()
    p.call("0001", "0999", now=0.0)
    invite = only(sent(p))
    assert isinstance(invite, Request)
    answer(p, invite, status, 0.1, to_tag="x")
    (record,) = p.take_events()
    assert isinstance(record, CallRecord)
    assert (record.outcome, record.reason, record.final_status) == ("failed", reason, status)


def test_wrong_password_fails_after_the_second_challenge():
    p = pod()
    p.call("0001", "0100", now=0.0)
    invite = only(sent(p))
    assert isinstance(invite, Request)
    answer(p, invite, 407, 0.1, to_tag="p", extra=[("Proxy-Authenticate", CHALLENGE)])
    second = sent(p)[1]
    assert isinstance(second, Request)
    answer(p, second, 407, 0.2, to_tag="p", extra=[("Proxy-Authenticate", CHALLENGE)])
    (record,) = p.take_events()
    assert isinstance(record, CallRecord)
    assert record.reason == "407 Proxy Authentication Required"


def test_no_answer_times_out_with_timer_b():
    p = pod(timers=TimerSettings(t1=0.5))
    p.call("0001", "0100", now=0.0)
    retransmissions = 0
    while (deadline := p.get_timer()) is not None and deadline <= 40:
        p.handle_timer(deadline)
        retransmissions += len(sent(p))
    (record,) = [e for e in p.take_events() if isinstance(e, CallRecord)]
    assert retransmissions == 1 + 6  # the first send (queued before) and six by timer A
    assert record.reason == "INVITE timeout (timer B)"


def test_registration_with_challenge_and_refresh():
    p = pod(phones=1, reregister_interval=3000)
    p.register_all(now=0.0)
    first = only(sent(p))
    assert isinstance(first, Request)
    assert (first.method, first.uri, first.headers.get("expires")) == (
        "REGISTER",
        "sip:testbed.local",
        "3600",
    )
    assert first.contact[0].uri == "sip:0000@127.0.2.1:5070"
    answer(p, first, 401, 0.01, to_tag="r", extra=[("WWW-Authenticate", CHALLENGE)])
    second = only(sent(p))
    assert isinstance(second, Request)
    assert second.call_id == first.call_id
    assert second.cseq.number == first.cseq.number + 1
    assert 'username="0000"' in (second.headers.get("authorization") or "")
    answer(
        p,
        second,
        200,
        0.03,
        to_tag="r",
        contact=NameAddr("sip:0000@127.0.2.1:5070", params={"expires": "3600"}),
    )
    (result,) = p.take_events()
    assert isinstance(result, RegistrationResult)
    assert (result.ok, result.reason) == (True, "200 OK")
    assert result.delay_ms == pytest.approx(30)
    assert p.registered(1.0) == ["0000"]
    # refreshed at the configured interval (3000 s, under 0.9 * 3600)
    while (deadline := p.get_timer()) is not None and deadline < 2999:
        p.handle_timer(deadline)
    assert sent(p) == []
    assert p.get_timer() == pytest.approx(3000.03)
    p.handle_timer(3000.03)
    refresh = only(sent(p))
    assert isinstance(refresh, Request)
    assert refresh.method == "REGISTER"
    assert p.registered(3600.04) == []  # no 200 to the refresh: the binding lapses


def test_wrong_registration_password_is_reported():
    p = pod(phones=1, password_template="wrong-{username}")
    p.register_all(0.0)
    first = only(sent(p))
    assert isinstance(first, Request)
    answer(p, first, 401, 0.01, to_tag="r", extra=[("WWW-Authenticate", CHALLENGE)])
    second = only(sent(p))
    assert isinstance(second, Request)
    answer(p, second, 401, 0.02, to_tag="r", extra=[("WWW-Authenticate", CHALLENGE)])
    (result,) = p.take_events()
    assert isinstance(result, RegistrationResult)
    assert (result.ok, result.reason) == (False, "401 Unauthorized")


STALE = 'Digest realm="testbed.local", nonce="n{}", qop="auth", stale=true'


def _requests_until_given_up(p: SoftphonePod, status: int, header: str) -> list[Request]:
    """Answer each request the pod sends with a challenge saying stale=true (a fresh nonce
    each time) until it stops sending; at most 10 rounds."""
    requests = [r for r in sent(p) if isinstance(r, Request) and r.method != "ACK"]
    for n in range(10):
        answer(
            p, requests[-1], status, 0.1 * (n + 1), to_tag="p", extra=[(header, STALE.format(n))]
        )
        again = [r for r in sent(p) if isinstance(r, Request) and r.method != "ACK"]
        if not again:
            return requests
        requests += again
    raise AssertionError("the pod answers stale challenges without end")


def test_an_invite_answers_one_stale_challenge_and_then_gives_up():
    """RFC 7616: stale=true means "same credentials, new nonce"; a server that keeps saying so
    gets one retry (sip-core's digest flow), not an endless loop of INVITEs."""
    p = pod()
    p.call("0001", "0100", now=0.0, call_id="stale")
    invites = _requests_until_given_up(p, 407, "Proxy-Authenticate")
    assert [i.cseq.number for i in invites] == [1, 2, 3]
    assert [i.headers.get("proxy-authorization") is not None for i in invites] == [
        False,
        True,
        True,
    ]
    (record,) = p.take_events()
    assert isinstance(record, CallRecord)
    assert (record.outcome, record.reason) == ("failed", "407 Proxy Authentication Required")
    assert (record.challenge_at, record.authenticated_invite_at) == (0.1, 0.2)


def test_a_register_answers_one_stale_challenge_and_then_gives_up():
    p = pod(phones=1)
    p.register_all(0.0)
    registers = _requests_until_given_up(p, 401, "WWW-Authenticate")
    assert [r.cseq.number for r in registers] == [1, 2, 3]
    (result,) = p.take_events()
    assert isinstance(result, RegistrationResult)
    assert (result.ok, result.reason) == (False, "401 Unauthorized")


def _run_timers(p: SoftphonePod, until: float) -> list[Request | Response]:
    """Every timer up to `until`, and what the pod sent meanwhile."""
    out: list[Request | Response] = []
    while (deadline := p.get_timer()) is not None and deadline <= until:
        p.handle_timer(deadline)
        out += sent(p)
    return out


@pytest.mark.parametrize(("phones", "retry"), [(1, 10.0), (4, 10.0), (1, 0.0)])
def test_a_timed_out_registration_is_tried_again_later(phones: int, retry: float):
    p = pod(phones=phones, register_retry=retry)
    p.register_all(0.0)
    first = {m.from_.uri: m for m in sent(p) if isinstance(m, Request)}
    assert len(first) == phones
    # nobody answers: retransmissions (timer E) until timer F (64 * T1 = 32 s)
    resent = _run_timers(p, 32.0)
    assert resent
    assert all(
        isinstance(m, Request) and m.call_id in {f.call_id for f in first.values()} for m in resent
    )
    results = p.take_events()
    assert [(r.ok, r.reason) for r in results if isinstance(r, RegistrationResult)] == [
        (False, "timeout (timer F)")
    ] * phones
    failed_at = 32.0
    early = _run_timers(p, failed_at + 0.99 * retry)
    assert [m for m in early if isinstance(m, Request) and m.cseq.number > 1] == []
    later = _run_timers(p, failed_at + 1.91 * retry)
    fresh = {m.from_.uri for m in later if isinstance(m, Request) and m.cseq.number > 1}
    if retry == 0:
        assert fresh == set()
        assert p.get_timer() is None  # nothing more to do
        return
    # each phone tries again 1.0-1.9x the retry time after its failure (spread by its number)
    assert fresh == set(first)
    assert p.counters["registrations_failed"] == phones


def test_first_registers_are_spread_over_the_register_spread():
    p = pod(phones=4, register_spread=2.0)
    p.register_all(10.0)
    at_once = [m for m in sent(p) if isinstance(m, Request)]
    assert [m.from_.uri for m in at_once] == ["sip:0000@testbed.local"]
    times: dict[str, float] = {}
    while (deadline := p.get_timer()) is not None and deadline <= 11.9:
        p.handle_timer(deadline)
        for m in sent(p):
            if isinstance(m, Request):  # the first send of each phone (then retransmissions)
                times.setdefault(m.from_.uri, deadline)
    # phone i starts at 10 + i * 2.0 / 4
    del times["sip:0000@testbed.local"]  # its retransmissions (timer E)
    assert times == {
        "sip:0001@testbed.local": 10.5,
        "sip:0002@testbed.local": 11.0,
        "sip:0003@testbed.local": 11.5,
    }


def test_a_negative_register_spread_is_refused():
    with pytest.raises(ValueError, match="register_spread"):
        pod(register_spread=-1.0)


def _incoming_invite(callee: str = "0101", call_id: str = "in-1") -> Request:
    return make_request(
        "INVITE",
        f"sip:{callee}@127.0.2.1:5070",
        via=Via("UDP", "127.0.0.1", 5060, {"branch": "z9hG4bKlb1"}),
        from_=NameAddr("sip:0001@testbed.local", params={"tag": "caller"}),
        to=NameAddr(f"sip:{callee}@testbed.local"),
        call_id=call_id,
        cseq=2,
        contact=NameAddr("sip:0001@127.0.2.9:5070"),
    )


def test_answers_an_invite_and_its_bye():
    p = pod(phones=2, pod_id="01", ring_delay=0.5)
    invite = _incoming_invite()
    p.receive_datagram(invite.to_bytes(), LB, 0.0)
    ringing = only(sent(p))
    assert isinstance(ringing, Response)
    assert ringing.status == 180
    tag = ringing.to.tag
    assert tag
    p.handle_timer(0.5)
    ok = only(sent(p))
    assert isinstance(ok, Response)
    assert (ok.status, ok.to.tag, ok.contact[0].uri) == (200, tag, "sip:0101@127.0.2.1:5070")
    assert ok.body.startswith(b"v=0")
    # retransmitted until the ACK arrives
    p.handle_timer(1.0)
    assert [m.status for m in sent(p) if isinstance(m, Response)] == [200]
    ack = Request(
        "ACK",
        "sip:0101@127.0.2.1:5070",
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlb2"),
                ("From", "<sip:0001@testbed.local>;tag=caller"),
                ("To", f"<sip:0101@testbed.local>;tag={tag}"),
                ("Call-ID", "in-1"),
                ("CSeq", "2 ACK"),
            ]
        ),
    )
    p.receive_datagram(ack.to_bytes(), LB, 1.1)
    p.handle_timer(5.0)
    assert sent(p) == []
    bye = Request(
        "BYE",
        "sip:0101@127.0.2.1:5070",
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKlb3"),
                ("From", "<sip:0001@testbed.local>;tag=caller"),
                ("To", f"<sip:0101@testbed.local>;tag={tag}"),
                ("Call-ID", "in-1"),
                ("CSeq", "3 BYE"),
            ]
        ),
    )
    p.receive_datagram(bye.to_bytes(), LB, 6.0)
    bye_ok = only(sent(p))
    assert isinstance(bye_ok, Response)
    assert (bye_ok.status, bye_ok.cseq.method) == (200, "BYE")
    assert p.counters["calls_answered"] == 1


def test_invite_for_another_pod_is_404_and_unknown_bye_is_481():
    p = pod(phones=2, pod_id="01")
    p.receive_datagram(_incoming_invite(callee="0500").to_bytes(), LB, 0.0)
    assert only(sent(p)).status == 404  # type: ignore[union-attr]
    bye = Request(
        "BYE",
        "sip:0101@127.0.2.1:5070",
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx"),
                ("From", "<sip:0001@testbed.local>;tag=a"),
                ("To", "<sip:0101@testbed.local>;tag=b"),
                ("Call-ID", "none"),
                ("CSeq", "3 BYE"),
            ]
        ),
    )
    p.receive_datagram(bye.to_bytes(), LB, 0.1)
    assert only(sent(p)).status == 481  # type: ignore[union-attr]


def test_malformed_datagrams_are_counted_and_calls_go_on():
    p = pod()
    p.call("0001", "0100", now=0.0)
    invite = only(sent(p))
    p.receive_datagram(b"\x16\x03\x01 not sip at all", ("127.0.0.66", 4444), 0.01)
    p.receive_datagram(b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n", ("127.0.0.66", 4444), 0.02)
    events = p.take_events()
    assert [type(e) for e in events] == [MalformedInput, MalformedInput]
    assert events[0].source == ("127.0.0.66", 4444)  # type: ignore[union-attr]
    assert p.counters["malformed"] == 2
    assert isinstance(invite, Request)
    answer(p, invite, 200, 0.1, to_tag="c", contact=NameAddr("sip:0100@127.0.2.2:5070"))
    assert only(sent(p)).method == "ACK"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("caller", "callee"), [("0100", "0101"), ("0001", "101"), ("0001", "01x1")]
)
def test_bad_call_requests_are_refused(caller, callee):
    with pytest.raises(ValueError, match=r"pod 00|four-digit"):
        pod().call(caller, callee, now=0.0)


@pytest.mark.parametrize(("pod_id", "phones"), [("7", 10), ("07", 0), ("07", 101)])
def test_bad_pod_config(pod_id, phones):
    with pytest.raises(ValueError, match=r"pod id|phones"):
        PodConfig(pod=pod_id, phones=phones, local=LOCAL, outbound=LB)
