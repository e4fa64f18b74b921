"""The autoscaler of an experiment on the local testbed: the control loop fed with the runner's
samples, the scaler thread calling `LocalTestbed.scale` (enable before traffic, drain on
removal), the Prometheus gauges and a log of every sync."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from scaling_policy.policy import ScalingPolicy
from scaling_policy.view import MetricView
from testbed.autoscale.controller import Autoscaler, ScalingEvent
from testbed.autoscale.exporter import AutoscalerMetrics
from testbed.autoscale.metrics import MetricSource, ScrapedMetrics
from testbed.autoscale.scaler import ProxyScaler, Scaler
from testbed.autoscale.spec import AutoscaleSpec
from testbed.sample import Sample, Scaling

COMPONENT = "sip-proxy"


class LocalAutoscaler:
    def __init__(
        self,
        spec: AutoscaleSpec,
        policy: ScalingPolicy,
        scale: Callable[[int], Any],
        initial_replicas: int,
        notify: Callable[[str], None],
        metrics_address: tuple[str, int] | None = None,
        metrics: MetricSource | None = None,
        scaler: Scaler | None = None,
    ) -> None:
        self.notify = notify
        self.policy = policy
        self.loop = Autoscaler(
            self.policy,
            metrics or ScrapedMetrics(spec.scrape_interval_s, spec.metric_window_s),
            initial_replicas,
            spec.sync_period_s,
        )
        # a simulated run passes its own (testbed.simulate.scaler): the same interface
        self.scaler: Scaler = scaler or ProxyScaler(
            lambda n: scale(n),
            initial_replicas,
            mode=spec.pod_management,
            startup_delay_s=spec.startup_delay_s,
            on_error=lambda exc: notify(f"autoscaler: scaling failed: {exc}"),
        )
        self.registry = CollectorRegistry()
        self.metrics = AutoscalerMetrics(self.registry)
        self.metrics_address = metrics_address
        self._server: Any = None
        # each sync with the ready count and the inputs the policy read
        self.events: list[tuple[float, ScalingEvent, int, MetricView | None]] = []

    def start(self) -> None:
        self.scaler.start()
        if self.metrics_address is not None:
            host, port = self.metrics_address
            try:
                self._server, _thread = start_http_server(port, host, self.registry)
            except OSError as exc:
                self.notify(f"autoscaler: metrics not served on {host}:{port} ({exc})")
        if self.loop.target != self.scaler.replicas:  # min/max moved the starting point
            self.scaler.set_target(self.loop.target)

    def tick(self, now: float, sample: Sample) -> Sample:
        """One sample: feed it, sync when due; the sample with the target and the ready count."""
        t_s = sample.t_s
        self.loop.observe(now, sample)
        readiness = self.scaler.readiness()
        event = self.loop.sync(now, readiness)
        if event is not None:
            self.events.append((t_s, event, len(readiness.ready), self.loop.metrics.view()))
            if event.desired != event.current:
                self.notify(f"autoscaler: {event.current} -> {event.desired} ({event.reason})")
                self.scaler.set_target(event.desired)
        self.metrics.update(COMPONENT, self.scaler.replicas, self.loop.target)
        scaling = Scaling(self.loop.target, len(self.scaler.readiness().ready))
        return replace(sample, scaling=scaling)

    def stop(self) -> None:
        self.scaler.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def log_rows(self, since: int = 0) -> list[dict[str, Any]]:
        """autoscaler.csv's rows from the `since`-th sync on (the runner appends them as the
        run goes): target before and after, ready proxies, the policy's reason, and the inputs
        it read (where from, of which time)."""
        return [
            {
                "t_s": round(t_s, 3),
                "target_before": event.current,
                "target_after": event.desired,
                "ready": ready,
                "reason": event.reason,
                **_inputs(view),
            }
            for t_s, event, ready, view in self.events[since:]
        ]


def _inputs(view: MetricView | None) -> dict[str, Any]:
    if view is None:
        return {"metrics_source": "", "metrics_time": None}

    def rounded(values: dict[str, float | None]) -> str:
        return json.dumps({k: v for k, v in sorted(values.items())}, separators=(",", ":"))

    return {
        "metrics_source": view.source,
        "metrics_time": view.at,
        "p99_all_s": view.p99_all_s,
        "invite_rate": view.invite_rate,
        "p99_s": rounded(view.p99_s),
        "cpu_cores": rounded(view.cpu_cores),
    }
