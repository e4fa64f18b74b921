"""Replays of recorded answers (tests/recorded/): a real kube-apiserver's (1.37) to the scale
subresource, and a real Prometheus' (a local run's TSDB, results/step-predictive-10m-compressed-
20261204-052158) to the four queries. Each replay checks that a request is the recorded one
before it gives the recorded answer, and keeps what did not match for the test to assert on.

pytest runs with --import-mode=importlib, so the helpers reach the tests as fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

RECORDED = Path(__file__).parent / "recorded"
TOKEN = "recorded-token"  # what the replay expects as the bearer token
# the run's start (summary.json "prometheus" start): the recordings are named by seconds after it
RUN_START = 1796361784.589
# the recorded queries, as the local run's Prometheus answered them (namespace "local")
QUERIES = {
    name: str(
        json.loads((RECORDED / f"prometheus/t000-{name}.json").read_text())["request"]["query"]
    )
    for name in ("cpu", "p99-by-pod", "p99", "invite-rate")
}


def load(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / kind / f"{name}.json").read_text())
    return data


def answer(recording: dict[str, Any], rename: dict[str, str] | None = None) -> httpx.Response:
    response = recording["response"]
    text = json.dumps(response["body"])
    for old, new in (rename or {}).items():
        text = text.replace(old, new)
    return httpx.Response(
        response["status"],
        content=text.encode(),
        headers={"content-type": response["content_type"]},
    )


class KubeReplay:
    """Answers Kubernetes requests with recordings, in order; the last one is repeated when
    `repeat_last`. A request must match its recording's method, path, content type and JSON
    body, and carry the bearer token."""

    def __init__(self, *names: str, repeat_last: bool = False, token: str = TOKEN) -> None:
        self.queue = [load("kubernetes", n) for n in names]
        self.repeat_last = repeat_last
        self.token = token
        self.requests: list[httpx.Request] = []
        self.mismatches: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.queue:
            return self._refuse(f"no recording left for {request.method} {request.url.path}")
        recording = self.queue[0] if self.repeat_last and len(self.queue) == 1 else None
        if recording is None:
            recording = self.queue.pop(0)
        want = recording["request"]
        body = json.loads(request.content) if request.content else None
        got = {
            "method": request.method,
            "path": request.url.path,
            "content_type": request.headers.get("content-type"),
            "body": body,
        }
        if got != want:
            return self._refuse(f"request {got} is not the recorded {want}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return self._refuse(f"authorization {request.headers.get('authorization')!r}")
        return answer(recording)

    def _refuse(self, problem: str) -> httpx.Response:
        self.mismatches.append(problem)
        return httpx.Response(500, json={"kind": "Status", "message": f"replay: {problem}"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


class PromReplay:
    """Answers the four recorded queries with the recordings of one time of the run (seconds
    after its start); `at` changes it between syncs. `rename` rewrites label values in the
    answers (the run's pods are sip-proxy-N; a chart's are <release>-sip-proxy-N). A request
    with a `time` parameter must ask for the recording's time."""

    def __init__(self, at: int, rename: dict[str, str] | None = None) -> None:
        self.at = at
        self.rename = rename
        self.by_query = {query: name for name, query in QUERIES.items()}
        self.requests: list[httpx.Request] = []
        self.mismatches: list[str] = []
        self.fail_with: str | None = None  # a recording to answer every query with

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method != "GET" or request.url.path != "/api/v1/query":
            return self._refuse(f"{request.method} {request.url.path}")
        if self.fail_with is not None:
            return answer(load("prometheus", self.fail_with))
        query = request.url.params.get("query", "")
        name = self.by_query.get(query)
        if name is None:
            return self._refuse(f"unrecorded query {query!r}")
        recording = load("prometheus", f"t{self.at:03d}-{name}")
        time = request.url.params.get("time")
        if time is not None and float(time) != recording["request"]["time"]:
            return self._refuse(f"time {time} is not the recorded {recording['request']['time']}")
        return answer(recording, self.rename)

    def _refuse(self, problem: str) -> httpx.Response:
        self.mismatches.append(problem)
        return httpx.Response(
            400, json={"status": "error", "errorType": "replay", "error": problem}
        )

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, token_file: Path) -> dict[str, str]:
    """The variables the chart sets, for the recorded namespace and target, with the recorded
    queries; a plain-http API (no CA file)."""
    values = {
        "POLICY_CONTROLLER_PROMETHEUS_URL": "http://prometheus.test:9090",
        "POLICY_CONTROLLER_QUERY_CPU": QUERIES["cpu"],
        "POLICY_CONTROLLER_QUERY_P99_BY_POD": QUERIES["p99-by-pod"],
        "POLICY_CONTROLLER_QUERY_P99": QUERIES["p99"],
        "POLICY_CONTROLLER_QUERY_INVITE_RATE": QUERIES["invite-rate"],
        "POLICY_CONTROLLER_KUBE_API": "http://kubernetes.test",
        "POLICY_CONTROLLER_KUBE_TOKEN_FILE": str(token_file),
        "POLICY_CONTROLLER_NAMESPACE": "ims-rec",
        "POLICY_CONTROLLER_TARGET_NAME": "tb-sip-proxy",
        "POLICY_CONTROLLER_KNEE_PER_PROXY": "6",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def kube_replay() -> type[KubeReplay]:
    return KubeReplay


@pytest.fixture
def prom_replay() -> type[PromReplay]:
    return PromReplay


class Recorded:
    """The recordings and what they were made with."""

    token = TOKEN
    run_start = RUN_START
    queries = QUERIES
    directory = RECORDED

    @staticmethod
    def load(kind: str, name: str) -> dict[str, Any]:
        return load(kind, name)


@pytest.fixture
def recorded() -> type[Recorded]:
    return Recorded
