from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from api_token import bearer
from csvgen.config import Settings
from csvgen.main import create_app
from scenario_csv import validate

DEFECTS = Path(__file__).parents[3] / "libs" / "scenario-csv" / "tests" / "fixtures"
TOKEN = "test-token-of-csvgen-1234"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(csvgen_max_rows=1_000_000, api_token=TOKEN)
    # with the API token: these tests are about the routes (tests/test_auth.py: without it)
    with TestClient(create_app(settings, CollectorRegistry()), headers=bearer(TOKEN)) as client:
        yield client


def test_health(client):
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_generate_streams_the_csv(client):
    with client.stream("POST", "/generate", json={"shape": {"kind": "step"}}) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["x-expected-rows"] == "48600"
        assert "scenario-step-deterministic.csv" in answer.headers["content-disposition"]
        lines = list(answer.iter_lines())
    assert lines[0] == "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s"
    assert len(lines) == 48601
    run = validate(lines, rate_check="deterministic")
    assert list(run) == []
    metrics = client.get("/metrics").text
    assert "csvgen_rows_generated_total 48601.0" in metrics  # header included


def test_generate_ten_minute_poisson_from_milano(client):
    body = {
        "shape": {
            "kind": "milano",
            "files": ["milano-synthetic-day.tsv"],
            "compress": 24,
            "peak_rate": 20,
        },
        "arrivals": "poisson",
        "seed": 4,
        "pods": 6,
        "format": "ten_minute",
    }
    answer = client.post("/generate", json=body)
    assert answer.status_code == 200
    lines = answer.text.splitlines()
    assert lines[0] == "ten_minute;milliseconds;calls_in_ten_minutes;caller;callee"
    assert list(validate(lines)) == []
    again = client.post("/generate", json=body)
    assert again.text == answer.text  # seeded


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"shape": {"kind": "constant", "rate": -3, "duration_s": 10}}, 422, "greater than 0"),
        ({"shape": {"kind": "sine"}}, 422, "does not match any of the expected tags"),
        ({"shape": {"kind": "step"}, "first_pod": 5}, 422, "first_pod 5 is odd"),
        ({"shape": {"kind": "step"}, "pods": 2, "hold_time_s": 60}, 422, "too few pods"),
        ({"shape": {"kind": "step"}, "colour": "red"}, 422, "Extra inputs are not permitted"),
        ({"shape": {"kind": "constant", "rate": 1000, "duration_s": 3600}}, 413, "CSVGEN_MAX_ROWS"),
        ({"shape": {"kind": "milano", "files": ["../../pyproject.toml"]}}, 422, "no path"),
        ({"shape": {"kind": "milano", "files": ["nope.tsv"]}}, 422, "not in the data directory"),
        (
            {"shape": {"kind": "milano", "files": ["milano-synthetic-day.tsv"], "squares": [7]}},
            422,
            "no rows for the chosen squares 7",
        ),
        (
            {
                "shape": {"kind": "constant", "rate": 10, "duration_s": 600},
                "arrivals": "poisson",
                "pods": 2,
                "hold_time_s": 9.5,
            },
            422,
            "would call",
        ),
    ],
)
def test_generate_refuses_bad_parameters_with_reasons(client, body, status, detail):
    answer = client.post("/generate", json=body)
    assert answer.status_code == status
    assert detail in str(answer.json()["detail"])


def test_validate_upload_reports_defects(client):
    with (DEFECTS / "padding-700.csv").open("rb") as upload:
        answer = client.post(
            "/validate", files={"file": ("p.csv", upload, "text/csv")}, params={"max_defects": 3}
        )
    assert answer.status_code == 200
    report = answer.json()
    assert report["valid"] is False
    assert report["defect_count"] == 12
    assert report["truncated"] is True
    assert [d["line"] for d in report["defects"]] == [2, 3, 4]
    assert report["defects"][0]["field"] == "callee"
    assert "'0700'" in report["defects"][0]["message"]
    assert 'csvgen_files_validated_total{result="defects"} 1.0' in client.get("/metrics").text


def test_validate_upload_of_a_good_file_and_switches(client):
    good = client.post("/generate", json={"shape": {"kind": "step"}, "pods": 8}).content
    report = client.post("/validate", files={"file": ("s.csv", good)}).json()
    assert report["valid"] is True
    assert report["summary"]["rows"] == 48600
    assert report["summary"]["pods_needed"] == 8
    assert report["summary"]["peak_rate"] == 42
    wrong = (DEFECTS / "wrong-callee.csv").read_bytes()
    assert client.post("/validate", files={"file": ("w.csv", wrong)}).json()["valid"] is False
    relaxed = client.post(
        "/validate", files={"file": ("w.csv", wrong)}, params={"pairing_convention": "false"}
    )
    assert relaxed.json()["valid"] is True


def test_validate_tolerates_binary_garbage_as_defects(client):
    answer = client.post("/validate", files={"file": ("x.bin", b"\xff\xfe\x00garbage\n" * 3)})
    assert answer.status_code == 200
    assert answer.json()["defects"][0]["line"] == 1


@pytest.mark.parametrize(
    ("params", "files"),
    [
        ({"rate_check": "strict"}, {"file": ("a.csv", b"x")}),
        ({"max_defects": -1}, {"file": ("a.csv", b"x")}),
        ({}, None),
    ],
)
def test_validate_bad_parameters_are_422(client, params, files):
    answer = client.post("/validate", params=params, files=files)
    assert answer.status_code == 422


def test_plots(client):
    answer = client.post("/plot", json={"shape": {"kind": "step"}})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content.startswith(PNG)
    assert client.post("/plot", json={"shape": {"kind": "ramp"}}).status_code == 422
    csv = client.post("/generate", json={"shape": {"kind": "step"}}).content
    answer = client.post("/plot/scenario", files={"file": ("s.csv", csv)})
    assert answer.status_code == 200
    assert answer.content.startswith(PNG)
    bad = client.post(
        "/plot/scenario", files={"file": ("p.csv", (DEFECTS / "padding-700.csv").read_bytes())}
    )
    assert bad.status_code == 422
    assert "line 2: callee: '700'" in bad.json()["detail"]
