"""Application factory: the capture starts in the lifespan and stops with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from analyzer import __version__
from analyzer.analysis import Analyzer
from analyzer.api.routes import health, samples
from analyzer.capture import PacketSource, open_file, open_live
from analyzer.config import Settings
from analyzer.metrics import AnalyzerCollector, ResponseTimes
from analyzer.runner import CaptureRunner
from analyzer.samples import SampleStore
from service_kit import background, instrument, service_app

log = logging.getLogger(__name__)
EXPIRY_INTERVAL_SECONDS = 1.0


def open_source(settings: Settings) -> PacketSource:
    if settings.analyzer_pcap_file is not None:
        return open_file(settings.analyzer_backend, settings.analyzer_pcap_file)
    return open_live(
        settings.analyzer_backend,
        settings.analyzer_interface,
        settings.proxy,
        settings.analyzer_socket_buffer_bytes,
    )


def create_app(
    settings: Settings | None = None, registry: CollectorRegistry | None = None
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    store = SampleStore(settings.analyzer_samples_limit)
    times = ResponseTimes(registry, settings.bucket_bounds)
    analyzer = Analyzer(
        settings.proxy,
        settings.analyzer_pair_timeout_seconds,
        store,
        times.observe,
        settings.analyzer_debug,
    )
    runners: list[CaptureRunner] = []
    registry.register(
        AnalyzerCollector(analyzer, store, lambda: runners[0].stats() if runners else None)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        source = open_source(settings)
        runner = CaptureRunner(source, analyzer)
        runners.append(runner)
        app.state.runner = runner
        runner.start()
        what = settings.analyzer_pcap_file or f"interface {settings.analyzer_interface}"
        log.info(
            "analyzing %s for proxy %s with the %s backend",
            what,
            settings.analyzer_proxy_address,
            settings.analyzer_backend,
        )

        async def expire_forever() -> None:
            # live only: packet times are the kernel's wall clock; a file keeps its own time
            while True:
                await asyncio.sleep(EXPIRY_INTERVAL_SECONDS)
                analyzer.expire(time.time())

        live = settings.analyzer_pcap_file is None
        try:
            async with (
                background(expire_forever(), name="expiry") if live else contextlib.nullcontext()
            ):
                yield
        finally:
            await asyncio.to_thread(runner.stop)

    app = service_app("analyzer", __version__, lifespan)
    app.state.settings = settings
    app.state.samples = store
    app.state.analyzer = analyzer
    app.include_router(health.router)
    app.include_router(samples.router)
    instrument(app, registry)
    return app
