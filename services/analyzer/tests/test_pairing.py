"""The sans-I/O pairing rules, fed bytes and explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.pairing import (
    EXPIRED,
    MALFORMED,
    NOT_PROXY,
    NOT_SIP,
    OTHER_ANSWER,
    PAIRS,
    UNMATCHED,
    Pair,
    PairName,
    PairTracker,
)

INVITE_CHALLENGE = PairName.INVITE_CHALLENGE
INVITE_FORWARD = PairName.INVITE_FORWARD
OK_FORWARD = PairName.OK_FORWARD
REGISTER_CHALLENGE = PairName.REGISTER_CHALLENGE
REGISTER_OK = PairName.REGISTER_OK


def test_pair_names_are_the_strings_of_the_labels_csv_and_json():
    """The enum changes no output: each member is its string, in the table's order."""
    assert [str(name) for name in PAIRS] == [
        "register_challenge",
        "register_ok",
        "invite_challenge",
        "invite_forward",
        "ok_forward",
    ]
    assert all(name == str(name) and f"{name}" == name.value for name in PairName)
    assert PairName("ok_forward") is OK_FORWARD


def feed_all(tracker: PairTracker, messages) -> list[Pair]:
    pairs = []
    for timestamp, src, dst, payload in messages:
        pair = tracker.feed(timestamp, src, dst, payload)
        if pair is not None:
            pairs.append(pair)
    return pairs


def test_a_call_gives_challenge_forward_and_ok_pairs(h):
    tracker = PairTracker(h.PROXY)
    pairs = feed_all(tracker, h.call_flow("call-1", t0=1000.0))
    assert [(p.name, p.call_id, p.cseq) for p in pairs] == [
        (INVITE_CHALLENGE, "call-1", 1),
        (INVITE_FORWARD, "call-1", 2),
        (OK_FORWARD, "call-1", 2),
    ]
    # INVITE at +0 ms -> 407 at +1; authenticated INVITE at +3 -> relayed at +5; 200 +9 -> +10
    assert [round(p.response_time * 1000, 6) for p in pairs] == [1.0, 2.0, 1.0]
    assert pairs[1].start == pytest.approx(1000.003)
    assert (pairs[1].start_src, pairs[1].start_dst) == (h.LB, h.PROXY)
    assert (pairs[1].end_src, pairs[1].end_dst) == (h.PROXY, h.LB)
    assert tracker.open_entries == 0
    assert tracker.stats.messages[("in", "INVITE", "")] == 2
    assert tracker.stats.messages[("out", "INVITE", "")] == 1
    assert tracker.stats.messages[("out", "INVITE", "407")] == 1
    assert tracker.stats.messages[("in", "BYE", "200")] == 1
    assert tracker.stats.messages[("out", "ACK", "")] == 1
    assert not tracker.stats.unpaired
    assert not tracker.stats.retransmissions


def test_a_registration_gives_challenge_and_ok_pairs(h):
    tracker = PairTracker(h.PROXY)
    pairs = feed_all(tracker, h.register_flow("reg-1", t0=50.0))
    assert [(p.name, p.cseq, round(p.response_time, 6)) for p in pairs] == [
        (REGISTER_CHALLENGE, 1, 0.002),
        (REGISTER_OK, 2, 0.002),
    ]
    assert tracker.stats.pairs == {REGISTER_CHALLENGE: 1, REGISTER_OK: 1}


def test_request_retransmitted_before_the_answer_pairs_once_from_the_first_copy(h):
    tracker = PairTracker(h.PROXY)
    invite = h.sip.request("INVITE", "c", 1)
    challenge = h.sip.response(407, "Proxy Authentication Required", "c", 1, "INVITE")
    pairs = feed_all(
        tracker,
        [
            (10.0, h.LB, h.PROXY, invite),
            (10.5, h.LB, h.PROXY, invite),  # timer A at the UA
            (10.6, h.PROXY, h.LB, challenge),
            (10.7, h.PROXY, h.LB, challenge),  # the proxy answers the copy as well
            (11.5, h.LB, h.PROXY, invite),  # and the UA missed it
        ],
    )
    assert [(p.name, round(p.response_time, 6)) for p in pairs] == [(INVITE_CHALLENGE, 0.6)]
    assert tracker.stats.retransmissions == {INVITE_CHALLENGE: 3}


