"""Every timer path of RFC 3261 section 17 over UDP, with time driven by hand (no sleeping)."""

from __future__ import annotations

import pytest

from sip_core import (
    AckReceived,
    ClientTransaction,
    Event,
    Headers,
    LocalProtocolError,
    MalformedDatagram,
    Request,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    State,
    StrayResponse,
    TimerSettings,
    TransactionLayer,
    TransactionTimedOut,
    make_response,
    parse_message,
)

PEER = ("127.0.0.1", 5060)
UA = ("127.0.0.1", 5092)


def request(
    method: str = "INVITE", branch: str = "z9hG4bK1", cseq: int = 1, to_tag: str | None = None
) -> Request:
    to = "<sip:0101@testbed.local>" + (f";tag={to_tag}" if to_tag else "")
    return Request(
        method,
        "sip:0101@testbed.local",
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:5092;branch={branch};rport"),
                ("Max-Forwards", "70"),
                ("From", "<sip:0100@testbed.local>;tag=caller"),
                ("To", to),
                ("Call-ID", "call-1@127.0.0.1"),
                ("CSeq", f"{cseq} {method}"),
                ("Contact", "<sip:0100@127.0.0.1:5092>"),
            ]
        ),
    )


def wire(layer: TransactionLayer) -> list[bytes]:
    return [data for data, _peer in layer.datagrams_to_send()]


def run_until(
    layer: TransactionLayer, end: float, sent: list[bytes] | None = None
) -> tuple[list[float], list[Event]]:
    """Fire every timer up to `end` (what was queued before is discarded); returns when
    datagrams went out and the events. `sent` collects the datagrams themselves."""
    layer.datagrams_to_send()
    sent_at: list[float] = []
    events: list[Event] = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        events += layer.handle_timer(deadline)
        out = wire(layer)
        sent_at += [deadline] * len(out)
        if sent is not None:
            sent += out
    return sent_at, events


def state(tx: ClientTransaction | ServerTransaction) -> State:
    """The state now: read through a call so that mypy does not carry an earlier assert's
    narrowing of `tx.state` across the timers that change it."""
    return tx.state


# -- INVITE client -------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_until_timer_b():
    layer = TransactionLayer()
    tx = layer.send_request(request(), PEER, now=0.0)
    assert len(wire(layer)) == 1
    sent_at, events = run_until(layer, 40.0)
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events == [TransactionTimedOut(tx, "B")]
    assert tx.state is State.TERMINATED
    assert layer.active == 0


def test_provisional_response_stops_retransmissions_and_timer_b():
    layer = TransactionLayer()
    tx = layer.send_request(request(), PEER, 0.0)
    wire(layer)
    ringing = make_response(tx.request, 180, to_tag="callee")
    events = layer.receive_datagram(ringing.to_bytes(), PEER, 0.1)
    assert [type(e) for e in events] == [ResponseReceived]
    assert tx.state is State.PROCEEDING
    assert run_until(layer, 100.0) == ([], [])


def test_2xx_moves_to_accepted_and_passes_retransmissions_to_the_tu():
    layer = TransactionLayer()
    tx = layer.send_request(request(), PEER, 0.0)
    ok = make_response(tx.request, 200, to_tag="callee").to_bytes()
    first = layer.receive_datagram(ok, PEER, 0.2)
    assert isinstance(first[0], ResponseReceived)
    assert first == [ResponseReceived(first[0].response, tx)]
    assert tx.state is State.ACCEPTED
    again = layer.receive_datagram(ok, PEER, 0.7)
    assert len(again) == 1
    assert isinstance(again[0], ResponseReceived)
    assert again[0].retransmission
    _, events = run_until(layer, 0.2 + 32.0)
    assert events == []
    assert state(tx) is State.TERMINATED  # timer M


def test_negative_final_is_acked_by_the_transaction_and_timer_d_ends_it():
    layer = TransactionLayer()
    tx = layer.send_request(request(), PEER, 0.0)
    wire(layer)
    busy = make_response(tx.request, 486, to_tag="callee").to_bytes()
    events = layer.receive_datagram(busy, PEER, 0.3)
    assert [type(e) for e in events] == [ResponseReceived]
    (ack_bytes,) = wire(layer)
    ack = parse_message(ack_bytes)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bK1"
    assert ack.to.tag == "callee"
    assert (ack.cseq.number, ack.cseq.method) == (1, "ACK")
    assert layer.receive_datagram(busy, PEER, 1.0) == []  # retransmitted 486: ACK again, silently
    assert len(wire(layer)) == 1
    run_until(layer, 0.3 + 31.9)
    assert tx.state is State.COMPLETED
    run_until(layer, 0.3 + 32.0)
    assert state(tx) is State.TERMINATED


# -- non-INVITE client ---------------------------------------------------------------------


def test_non_invite_timer_e_caps_at_t2_and_timer_f_times_out():
    layer = TransactionLayer()
    tx = layer.send_request(request("REGISTER"), PEER, 0.0)
    sent_at, events = run_until(layer, 40.0)
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimedOut(tx, "F")]


def test_non_invite_proceeding_retransmits_every_t2():
    layer = TransactionLayer(TimerSettings(t1=0.5, t2=4.0))
    tx = layer.send_request(request("REGISTER"), PEER, 0.0)
    layer.receive_datagram(make_response(tx.request, 100).to_bytes(), PEER, 0.1)
    sent_at, _ = run_until(layer, 13.0)
    assert sent_at == [0.5, 4.5, 8.5, 12.5]


