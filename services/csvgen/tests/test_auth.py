"""The API token (API_TOKEN) on csvgen's POST routes: they change nothing, but they cost CPU
(a generated scenario, a plot), so the rule of every service holds: no token 401, a wrong one
403, a cross-site form post 401, no token configured 503; and nothing is computed."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api_token import bearer
from csvgen.config import Settings
from csvgen.main import create_app

TOKEN = "test-token-of-csvgen-1234"
WRONG = bearer("a-wrong-token-of-the-right-length")
EVIL = "http://evil.example"
CSV = (
    "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n"
    "0000;0100;1000;0;1\n0001;0101;1000;1;1\n"
)
# every POST of the API: path, JSON body, multipart file
ROUTES = [
    ("/generate", {"shape": {"kind": "step"}}, None),
    ("/validate", None, {"file": ("s.csv", CSV)}),
    ("/plot", {"shape": {"kind": "step"}}, None),
    ("/plot/scenario", None, {"file": ("s.csv", CSV)}),
]


def app_client(token: str | None) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(api_token=token), CollectorRegistry())) as client:
        yield client


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield from app_client(TOKEN)


def work_done(client: TestClient) -> list[str]:
    """The counters of what the service computed (rows generated, files validated)."""
    return [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith(("csvgen_rows_generated_total", "csvgen_files_validated_total"))
    ]


@pytest.mark.parametrize(("path", "body", "files"), ROUTES)
def test_a_post_without_the_token_is_refused_and_computes_nothing(client, path, body, files):
    before = work_done(client)
    attempts = {
        "no token": ({}, 401),
        "a wrong token": (WRONG, 403),
    }
    for what, (headers, status) in attempts.items():
        answer = client.post(path, json=body, files=files, headers=headers)
        assert answer.status_code == status, f"{what}: {answer.text}"
        assert answer.headers["content-type"] == "application/json"  # no CSV, no PNG
        assert work_done(client) == before, what
    forged = client.post(
        path,
        headers={"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"},
        content="shape=step",
    )
    assert forged.status_code == 401, forged.text
    assert "access-control-allow-origin" not in forged.headers
    assert work_done(client) == before

    answer = client.post(path, json=body, files=files, headers=bearer(TOKEN))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] != "application/json" or path == "/validate"
    if path in ("/generate", "/validate"):
        assert work_done(client) != before


@pytest.mark.parametrize(("path", "body", "files"), ROUTES)
def test_a_cors_preflight_from_another_origin_is_not_granted(client, path, body, files):
    answer = client.options(
        path,
        headers={
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "access-control-allow-origin" not in answer.headers
    assert not answer.is_success


def test_without_api_token_every_post_is_503():
    for client in app_client(None):
        for path, body, files in ROUTES:
            for headers in ({}, WRONG):
                answer = client.post(path, json=body, files=files, headers=headers)
                assert answer.status_code == 503, answer.text
                assert "API_TOKEN" in answer.json()["detail"]
        assert client.get("/health").status_code == 200


def test_reads_stay_open_without_a_token(client):
    for path in ("/health", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_every_operation_that_is_not_a_get_requires_the_token(client):
    operations = {
        (method.upper(), path)
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
        if method != "get"
    }
    assert operations == {("POST", path) for path, _, _ in ROUTES}
    for method, path in operations:
        assert client.request(method, path).status_code == 401, path


def test_the_token_is_read_from_api_token_not_a_prefixed_name(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CSVGEN_API_TOKEN", "the-prefixed-name-is-not-read")
    monkeypatch.delenv("API_TOKEN", raising=False)
    assert Settings().api_token is None
    monkeypatch.setenv("API_TOKEN", TOKEN)
    assert Settings().api_token == TOKEN


def test_a_malformed_api_token_stops_the_service_at_startup():
    app = create_app(Settings(api_token="tiny-token"), CollectorRegistry())
    with pytest.raises(ValueError, match="API_TOKEN is too short"), TestClient(app):
        pass
