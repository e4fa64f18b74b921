"""The API token as data: generate, validate, judge an Authorization header (no FastAPI here).

One setting everywhere: the environment variable ``API_TOKEN``. The server compares the
bearer token of a request with it in constant time; a server without a token refuses every
state-changing request (closed, not open).
"""

from __future__ import annotations

import enum
import hmac
import secrets

ENV_NAME = "API_TOKEN"
MIN_LENGTH = 16
_SCHEME = "bearer"  # RFC 7235 2.1: the auth-scheme is case-insensitive


class Verdict(enum.Enum):
    """What the server makes of one request's Authorization header."""

    ACCEPTED = "accepted"
    MISSING = "missing"  # no header, a blank one, no token or another scheme than Bearer
    WRONG = "wrong"  # a bearer token that is not the configured one
    UNCONFIGURED = "unconfigured"  # the server has no token: every mutating request refused


def generate() -> str:
    """A fresh token: 32 random bytes, URL-safe base64 (43 characters, RFC 6750 b64token)."""
    return secrets.token_urlsafe(32)


def validate(token: str) -> str:
    """Return ``token`` if it can serve as the API token, else raise ValueError saying why.

    A token is at least MIN_LENGTH characters of visible ASCII (0x21-0x7E): no whitespace,
    no control characters, nothing that could end or split a header line. The message never
    contains the token itself.
    """
    if token == "":
        raise ValueError(f"{ENV_NAME} is empty")
    if any(char.isspace() for char in token):
        raise ValueError(f"{ENV_NAME} contains whitespace")
    if any(not "\x21" <= char <= "\x7e" for char in token):
        raise ValueError(f"{ENV_NAME} contains characters other than visible ASCII (0x21-0x7E)")
    if len(token) < MIN_LENGTH:
        raise ValueError(
            f"{ENV_NAME} is too short: {len(token)} characters, at least {MIN_LENGTH} needed"
        )
    return token


def bearer(token: str) -> dict[str, str]:
    """The request header that presents ``token`` (validated first, so it cannot inject)."""
    return {"Authorization": f"Bearer {validate(token)}"}


def judge(authorization: str | None, expected: str | None) -> Verdict:
    """Judge an Authorization header value against the server's token.

    ``expected`` None or empty means the server has no token: UNCONFIGURED, whatever the
    request carries. The header is ``Bearer`` (any case), one or more spaces, the token;
    surrounding whitespace is ignored. The tokens are compared with hmac.compare_digest.
    """
    if not expected:
        return Verdict.UNCONFIGURED
    if authorization is None:
        return Verdict.MISSING
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != _SCHEME or not credentials:
        return Verdict.MISSING
    presented = credentials.encode("utf-8", "surrogatepass")
    if hmac.compare_digest(presented, expected.encode("utf-8", "surrogatepass")):
        return Verdict.ACCEPTED
    return Verdict.WRONG
