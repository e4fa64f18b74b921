"""Application factory: settings and metrics are put on app.state in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from api_token.guard import TokenGuard
from csvgen import __version__
from csvgen.api.routes import generate, health, plot, validate
from csvgen.config import Settings
from csvgen.errors import CsvgenError
from csvgen.metrics import CsvgenMetrics
from scenario_csv import ScenarioError
from scenario_gen.errors import GenerationError
from service_kit import instrument, service_app


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    metrics = CsvgenMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a malformed API_TOKEN stops the service here, before it serves anything
        app.state.token_guard = TokenGuard(settings.api_token)
        app.state.settings = settings
        app.state.metrics = metrics
        yield

    app = service_app("csvgen", __version__, lifespan)

    @app.exception_handler(CsvgenError)
    async def _user_error(_request: Request, exc: CsvgenError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(GenerationError)
    async def _generation_error(_request: Request, exc: GenerationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(ScenarioError)
    async def _scenario_error(_request: Request, exc: ScenarioError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    app.include_router(health.router)
    app.include_router(generate.router)
    app.include_router(validate.router)
    app.include_router(plot.router)
    instrument(app, registry)
    return app
