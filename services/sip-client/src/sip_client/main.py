"""Application factory: the UDP socket, the pod and the controller link start in the lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api_token.guard import TokenGuard
from service_kit import background, instrument, service_app
from sip_client import __version__
from sip_client.api.routes import calls, health, phones
from sip_client.config import Settings
from sip_client.controller_link import ControllerLink
from sip_client.metrics import PodMetrics
from sip_client.records import CallRecord, MalformedInput, RegistrationResult
from sip_client.runtime import PodRuntime
from sip_client.ua import PodConfig, PodEvent
from sip_core import TimerSettings

log = logging.getLogger(__name__)


def pod_config(settings: Settings) -> PodConfig:
    return PodConfig(
        pod=settings.pod_id,
        phones=settings.phones,
        local=(settings.sip_client_address, settings.sip_client_port),
        outbound=settings.outbound,
        domain=settings.sip_domain,
        password_template=settings.subscriber_password_template,
        register_expires=settings.register_expires,
        reregister_interval=settings.reregister_interval_seconds,
        register_retry=settings.register_retry_seconds,
        register_spread=settings.register_spread_seconds,
        ring_delay=settings.ring_delay_ms / 1000,
        call_timeout=settings.call_timeout_seconds,
        timers=TimerSettings(
            settings.sip_t1_ms / 1000, settings.sip_t2_ms / 1000, settings.sip_t4_ms / 1000
        ),
    )


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    metrics = PodMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a malformed API_TOKEN stops the pod here, before it opens a socket
        app.state.token_guard = TokenGuard(settings.api_token)
        runtime = PodRuntime(
            pod_config(settings), settings.call_records_limit, settings.socket_buffer_bytes
        )
        host, port = await runtime.start()
        log.info("pod %s: %d phones on udp:%s:%d", settings.pod_id, settings.phones, host, port)

        def observe(event: PodEvent) -> None:
            if isinstance(event, CallRecord):
                metrics.call_finished(event)
            elif isinstance(event, RegistrationResult):
                metrics.registration(event)
            elif isinstance(event, MalformedInput):
                metrics.malformed.inc()

        runtime.listeners.append(observe)
        metrics.active.set_function(lambda: runtime.pod.active_calls if runtime.pod else 0)
        metrics.registered.set_function(
            lambda: len(runtime.pod.registered(runtime.now())) if runtime.pod else 0
        )
        link = None
        if settings.scenario_controller_url:
            link = ControllerLink(
                settings.scenario_controller_url,
                runtime,
                settings.stats_interval_seconds,
                settings.default_hold_ms,
                registry,
                token=settings.api_token,
            )
        app.state.runtime = runtime
        app.state.link = link
        try:
            async with (
                background(link.run(), name="controller link")
                if link is not None
                else contextlib.nullcontext()
            ):
                if settings.register_on_start:
                    runtime.register_all()
                yield
        finally:
            runtime.close()

    # no Swagger UI or ReDoc: FastAPI loads them from a CDN; the document is /openapi.json
    # and services/<name>/openapi.json (scripts/openapi.sh). One title for every pod, so the
    # document does not depend on POD_ID.
    app = service_app("sip-client", __version__, lifespan)
    app.include_router(health.router)
    app.include_router(phones.router)
    app.include_router(calls.router)
    instrument(app, registry)
    return app
