"""judge, validate, generate and bearer at the string level."""

import pytest

from api_token import ENV_NAME, MIN_LENGTH, Verdict, bearer, generate, judge, validate

TOKEN = "s3cr3t-t0ken-0123456789abcdef"


@pytest.mark.parametrize(
    ("authorization", "verdict"),
    [
        (None, Verdict.MISSING),
        ("", Verdict.MISSING),
        ("   ", Verdict.MISSING),
        ("Bearer", Verdict.MISSING),
        ("Bearer   ", Verdict.MISSING),
        (f"Basic {TOKEN}", Verdict.MISSING),
        (TOKEN, Verdict.MISSING),  # the bare token, no scheme
        (f"Bearer{TOKEN}", Verdict.MISSING),  # no space after the scheme
        (f"Bearer\t{TOKEN}", Verdict.MISSING),  # RFC 7235: 1*SP, not a tab
        (f"Bearer {TOKEN}", Verdict.ACCEPTED),
        (f"bearer {TOKEN}", Verdict.ACCEPTED),
        (f"BEARER {TOKEN}", Verdict.ACCEPTED),
        (f"Bearer   {TOKEN}", Verdict.ACCEPTED),
        (f"  Bearer {TOKEN}  ", Verdict.ACCEPTED),
        (f"Bearer {TOKEN}x", Verdict.WRONG),
        (f"Bearer {TOKEN[:-1]}", Verdict.WRONG),
        (f"Bearer {TOKEN.upper()}", Verdict.WRONG),  # the token itself is case-sensitive
        (f"Bearer {TOKEN} {TOKEN}", Verdict.WRONG),
        ("Bearer wrong-token-0123456789", Verdict.WRONG),
        ("Bearer \u00fcber-token-0123456789", Verdict.WRONG),  # non-ASCII: compared as bytes
        ("Bearer \udcff", Verdict.WRONG),  # a lone surrogate does not raise
    ],
)
def test_judge(authorization, verdict):
    assert judge(authorization, TOKEN) is verdict


@pytest.mark.parametrize("authorization", [None, "", f"Bearer {TOKEN}", "Bearer x"])
@pytest.mark.parametrize("expected", [None, ""])
def test_a_server_without_a_token_refuses_everything(authorization, expected):
    assert judge(authorization, expected) is Verdict.UNCONFIGURED


def test_verdicts_are_distinct_and_fixed():
    assert len({verdict.value for verdict in Verdict}) == 4
    with pytest.raises(AttributeError):
        Verdict.ACCEPTED.value = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("", "is empty"),
        ("abcdefgh ijklmnopqrst", "whitespace"),
        ("abcdefghijklmnopqrst\n", "whitespace"),
        ("\tabcdefghijklmnopqrst", "whitespace"),
        ("abcdefghijklmnopqrst\u00a0", "whitespace"),
        ("abcdefghijklmnopqrst\x00", "visible ASCII"),
        ("abcdefghijklmnopqrst\x7f", "visible ASCII"),
        ("\u00fcberabcdefghijklmnopqrst", "visible ASCII"),
        ("a" * (MIN_LENGTH - 1), "too short: 15 characters"),
        ("x", "too short"),
    ],
)
def test_validate_refuses(token, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        validate(token)
    message = str(caught.value)
    assert message.startswith(ENV_NAME)
    if token.strip():
        assert token.strip() not in message  # the token is never echoed


@pytest.mark.parametrize("token", ["a" * MIN_LENGTH, TOKEN, "!~\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"])
def test_validate_accepts_visible_ascii(token):
    assert validate(token) == token


def test_generate():
    tokens = {generate() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert len(token) == 43  # 32 bytes in unpadded base64
        assert validate(token) == token
        assert judge(f"Bearer {token}", token) is Verdict.ACCEPTED
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_bearer():
    assert bearer(TOKEN) == {"Authorization": f"Bearer {TOKEN}"}
    assert judge(bearer(TOKEN)["Authorization"], TOKEN) is Verdict.ACCEPTED
    with pytest.raises(ValueError, match="whitespace"):
        bearer("abcdefghijklmnop\r\nX-Injected: 1")
