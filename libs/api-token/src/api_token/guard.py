"""FastAPI side: the app's TokenGuard, the ``require_token`` dependency, the WebSocket check.

An app creates ``TokenGuard(settings.api_token)`` in its lifespan and stores it in
``app.state.token_guard``; state-changing routes depend on ``require_token`` (as a
``RequireToken`` parameter or ``dependencies=[Depends(require_token)]``); WebSocket
endpoints call ``admits_websocket`` before accepting.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, WebSocket, status
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from api_token.token import ENV_NAME, Verdict, judge, validate

REALM: Final = "ims-testbed"
CHALLENGE: Final = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
STATE_ATTRIBUTE: Final = "token_guard"

DETAIL_MISSING: Final = "missing bearer token: send the header 'Authorization: Bearer <API_TOKEN>'"
DETAIL_WRONG: Final = "wrong API token"
DETAIL_UNCONFIGURED: Final = f"no API token configured (set {ENV_NAME})"
DETAIL_NO_GUARD: Final = f"no token guard on this app (app.state.{STATE_ATTRIBUTE} is not set)"


class TokenGuard:
    """The token a server expects, or None: then every guarded request is refused (503).

    An empty string counts as unset (``API_TOKEN=`` in an environment file); any other
    value must pass ``validate`` or the constructor raises ValueError, so a bad setting
    stops the app at startup. The token never appears in the repr.
    """

    __slots__ = ("_expected",)

    def __init__(self, token: str | None) -> None:
        self._expected: str | None = validate(token) if token else None

    def __repr__(self) -> str:
        return f"TokenGuard(configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self._expected is not None

    def judge(self, headers: Headers) -> Verdict:
        """The verdict on a request's or a handshake's headers (only ``Authorization``)."""
        return judge(_authorization(headers), self._expected)

    def check(self, connection: HTTPConnection) -> None:
        """Raise the HTTPException for anything but an accepted token."""
        verdict = self.judge(connection.headers)
        if verdict is Verdict.ACCEPTED:
            return
        if verdict is Verdict.MISSING:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, DETAIL_MISSING, headers=dict(CHALLENGE)
            )
        if verdict is Verdict.WRONG:
            raise HTTPException(status.HTTP_403_FORBIDDEN, DETAIL_WRONG)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DETAIL_UNCONFIGURED)

    def admits_websocket(self, websocket: WebSocket) -> bool:
        """Whether a WebSocket handshake carries the token in its Authorization header.

        Only the header counts: never a query parameter, a token must not go in a URL.
        On False the endpoint closes before accepting, with code 1008 (policy violation).
        """
        return self.judge(websocket.headers) is Verdict.ACCEPTED


def _authorization(headers: Headers) -> str | None:
    """The one Authorization value; none, or several (ambiguous), give None."""
    values = headers.getlist("authorization")
    return values[0] if len(values) == 1 else None


def token_guard(connection: HTTPConnection) -> TokenGuard | None:
    """The app's TokenGuard from ``app.state.token_guard``, None if the app has none."""
    guard = getattr(connection.app.state, STATE_ATTRIBUTE, None)
    return guard if isinstance(guard, TokenGuard) else None


def require_token(request: Request) -> None:
    """Dependency: 401 without a bearer token, 403 for a wrong one, 503 if none is set up."""
    guard = token_guard(request)
    if guard is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, DETAIL_NO_GUARD)
    guard.check(request)


RequireToken = Annotated[None, Depends(require_token)]
