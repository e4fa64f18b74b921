"""The API token (API_TOKEN) at the pod: its POST routes refuse a request without it (401), with
a wrong one (403), a cross-site form post (401), and send nothing over SIP; the controller link
presents it in the WebSocket handshake and reports a refusal."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from api_token import Verdict, bearer, judge
from sip_client.config import Settings
from sip_client.controller_link import ControllerLink
from sip_client.main import create_app
from sip_client.runtime import PodRuntime
from sip_client.ua import PodConfig
from testbed_messages import Welcome, decode_client, encode

TOKEN = "test-token-of-the-sip-client"
WRONG = bearer("a-wrong-token-of-the-right-length")
EVIL = "http://evil.example"
CALL = {"caller": "0001", "callee": "0100", "call_id": "auth-test@pod00"}


@dataclass
class Pod:
    api: TestClient
    proxy: socket.socket  # the stand-in load balancer: every SIP request of the pod lands here

    def sip_sent(self) -> list[str]:
        """The first lines of what the pod sent over SIP so far."""
        lines = []
        while True:
            try:
                lines.append(self.proxy.recv(65536).decode(errors="replace").split("\r\n")[0])
            except TimeoutError:
                return lines


def pod_api(token: str | None) -> Iterator[Pod]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.settimeout(0.3)
        settings = Settings(
            pod_id="00",
            phones=2,
            outbound_proxy=f"127.0.0.1:{proxy.getsockname()[1]}",
            api_token=token,
        )
        with TestClient(create_app(settings, CollectorRegistry())) as api:
            yield Pod(api, proxy)


@pytest.fixture
def pod() -> Iterator[Pod]:
    yield from pod_api(TOKEN)


@pytest.fixture
def unconfigured() -> Iterator[Pod]:
    yield from pod_api(None)


ROUTES = [("/register", None, "REGISTER"), ("/calls", CALL, "INVITE")]


@pytest.mark.parametrize(("path", "body", "method"), ROUTES)
def test_a_post_without_the_token_is_refused_and_sends_nothing(pod: Pod, path, body, method):
    before = (pod.api.get("/phones").json(), pod.api.get("/calls").json())
    attempts = {
        "no token": ({}, 401),
        "a wrong token": (WRONG, 403),
        # what a page on another site can make a browser send: a form post, no Authorization
        "cross-site form": (
            {"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},
            401,
        ),
    }
    for what, (headers, status) in attempts.items():
        answer = pod.api.post(path, headers=headers, json=body)
        assert answer.status_code == status, f"{what}: {answer.text}"
        assert "access-control-allow-origin" not in answer.headers
        assert (pod.api.get("/phones").json(), pod.api.get("/calls").json()) == before, what
    assert pod.sip_sent() == []

    answer = pod.api.post(path, json=body, headers=bearer(TOKEN))
    assert answer.status_code == 202, answer.text
    assert any(line.startswith(f"{method} ") for line in pod.sip_sent())


@pytest.mark.parametrize("path", ["/register", "/calls"])
def test_a_cors_preflight_from_another_origin_is_not_granted(pod: Pod, path: str):
    answer = pod.api.options(
        path,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "access-control-allow-origin" not in answer.headers
    assert not answer.is_success


def test_a_pod_without_api_token_refuses_every_post_with_503(unconfigured: Pod):
    for path, body, _ in ROUTES:
        for headers in ({}, WRONG):
            answer = unconfigured.api.post(path, json=body, headers=headers)
            assert answer.status_code == 503, answer.text
            assert "API_TOKEN" in answer.json()["detail"]
    assert unconfigured.sip_sent() == []
    assert unconfigured.api.get("/health").status_code == 200


def test_reads_stay_open_without_a_token(pod: Pod):
    for path in ("/health", "/phones", "/calls", "/metrics"):
        assert pod.api.get(path).status_code == 200, path


def test_every_operation_that_is_not_a_get_requires_the_token(pod: Pod):
    operations = {
        (method.upper(), path)
        for path, item in pod.api.get("/openapi.json").json()["paths"].items()
        for method in item
        if method != "get"
    }
    assert operations == {("POST", "/register"), ("POST", "/calls")}
    for method, path in operations:
        answer = pod.api.request(method, re.sub(r"\{\w+\}", "x", path))
        assert answer.status_code == 401, (method, path, answer.text)


def test_a_controller_url_without_api_token_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv("API_TOKEN", raising=False)
    monkeypatch.setenv("SCENARIO_CONTROLLER_URL", "ws://127.0.0.1:8001/ws/clients")
    with pytest.raises(ValidationError, match="SCENARIO_CONTROLLER_URL is set but API_TOKEN"):
        Settings()
    monkeypatch.setenv("API_TOKEN", TOKEN)
    assert Settings().api_token == TOKEN


def test_a_malformed_api_token_stops_the_pod_at_startup():
    app = create_app(Settings(api_token="tiny-token"), CollectorRegistry())
    with pytest.raises(ValueError, match="API_TOKEN is too short") as error, TestClient(app):
        pass
    assert "tiny-token" not in str(error.value)


class GuardedController:
    """A stand-in for the scenario controller's /ws/clients: it refuses a handshake whose
    Authorization header is not `Bearer TOKEN` (HTTP 403, as the controller's close before
    accept answers) and welcomes the pod otherwise."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.welcomed = asyncio.Event()
        self.three_attempts = asyncio.Event()

    def check(self, _connection: ServerConnection, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization")
        self.authorizations.append(authorization)
        if len(self.authorizations) >= 3:
            self.three_attempts.set()
        if judge(authorization, TOKEN) is Verdict.ACCEPTED:
            return None
        return Response(403, "Forbidden", Headers(), b"")

    async def handler(self, ws: ServerConnection) -> None:
        hello = decode_client(await ws.recv())
        await ws.send(encode(Welcome(pod=hello.pod)))  # type: ignore[union-attr]
        self.welcomed.set()
        await ws.wait_closed()


@pytest.mark.parametrize(
    ("token", "welcomed"),
    [(TOKEN, True), ("a-wrong-token-of-the-right-length", False), (None, False)],
    ids=["the token", "a wrong token", "no token"],
)
def test_the_link_presents_the_token_in_the_handshake(token: str | None, welcomed: bool):
    async def main() -> tuple[ControllerLink, GuardedController]:
        runtime = PodRuntime(
            PodConfig(pod="00", phones=2, local=("127.0.0.1", 0), outbound=("127.0.0.1", 9)),
            records_limit=10,
            socket_buffer=65536,
        )
        await runtime.start()
        controller = GuardedController()
        server = await serve(controller.handler, "127.0.0.1", 0, process_request=controller.check)
        port = next(iter(server.sockets)).getsockname()[1]
        link = ControllerLink(
            f"ws://127.0.0.1:{port}", runtime, 0.1, 0, backoff=(0.05, 0.1), token=token
        )
        task = asyncio.create_task(link.run())
        try:
            if welcomed:
                await asyncio.wait_for(controller.welcomed.wait(), 5)
                assert link.refused_reason == ""
            else:
                # refused, and it keeps trying
                await asyncio.wait_for(controller.three_attempts.wait(), 5)
                assert not controller.welcomed.is_set()
        finally:
            task.cancel()
            server.close()
            await server.wait_closed()
            runtime.close()
        return link, controller

    link, controller = asyncio.run(main())
    expected = f"Bearer {token}" if token else None
    assert set(controller.authorizations) == {expected}
    assert "?" not in link.url  # never in the URL
    if not welcomed:
        assert "HTTP 403" in link.refused_reason
        assert "API_TOKEN" in link.refused_reason
        assert not link.connected
