"""HTTP Digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616, RFC 8760).

The challenge is parsed into a small frozen value; credentials are computed by pure functions;
`DigestAuth.auth_flow` is a generator in the shape of httpx's DigestAuth: it yields the request
to send, receives the final response, and yields the request again with credentials when
challenged; `next_request` drives it one response at a time, for a transaction user that gets
its responses as events.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass

from sip_core.errors import ChallengeError
from sip_core.message import Request, Response

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}

# yields the requests to send, is sent each one's final response (DigestAuth.auth_flow)
AuthFlow = Generator[Request, Response, None]


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate (401) or Proxy-Authenticate (407) challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False  # answered with Proxy-Authorization

    @property
    def authorization_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"


# A pod answers thousands of challenges a second from a few realms and nonces, for the same
# phones: the parsed challenges (read-only values) and the HA1 of each (user, realm, password)
# are kept, in caches emptied when full so hostile values cannot grow them without bound.
_CACHE_LIMIT = 4096
_challenges: dict[tuple[str, bool], Challenge] = {}
_ha1s: dict[tuple[str, str, str, str], str] = {}


def _auth_params(text: str, header: str) -> dict[str, str]:
    """key=value pairs separated by commas; values may be quoted (with backslash escapes)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise ChallengeError(f"{header}: parameter without '=' in {text[:80]!r}")
        key = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                raise ChallengeError(f"{header}: unterminated quoted value for {key}")
            i += 1
            params[key] = "".join(value)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            params[key] = text[i:end].strip()
            i = end
    return params


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def parse_challenge(value: str, proxy: bool = False) -> Challenge:
    """One challenge; raises ChallengeError (a ParseError) naming what makes it unusable."""
    cached = _challenges.get((value, proxy))
    if cached is not None:
        return cached
    challenge = _parse_challenge(value, proxy)
    if len(_challenges) >= _CACHE_LIMIT:
        _challenges.clear()
    _challenges[(value, proxy)] = challenge
    return challenge


def _parse_challenge(value: str, proxy: bool) -> Challenge:
    header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    parts = value.split(None, 1)
    if not parts:
        raise ChallengeError(f"{header}: empty")
    if parts[0].lower() != "digest":
        raise ChallengeError(f"{header}: scheme {parts[0][:20]!r} is not Digest")
    params = _auth_params(parts[1] if len(parts) == 2 else "", header)
    for required in ("realm", "nonce"):
        if required not in params:
            raise ChallengeError(f"{header}: no {required}")
    algorithm = params.get("algorithm", "MD5")
    if algorithm.upper().removesuffix("-SESS") not in _HASHES:
        raise ChallengeError(f"{header}: unsupported algorithm {algorithm[:20]!r}")
    for key in ("realm", "nonce", "opaque"):
        # the values go back in our Authorization header: no line breaks or other controls
        if _has_control(params.get(key, "")):
            raise ChallengeError(f"{header}: control characters in {key}")
    qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def challenge_of(response: Response) -> Challenge | None:
    """The first usable digest challenge of a 401 or 407, or None when it carries none.

    A server may offer several (RFC 7616 3.7: one per algorithm); when none of them can be
    answered this raises ChallengeError with each one's reason, for the caller to record.
    """
    if response.status == 401:
        values, proxy = response.headers.get_all("www-authenticate"), False
    elif response.status == 407:
        values, proxy = response.headers.get_all("proxy-authenticate"), True
    else:
        return None
    reasons = []
    for raw in values:
        if not raw.strip():
            continue
        try:
            return parse_challenge(raw, proxy)
        except ChallengeError as exc:
            reasons.append(exc.reason)
    if not reasons:
        return None
    raise ChallengeError("; ".join(reasons))


def digest_response(
    challenge: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str = "",
    body: bytes = b"",
) -> tuple[str, str | None]:
    """(response digest, qop used) as RFC 7616 3.4.1 computes it."""
    algorithm = challenge.algorithm.upper()
    session = algorithm.endswith("-SESS")
    hash_ = _HASHES[algorithm.removesuffix("-SESS")]

    def h(text: str) -> str:
        return hash_(text.encode("utf-8", "surrogateescape"))

    key = (algorithm, username, challenge.realm, password)
    ha1 = _ha1s.get(key)
    if ha1 is None:
        ha1 = h(f"{username}:{challenge.realm}:{password}")
        if len(_ha1s) >= _CACHE_LIMIT:
            _ha1s.clear()
        _ha1s[key] = ha1
    if session:
        ha1 = h(f"{ha1}:{challenge.nonce}:{cnonce}")
    qop = (
        "auth" if "auth" in challenge.qop else ("auth-int" if "auth-int" in challenge.qop else None)
    )
    ha2 = h(f"{method}:{uri}") if qop != "auth-int" else h(f"{method}:{uri}:{hash_(body)}")
    if qop is None:
        return h(f"{ha1}:{challenge.nonce}:{ha2}"), None
    return h(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}"), qop


def credentials(
    challenge: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    nc: int = 1,
    cnonce: str = "",
    body: bytes = b"",
) -> str:
    """The value of the Authorization / Proxy-Authorization header answering `challenge`."""
    response, qop = digest_response(challenge, username, password, method, uri, nc, cnonce, body)
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    if qop:
        parts += [f"qop={qop}", f"nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
    return "Digest " + ", ".join(parts)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class DigestAuth:
    """Answers 401/407 challenges; one instance per user keeps nonce counts between requests."""

    def __init__(
        self, username: str, password: str, cnonce: Callable[[], str] = lambda: os.urandom(8).hex()
    ) -> None:
        self.username = username
        self.password = password
        self._cnonce = cnonce
        self._nonce_counts: dict[str, int] = {}

    def authorize(self, request: Request, challenge: Challenge) -> Request:
        """`request` with credentials for `challenge` (the caller renews CSeq and branch)."""
        nc = self._nonce_counts.get(challenge.nonce, 0) + 1
        self._nonce_counts[challenge.nonce] = nc
        value = credentials(
            challenge,
            self.username,
            self.password,
            request.method,
            request.uri,
            nc,
            self._cnonce(),
            request.body,
        )
        headers = request.headers.replace(challenge.authorization_header, value)
        return request.with_headers(headers, same_via_and_cseq=True)

    def auth_flow(self, request: Request, renew: Callable[[Request], Request]) -> AuthFlow:
        """Yield the request; on a challenge yield it again (renewed: new CSeq and branch) with
        credentials. A second challenge ends the flow unless it says stale=true (RFC 7616), and
        only one stale retry is made: a server that keeps saying stale cannot loop us. Send it
        final responses only. A challenge that cannot be answered raises ChallengeError."""
        response = yield request
        answered_stale = False
        tries = 0
        while True:
            challenge = challenge_of(response)
            if challenge is None:
                return
            if tries >= 1 and not (challenge.stale and not answered_stale):
                return  # the credentials themselves were refused
            answered_stale = answered_stale or (tries >= 1 and challenge.stale)
            tries += 1
            request = self.authorize(renew(request), challenge)
            response = yield request


def next_request(flow: AuthFlow, response: Response) -> Request | None:
    """The flow's answer to a final response: the request again with credentials, or None when
    the flow is done (not challenged, or challenged again after the credentials). Raises
    ChallengeError for a challenge that cannot be answered; the flow is done after it."""
    try:
        return flow.send(response)
    except StopIteration:
        return None