def test_relayed_invite_and_200_retransmissions_are_recognised(h):
    tracker = PairTracker(h.PROXY)
    authenticated = h.sip.request("INVITE", "c", 2, auth="Proxy-Authorization")
    relayed = h.sip.request("INVITE", "c", 2, branch="z9hG4bK-proxy")
    ok = h.sip.response(200, "OK", "c", 2, "INVITE")
    pairs = feed_all(
        tracker,
        [
            (1.0, h.LB, h.PROXY, authenticated),
            (1.001, h.PROXY, h.LB, relayed),
            (1.5, h.PROXY, h.LB, relayed),  # tm's timer A
            (2.0, h.LB, h.PROXY, ok),
            (2.002, h.PROXY, h.LB, ok),
            (2.5, h.LB, h.PROXY, ok),  # the callee retransmits its 200 until the ACK
            (2.501, h.PROXY, h.LB, ok),
        ],
    )
    assert [(p.name, round(p.response_time, 6)) for p in pairs] == [
        (INVITE_FORWARD, 0.001),
        (OK_FORWARD, 0.002),
    ]
    assert tracker.stats.retransmissions == {INVITE_FORWARD: 1, OK_FORWARD: 2}


def test_unanswered_entries_expire_and_are_counted(h):
    tracker = PairTracker(h.PROXY, timeout=2.0)
    tracker.feed(0.0, h.LB, h.PROXY, h.sip.request("REGISTER", "r", 1))
    tracker.feed(0.5, h.LB, h.PROXY, h.sip.request("INVITE", "i", 2, auth="Proxy-Authorization"))
    tracker.feed(0.7, h.LB, h.PROXY, h.sip.response(200, "OK", "o", 1, "INVITE"))
    assert tracker.open_entries == 3
    assert tracker.expire(1.9) == 0
    assert tracker.expire(2.6) == 2
    assert tracker.expire(3.0) == 1
    assert tracker.open_entries == 0
    assert tracker.stats.unpaired == {
        (REGISTER_CHALLENGE, EXPIRED): 1,
        (INVITE_FORWARD, EXPIRED): 1,
        (OK_FORWARD, EXPIRED): 1,
    }
    # an answer after the timeout pairs with nothing
    late = tracker.feed(3.1, h.PROXY, h.LB, h.sip.response(401, "Unauthorized", "r", 1, "REGISTER"))
    assert late is None
    assert tracker.stats.unpaired[(REGISTER_CHALLENGE, UNMATCHED)] == 1


@pytest.mark.slow
def test_memory_stays_bounded_over_a_long_run_of_unanswered_requests(h):
    """A day at 50 requests/s that are never answered (scaled: 200,000 requests)."""
    tracker = PairTracker(h.PROXY, timeout=5.0)
    largest = 0
    for n in range(200_000):
        now = n / 50
        tracker.feed(now, h.LB, h.PROXY, h.sip.request("REGISTER", f"r{n}", 1))
        largest = max(largest, tracker.open_entries)
    assert largest <= 5.0 * 50 + 50 + 1  # timeout x rate, plus one expiry step
    assert tracker.stats.unpaired[(REGISTER_CHALLENGE, EXPIRED)] >= 200_000 - largest


def test_closed_pairs_are_forgotten_after_the_timeout(h):
    tracker = PairTracker(h.PROXY, timeout=1.0)
    for n in range(1000):
        for t, src, dst, payload in h.register_flow(f"r{n}", t0=n * 0.1):
            tracker.feed(t, src, dst, payload)
    assert tracker.remembered_entries <= 2 * 11 + 2
    assert tracker.stats.pairs == {REGISTER_CHALLENGE: 1000, REGISTER_OK: 1000}


def test_answers_that_form_no_pair_close_the_entry(h):
    tracker = PairTracker(h.PROXY)
    messages = [
        # callee not registered: the authenticated INVITE is answered 404 by the proxy
        (1.0, h.LB, h.PROXY, h.sip.request("INVITE", "a", 2, auth="Proxy-Authorization")),
        (1.1, h.PROXY, h.LB, h.sip.response(404, "Not Found", "a", 2, "INVITE")),
        # a REGISTER without credentials that got 200 is no register_ok
        (2.0, h.LB, h.PROXY, h.sip.request("REGISTER", "b", 1)),
        (2.1, h.PROXY, h.LB, h.sip.response(200, "OK", "b", 1, "REGISTER")),
        # an in-dialog INVITE relayed without a challenge is no invite_forward
        (3.0, h.LB, h.PROXY, h.sip.request("INVITE", "c", 5)),
        (3.1, h.PROXY, h.LB, h.sip.request("INVITE", "c", 5, branch="z9hG4bK-p")),
    ]
    assert feed_all(tracker, messages) == []
    assert tracker.open_entries == 0
    assert tracker.stats.unpaired == {
        (INVITE_FORWARD, OTHER_ANSWER): 1,
        (REGISTER_CHALLENGE, OTHER_ANSWER): 1,
        (INVITE_CHALLENGE, OTHER_ANSWER): 1,
    }


