"""Digest vectors from RFC 2617 3.5 and RFC 7616 3.9.1, then the SIP-shaped flows."""

from __future__ import annotations

import pytest

from sip_core import (
    Challenge,
    ChallengeError,
    DigestAuth,
    Headers,
    ParseError,
    Request,
    Response,
    challenge_of,
    credentials,
    next_request,
    parse_challenge,
)
from sip_core.digest import digest_response


def test_rfc2617_md5_qop_auth_vector():
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    response, qop = digest_response(
        challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", 1, "0a4f113b"
    )
    assert (response, qop) == ("6629fae49393a05397450978507c4ef1", "auth")


RFC7616 = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={alg}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm, expected):
    challenge = parse_challenge(RFC7616.format(alg=algorithm))
    response, _ = digest_response(
        challenge,
        "Mufasa",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        1,
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert response == expected


def test_challenge_fields_and_stale():
    challenge = parse_challenge(
        'Digest realm="testbed.local", nonce="abc", qop="auth", stale=TRUE, algorithm=SHA-256',
        proxy=True,
    )
    assert challenge == Challenge("testbed.local", "abc", "SHA-256", ("auth",), None, True, True)
    assert challenge.authorization_header == "Proxy-Authorization"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('Basic realm="x"', "not Digest"),
        ('Digest nonce="n"', "no realm"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "unsupported algorithm"),
        ('Digest nonce="n", realm="r', "unterminated"),
    ],
)
def test_bad_challenges(value, reason):
    with pytest.raises(ParseError, match=reason):
        parse_challenge(value)


def test_credentials_without_qop_follow_rfc2069():
    challenge = Challenge("testbed.local", "n0nce")
    value = credentials(challenge, "0100", "0100", "REGISTER", "sip:testbed.local")
    assert "qop" not in value
    assert 'response="' in value


def _request(cseq: int = 1) -> Request:
    return Request(
        "INVITE",
        "sip:0101@testbed.local",
        Headers(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bK{cseq}"),
                ("From", "<sip:0100@testbed.local>;tag=a"),
                ("To", "<sip:0101@testbed.local>"),
                ("Call-ID", "c1"),
                ("CSeq", f"{cseq} INVITE"),
            ]
        ),
    )


def _challenge_response(status: int, stale: bool = False) -> Response:
    name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
    value = f'Digest realm="testbed.local", nonce="n{int(stale)}", qop="auth"' + (
        ", stale=true" if stale else ""
    )
    return Response(status, "", Headers([(name, value)]))


def _renew(request: Request) -> Request:
    number = request.cseq.number + 1
    return _request(number)


def test_flow_answers_a_407_with_proxy_authorization_and_renewed_cseq():
    auth = DigestAuth("0100", "0100", cnonce=lambda: "cafe")
    flow = auth.auth_flow(_request(), _renew)
    first = next(flow)
    assert first.headers.get("proxy-authorization") is None
    second = flow.send(_challenge_response(407))
    assert second.cseq.number == 2
    assert second.top_via.branch == "z9hG4bK2"
    value = second.headers.get("proxy-authorization")
    assert value is not None
    assert 'username="0100"' in value
    assert "nc=00000001" in value
    assert 'cnonce="cafe"' in value
    with pytest.raises(StopIteration):
        flow.send(Response(200, "OK", Headers()))


def test_flow_gives_up_when_challenged_again_but_retries_a_stale_nonce_once():
    auth = DigestAuth("0100", "wrong")
    flow = auth.auth_flow(_request(), _renew)
    next(flow)
    flow.send(_challenge_response(401))
    with pytest.raises(StopIteration):
        flow.send(_challenge_response(401))  # wrong password: no endless loop

    flow = auth.auth_flow(_request(), _renew)
    next(flow)
    flow.send(_challenge_response(401))
    third = flow.send(_challenge_response(401, stale=True))
    assert third.headers.get("authorization") is not None
    with pytest.raises(StopIteration):
        flow.send(_challenge_response(401, stale=True))


def test_a_server_that_keeps_saying_stale_gets_one_stale_retry():
    """Challenge, stale, stale ...: three requests in all, then the flow ends (no loop)."""
    auth = DigestAuth("0100", "0100")
    flow = auth.auth_flow(_request(), _renew)
    sent = [next(flow)]
    while (again := next_request(flow, _challenge_response(407, stale=True))) is not None:
        sent.append(again)
        assert len(sent) < 10, "the stale retries are not bounded"
    assert [request.cseq.number for request in sent] == [1, 2, 3]


def test_next_request_drives_the_flow_one_response_at_a_time():
    auth = DigestAuth("0100", "0100", cnonce=lambda: "cafe")
    flow = auth.auth_flow(_request(), _renew)
    next(flow)
    second = next_request(flow, _challenge_response(401))
    assert second is not None
    assert second.cseq.number == 2
    assert "authorization" in second.headers
    assert next_request(flow, Response(200, "OK", Headers())) is None
    assert next_request(flow, Response(200, "OK", Headers())) is None  # done stays done

    refused = auth.auth_flow(_request(), _renew)
    next(refused)
    assert next_request(refused, Response(486, "Busy Here", Headers())) is None


def test_an_unusable_challenge_raises_out_of_the_flow_and_ends_it():
    auth = DigestAuth("0100", "0100")
    flow = auth.auth_flow(_request(), _renew)
    next(flow)
    aka = Headers([("Proxy-Authenticate", 'Digest realm="r", nonce="n", algorithm=AKAv1-MD5')])
    with pytest.raises(ChallengeError, match="unsupported algorithm 'AKAv1-MD5'"):
        next_request(flow, Response(407, "Proxy Authentication Required", aka))
    assert next_request(flow, _challenge_response(407)) is None


def test_nonce_count_increments_per_nonce():
    auth = DigestAuth("0100", "0100", cnonce=lambda: "c")
    challenge = challenge_of(_challenge_response(401))
    assert challenge is not None
    first = auth.authorize(_request(), challenge).headers.get("authorization") or ""
    second = auth.authorize(_request(2), challenge).headers.get("authorization") or ""
    assert "nc=00000001" in first
    assert "nc=00000002" in second


def test_cached_challenges_and_ha1s_stay_bounded_and_answers_stay_right():
    """Parsed challenges and HA1s are kept per value; a flood of distinct ones (a hostile
    server's nonces, many users) empties the caches instead of growing them, and a password or
    realm that differs still gets its own digest."""
    from sip_core import digest

    values = [f'Digest realm="r{i % 7}", nonce="n{i}", qop="auth"' for i in range(5000)]
    for i, value in enumerate(values):
        challenge = parse_challenge(value, proxy=True)
        assert parse_challenge(value, proxy=True) is challenge
        assert parse_challenge(value) == Challenge(f"r{i % 7}", f"n{i}", qop=("auth",))
        digest_response(challenge, f"user{i}", "pw", "INVITE", "sip:x", 1, "c")
        assert len(digest._challenges) <= digest._CACHE_LIMIT
        assert len(digest._ha1s) <= digest._CACHE_LIMIT
    challenge = parse_challenge(values[0])
    first = digest_response(challenge, "u", "one", "INVITE", "sip:x", 1, "c")
    assert digest_response(challenge, "u", "one", "INVITE", "sip:x", 1, "c") == first
    assert digest_response(challenge, "u", "two", "INVITE", "sip:x", 1, "c") != first
    other_realm = parse_challenge('Digest realm="elsewhere", nonce="n0", qop="auth"')
    assert digest_response(other_realm, "u", "one", "INVITE", "sip:x", 1, "c") != first