def test_non_invite_final_then_timer_k_absorbs_retransmissions():
    layer = TransactionLayer()
    tx = layer.send_request(request("REGISTER"), PEER, 0.0)
    ok = make_response(tx.request, 200, to_tag="r").to_bytes()
    assert len(layer.receive_datagram(ok, PEER, 0.1)) == 1
    assert layer.receive_datagram(ok, PEER, 0.2) == []
    assert tx.state is State.COMPLETED
    run_until(layer, 0.1 + 5.0)
    assert state(tx) is State.TERMINATED
    assert [type(e) for e in layer.receive_datagram(ok, PEER, 6.0)] == [StrayResponse]


# -- INVITE server -------------------------------------------------------------------------


def test_invite_server_sends_100_after_200ms_and_repeats_provisionals():
    layer = TransactionLayer()
    events = layer.receive_datagram(request().to_bytes(), UA, 0.0)
    assert [type(e) for e in events] == [RequestReceived]
    sent: list[bytes] = []
    assert run_until(layer, 0.2, sent) == ([0.2], [])
    assert getattr(parse_message(sent[0]), "status", None) == 100
    # a retransmitted INVITE gets the last provisional again and is not passed up
    assert layer.receive_datagram(request().to_bytes(), UA, 0.5) == []
    assert len(wire(layer)) == 1


def test_invite_server_negative_final_timer_g_then_h_without_ack():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request().to_bytes(), UA, 0.0)
    assert isinstance(event, RequestReceived)
    tx = layer.send_response(make_response(event.request, 486, to_tag="callee"), 0.05)
    assert tx is not None
    wire(layer)
    sent_at, events = run_until(layer, 40.0)
    assert sent_at == [0.55, 1.55, 3.55, 7.55, 11.55, 15.55, 19.55, 23.55, 27.55, 31.55]
    assert events == [TransactionTimedOut(tx, "H")]


def test_invite_server_ack_confirms_then_timer_i():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request().to_bytes(), UA, 0.0)
    assert isinstance(event, RequestReceived)
    tx = layer.send_response(make_response(event.request, 486, to_tag="callee"), 0.0)
    ack = request("ACK", to_tag="callee")
    assert layer.receive_datagram(ack.to_bytes(), UA, 0.1) == []  # absorbed
    assert tx is not None
    assert tx.state is State.CONFIRMED
    run_until(layer, 0.1 + 5.0)
    assert state(tx) is State.TERMINATED


def test_invite_server_retransmits_2xx_until_the_ack():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request().to_bytes(), UA, 0.0)
    assert isinstance(event, RequestReceived)
    tx = layer.send_response(make_response(event.request, 200, to_tag="callee"), 0.0)
    wire(layer)
    sent_at, _ = run_until(layer, 2.0)
    assert sent_at == [0.5, 1.5]
    # the ACK for a 2xx is a transaction of its own: new branch, same CSeq number
    ack = request("ACK", branch="z9hG4bKack", to_tag="callee")
    events = layer.receive_datagram(ack.to_bytes(), UA, 2.1)
    assert isinstance(events[0], AckReceived)
    assert events == [AckReceived(events[0].request, UA, tx)]
    assert layer.receive_datagram(ack.to_bytes(), UA, 2.2) == []  # retransmitted ACK
    sent_at, events = run_until(layer, 40.0)
    assert sent_at == []
    assert events == []
    assert tx is not None
    assert tx.state is State.TERMINATED  # timer L


def test_unacknowledged_2xx_times_out_with_timer_l():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request().to_bytes(), UA, 0.0)
    assert isinstance(event, RequestReceived)
    tx = layer.send_response(make_response(event.request, 200, to_tag="callee"), 0.0)
    assert tx is not None
    sent_at, events = run_until(layer, 40.0)
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimedOut(tx, "L")]


# -- non-INVITE server ---------------------------------------------------------------------


def test_non_invite_server_repeats_its_final_until_timer_j():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request("BYE", to_tag="callee").to_bytes(), UA, 0.0)
    assert isinstance(event, RequestReceived)
    tx = layer.send_response(make_response(event.request, 200), 0.0)
    wire(layer)
    assert layer.receive_datagram(request("BYE", to_tag="callee").to_bytes(), UA, 1.0) == []
    assert len(wire(layer)) == 1
    run_until(layer, 32.0)
    assert tx is not None
    assert tx.state is State.TERMINATED
    assert layer.active == 0


def test_responses_follow_rport_to_the_source_port():
    layer = TransactionLayer()
    (event,) = layer.receive_datagram(request("OPTIONS").to_bytes(), ("127.0.0.9", 40000), 0.0)
    assert isinstance(event, RequestReceived)
    layer.send_response(make_response(event.request, 200), 0.0)
    ((_data, peer),) = layer.datagrams_to_send()
    assert peer == ("127.0.0.9", 40000)


# -- robustness ----------------------------------------------------------------------------


def test_malformed_datagrams_become_events_and_counters():
    layer = TransactionLayer()
    events = layer.receive_datagram(b"\x00\x01garbage", UA, 0.0)
    assert [type(e) for e in events] == [MalformedDatagram]
    assert layer.counters["malformed"] == 1
    assert layer.receive_datagram(b"\r\n\r\n", UA, 0.0) == []  # keep-alive


def test_api_misuse_is_a_local_error():
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(request("ACK"), PEER, 0.0)
    layer.send_request(request(), PEER, 0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(request(), PEER, 0.0)  # same branch twice
    with pytest.raises(LocalProtocolError):
        layer.send_response(make_response(request("OPTIONS", branch="z9hG4bKnone"), 200), 0.0)
