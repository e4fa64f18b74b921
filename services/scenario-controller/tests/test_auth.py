"""The API token (API_TOKEN) on every mutating route and on /ws/clients, against the live
controller (uvicorn on 127.0.0.1, conftest.py): without it 401, with a wrong one 403, a
cross-site form post 401, and nothing changes; with it the route works. Reads stay open."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from api_token import bearer
from scenario_controller.config import Settings
from scenario_controller.main import create_app
from testbed_messages import Hello, RegisterAll, Welcome, decode_controller, encode

HEADER = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
WRONG = bearer("a-wrong-token-of-the-right-length")
EVIL = "http://evil.example"


def scenario(seconds: int = 60) -> str:
    """Pod 02 calls pod 03 at 10 invites/s: long enough to stay active through a test."""
    return (
        HEADER
        + "\n"
        + "".join(
            f"02{i % 100:02d};03{i % 100:02d};100;{i // 10};10\n" for i in range(10 * seconds)
        )
    )


def hello(ws: ClientConnection, pod: str) -> object:
    ws.send(encode(Hello(pod=pod, phones=10)))
    return decode_controller(ws.recv(timeout=5))


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class Case:
    """One mutating route: how to put the controller in a state the route would change, the
    request, and what the route changes (a snapshot of it before and after)."""

    method: str
    path: str
    prepare: str = ""  # "", "scenario", "running", "paused", "pod"
    json: dict[str, object] | None = None
    content: str | None = None


def run_state(live) -> str:
    return str(live.http.get("/runs/current").json()["state"])


def stored(live) -> list[str]:
    return sorted(s["name"] for s in live.http.get("/scenarios").json())


def snapshot(live) -> tuple[object, ...]:
    runs = [(r["id"], r["state"]) for r in live.http.get("/runs").json()]
    files = (
        sorted(p.name for p in live.scenario_dir.iterdir()) if live.scenario_dir.exists() else []
    )
    return stored(live), runs, files


CASES = {
    "upload": Case("POST", "/scenarios?name=intruder", content=scenario(1)),
    "delete": Case("DELETE", "/scenarios/keep", prepare="scenario"),
    "start": Case("POST", "/runs", prepare="scenario", json={"scenario": "keep"}),
    "pause": Case("POST", "/runs/current/pause", prepare="running"),
    "resume": Case("POST", "/runs/current/resume", prepare="paused"),
    "stop": Case("POST", "/runs/current/stop", prepare="running"),
    "register": Case("POST", "/register", prepare="pod"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_mutating_route_refuses_without_the_token_and_changes_nothing(
    start_controller, tmp_path: Path, name: str
):
    case = CASES[name]
    live = start_controller()
    pod = None
    if case.prepare in ("scenario", "running", "paused"):
        assert (
            live.http.post("/scenarios", params={"name": "keep"}, content=scenario()).status_code
            == 201
        )
    if case.prepare in ("running", "paused"):
        assert live.http.post("/runs", json={"scenario": "keep"}).status_code == 201
    if case.prepare == "paused":
        assert live.http.post("/runs/current/pause").status_code == 200
    if case.prepare == "pod":
        pod = connect(live.ws, additional_headers=live.auth, compression=None)
        assert isinstance(hello(pod, "00"), Welcome)
    try:
        before = snapshot(live)
        attempts = {
            "no token": (live.anonymous, {}, 401),
            "a wrong token": (live.anonymous, WRONG, 403),
        }
        for what, (http, headers, status) in attempts.items():
            answer = http.request(
                case.method, case.path, headers=headers, json=case.json, content=case.content
            )
            assert answer.status_code == status, f"{what}: {answer.text}"
            assert live.token not in answer.text
            assert snapshot(live) == before, what
        # a page of another site can make the browser send a form post (a "simple" request),
        # never with an Authorization header
        forged = live.anonymous.request(
            case.method,
            case.path,
            headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},
            content="scenario=keep&speed=1",
        )
        assert forged.status_code == 401, forged.text
        assert forged.headers["www-authenticate"] == 'Bearer realm="ims-testbed"'
        assert "access-control-allow-origin" not in forged.headers
        assert snapshot(live) == before
        if pod is not None:  # no register command went out to the pod
            with pytest.raises(TimeoutError):
                pod.recv(timeout=0.3)

        # with the token the route does what it did before: the snapshot sees the change
        answer = live.http.request(case.method, case.path, json=case.json, content=case.content)
        assert answer.is_success, answer.text
        if pod is not None:
            assert isinstance(decode_controller(pod.recv(timeout=5)), RegisterAll)
        else:
            wait_until(lambda: snapshot(live) != before, f"{name} to take effect")
    finally:
        if pod is not None:
            pod.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/scenarios?name=x"),
        ("DELETE", "/scenarios/x"),
        ("POST", "/runs"),
        ("POST", "/runs/current/stop"),
        ("POST", "/register"),
    ],
)
def test_a_cors_preflight_from_another_origin_is_not_granted(live, method: str, path: str):
    answer = live.anonymous.options(
        path,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-headers" not in answer.headers
    assert not answer.is_success


def test_reads_the_panel_and_its_feed_stay_open_without_a_token(live):
    assert (
        live.http.post("/scenarios", params={"name": "keep"}, content=scenario(1)).status_code
        == 201
    )
    for path in (
        "/",
        "/static/app.js",
        "/health",
        "/metrics",
        "/clients",
        "/scenarios",
        "/scenarios/keep",
        "/runs",
    ):
        answer = live.anonymous.get(path)
        assert answer.status_code == 200, (path, answer.text)
    with connect(f"ws://127.0.0.1:{live.port}/ws/panel") as panel:
        assert panel.recv(timeout=5)  # the live feed, read-only


@pytest.mark.parametrize(
    "headers",
    [{}, WRONG, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no token", "wrong token", "basic"],
)
def test_a_pod_without_the_token_is_refused_before_the_handshake(live, headers: dict[str, str]):
    with pytest.raises(InvalidStatus) as refused:
        connect(live.ws, additional_headers=headers, compression=None, open_timeout=5)
    assert refused.value.response.status_code == 403  # closed (1008) before it was accepted
    assert live.http.get("/clients").json()["pods"] == []
    with connect(live.ws, additional_headers=live.auth, compression=None) as pod:
        assert isinstance(hello(pod, "00"), Welcome)
        assert [p["pod"] for p in live.http.get("/clients").json()["pods"]] == ["00"]


def test_the_token_in_the_url_does_not_count(live):
    with pytest.raises(InvalidStatus):
        connect(f"{live.ws}?token={live.token}", compression=None, open_timeout=5)
    answer = live.anonymous.post(f"/register?token={live.token}&api_token={live.token}")
    assert answer.status_code == 401


def test_a_controller_without_api_token_refuses_every_change_with_503(
    start_controller, tmp_path: Path
):
    live = start_controller(api_token=None)
    before = snapshot(live)
    for case in CASES.values():
        for headers in ({}, WRONG):
            answer = live.anonymous.request(
                case.method, case.path, headers=headers, json=case.json, content=case.content
            )
            assert answer.status_code == 503, answer.text
            assert "API_TOKEN" in answer.json()["detail"]
    assert snapshot(live) == before
    with pytest.raises(InvalidStatus):
        connect(live.ws, additional_headers=WRONG, compression=None, open_timeout=5)
    assert live.anonymous.get("/health").status_code == 200


def test_every_route_that_is_not_a_get_requires_the_token(tmp_path: Path):
    """Every operation of the API (its OpenAPI schema) but GET answers 401 without a token,
    so a route added later without the guard fails here."""
    settings = Settings(scenario_dir=tmp_path, runs_dir=tmp_path, api_token="x" * 16)
    with TestClient(create_app(settings, CollectorRegistry())) as client:
        operations = {
            (method.upper(), path)
            for path, item in client.get("/openapi.json").json()["paths"].items()
            for method in item
            if method != "get"
        }
        assert operations == {
            ("POST", "/scenarios"),
            ("DELETE", "/scenarios/{name}"),
            ("POST", "/runs"),
            ("POST", "/runs/{run_id}/pause"),
            ("POST", "/runs/{run_id}/resume"),
            ("POST", "/runs/{run_id}/stop"),
            ("POST", "/register"),
            ("POST", "/experiment/samples"),
        }
        for method, path in operations:
            answer = client.request(method, re.sub(r"\{\w+\}", "x", path))
            assert answer.status_code == 401, (method, path, answer.text)


@pytest.mark.parametrize("bad", ["tiny-token", "has a space in it ok", "x" * 15])
def test_a_malformed_api_token_stops_the_app_at_startup(tmp_path: Path, bad: str):
    app = create_app(
        Settings(scenario_dir=tmp_path, runs_dir=tmp_path, api_token=bad), CollectorRegistry()
    )
    with pytest.raises(ValueError, match="API_TOKEN") as error, TestClient(app):
        pass
    assert bad not in str(error.value)


def test_api_token_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_TOKEN", "from-the-environment-1234")
    assert Settings().api_token == "from-the-environment-1234"


def test_a_multipart_upload_as_the_panel_sends_it_needs_the_token(live):
    files = {"file": ("panel.csv", scenario(1), "text/csv")}
    assert live.anonymous.post("/scenarios", files=files).status_code == 401
    answer = httpx.post(
        f"{live.url}/scenarios", files=files, headers={"Authorization": f"Bearer {live.token}"}
    )
    assert answer.status_code == 201
    assert stored(live) == ["panel"]
