"""The Experiment tab's routes: POST /experiment/samples (token, typed, bounded; resends and a
new run handled), GET /experiment (open), the feed on /ws/panel, and a replayed experiment
(EXPERIMENT_REPLAY, what `testbed view` serves: read-only)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from websockets.sync.client import connect

from api_token import bearer
from scenario_controller.config import Settings
from scenario_controller.experiment import BadReplay
from scenario_controller.main import create_app
from testbed_messages.experiment import MAX_PUSH

TOKEN = "test-token-of-the-scenario-controller"
INFO = {"name": "tiny", "run_id": "results/tiny-1", "p0_ms": 1000, "cpu_millicores": 20}


def sample(t: float, **more: Any) -> dict[str, Any]:
    return {
        "t_s": t,
        "proxies": 2,
        "lb_invites_per_s": 4.0,
        "per_proxy": {"sip-proxy-0": {"p99_ms": 3.5, "cpu_mcpu": 9.0}},
        **more,
    }


def push(samples: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"experiment": {**INFO, **more.pop("info", {})}, "samples": samples, **more}


def settings(tmp_path: Path, **more: Any) -> Settings:
    return Settings(
        scenario_dir=tmp_path / "scenarios",
        runs_dir=tmp_path / "runs",
        sip_controller_url="",
        progress_interval_seconds=0.1,
        api_token=TOKEN,
        **more,
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(settings(tmp_path, experiment_keep_rows=10), CollectorRegistry())
    with TestClient(app) as c:
        yield c


def test_a_push_needs_the_token_and_a_refused_one_changes_nothing(client: TestClient):
    body = push([sample(0)])
    assert client.post("/experiment/samples", json=body).status_code == 401
    wrong = bearer("a-wrong-token-of-the-right-length")
    assert client.post("/experiment/samples", json=body, headers=wrong).status_code == 403
    held = client.get("/experiment").json()  # open, like the other reads
    assert (held["experiment"], held["samples"], held["held"]) == (None, [], 0)


def test_samples_are_numbered_resends_ignored_and_only_the_last_n_kept(client: TestClient):
    auth = bearer(TOKEN)
    first = client.post("/experiment/samples", json=push([sample(0), sample(1)]), headers=auth)
    assert first.json() == {"held": 2, "capacity": 10}
    # the backlog again with two new ones: the old ones are not taken twice
    again = push(
        [sample(t) for t in (0, 1, 2, 3)],
        proxies=[{"name": "sip-proxy-0", "state": "ready", "first_t_s": 0}],
        events=[{"t_s": 2.5, "before": 2, "after": 3, "reason": "qos: p99 over"}],
    )
    assert client.post("/experiment/samples", json=again, headers=auth).json()["held"] == 4
    held = client.get("/experiment").json()
    assert [(s["seq"], s["t_s"]) for s in held["samples"]] == [(1, 0), (2, 1), (3, 2), (4, 3)]
    assert held["samples"][0]["per_proxy"]["sip-proxy-0"] == {"p99_ms": 3.5, "cpu_mcpu": 9.0}
    assert held["proxies"] == [
        {"name": "sip-proxy-0", "state": "ready", "first_t_s": 0.0, "last_t_s": None}
    ]
    assert client.post("/experiment/samples", json=again, headers=auth).status_code == 200
    assert len(client.get("/experiment").json()["events"]) == 1  # the same event once
    assert [s["seq"] for s in client.get("/experiment", params={"after": 3}).json()["samples"]] == [
        4
    ]
    # bounded: 20 more, the last 10 of all are kept
    more = push([sample(t) for t in range(4, 24)])
    assert client.post("/experiment/samples", json=more, headers=auth).json()["held"] == 10
    kept = client.get("/experiment").json()["samples"]
    assert [s["t_s"] for s in kept] == list(range(14, 24))


def test_a_new_run_starts_over(client: TestClient):
    auth = bearer(TOKEN)
    client.post("/experiment/samples", json=push([sample(0), sample(1)]), headers=auth)
    epoch = client.get("/experiment").json()["epoch"]
    other = push([sample(0)], info={"run_id": "results/tiny-2", "status": "running"})
    assert client.post("/experiment/samples", json=other, headers=auth).json()["held"] == 1
    held = client.get("/experiment").json()
    assert held["epoch"] == epoch + 1
    assert held["experiment"]["run_id"] == "results/tiny-2"
    assert [s["t_s"] for s in held["samples"]] == [0]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (push([{"t_s": 0, "surprise": 1}]), "surprise"),
        (push([{"t_s": 0, "proxies": -1}]), "proxies"),
        (push([{"proxies": 1}]), "t_s"),
        (push([sample(0, per_proxy={"": {}})]), "per_proxy"),
        (push([sample(0)], info={"p0_ms": 0}), "p0_ms"),
        (push([sample(0)], proxies=[{"name": "p", "state": "sleeping"}]), "state"),
        (push([sample(t) for t in range(MAX_PUSH + 1)]), "samples"),
    ],
)
def test_a_malformed_push_is_422_naming_the_field_and_stores_nothing(
    client: TestClient, body: dict[str, Any], where: str
):
    answer = client.post("/experiment/samples", json=body, headers=bearer(TOKEN))
    assert answer.status_code == 422
    assert where in json.dumps(answer.json()["detail"])
    assert client.get("/experiment").json()["held"] == 0


def test_nan_is_refused_since_the_browser_could_not_read_it(client: TestClient):
    text = json.dumps(push([sample(0, p99_ms=float("nan"))]))
    assert "NaN" in text
    answer = client.post(
        "/experiment/samples",
        content=text,
        headers={**bearer(TOKEN), "content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert "p99_ms" in answer.text


def test_panels_get_new_samples_over_their_feed(live):
    with connect(f"ws://127.0.0.1:{live.port}/ws/panel", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "progress"  # the feed as before
        live.http.post("/experiment/samples", json=push([sample(0), sample(1)])).raise_for_status()
        seen = _next_experiment_message(ws)
        assert [s["seq"] for s in seen["samples"]] == [1, 2]
        assert seen["experiment"]["name"] == "tiny"
        live.http.post("/experiment/samples", json=push([sample(2)])).raise_for_status()
        # only what is new goes out; the panel appends it
        assert [s["seq"] for s in _next_experiment_message(ws)["samples"]] == [3]


def _next_experiment_message(ws: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if message["type"] == "experiment":
            return message
    raise AssertionError("no experiment message within 5 s")


def test_a_replayed_experiment_is_served_read_only(tmp_path: Path):
    record = tmp_path / "record.json"
    record.write_text(json.dumps(push([sample(t) for t in range(30)], info={"source": "folder"})))
    app = create_app(
        settings(tmp_path, experiment_replay=record, experiment_keep_rows=10), CollectorRegistry()
    )
    with TestClient(app) as client:
        held = client.get("/experiment").json()
        assert held["read_only"] is True
        assert held["held"] == 30  # a recorded run is shown whole
        assert held["experiment"]["source"] == "folder"
        answer = client.post("/experiment/samples", json=push([sample(99)]), headers=bearer(TOKEN))
        assert answer.status_code == 409
        assert "read-only" in answer.json()["detail"]
        assert client.get("/experiment").json()["held"] == 30


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "No such file"), ('{"experiment": {}}', "experiment.name"), ("{not json", "json")],
)
def test_a_bad_replay_file_stops_the_app_naming_it(
    tmp_path: Path, content: str | None, problem: str
):
    record = tmp_path / "record.json"
    if content is not None:
        record.write_text(content)
    app = create_app(settings(tmp_path, experiment_replay=record), CollectorRegistry())
    with pytest.raises(BadReplay) as caught, TestClient(app):
        pass
    assert str(record) in str(caught.value)
    assert problem.lower() in str(caught.value).lower()
