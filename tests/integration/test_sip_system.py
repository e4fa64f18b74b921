"""The SIP system through the load balancer on 127.0.0.1:5060, with SIPp as the peer."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from support import CALLEES, UAS, RawSip, SipSystem

pytestmark = pytest.mark.integration


def test_register_with_right_password_binds(sip_system: SipSystem):
    result = sip_system.sipp.register(
        ["0200"], f"{UAS[0]}:{UAS[1]}", sip_system.lb, "127.0.0.1:5093", tag="reg-ok"
    )
    assert (result.successful, result.failed) == (1, 0), result.errors
    users = sip_system.http.get(f"{sip_system.controller}/registrations").json()["users"]
    assert "0200" in users


def test_wrong_password_is_challenged_again_and_leaves_no_binding(sip_system: SipSystem):
    result = sip_system.sipp.register(
        ["0201"],
        f"{UAS[0]}:{UAS[1]}",
        sip_system.lb,
        "127.0.0.1:5093",
        passwords={"0201": "not-the-password"},
        expect=401,
        tag="reg-wrong",
    )
    assert (result.successful, result.failed) == (1, 0), result.errors
    for index in range(len(sip_system.proxies())):
        assert "0201" not in sip_system.proxy_rpc(index).registered_aors()


def test_unknown_user_is_forbidden(sip_system: SipSystem):
    result = sip_system.sipp.register(
        ["zz99"],
        f"{UAS[0]}:{UAS[1]}",
        sip_system.lb,
        "127.0.0.1:5093",
        expect=403,
        tag="reg-unknown",
    )
    assert (result.successful, result.failed) == (1, 0), result.errors


def test_calls_complete_through_lb_and_spread_over_proxies(sip_system: SipSystem):
    before = [sip_system.invites_received(i) for i in range(2)]
    result = sip_system.sipp.calls(
        sip_system.pairs(40), sip_system.lb, "127.0.0.1:5094", rate=20, tag="calls"
    )
    assert (result.successful, result.failed) == (40, 0), result.errors
    after = [sip_system.invites_received(i) for i in range(2)]
    # every call is two INVITEs (challenged, authenticated) at the proxy its Call-ID hashes to
    assert sum(after) - sum(before) == 80
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_a_first_invite_is_challenged_and_goes_no_further(sip_system: SipSystem):
    """benchmarks/message_costs.py's challenge step: INVITE, 407, nothing else."""
    before = [sip_system.invites_received(i) for i in range(2)]
    result = sip_system.sipp.challenges(
        sip_system.pairs(20), sip_system.lb, "127.0.0.1:5094", rate=20, count=20, tag="chal"
    )
    assert (result.successful, result.failed) == (20, 0), result.errors
    after = [sip_system.invites_received(i) for i in range(2)]
    assert sum(after) - sum(before) == 20  # one INVITE each, none authenticated


def test_retransmitted_authenticated_invites_are_absorbed(sip_system: SipSystem):
    """benchmarks/message_costs.py's absorbed step: each call's authenticated INVITE is sent
    twenty more times; the proxies see them (22 INVITEs a call, and what SIPp's own timer sent
    again) and the calls still complete."""
    before = [sip_system.invites_received(i) for i in range(2)]
    result = sip_system.sipp.calls(
        sip_system.pairs(10),
        sip_system.lb,
        "127.0.0.1:5094",
        rate=10,
        tag="retransmitting",
        retransmitting=True,
    )
    assert (result.successful, result.failed) == (10, 0), result.errors
    after = [sip_system.invites_received(i) for i in range(2)]
    assert sum(after) - sum(before) == 10 * 22 + result.retransmissions


def test_invite_to_unregistered_user_gets_404(sip_system: SipSystem):
    result = sip_system.sipp.calls(
        [("0001", "0999")], sip_system.lb, "127.0.0.1:5094", rate=1, expect=404, tag="c404"
    )
    assert (result.successful, result.failed) == (1, 0), result.errors


def test_max_forwards_zero_gets_483_at_lb_and_proxy(sip_system: SipSystem, raw_sip: RawSip):
    for target in (sip_system.lb, sip_system.proxy_sip(0)):
        request = raw_sip.request(
            "OPTIONS", "sip:testbed.local", "0001", uuid.uuid4().hex, 1, max_forwards=0
        )
        assert raw_sip.status(raw_sip.exchange(request, target)) == 483


