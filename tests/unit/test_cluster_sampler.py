"""The cluster sampler's logic on canned Prometheus answers (the live path is
tests/cluster/test_experiment_on_cluster.py): columns named as in local mode, the percentile
from bucket differences since the baseline, as the local sampler computes it."""

from __future__ import annotations

import httpx

from testbed.experiment.cluster_sampler import ClusterSampler, proxy_column
from testbed.local.prometheus import PromQuery


class CannedPrometheus:
    """Prometheus' /api/v1/query answers, as JSON, for the queries the sampler asks."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[float, float]] = {}

    def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        if expr.startswith("sum by (pod, le) (analyzer_sip_response_time_seconds_bucket"):
            return [
                ({"pod": pod, "le": str(le)}, count)
                for pod, buckets in self.buckets.items()
                for le, count in buckets.items()
            ]
        if "irate(analyzer_sip_messages_total" in expr and 'status="407"' in expr:
            return [({"pod": "tb-sip-proxy-0"}, 4.0), ({"pod": "tb-sip-loadb-x"}, 9)]
        if "irate(analyzer_sip_messages_total" in expr and 'status="200"' in expr:
            return [({"pod": "tb-sip-proxy-0"}, float("nan"))]  # no value: left out
        if "kamailio_script_new_invites" in expr:
            return [({}, 12.5)]
        return []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/query":
            return httpx.Response(404)  # the scenario controller: not running here
        expr = request.url.params["query"]
        result = [
            {"metric": labels, "value": [1.0, str(value)]} for labels, value in self.vector(expr)
        ]
        data = {"resultType": "vector", "result": result}
        return httpx.Response(200, json={"status": "success", "data": data})


def test_proxy_pods_get_local_mode_column_names() -> None:
    assert proxy_column("tb-sip-proxy-3") == "sip-proxy-3"
    assert proxy_column("testbed-sip-proxy-12") == "sip-proxy-12"
    assert proxy_column("tb-sip-loadb-7bf59c6b87-9t5w9") is None


def test_percentile_leaves_out_what_came_before_the_baseline() -> None:
    prom = CannedPrometheus()
    # the registrations: 40 slow answers (2.5 s) before the run
    prom.buckets = {"tb-sip-proxy-0": {0.005: 0, 0.01: 0, 2.5: 40, float("inf"): 40}}
    with httpx.Client(transport=httpx.MockTransport(prom.handle)) as http:
        sampler = ClusterSampler(
            PromQuery("http://prometheus:9090", http),
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
    assert row["sip-proxy-0.ok_per_s"] is None
    assert row["lb_invites_per_s"] == 12.5
    assert row["proxies"] == 2
    assert not any(key.startswith("sip-loadb") for key in row)
