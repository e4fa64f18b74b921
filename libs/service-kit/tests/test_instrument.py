"""instrument(): request metrics in the given registry, /metrics served but not counted."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from service_kit import instrument


def _app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    instrument(app, registry)
    return app


def _requests(text: str, handler: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and f'handler="{handler}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_requests_are_counted_but_not_the_scrapes() -> None:
    registry = CollectorRegistry()
    client = TestClient(_app(registry))
    for _ in range(3):
        assert client.get("/hello").status_code == 200
    for _ in range(4):
        assert client.get("/metrics").status_code == 200
    scraped = client.get("/metrics").text
    assert _requests(scraped, "/hello") == 3
    assert _requests(scraped, "/metrics") == 0
    assert "/metrics" not in scraped.split("http_requests_total", 1)[1]
    # the registry passed in is the one served; the process-wide default one is untouched
    assert generate_latest(registry).decode().count("http_requests_total{") >= 1
    assert b'handler="/hello"' not in generate_latest(REGISTRY)


def test_metrics_are_outside_the_openapi_document() -> None:
    app = _app(CollectorRegistry())
    assert "/metrics" not in app.openapi()["paths"]
    assert "/hello" in app.openapi()["paths"]
