"""Fuzz target: the digest challenge parser, on arbitrary and mutated WWW-/Proxy-Authenticate.

Whatever the text, `parse_challenge` and `challenge_of` raise only `ChallengeError`; a
challenge they accept can be answered, and the answer is one header line that a request
carries to the wire and parses back.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sip_core import (
    ChallengeError,
    DigestAuth,
    Headers,
    Request,
    Response,
    challenge_of,
    parse_challenge,
    parse_message,
)
from sip_core.digest import _auth_params

FUZZ = settings.get_profile("fuzz")

SEEDS = [
    'Digest realm="testbed.local", nonce="n1", qop="auth"',
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    'Digest realm="r", nonce="n", algorithm=MD5-sess, stale=TRUE',
    'Digest realm="ims.example", nonce="bm9uY2U=", algorithm=AKAv1-MD5, qop="auth"',
    'Basic realm="testbed.local"',
    'Digest realm="testbed.local", qop="auth"',
]
PIECES = ['"', "\\", ",", "=", " ", "\t", "\r\n", "\n", "\x00", "²", "Digest ", "-sess", ""]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            piece = draw(st.sampled_from(PIECES) | st.text(max_size=6))
            text = text[:position] + piece + text[position:]
        else:
            text = text[:position] + text[position + draw(st.integers(1, 8)) :]
    return text


def assert_names_the_problem(error: ChallengeError) -> None:
    assert error.reason.startswith(("WWW-Authenticate: ", "Proxy-Authenticate: ")), error.reason


def _request() -> Request:
    return Request(
        "REGISTER",
        "sip:testbed.local",
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5092;branch=z9hG4bK1"),
                ("From", "<sip:0100@testbed.local>;tag=a"),
                ("To", "<sip:0100@testbed.local>"),
                ("Call-ID", "c1"),
                ("CSeq", "1 REGISTER"),
            ]
        ),
    )


def _answer(value: str, proxy: bool) -> None:
    try:
        challenge = parse_challenge(value, proxy)
    except ChallengeError as exc:
        assert_names_the_problem(exc)
        return
    answered = DigestAuth("0100", "secret", cnonce=lambda: "c").authorize(_request(), challenge)
    again = parse_message(answered.to_bytes())
    # the credentials and Content-Length are the only lines added: no header smuggled in
    assert len(again.headers) == len(_request().headers) + 2
    credentials = again.headers.get(challenge.authorization_header)
    assert credentials is not None
    assert "\r" not in credentials
    assert "\n" not in credentials
    # the values we echo come back intact (quoted and escaped)
    echoed = _auth_params(credentials.removeprefix("Digest "), "credentials")
    assert (echoed["realm"], echoed["nonce"]) == (challenge.realm, challenge.nonce)
    assert echoed.get("opaque") == challenge.opaque


@FUZZ
@given(st.text(max_size=300), st.booleans())
def test_fuzz_arbitrary_challenges_raise_only_challenge_error(value, proxy):
    _answer(value, proxy)


@FUZZ
@given(mutated(), st.booleans())
@example("", False)
@example('Digest realm="r\nX-Injected: 1", nonce="n"', False)
@example('Digest realm="a\\"b", nonce="\\\\"', True)
def test_fuzz_mutated_challenges_raise_only_challenge_error(value, proxy):
    _answer(value, proxy)


@FUZZ
@given(st.sampled_from([401, 407]), st.lists(mutated() | st.text(max_size=80), max_size=4))
def test_fuzz_challenge_of_picks_a_usable_challenge_or_says_why_not(status, values):
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    response = Response(status, "", Headers([(name, v) for v in values]))
    try:
        challenge = challenge_of(response)
    except ChallengeError as exc:
        assert_names_the_problem(exc)
        return
    if challenge is not None:
        assert challenge.proxy == (status == 407)
        _answer(next(v for v in values if v.strip() and _usable(v, challenge.proxy)), status == 407)


def _usable(value: str, proxy: bool) -> bool:
    try:
        parse_challenge(value, proxy)
    except ChallengeError:
        return False
    return True
