"""Application factory: engines, clients and background tasks are created in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from api_token.guard import TokenGuard
from kamailio_rpc import AsyncKamailioRpc
from service_kit import background, instrument, service_app
from sip_controller import __version__
from sip_controller.api.routes import health, proxies, registrations
from sip_controller.config import Settings
from sip_controller.errors import ControllerError
from sip_controller.loadbalancers import LoadBalancerPool
from sip_controller.metrics import ControllerMetrics
from sip_controller.proxies import ProxyService
from sip_controller.reconciler import Reconciler
from sip_controller.sources import KubernetesSource, source_for
from sip_controller.store import ProxyStore
from testbed_db import SubscriberSeed, create_schema, make_engine, seed_subscribers

log = logging.getLogger(__name__)


def _prepare_database(settings: Settings) -> ProxyStore:
    """Create the schema and seed the subscribers (idempotent, every start)."""
    engine = make_engine(settings.database_url)
    store = ProxyStore(engine, settings.database_outage_seconds)
    # the DB may still be starting beside us (compose, the chart): wait for it like any outage
    store.wait_reachable()
    create_schema(engine)
    seed = SubscriberSeed(
        domain=settings.sip_domain,
        first=settings.subscriber_first,
        last=settings.subscriber_last,
        password_template=settings.subscriber_password_template,
    )
    written = seed_subscribers(engine, seed)
    log.info("schema ready; %d subscriber rows written", written)
    return store


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    metrics = ControllerMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # first: a bad API_TOKEN or address source stops the app before it touches anything
        async with contextlib.AsyncExitStack() as stack:
            app.state.token_guard = TokenGuard(settings.api_token)
            source = source_for(settings)
            if isinstance(source, KubernetesSource):
                stack.push_async_callback(source.aclose)
            store = await anyio.to_thread.run_sync(_prepare_database, settings)
            http = await stack.enter_async_context(httpx.AsyncClient())
            timeout = settings.rpc_timeout_seconds
            token = settings.api_token

            def rpc(url: str) -> AsyncKamailioRpc:
                # every Kamailio (LBs and proxies) checks the same API_TOKEN on /RPC
                return AsyncKamailioRpc(url, http, timeout, token=token)

            pool = LoadBalancerPool([rpc(u) for u in settings.loadbalancer_urls])

            def refresh_metrics() -> None:
                # runs on the event loop: one try, no waiting out an outage here
                with contextlib.suppress(SQLAlchemyError):
                    metrics.set_counts(store.counts_by_state())

            service = ProxyService(
                store,
                pool,
                lambda http_url: rpc(f"{http_url}/RPC"),
                http,
                settings,
                source,
                on_change=refresh_metrics,
            )
            refresh_metrics()
            app.state.settings = settings
            app.state.store = store
            app.state.service = service
            reconciler = Reconciler(
                service, settings.health_failure_threshold, settings.sync_timeout_seconds
            )
            await stack.enter_async_context(
                background(
                    reconciler.run_forever(settings.health_check_interval_seconds),
                    name="reconciler",
                )
            )
            yield

    app = service_app("sip-controller", __version__, lifespan)

    @app.exception_handler(ControllerError)
    async def _controller_error(_request: Request, exc: ControllerError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    app.include_router(health.router)
    app.include_router(proxies.router)
    app.include_router(registrations.router)
    instrument(app, registry)
    return app