def test_options_is_answered_200_through_lb(sip_system: SipSystem, raw_sip: RawSip):
    request = raw_sip.request("OPTIONS", "sip:testbed.local", "0001", uuid.uuid4().hex, 1)
    assert raw_sip.status(raw_sip.exchange(request, sip_system.lb)) == 200


def test_malformed_datagrams_do_not_stop_lb_or_proxies(sip_system: SipSystem, raw_sip: RawSip):
    garbage = [
        b"\x00\xff\x10garbage",
        b"INVITE sip:x SIP/2.0\r\nVia: broken\r\n\r\n",
        b"SIP/2.0 200\r\n\r\n" * 50,
    ]
    for target in (sip_system.lb, sip_system.proxy_sip(0)):
        host, _, port = target.rpartition(":")
        for datagram in garbage:
            raw_sip.sock.sendto(datagram, (host, int(port)))
    result = sip_system.sipp.calls(
        sip_system.pairs(5), sip_system.lb, "127.0.0.1:5094", rate=10, tag="after-garbage"
    )
    assert (result.successful, result.failed) == (5, 0), result.errors


def test_nonce_from_one_proxy_is_accepted_by_another(sip_system: SipSystem, raw_sip: RawSip):
    call_id = uuid.uuid4().hex
    first = raw_sip.exchange(
        raw_sip.request("REGISTER", "sip:testbed.local", "0202", call_id, 1),
        sip_system.proxy_sip(0),
    )
    assert raw_sip.status(first) == 401
    credentials = raw_sip.digest_authorization(
        first, "0202", "0202", "REGISTER", "sip:testbed.local"
    )
    second = raw_sip.exchange(
        raw_sip.request("REGISTER", "sip:testbed.local", "0202", call_id, 2, extra=credentials),
        sip_system.proxy_sip(1),
    )
    assert raw_sip.status(second) == 200


def test_a_late_retransmission_of_a_saved_register_is_answered_200(
    sip_system: SipSystem, raw_sip: RawSip
):
    """A UDP UA retransmits a REGISTER until Timer F (32 s) when the answers get lost, as they
    do in a registration burst; a copy of an authenticated REGISTER the registrar already saved
    must get 200 again, not 400 "Invalid CSeq number" (usrloc's default cseq_delay is 20 s)."""
    call_id = uuid.uuid4().hex
    proxy = sip_system.proxy_sip(0)
    first = raw_sip.exchange(
        raw_sip.request("REGISTER", "sip:testbed.local", "0205", call_id, 1), proxy
    )
    assert raw_sip.status(first) == 401
    credentials = raw_sip.digest_authorization(
        first, "0205", "0205", "REGISTER", "sip:testbed.local"
    )
    authenticated = raw_sip.request(
        "REGISTER", "sip:testbed.local", "0205", call_id, 2, extra=credentials
    )
    assert raw_sip.status(raw_sip.exchange(authenticated, proxy)) == 200
    time.sleep(21)  # past the default cseq_delay, within Timer F
    again = raw_sip.exchange(authenticated, proxy)  # the same bytes: a retransmission
    assert raw_sip.status(again) == 200, again


def test_registration_through_one_proxy_is_routable_by_another(sip_system: SipSystem):
    # register straight at proxy 0, call straight through proxy 1: DMQ must have replicated it
    reg = sip_system.sipp.register(
        ["0300"], f"{UAS[0]}:{UAS[1]}", sip_system.proxy_sip(0), "127.0.0.1:5093", tag="dmq-reg"
    )
    assert reg.successful == 1, reg.errors
    call = sip_system.sipp.calls(
        [("0003", "0300")], sip_system.proxy_sip(1), "127.0.0.1:5094", rate=1, tag="dmq-call"
    )
    assert (call.successful, call.failed) == (1, 0), call.errors


