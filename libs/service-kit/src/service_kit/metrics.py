"""The standard HTTP metrics of every service (prometheus-fastapi-instrumentator's), at
/metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when called: `import service_kit` stays light for the CLIs
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

METRICS_PATH = "/metrics"


def instrument(app: FastAPI, registry: CollectorRegistry) -> Instrumentator:
    """Request metrics of app in registry (the service's own, never the global default one),
    served at /metrics, outside the OpenAPI document. Scrapes of /metrics are not counted:
    they would be a steady stream of requests that no user made."""
    from prometheus_fastapi_instrumentator import Instrumentator

    instrumentator = Instrumentator(registry=registry, excluded_handlers=[METRICS_PATH])
    instrumentator.instrument(app).expose(app, endpoint=METRICS_PATH, include_in_schema=False)
    return instrumentator
