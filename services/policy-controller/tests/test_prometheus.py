"""The Prometheus adapter against a real Prometheus' recorded answers (tests/recorded/prometheus:
the TSDB of results/step-predictive-10m-compressed-20261204-052158, served by `testbed
prometheus`, asked the local runner's queries at times of the run)."""

import asyncio

import httpx
import pytest

from policy_controller.prometheus import (
    PrometheusClient,
    PrometheusError,
    Series,
    by_label,
    parse_answer,
    single,
)


def _parse(recorded, name):
    response = recorded.load("prometheus", name)["response"]
    return parse_answer(response["status"], response["body"])


def test_cpu_by_pod(recorded):
    cpu = by_label(_parse(recorded, "t300-cpu"), "pod")
    assert sorted(cpu) == ["sip-proxy-0", "sip-proxy-1", "sip-proxy-2"]
    assert cpu["sip-proxy-0"] == pytest.approx(0.00696, abs=1e-5)


def test_single_values(recorded):
    assert single(_parse(recorded, "t180-invite-rate")) == pytest.approx(8.0003, abs=1e-4)
    assert single(_parse(recorded, "t180-p99")) == pytest.approx(1.575)
    assert single(_parse(recorded, "before-run-invite-rate")) is None  # an empty vector


def test_nan_is_no_value(recorded):
    # a p99 over no requests: histogram_quantile gives NaN
    assert single(_parse(recorded, "t000-p99")) is None
    assert by_label(_parse(recorded, "t000-p99-by-pod"), "pod") == {
        "sip-proxy-0": None,
        "sip-proxy-1": None,
    }


def test_a_bad_query_is_an_error_with_prometheus_reason(recorded):
    with pytest.raises(PrometheusError, match=r"HTTP 400: bad_data: invalid parameter \"query\""):
        _parse(recorded, "bad-query")


def test_answers_that_are_not_vectors():
    assert parse_answer(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    ) == [Series({}, 3.0)]
    bodies: list[object] = [
        [],
        {"status": "success"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
    ]
    for body in bodies:
        with pytest.raises(PrometheusError):
            parse_answer(200, body)
    with pytest.raises(PrometheusError, match="expected one value, got 2"):
        single([Series({"pod": "a"}, 1.0), Series({"pod": "b"}, 2.0)])


def test_the_client_asks_the_recorded_query_at_its_time(recorded, prom_replay):
    replay = prom_replay(540)
    recording = recorded.load("prometheus", "t540-cpu")

    async def scenario():
        client = PrometheusClient("http://prometheus.test:9090/", transport=replay.transport())
        try:
            return await client.query(recorded.queries["cpu"], at=recording["request"]["time"])
        finally:
            await client.aclose()

    cpu = by_label(asyncio.run(scenario()), "pod")
    assert sorted(cpu) == [f"sip-proxy-{i}" for i in range(4)]
    assert replay.mismatches == []
    assert replay.requests[0].url.params["query"] == recorded.queries["cpu"]


def test_the_client_reports_errors(recorded, prom_replay):
    replay = prom_replay(180)
    replay.fail_with = "bad-query"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    def not_json(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    async def ask(transport):
        client = PrometheusClient("http://prometheus.test:9090", transport=transport)
        try:
            return await client.query("up")
        finally:
            await client.aclose()

    with pytest.raises(PrometheusError, match="bad_data"):
        asyncio.run(ask(replay.transport()))
    with pytest.raises(PrometheusError, match="unreachable"):
        asyncio.run(ask(httpx.MockTransport(refuse)))
    with pytest.raises(PrometheusError, match="HTTP 502: not JSON"):
        asyncio.run(ask(httpx.MockTransport(not_json)))
