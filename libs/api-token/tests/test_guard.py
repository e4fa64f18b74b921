"""The guard in a tiny FastAPI app, through TestClient (no server, no network)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api_token import bearer, generate
from api_token.guard import RequireToken, TokenGuard, require_token

TOKEN = generate()
CHALLENGE = 'Bearer realm="ims-testbed"'


def make_app(token: str | None, *, install_guard: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if install_guard:
            app.state.token_guard = TokenGuard(token)  # from the app's settings in a service
        yield

    app = FastAPI(lifespan=lifespan)
    state = {"count": 0}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/count")
    async def count(_: RequireToken) -> dict[str, int]:
        state["count"] += 1
        return state

    router = APIRouter(dependencies=[Depends(require_token)])

    @router.delete("/count")
    async def reset() -> dict[str, int]:
        state["count"] = 0
        return state

    app.include_router(router)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        if not websocket.app.state.token_guard.admits_websocket(websocket):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await websocket.send_text("welcome")
        await websocket.close()

    return app


@pytest.fixture
def client():
    with TestClient(make_app(TOKEN)) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), [("POST", "/count"), ("DELETE", "/count")])
def test_without_a_header_401_with_a_challenge(client, method, path):
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    ["", f"Basic {TOKEN}", TOKEN, "Bearer", f"Token {TOKEN}"],
    # ids without the token, which is random: parallel workers must collect the same names
    ids=["empty", "basic", "bare-token", "bearer-without-token", "other-scheme"],
)
def test_no_bearer_token_is_401(client, authorization):
    response = client.post("/count", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE


def test_two_authorization_headers_are_401(client):
    headers = [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")]
    response = client.post("/count", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), [("POST", "/count"), ("DELETE", "/count")])
def test_a_wrong_token_is_403_and_not_echoed(client, method, path):
    wrong = "not-the-token-0123456789"
    response = client.request(method, path, headers=bearer(wrong))
    assert response.status_code == 403
    assert "www-authenticate" not in response.headers
    assert response.json() == {"detail": "wrong API token"}
    assert wrong not in response.text


def test_the_right_token_is_200_and_the_route_runs(client):
    assert client.post("/count", headers=bearer(TOKEN)).json() == {"count": 1}
    assert client.post("/count", headers={"Authorization": f"bearer {TOKEN}"}).json() == {
        "count": 2
    }
    response = client.delete("/count", headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.json() == {"count": 0}


def test_a_refused_request_does_not_run_the_route(client):
    client.post("/count")
    client.post("/count", headers=bearer("not-the-token-0123456789"))
    assert client.post("/count", headers=bearer(TOKEN)).json() == {"count": 1}


def test_health_stays_open(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("configured", [None, ""])
def test_unconfigured_is_503_even_with_a_token(configured):
    with TestClient(make_app(configured)) as client:
        for headers in ({}, bearer(TOKEN)):
            response = client.post("/count", headers=headers)
            assert response.status_code == 503
            assert response.json() == {"detail": "no API token configured (set API_TOKEN)"}
        assert client.get("/health").status_code == 200


def test_an_app_without_a_guard_refuses():
    with TestClient(make_app(TOKEN, install_guard=False)) as client:
        response = client.post("/count", headers=bearer(TOKEN))
        assert response.status_code == 503
        assert "token_guard" in response.json()["detail"]


def test_a_bad_setting_stops_the_app_at_startup():
    with pytest.raises(ValueError, match="too short"), TestClient(make_app("short")):
        pass


def test_the_guard_does_not_show_its_token():
    guard = TokenGuard(TOKEN)
    assert guard.configured
    assert TOKEN not in repr(guard)
    assert not TokenGuard(None).configured
    assert not TokenGuard("").configured


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
def test_a_websocket_without_the_token_is_closed_1008(client, headers):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws", headers=headers),
    ):
        pass
    assert closed.value.code == 1008


def test_a_websocket_token_in_the_query_string_does_not_count(client):
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(f"/ws?token={TOKEN}&access_token={TOKEN}"),
    ):
        pass
    assert closed.value.code == 1008


def test_a_websocket_with_the_token_is_accepted(client):
    with client.websocket_connect("/ws", headers=bearer(TOKEN)) as websocket:
        assert websocket.receive_text() == "welcome"


def test_an_unconfigured_server_closes_websockets():
    with TestClient(make_app(None)) as client:
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/ws", headers=bearer(TOKEN)),
        ):
            pass
        assert closed.value.code == 1008
