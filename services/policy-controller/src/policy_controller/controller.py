"""The control loop: once per sync period, the four queries, the target's scale, the decision
(decision.py), and the patch. A failed request never stops it: it is counted, logged in one
line with its reason, and the next sync tries again (a failed scrape keeps the last view; no
scale, no decision)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from policy_controller.decision import Answers, Decision, DecisionCore
from policy_controller.kubernetes import KubernetesError, ScaleClient
from policy_controller.metrics import PolicyControllerMetrics
from policy_controller.prometheus import PrometheusClient, PrometheusError, by_label, single

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queries:
    cpu: str  # cores per pod, by (pod)
    p99_by_pod: str  # seconds per pod, by (pod)
    p99: str  # the pool's, one value
    invite_rate: str  # INVITEs/s at the load balancer, one value


@dataclass(frozen=True)
class Failure:
    time: float
    source: str  # prometheus | kubernetes
    message: str


class PolicyLoop:
    def __init__(
        self,
        core: DecisionCore,
        prometheus: PrometheusClient,
        kubernetes: ScaleClient,
        queries: Queries,
        metrics: PolicyControllerMetrics,
        *,
        sync_period_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.prometheus = prometheus
        self.kubernetes = kubernetes
        self.queries = queries
        self.metrics = metrics
        self.sync_period_s = sync_period_s
        self.clock = clock
        self.last_decision: Decision | None = None
        self.last_error: Failure | None = None
        metrics.lead_time.set(core.policy.s.lead_time_s)

    async def scrape(self) -> Answers:
        q, ask = self.queries, self.prometheus.query
        # the four at once: a sync waits for the slowest query, not for their sum
        cpu, p99_by_pod, p99, rate = await asyncio.gather(
            ask(q.cpu), ask(q.p99_by_pod), ask(q.p99), ask(q.invite_rate)
        )
        return Answers(
            cpu_cores=by_label(cpu, "pod"),
            p99_s=by_label(p99_by_pod, "pod"),
            p99_all_s=single(p99),
            invite_rate=single(rate),
        )

    async def sync(self) -> Decision | None:
        """One sync: the decision made, or None when the scale could not be read."""
        now = self.clock()
        try:
            self.core.observe(now, await self.scrape())
        except PrometheusError as exc:
            self._failed(now, "prometheus", f"query failed, the last view stays: {exc}")
        try:
            scale = await self.kubernetes.get()
        except KubernetesError as exc:
            self._failed(now, "kubernetes", f"GET scale failed, no decision: {exc}")
            return None
        decision = self.core.decide(now, scale.spec_replicas)
        self.last_decision = decision
        self.metrics.record(decision)
        if decision.action == "hold":
            log.debug("%d replicas: %s", decision.current, decision.reason)
        else:
            log.info(
                "%s%d -> %d replicas: %s",
                "dry run: " if self.core.dry_run else "",
                decision.current,
                decision.desired,
                decision.reason,
            )
        if decision.patch:
            try:
                await self.kubernetes.patch(decision.desired)
            except KubernetesError as exc:
                self._failed(now, "kubernetes", f"PATCH scale to {decision.desired} failed: {exc}")
        return decision

    def _failed(self, now: float, source: str, message: str) -> None:
        self.metrics.errors.labels(source=source).inc()
        self.last_error = Failure(now, source, message)
        log.warning("%s: %s", source, message)

    async def run_forever(self) -> None:
        """A sync every sync period until cancelled; nothing a sync raises ends it."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.sync()
            except Exception:  # a bug, not a failed request: logged, and the loop goes on
                log.exception("sync failed")
            await asyncio.sleep(max(0.0, started + self.sync_period_s - loop.time()))
