"""Dialog state from both ends, and the in-dialog requests it builds."""

from __future__ import annotations

import pytest

from sip_core import Dialog, LocalProtocolError, NameAddr, Via, make_request, make_response

VIA = Via("UDP", "127.0.2.1", 5070, {"branch": "z9hG4bKnew", "rport": None})


def _invite():
    return make_request(
        "INVITE",
        "sip:0101@testbed.local",
        via=Via("UDP", "127.0.2.1", 5070, {"branch": "z9hG4bK1"}),
        from_=NameAddr("sip:0100@testbed.local", params={"tag": "alice"}),
        to=NameAddr("sip:0101@testbed.local"),
        call_id="d1",
        cseq=2,
        contact=NameAddr("sip:0100@127.0.2.1:5070"),
    )


def test_caller_dialog_builds_ack_and_bye_to_the_remote_target():
    invite = _invite()
    ok = make_response(invite, 200, to_tag="bob", contact=NameAddr("sip:0101@127.0.2.2:5070"))
    dialog = Dialog.from_uac(invite, ok)
    assert dialog.id == ("d1", "alice", "bob")
    ack = dialog.ack(invite.cseq.number, VIA)
    assert (ack.method, ack.uri, ack.cseq.number, ack.cseq.method) == (
        "ACK",
        "sip:0101@127.0.2.2:5070",
        2,
        "ACK",
    )
    bye = dialog.request("BYE", VIA)
    assert (bye.uri, bye.cseq.number, bye.from_.tag, bye.to.tag) == (
        "sip:0101@127.0.2.2:5070",
        3,
        "alice",
        "bob",
    )
    assert dialog.request("BYE", VIA).cseq.number == 4
    with pytest.raises(LocalProtocolError):
        dialog.request("ACK", VIA)


def test_callee_dialog_matches_the_callers_requests_only():
    invite = _invite()
    dialog = Dialog.from_uas(invite, "bob")
    assert (dialog.remote_target, dialog.remote_cseq) == ("sip:0100@127.0.2.1:5070", 2)
    caller = Dialog.from_uac(
        invite, make_response(invite, 200, to_tag="bob", contact=NameAddr("sip:0101@h:1"))
    )
    bye = caller.request("BYE", VIA)
    assert dialog.matches(bye)
    stranger = Dialog.from_uac(
        invite, make_response(invite, 200, to_tag="carol", contact=NameAddr("sip:x@h:1"))
    )
    assert not dialog.matches(stranger.request("BYE", VIA))


def test_a_2xx_without_contact_cannot_make_a_dialog():
    invite = _invite()
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 200, to_tag="bob"))
