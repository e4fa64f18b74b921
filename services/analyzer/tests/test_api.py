"""The HTTP API over a real capture file: /health, /samples (JSON, CSV, pages, windows),
/metrics, and the debug log."""

from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from analyzer.config import Settings
from analyzer.main import create_app

T0 = 1_795_000_000.0
CALLS = 30
REGISTRATIONS = 10


@pytest.fixture(scope="module")
def capture_file(h, tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = []
    for n in range(CALLS):
        for t, src, dst, payload in h.call_flow(f"call-{n}", t0=T0 + n):
            records.append((t, h.ethernet(h.ipv4_udp(src, dst, payload))))
    for n in range(REGISTRATIONS):
        for t, src, dst, payload in h.register_flow(f"reg-{n}", t0=T0 + 100 + n):
            records.append((t, h.ethernet(h.ipv4_udp(src, dst, payload))))
    records.append((T0 + 200, h.ethernet(h.ipv4_udp(h.LB, h.PROXY, b"\x00garbage"))))
    records.append((T0 + 201, h.ethernet(h.ipv4_udp(h.LB, h.PROXY, b"x", fragment=0x2000))))
    path = tmp_path_factory.mktemp("api") / "run.pcapng"
    h.write_pcapng(path, records)
    return path


def _app(capture_file: Path, **extra):
    settings = Settings(
        analyzer_proxy_address="127.0.9.1:5060",
        analyzer_proxy_name="sip-proxy-0",
        analyzer_pcap_file=capture_file,
        **extra,
    )
    return create_app(settings, CollectorRegistry())


def _finished(client: TestClient) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get("/health").json()
        capture = body["capture"]
        if capture["finished"] or capture["error"] or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


@pytest.fixture(scope="module")
def client(capture_file):
    with TestClient(_app(capture_file)) as client:
        _finished(client)
        yield client


def test_health_reports_the_capture_and_the_counters(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["proxy"] == "sip-proxy-0"
    assert body["capture"]["backend"] == "fast"
    assert body["capture"]["delivered"] == CALLS * 17 + REGISTRATIONS * 4 + 2
    assert body["pairs"] == {
        "invite_challenge": CALLS,
        "invite_forward": CALLS,
        "ok_forward": CALLS,
        "register_challenge": REGISTRATIONS,
        "register_ok": REGISTRATIONS,
    }
    assert body["skipped"] == {"not_sip": 1, "fragment": 1}


def test_samples_as_json_in_recording_order(client):
    body = client.get("/samples", params={"limit": 5}).json()
    assert body["total"] == 3 * CALLS + 2 * REGISTRATIONS
    assert body["dropped"] == 0
    first = body["items"][0]
    assert first == {
        "timestamp": T0,
        "proxy": "sip-proxy-0",
        "pair": "invite_challenge",
        "call_id": "call-0",
        "cseq": 1,
        "response_time_ms": 1.0,
    }
    assert [i["pair"] for i in body["items"][:3]] == [
        "invite_challenge",
        "invite_forward",
        "ok_forward",
    ]


def test_samples_pages_and_windows(client):
    everything = client.get("/samples", params={"limit": 1000}).json()["items"]
    pages = []
    for offset in range(0, len(everything), 7):
        pages += client.get("/samples", params={"offset": offset, "limit": 7}).json()["items"]
    assert pages == everything
    window = client.get("/samples", params={"since": T0 + 10, "until": T0 + 12}).json()
    assert {i["call_id"] for i in window["items"]} == {"call-10", "call-11"}
    assert window["total"] == 6
    registrations = client.get("/samples", params={"pair": "register_ok"}).json()
    assert registrations["total"] == REGISTRATIONS


def test_samples_as_csv(client):
    response = client.get("/samples", params={"format": "csv", "pair": "ok_forward"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-total-count"] == str(CALLS)
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == CALLS
    assert rows[0] == {
        "timestamp": f"{T0 + 0.009:.6f}",
        "proxy": "sip-proxy-0",
        "pair": "ok_forward",
        "call_id": "call-0",
        "cseq": "2",
        "response_time_ms": "1.000",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"pair": "bye_forward"}, "unknown pair 'bye_forward'"),
        ({"since": 10, "until": 5}, "before since"),
        ({"format": "xml"}, "json"),
        ({"limit": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_sample_queries_are_refused(client, params, message):
    response = client.get("/samples", params=params)
    assert response.status_code == 422
    assert message in response.text


def test_metrics_export_messages_and_the_response_time_histogram(client):
    text = client.get("/metrics").text
    assert (
        f'analyzer_sip_messages_total{{direction="in",method="INVITE",status=""}} {2.0 * CALLS}'
        in text
    )
    challenges = 'analyzer_sip_messages_total{direction="out",method="INVITE",status="407"}'
    assert f"{challenges} {float(CALLS)}" in text
    registers = float(REGISTRATIONS)
    assert (
        f'analyzer_sip_messages_total{{direction="out",method="REGISTER",status="401"}} {registers}'
        in text
    )
    assert (
        'analyzer_sip_response_time_seconds_bucket{le="0.0005",pair="invite_challenge"} 0.0' in text
    )
    bucket = 'analyzer_sip_response_time_seconds_bucket{le="0.001",pair="invite_challenge"}'
    assert f"{bucket} {float(CALLS)}" in text
    assert (
        f'analyzer_sip_response_time_seconds_count{{pair="register_ok"}} {float(REGISTRATIONS)}'
        in text
    )
    assert 'analyzer_packets_skipped_total{reason="fragment"} 1.0' in text
    assert "analyzer_capture_delivered_total" in text
    assert 'analyzer_sip_retransmissions_total{pair="ok_forward"} 0.0' in text


def test_the_samples_limit_drops_the_oldest_and_says_so(capture_file):
    with TestClient(_app(capture_file, analyzer_samples_limit=10)) as client:
        _finished(client)
        body = client.get("/samples").json()
        assert body["total"] == 10
        assert body["dropped"] == 3 * CALLS + 2 * REGISTRATIONS - 10
        assert body["items"][-1]["pair"] == "register_ok"


def test_debug_mode_logs_each_pair_with_both_packets(capture_file, caplog):
    caplog.set_level(logging.INFO, logger="analyzer.pairs")
    with TestClient(_app(capture_file, analyzer_debug=True)) as client:
        _finished(client)
    lines = [r.getMessage() for r in caplog.records if r.name == "analyzer.pairs"]
    assert len(lines) == 3 * CALLS + 2 * REGISTRATIONS
    assert lines[0] == (
        f"pair=invite_challenge call_id=call-0 cseq=1 in={T0:.6f} 127.0.8.1:5060->127.0.9.1:5060 "
        f"out={T0 + 0.001:.6f} 127.0.9.1:5060->127.0.8.1:5060 response_ms=1.000"
    )


def test_a_missing_capture_file_makes_health_fail_with_the_reason(tmp_path):
    with TestClient(_app(tmp_path / "missing.pcap")) as client:
        body = _finished(client)
        response = client.get("/health")
    assert response.status_code == 503
    assert "cannot read" in body["capture"]["error"]


def test_the_api_only_reads_so_it_needs_no_token(client):
    """The analyzer has no API_TOKEN: every route is a GET (a read). A route that changes
    something must be a POST/PUT/PATCH/DELETE guarded by api_token.guard, as in the other
    services; this fails when one is added, to remind of that."""
    operations = {
        (method.upper(), path)
        for path, item in client.get("/openapi.json").json()["paths"].items()
        for method in item
    }
    assert operations == {("GET", "/health"), ("GET", "/samples")}
    for path in ("/health", "/samples", "/metrics"):
        assert client.get(path).status_code == 200, path
    answer = client.post("/samples", headers={"Origin": "http://evil.example"})
    assert answer.status_code == 405
    assert "access-control-allow-origin" not in answer.headers
