"""Each service's OpenAPI document is committed (services/<name>/openapi.json), current, linked
from its README, and no service serves Swagger UI or ReDoc (FastAPI loads them from a CDN)."""

from __future__ import annotations

import pytest
from support import ROOT

from service_kit import openapi
from service_kit.services import Service, discover

SERVICES = discover(ROOT)


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_the_committed_document_is_current(service: Service) -> None:
    committed = openapi.target(service)
    assert committed.is_file(), f"{committed} is missing: run {openapi.REGENERATE}"
    assert committed.read_text() == openapi.document(service), (
        f"{committed.relative_to(ROOT)} is stale: run {openapi.REGENERATE} and commit it"
    )


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_the_readme_links_it(service: Service) -> None:
    assert "(openapi.json)" in (service.directory / "README.md").read_text()


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_no_page_that_loads_a_cdn(service: Service) -> None:
    app = service.default_app()
    paths = {getattr(route, "path", None) for route in getattr(app, "routes", [])}
    assert "/openapi.json" in paths  # the document itself stays served
    assert not paths & {"/docs", "/redoc", "/docs/oauth2-redirect"}
