"""What a policy reads: one scrape of the proxies' metrics."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricView:
    """One scrape: per-proxy averages over the window and totals, as of `time`."""

    time: float
    cpu_cores: dict[str, float | None]  # per proxy, average cores used over the window
    p99_s: dict[str, float | None]  # per proxy, windowed p99 response time
    p99_all_s: float | None  # over all proxies (what the QoS target is about)
    invite_rate: float | None  # INVITEs/s handed out by the load balancer, averaged
    pods: frozenset[str] = field(default_factory=frozenset)
    source: str = "samples"  # where it came from: the local samples or a Prometheus
    at: float | None = None  # Unix time the values are of, when queried
