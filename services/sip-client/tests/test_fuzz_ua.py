"""Fuzz target: the pod's datagram handler. A pod with calls and registrations under way gets
mutated answers to its own requests (challenges included) and mutated requests; it never
raises, and every datagram it cannot use is counted as malformed."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sip_client.records import MalformedInput
from sip_client.ua import PodConfig, SoftphonePod
from sip_core import IdSource, NameAddr, Request, Response, make_response, parse_message

FUZZ = settings.get_profile("fuzz")
LB = ("127.0.0.1", 5060)
LOCAL = ("127.0.2.1", 5070)
CHALLENGES = [
    'Digest realm="testbed.local", nonce="n1", qop="auth"',
    'Digest realm="testbed.local", nonce="n1", algorithm=AKAv1-MD5',
    'Basic realm="testbed.local"',
    'Digest realm="testbed.local", nonce="n1", stale=true',
]
HOSTILE = ["²", "\u0663", "9" * 5000, "\n", "\r", "\x00", ";", ",", '"', "<", "", " ", "-1"]


def _pod_with_work() -> tuple[SoftphonePod, list[bytes]]:
    """A pod that registered its phones and placed a call, and the answers a proxy would send."""
    pod = SoftphonePod(
        PodConfig(pod="00", phones=2, local=LOCAL, outbound=LB), IdSource(random.Random(7))
    )
    pod.register_all(0.0)
    pod.call("0001", "0100", now=0.0, hold_ms=10, call_id="fuzz-call")
    seeds: list[Request | Response] = []
    contact = NameAddr("sip:0100@127.0.2.2:5070", params={"expires": "3600"})
    for data, _peer in pod.datagrams_to_send():
        request = parse_message(data)
        assert isinstance(request, Request)
        for challenge in CHALLENGES:
            name = "Proxy-Authenticate" if request.method == "INVITE" else "WWW-Authenticate"
            status = 407 if request.method == "INVITE" else 401
            seeds.append(make_response(request, status, to_tag="t", extra=[(name, challenge)]))
        seeds.append(make_response(request, 180, to_tag="t", contact=contact))
        seeds.append(make_response(request, 200, to_tag="t", contact=contact))
        seeds.append(make_response(request, 486, to_tag="t"))
        # the same request coming back at the pod, as another UA's call would
        seeds.append(request)
    return pod, [m.to_bytes() for m in seeds]


_, SEEDS = _pod_with_work()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "replace", "cut"]))
        if kind == "cut":
            data = data[:position]
            continue
        piece = draw(st.sampled_from(HOSTILE) | st.text(max_size=6)).encode("utf-8", "replace")
        end = position + (draw(st.integers(1, 6)) if kind == "replace" else 0)
        data = data[:position] + piece + data[end:]
    return data


@FUZZ
@given(st.lists(st.tuples(mutated() | st.binary(max_size=200), st.floats(0, 40)), max_size=12))
def test_fuzz_the_pod_takes_any_datagram_without_raising(datagrams):
    pod, _ = _pod_with_work()
    pod.datagrams_to_send()
    malformed = 0
    for data, now in sorted(datagrams, key=lambda d: d[1]):
        pod.receive_datagram(data, LB, now)
        pod.handle_timer(now)
        for data_out, _peer in pod.datagrams_to_send():
            parse_message(data_out)  # whatever the pod sends is well-formed
        malformed += sum(isinstance(e, MalformedInput) for e in pod.take_events())
    assert pod.counters["malformed"] == malformed <= len(datagrams)
