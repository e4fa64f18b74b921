"""The cluster sampler's logic on canned Prometheus answers (the live path is
tests/cluster/test_experiment_on_cluster.py): columns named as in local mode, the percentile
from bucket differences since the baseline, as the local sampler computes it."""

from __future__ import annotations

from typing import Any

import httpx

from testbed.experiment.cluster_sampler import ClusterSampler, proxy_column


class CannedPrometheus:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[float, float]] = {}

    def query(self, expr: str) -> list[dict[str, Any]]:
        if expr.startswith("sum by (pod, le) (analyzer_sip_response_time_seconds_bucket"):
            return [
                {"pod": pod, "le": str(le), "value": count}
                for pod, buckets in self.buckets.items()
                for le, count in buckets.items()
            ]
        if "irate(analyzer_sip_messages_total" in expr and 'status="407"' in expr:
            return [{"pod": "tb-sip-proxy-0", "value": 4.0}, {"pod": "tb-sip-loadb-x", "value": 9}]
        return []

    def scalar(self, expr: str) -> float | None:
        return 12.5 if "kamailio_script_new_invites" in expr else None


def test_proxy_pods_get_local_mode_column_names() -> None:
    assert proxy_column("tb-sip-proxy-3") == "sip-proxy-3"
    assert proxy_column("testbed-sip-proxy-12") == "sip-proxy-12"
    assert proxy_column("tb-sip-loadb-7bf59c6b87-9t5w9") is None


def test_percentile_leaves_out_what_came_before_the_baseline() -> None:
    prom = CannedPrometheus()
    # the registrations: 40 slow answers (2.5 s) before the run
    prom.buckets = {"tb-sip-proxy-0": {0.005: 0, 0.01: 0, 2.5: 40, float("inf"): 40}}
    with httpx.Client() as http:
        sampler = ClusterSampler(
            prom,  # type: ignore[arg-type]  # canned answers, not a Prometheus
            http,
            "ns",
            window_s=10,
            percentile=99,
            scenario_url="http://127.0.0.1:9",
            replicas=lambda: 2,
        )
        baseline = sampler.sample().row()
        assert baseline["p99_ms"] is None
        # then 100 fast answers (under 5 ms)
        prom.buckets = {"tb-sip-proxy-0": {0.005: 100, 0.01: 100, 2.5: 140, float("inf"): 140}}
        taken = sampler.sample()
        row = taken.row()
    assert taken.latency_percentile_ms == row["p99_ms"]  # the column keeps its name
    assert taken.percentile == 99
    assert row["p99_ms"] is not None
    assert row["p99_ms"] <= 5.0
    assert row["sip-proxy-0.p99_ms"] == row["p99_ms"]
    assert row["sip-proxy-0.invites_per_s"] == 4.0
    assert row["lb_invites_per_s"] == 12.5
    assert row["proxies"] == 2
    assert not any(key.startswith("sip-loadb") for key in row)
