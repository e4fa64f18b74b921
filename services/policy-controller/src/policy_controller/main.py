"""Application factory: the clients, the decision core and the loop are made in the lifespan,
which runs the loop as a background task and stops it on shutdown. The transports replace the
network (tests replay recorded answers through them)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from policy_controller import __version__
from policy_controller.api.routes import health, status
from policy_controller.config import Settings
from policy_controller.controller import PolicyLoop, Queries
from policy_controller.decision import DecisionCore, PodNames
from policy_controller.kubernetes import ScaleClient, TokenFile
from policy_controller.metrics import PolicyControllerMetrics
from policy_controller.prometheus import PrometheusClient
from scaling_policy.predictive import PredictivePolicy
from service_kit import background, instrument, service_app


def build_loop(
    settings: Settings,
    metrics: PolicyControllerMetrics,
    *,
    prometheus_transport: httpx.AsyncBaseTransport | None = None,
    kubernetes_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] | None = None,
) -> PolicyLoop:
    s = settings
    policy = PredictivePolicy(
        s.predictive(), s.policy_controller_min_replicas, s.policy_controller_max_replicas
    )
    kind = s.policy_controller_target_kind.value
    core = DecisionCore(
        policy,
        PodNames(s.policy_controller_target_name, kind),
        dry_run=s.policy_controller_dry_run,
    )
    prometheus = PrometheusClient(
        s.policy_controller_prometheus_url,
        s.policy_controller_prometheus_timeout_s,
        transport=prometheus_transport,
    )
    kubernetes = ScaleClient(
        s.policy_controller_kube_api,
        s.namespace(),
        kind,
        s.policy_controller_target_name,
        TokenFile(s.policy_controller_kube_token_file),
        ca=None if kubernetes_transport is not None else s.ca_file(),
        timeout_s=s.policy_controller_kube_timeout_s,
        transport=kubernetes_transport,
    )
    queries = Queries(
        cpu=s.policy_controller_query_cpu,
        p99_by_pod=s.policy_controller_query_p99_by_pod,
        p99=s.policy_controller_query_p99,
        invite_rate=s.policy_controller_query_invite_rate,
    )
    extra = {} if clock is None else {"clock": clock}
    return PolicyLoop(
        core,
        prometheus,
        kubernetes,
        queries,
        metrics,
        sync_period_s=s.policy_controller_sync_period_s,
        **extra,
    )


def create_app(
    settings: Settings | None = None,
    registry: CollectorRegistry | None = None,
    *,
    prometheus_transport: httpx.AsyncBaseTransport | None = None,
    kubernetes_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    registry = registry or CollectorRegistry()
    metrics = PolicyControllerMetrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a namespace or CA file that cannot be read stops the service here (SettingsProblem)
        loop = build_loop(
            settings,
            metrics,
            prometheus_transport=prometheus_transport,
            kubernetes_transport=kubernetes_transport,
            clock=clock,
        )
        app.state.settings = settings
        app.state.metrics = metrics
        app.state.loop = loop
        try:
            async with background(loop.run_forever, name="policy-loop"):
                yield
        finally:
            await loop.prometheus.aclose()
            await loop.kubernetes.aclose()

    app = service_app("policy-controller", __version__, lifespan)
    app.state.settings = settings
    app.include_router(health.router)
    app.include_router(status.router)
    instrument(app, registry)
    return app
