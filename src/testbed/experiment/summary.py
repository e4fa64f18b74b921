"""The headline numbers of a run, from its time series and call records."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from testbed.experiment.stats import numbers
from testbed.sample import Sample


@dataclass(frozen=True)
class Summary:
    p0_ms: float
    percentile: float
    windows: int  # sampled windows that had response times
    p99_violation_share: float  # share of those windows whose percentile exceeded P0
    worst_p99_ms: float | None
    calls_attempted: int
    calls_succeeded: int
    calls_failed: int
    calls_undeliverable: int
    ser: float | None  # RFC 6076 session establishment ratio
    proxy_seconds: float
    scaling_actions: int
    max_proxies: int
    duration_s: float
    interrupted: bool = False
    # per rise of the offered load: seconds until a proxy was added (None: none before the
    # next rise)
    reaction_s: tuple[float | None, ...] = ()
    plan_proxy_seconds: float | None = None  # what the static capacity plan would cost
    # completed, deadline (the scenario controller never reported the end), interrupted or
    # failed; and why, in a sentence
    status: str = "completed"
    end_reason: str = ""
    # the machine's CPU taken by its hypervisor (steal), mean and largest over the samples:
    # what isolation cannot keep off the system under test (testbed.experiment.host_cpu)
    host_steal_pct: float | None = None
    host_steal_max_pct: float | None = None

    @property
    def cost_vs_plan(self) -> float | None:
        if not self.plan_proxy_seconds:
            return None
        return self.proxy_seconds / self.plan_proxy_seconds

    @property
    def mean_reaction_s(self) -> float | None:
        known = [r for r in self.reaction_s if r is not None]
        return sum(known) / len(known) if known else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "reaction_s": list(self.reaction_s),
            "cost_vs_plan": self.cost_vs_plan,
            "mean_reaction_s": self.mean_reaction_s,
        }


def summarize(
    rows: Sequence[Sample],
    calls: Sequence[dict[str, Any]],
    undeliverable: int,
    p0_ms: float,
    percentile: float,
    interrupted: bool = False,
    rises_s: Sequence[float] = (),
    plan_proxies: int | None = None,
    status: str | None = None,
    end_reason: str = "",
    counted: tuple[int, int] | None = None,
) -> Summary:
    """`rows`: the time series' samples; `calls`: caller-side call records, or `counted`:
    (succeeded, failed) where there are no records (a simulated run)."""
    p99s = numbers([r.latency_percentile_ms for r in rows])
    violations = sum(1 for v in p99s if v > p0_ms)
    proxy_seconds = 0.0
    actions = 0
    # scaling actions change the pool's size; where rows have it (`replicas`), a proxy that
    # died and came back (fewer proxies serving for a while) is not counted as two
    by_replicas = bool(rows) and all(r.replicas is not None for r in rows)

    def size(sample: Sample) -> int | None:
        return sample.replicas if by_replicas else sample.proxies

    for before, after in itertools.pairwise(rows):
        proxy_seconds += before.proxies * (after.t_s - before.t_s)
        if size(after) != size(before):
            actions += 1
    succeeded = sum(1 for c in calls if c.get("outcome") == "succeeded")
    failed = sum(1 for c in calls if c.get("outcome") == "failed")
    if counted is not None:
        succeeded, failed = succeeded + counted[0], failed + counted[1]
    redirected = sum(
        1
        for c in calls
        if isinstance(c.get("final_status"), int) and 300 <= c["final_status"] < 400
    )
    attempted = succeeded + failed
    denominator = attempted - redirected
    duration = rows[-1].t_s - rows[0].t_s if rows else 0.0
    steal = numbers([r.host_steal_pct for r in rows])
    return Summary(
        p0_ms=p0_ms,
        percentile=percentile,
        windows=len(p99s),
        p99_violation_share=violations / len(p99s) if p99s else 0.0,
        worst_p99_ms=max(p99s) if p99s else None,
        calls_attempted=attempted,
        calls_succeeded=succeeded,
        calls_failed=failed,
        calls_undeliverable=undeliverable,
        ser=succeeded / denominator if denominator > 0 else None,
        proxy_seconds=round(proxy_seconds, 3),
        scaling_actions=actions,
        max_proxies=max((r.proxies for r in rows), default=0),
        duration_s=duration,
        interrupted=interrupted or status == "interrupted",
        reaction_s=reaction_times(rows, rises_s),
        plan_proxy_seconds=None if plan_proxies is None else round(plan_proxies * duration, 3),
        status=status or ("interrupted" if interrupted else "completed"),
        end_reason=end_reason,
        host_steal_pct=round(sum(steal) / len(steal), 2) if steal else None,
        host_steal_max_pct=max(steal) if steal else None,
    )


def reaction_times(rows: Sequence[Sample], rises_s: Sequence[float]) -> tuple[float | None, ...]:
    """For each time the offered load rises: how long until the proxy count went up."""
    out: list[float | None] = []
    bounds = [*rises_s, math.inf]
    for rise, next_rise in itertools.pairwise(bounds):
        before = [r.proxies for r in rows if r.t_s <= rise]
        start = before[-1] if before else (rows[0].proxies if rows else 0)
        reacted = next(
            (r.t_s for r in rows if rise < r.t_s < next_rise and r.proxies > start),
            None,
        )
        out.append(None if reacted is None else round(reacted - rise, 3))
    return tuple(out)