def test_scaled_up_proxy_syncs_registrations_and_gets_traffic_within_2s(sip_system: SipSystem):
    result_box: dict[str, object] = {}

    def traffic() -> None:
        result_box["result"] = sip_system.sipp.calls(
            sip_system.pairs(400), sip_system.lb, "127.0.0.1:5095", rate=50, tag="scale-up-traffic"
        )

    runner = threading.Thread(target=traffic)
    runner.start()
    try:
        time.sleep(1.0)
        sip_system.testbed.scale("sip-proxy", 3)
        enabled_at = time.monotonic()
        first_seen = None
        while time.monotonic() - enabled_at < 5:
            if sip_system.invites_received(2) > 0:
                first_seen = time.monotonic() - enabled_at
                break
            time.sleep(0.05)
        assert first_seen is not None, "the new proxy got no INVITE within 5 s"
        assert first_seen < 2.0, f"first INVITE {first_seen:.2f} s after enable"
        runner.join()
        result = result_box["result"]
        assert (result.successful, result.failed) == (400, 0), result.errors  # type: ignore[attr-defined]
        # a proxy started after the registrations knows them (dmq_usrloc sync on start)
        direct = sip_system.sipp.calls(
            [("0004", "0101")], sip_system.proxy_sip(2), "127.0.0.1:5094", rate=1, tag="synced"
        )
        assert (direct.successful, direct.failed) == (1, 0), direct.errors
    finally:
        runner.join()
        sip_system.testbed.scale("sip-proxy", 2)


def test_scale_down_drains_with_zero_failed_calls(sip_system: SipSystem):
    sip_system.testbed.scale("sip-proxy", 3)
    result_box: dict[str, object] = {}

    def traffic() -> None:
        result_box["result"] = sip_system.sipp.calls(
            sip_system.pairs(360),
            sip_system.lb,
            "127.0.0.1:5095",
            rate=30,
            hold_ms=1000,
            tag="scale-down-traffic",
        )

    runner = threading.Thread(target=traffic)
    runner.start()
    try:
        time.sleep(4.0)
        sip_system.testbed.scale("sip-proxy", 2)
        assert sip_system.proxies() == ["sip-proxy-0", "sip-proxy-1"]
        assert not any(
            t.uri == f"sip:{sip_system.proxy_sip(2)}" for t in sip_system.lb_rpc().dispatcher_list()
        )
    finally:
        runner.join()
        sip_system.testbed.scale("sip-proxy", 2)
    result = result_box["result"]
    assert (result.successful, result.failed) == (360, 0), result.errors  # type: ignore[attr-defined]


def test_parallel_scaling_adds_and_drains_several_proxies_at_once(sip_system: SipSystem):
    """A Deployment-like step: two proxies start together, later two leave together, under
    traffic, and no call fails."""
    result_box: dict[str, object] = {}

    def traffic() -> None:
        result_box["result"] = sip_system.sipp.calls(
            sip_system.pairs(300),
            sip_system.lb,
            "127.0.0.1:5095",
            rate=30,
            hold_ms=500,
            tag="parallel-scale-traffic",
        )

    runner = threading.Thread(target=traffic)
    runner.start()
    try:
        time.sleep(1.0)
        sip_system.testbed.scale("sip-proxy", 4, parallel=True)
        assert sip_system.proxies() == [f"sip-proxy-{i}" for i in range(4)]
        listed = {t.uri for t in sip_system.lb_rpc().dispatcher_list()}
        assert {f"sip:{sip_system.proxy_sip(i)}" for i in (2, 3)} <= listed
        time.sleep(3.0)
        sip_system.testbed.scale("sip-proxy", 2, parallel=True)
        assert sip_system.proxies() == ["sip-proxy-0", "sip-proxy-1"]
    finally:
        runner.join()
        sip_system.testbed.scale("sip-proxy", 2)
    result = result_box["result"]
    assert (result.successful, result.failed) == (300, 0), result.errors  # type: ignore[attr-defined]


def test_lb_answers_503_when_no_proxy_is_active(sip_system: SipSystem, raw_sip: RawSip):
    sip_system.testbed.scale("sip-proxy", 0)
    try:
        request = raw_sip.request("OPTIONS", "sip:testbed.local", "0001", uuid.uuid4().hex, 1)
        answer = raw_sip.exchange(request, sip_system.lb)
        assert raw_sip.status(answer) == 503
        assert "No Active Proxy" in answer.split("\r\n", 1)[0]
    finally:
        sip_system.testbed.scale("sip-proxy", 2)
    # with every proxy gone nobody kept the location table: register the callees again
    again = sip_system.sipp.register(
        CALLEES, f"{UAS[0]}:{UAS[1]}", sip_system.lb, "127.0.0.1:5091", tag="callees-again"
    )
    assert again.successful == len(CALLEES)
