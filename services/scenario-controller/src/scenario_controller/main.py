"""Application factory: hub, store and the progress publisher start in the lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from api_token.guard import TokenGuard
from scenario_controller import __version__
from scenario_controller.api.routes import clients, health, panel, runs, scenarios
from scenario_controller.api.routes import experiment as experiment_routes
from scenario_controller.config import Settings
from scenario_controller.metrics import ControllerMetrics
from scenario_controller.state import Controller
from service_kit import background, instrument, service_app


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    metrics = ControllerMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a malformed API_TOKEN stops the app here, before it serves anything
        app.state.token_guard = TokenGuard(settings.api_token)
        async with httpx.AsyncClient() as http:
            controller = Controller(settings, metrics, http)
            app.state.controller = controller
            try:
                async with background(controller.publish_forever(), name="publisher"):
                    yield
            finally:
                await controller.stop_runs()

    app = service_app("scenario-controller", __version__, lifespan)
    app.include_router(health.router)
    app.include_router(clients.router)
    app.include_router(scenarios.router)
    app.include_router(runs.router)
    app.include_router(experiment_routes.router)
    app.include_router(panel.router)
    app.mount("/static", StaticFiles(directory=panel.PANEL), name="static")
    instrument(app, registry)
    return app
