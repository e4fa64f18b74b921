"""The REST API and the two WebSocket endpoints, in-process (TestClient)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api_token import bearer
from scenario_controller.config import Settings
from scenario_controller.main import create_app
from testbed_messages import Hello, Invite, Refused, Welcome, decode_controller, encode

TOKEN = "test-token-of-the-scenario-controller"
GOOD = "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n" + "".join(
    f"00{n:02d};01{n:02d};100;{n // 10};10\n" for n in range(20)
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        scenario_dir=tmp_path / "scenarios",
        runs_dir=tmp_path / "runs",
        sip_controller_url="",
        progress_interval_seconds=0.2,
        api_token=TOKEN,
    )
    # the token on every request, as the panel sends it (tests/test_auth.py: without it)
    with TestClient(create_app(settings, CollectorRegistry()), headers=bearer(TOKEN)) as c:
        yield c


def test_upload_raw_and_multipart_then_list_show_delete(client: TestClient):
    raw = client.post(
        "/scenarios",
        params={"name": "ten-per-second"},
        content=GOOD,
        headers={"content-type": "text/csv"},
    )
    assert raw.status_code == 201, raw.text
    assert (raw.json()["rows"], raw.json()["pods_needed"]) == (20, 2)
    multi = client.post("/scenarios", files={"file": ("other.csv", GOOD, "text/csv")})
    assert multi.status_code == 201
    assert multi.json()["name"] == "other"
    assert sorted(s["name"] for s in client.get("/scenarios").json()) == ["other", "ten-per-second"]
    shown = client.get("/scenarios/ten-per-second").json()
    assert shown["rate"] == [[0.0, 10.0], [1.0, 10.0]]
    assert client.delete("/scenarios/other").status_code == 204
    assert client.get("/scenarios/other").status_code == 404


def test_bad_csv_is_422_with_every_defect_line_and_field(client: TestClient):
    bad = GOOD.replace("0003;0103", "003;0103").replace("0007;0107", "0007;0207")
    response = client.post("/scenarios", params={"name": "bad"}, content=bad)
    assert response.status_code == 422
    body = response.json()
    assert "nothing was stored" in body["detail"]
    found = {(d["line"], d["field"]) for d in body["defects"]}
    assert (5, "caller") in found
    assert (9, "callee") in found
    assert client.get("/scenarios").json() == []


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [({}, 422, "name"), ({"name": "../etc"}, 422, "scenario name")],
)
def test_upload_name_errors(client: TestClient, params, status, fragment):
    response = client.post("/scenarios", params=params, content=GOOD)
    assert response.status_code == status
    assert fragment in response.json()["detail"]


def test_run_errors_are_4xx_with_reasons(client: TestClient):
    assert client.post("/runs", json={"scenario": "none"}).status_code == 404
    client.post("/scenarios", params={"name": "s"}, content=GOOD)
    assert client.post("/runs", json={"scenario": "s", "speed": 0}).status_code == 422
    assert client.post("/runs", json={"scenario": "s", "unknown": 1}).status_code == 422
    first = client.post("/runs", json={"scenario": "s", "speed": 0.5})
    assert first.status_code == 201
    again = client.post("/runs", json={"scenario": "s"})
    assert again.status_code == 409
    assert "stop it first" in again.json()["detail"]
    assert client.post("/runs/current/stop").status_code == 200
    assert client.post("/runs/nope/pause").status_code == 404
    assert client.post("/register").status_code == 409  # no pod connected


def test_pods_connect_duplicates_are_refused_and_invites_reach_the_callers_pod(client: TestClient):
    client.post("/scenarios", params={"name": "s"}, content=GOOD)
    with client.websocket_connect("/ws/clients") as pod00:
        pod00.send_text(encode(Hello(pod="00", phones=20)))
        assert isinstance(decode_controller(pod00.receive_text()), Welcome)
        with client.websocket_connect("/ws/clients") as twin:
            twin.send_text(encode(Hello(pod="00", phones=20)))
            refused = decode_controller(twin.receive_text())
            assert isinstance(refused, Refused)
            assert "already connected" in refused.reason
        clients = client.get("/clients").json()
        assert [(p["pod"], p["connected"], p["phones"]) for p in clients["pods"]] == [
            ("00", True, 20)
        ]
        assert client.post("/register").json() == {"pods": ["00"]}
        assert decode_controller(pod00.receive_text()).type == "register"
        run = client.post("/runs", json={"scenario": "s", "speed": 10}).json()
        invites = [decode_controller(pod00.receive_text()) for _ in range(20)]
        assert all(isinstance(i, Invite) for i in invites)
        assert [i.seq for i in invites] == list(range(20))  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while client.get(f"/runs/{run['id']}").json()["state"] != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        log = client.get(f"/runs/{run['id']}/log").text.splitlines()
        assert log[0].startswith(
            "seq,caller,callee,pod,offset_s,scheduled_at,sent_at,lag_ms,status"
        )
        assert len(log) == 21
        assert all(line.endswith(",sent") for line in log[1:])
    metrics = client.get("/metrics").text
    assert "scenario_controller_invites_sent_total 20.0" in metrics
    assert "scenario_controller_schedule_lag_seconds_bucket" in metrics
    assert "scenario_controller_clients_connected 0.0" in metrics


def test_two_browsers_see_the_same_state(client: TestClient):
    with client.websocket_connect("/ws/panel") as a, client.websocket_connect("/ws/panel") as b:
        first_a, first_b = a.receive_json(), b.receive_json()
        assert first_a["type"] == first_b["type"] == "progress"
        with client.websocket_connect("/ws/clients") as pod:
            pod.send_text(encode(Hello(pod="04", phones=3)))
            pod.receive_text()
            deadline = time.monotonic() + 5
            seen: set[str] = set()
            while seen != {"a", "b"}:
                assert time.monotonic() < deadline
                for name, socket in (("a", a), ("b", b)):
                    snap = socket.receive_json()
                    if snap["connected"] == 1 and snap["clients"][0]["pod"] == "04":
                        seen.add(name)


def test_panel_page_is_served_without_external_resources(client: TestClient):
    page = client.get("/").text
    assert "Scenario controller" in page
    assert "http" not in page.replace("http-equiv", "")  # no CDN: everything comes from /static
    assert client.get("/static/app.js").status_code == 200