def test_a_stale_nonce_challenge_of_an_authenticated_register_is_a_challenge(h):
    tracker = PairTracker(h.PROXY)
    pairs = feed_all(
        tracker,
        [
            (1.0, h.LB, h.PROXY, h.sip.request("REGISTER", "r", 2, auth="Authorization")),
            (1.25, h.PROXY, h.LB, h.sip.response(401, "Unauthorized", "r", 2, "REGISTER")),
        ],
    )
    assert [(p.name, p.response_time) for p in pairs] == [(REGISTER_CHALLENGE, 0.25)]


def test_answers_and_relays_without_their_request_are_unmatched(h):
    tracker = PairTracker(h.PROXY)
    messages = [
        (1.0, h.PROXY, h.LB, h.sip.response(407, "Proxy Auth", "x", 1, "INVITE")),
        (1.1, h.PROXY, h.LB, h.sip.request("INVITE", "y", 2)),
        (1.2, h.PROXY, h.LB, h.sip.response(200, "OK", "z", 2, "INVITE")),
        (1.3, h.PROXY, h.LB, h.sip.response(486, "Busy Here", "w", 2, "INVITE")),
    ]
    assert feed_all(tracker, messages) == []
    assert tracker.stats.unpaired == {
        (INVITE_CHALLENGE, UNMATCHED): 1,
        (INVITE_FORWARD, UNMATCHED): 1,
        (OK_FORWARD, UNMATCHED): 1,
    }


def test_direction_comes_from_the_proxy_address_and_port(h):
    tracker = PairTracker(h.PROXY)
    invite = h.sip.request("INVITE", "c", 1)
    dmq = ("127.0.9.1", 5061)
    other_proxy = ("127.0.9.2", 5060)
    assert tracker.feed(1.0, h.LB, other_proxy, invite) is None
    assert tracker.feed(1.0, dmq, ("127.0.9.2", 5061), invite) is None
    assert tracker.feed(1.0, h.PROXY, h.PROXY, invite) is None
    assert tracker.stats.skipped == {NOT_PROXY: 3}
    assert not tracker.stats.messages


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", NOT_SIP),
        (b"\r\n\r\n", NOT_SIP),  # keep-alive
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", NOT_SIP),  # TLS on the wrong port
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", NOT_SIP),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n", MALFORMED),
        (b"SIP/2.0 200 OK\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n", MALFORMED),  # cut off
        (b"SIP/2.0 999 Odd\r\n\r\n", MALFORMED),
    ],
)
def test_bad_payloads_are_counted_and_skipped(h, payload, reason):
    tracker = PairTracker(h.PROXY)
    assert tracker.feed(1.0, h.LB, h.PROXY, payload) is None
    assert tracker.stats.skipped == {reason: 1}
    # and the tracker goes on pairing
    assert len(feed_all(tracker, h.call_flow("after", t0=2.0))) == 3


