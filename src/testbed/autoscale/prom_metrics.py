"""What the local autoscaler sees, from the run's Prometheus: the chart's prometheus-adapter
queries (CPU and p99 per proxy pod, the load balancer's INVITE rate as an External metric)
and KEDA's p99 trigger, rendered with autoscale.metric_window_s (testbed.local.rules), asked
every autoscale.scrape_interval_s. A local policy reads what the adapter or KEDA would show
it on a cluster, as stale as there."""

from __future__ import annotations

from collections.abc import Callable

from scaling_policy.view import MetricView
from testbed.autoscale.metrics import pool_pods
from testbed.local.prometheus import PrometheusError, PromQuery
from testbed.local.rules import (
    CPU_POD_METRIC,
    INVITE_RATE_METRIC,
    P99_POD_METRIC,
    ChartQueries,
)
from testbed.sample import Sample

LB_SELECTOR = {"component": "sip-loadb"}  # the HPA's External metric selector (the chart's)
P99_SERIES = "analyzer_sip_response_time_seconds_bucket"  # the KEDA trigger on the overall p99


class PrometheusMetrics:
    def __init__(
        self,
        client: PromQuery,
        queries: ChartQueries,
        scrape_interval_s: float,
        on_error: Callable[[str], None],
    ) -> None:
        self.client = client
        self.queries = queries
        self.scrape_interval_s = scrape_interval_s
        self.on_error = on_error
        self._view: MetricView | None = None
        self.failures = 0

    def expressions(self, pods: frozenset[str]) -> dict[str, str]:
        """The queries of one scrape, by what they feed."""
        listed = sorted(pods)
        return {
            "cpu_cores": self.queries.pods_query(CPU_POD_METRIC, listed),
            "p99_s": self.queries.pods_query(P99_POD_METRIC, listed),
            "p99_all_s": self.queries.keda_query(P99_SERIES),
            "invite_rate": self.queries.external_query(INVITE_RATE_METRIC, LB_SELECTOR),
        }

    def observe(self, now: float, sample: Sample) -> None:
        """A sample taken at `now` (monotonic; sample.time: Unix); queries when due. A failed
        query keeps the previous view (an adapter that cannot reach Prometheus serves nothing
        new) and is tried again at the next sample."""
        if self._view is not None and now - self._view.time < self.scrape_interval_s:
            return
        pods = pool_pods(sample)
        at = sample.time
        try:
            self._view = self.scrape(now, at, pods)
        except PrometheusError as exc:
            self.failures += 1
            self.on_error(f"autoscaler: Prometheus did not answer: {exc}")

    def scrape(self, now: float, at: float, pods: frozenset[str]) -> MetricView:
        queries = self.expressions(pods)
        cpu = self.client.by_label(queries["cpu_cores"], "pod", at) if pods else {}
        p99 = self.client.by_label(queries["p99_s"], "pod", at) if pods else {}
        return MetricView(
            time=now,
            cpu_cores={pod: cpu.get(pod) for pod in pods},
            p99_s={pod: p99.get(pod) for pod in pods},
            p99_all_s=self.client.value(queries["p99_all_s"], at),
            invite_rate=self.client.value(queries["invite_rate"], at),
            pods=pods,
            source="prometheus",
            at=at,
        )

    def view(self) -> MetricView | None:
        return self._view