def test_a_body_shorter_than_content_length_is_malformed(h):
    tracker = PairTracker(h.PROXY)
    whole = h.sip.request("INVITE", "c", 1, body=b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n")
    assert tracker.feed(1.0, h.LB, h.PROXY, whole[:-10]) is None
    assert tracker.stats.skipped == {MALFORMED: 1}


def test_methods_outside_the_known_set_are_labelled_other(h):
    tracker = PairTracker(h.PROXY)
    tracker.feed(1.0, h.LB, h.PROXY, h.sip.request("FROBNICATE", "c", 1))
    tracker.feed(1.0, h.PROXY, h.LB, h.sip.response(501, "Not Implemented", "c", 1, "FROBNICATE"))
    assert tracker.stats.messages == {("in", "other", ""): 1, ("out", "other", "501"): 1}


def test_compact_header_forms_pair_too(h):
    tracker = PairTracker(h.PROXY)
    request = h.sip.request("REGISTER", "compact", 1).replace(b"Call-ID:", b"i:")
    answer = h.sip.response(401, "Unauthorized", "compact", 1, "REGISTER")
    assert tracker.feed(1.0, h.LB, h.PROXY, request) is None
    pair = tracker.feed(1.5, h.PROXY, h.LB, answer)
    assert pair is not None
    assert pair.name == REGISTER_CHALLENGE
    assert pair.call_id == "compact"


def test_a_non_positive_timeout_is_refused(h):
    with pytest.raises(ValueError, match="timeout must be positive"):
        PairTracker(h.PROXY, timeout=0)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(payload):
    tracker = PairTracker(("127.0.9.1", 5060))
    assert tracker.feed(1.0, ("127.0.8.1", 5060), ("127.0.9.1", 5060), payload) is None
    assert sum(tracker.stats.skipped.values()) + sum(tracker.stats.messages.values()) == 1


@given(data=st.data())
def test_mutated_messages_never_raise_and_never_pair_wrongly(h, data):
    flow = h.call_flow("mutated", t0=5.0)
    index = data.draw(st.integers(0, len(flow) - 1))
    t, src, dst, payload = flow[index]
    position = data.draw(st.integers(0, len(payload) - 1))
    cut = data.draw(st.booleans())
    mutated = payload[:position] if cut else payload[:position] + b"\x00" + payload[position + 1 :]
    tracker = PairTracker(h.PROXY)
    messages = [*flow[:index], (t, src, dst, mutated), *flow[index + 1 :]]
    pairs = feed_all(tracker, messages)
    assert len(pairs) <= 3
    assert all(p.response_time >= 0 for p in pairs)


@given(
    duplicates=st.lists(st.integers(0, 16), max_size=12),
    delay=st.floats(0.0001, 0.0009),
)
def test_duplicated_messages_never_add_pairs(h, duplicates, delay):
    """Any message of a call delivered again shortly after: same pairs, same times."""
    flow = h.call_flow("dup", t0=7.0)
    messages = list(flow)
    for index in duplicates:
        t, src, dst, payload = flow[index]
        messages.append((t + delay, src, dst, payload))
    messages.sort(key=lambda m: m[0])
    tracker = PairTracker(h.PROXY)
    pairs = feed_all(tracker, messages)
    reference = feed_all(PairTracker(h.PROXY), flow)
    assert [(p.name, p.start, p.end) for p in pairs] == [
        (p.name, p.start, p.end) for p in reference
    ]


@given(st.lists(st.integers(0, 3), min_size=1, max_size=40))
def test_interleaved_registrations_pair_per_call_id(h, order):
    """Several registrations at once, their messages interleaved: each pairs on its own."""
    flows = {n: h.register_flow(f"reg-{n}", t0=1.0) for n in range(4)}
    positions = dict.fromkeys(flows, 0)
    messages = []
    clock = 1.0
    for n in order:
        if positions[n] < 4:
            _, src, dst, payload = flows[n][positions[n]]
            positions[n] += 1
            clock += 0.001
            messages.append((clock, src, dst, payload))
    tracker = PairTracker(h.PROXY)
    pairs = feed_all(tracker, messages)
    for n, done in positions.items():
        names = sorted(p.name for p in pairs if p.call_id == f"reg-{n}")
        expected = [REGISTER_CHALLENGE] * (done >= 2) + [REGISTER_OK] * (done >= 4)
        assert names == sorted(expected)


def test_a_call_id_that_is_not_utf8_is_kept_escaped_so_every_output_can_encode_it(h):
    """sip-core keeps undecodable bytes as lone surrogates; the pair carries them escaped, so
    the samples CSV, the HTTP answer and log lines (strict UTF-8) never fail on a hostile one."""
    tracker = PairTracker(h.PROXY)
    flow = h.register_flow("reg-\xff", t0=50.0)
    raw = [
        (t, src, dst, payload.replace("reg-ÿ".encode(), b"reg-\xff"))
        for t, src, dst, payload in flow
    ]
    pairs = feed_all(tracker, raw)
    assert [p.call_id for p in pairs] == ["reg-\\xff", "reg-\\xff"]
    for pair in pairs:
        pair.call_id.encode("utf-8")  # strict: raises on a lone surrogate
    assert tracker.stats.pairs == {REGISTER_CHALLENGE: 1, REGISTER_OK: 1}
