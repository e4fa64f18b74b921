"""The loop's syncs against recorded answers, with a made-up clock: no network, no sleeps (the
one run_forever test sleeps 0 s between syncs)."""

import asyncio
import json
import logging

import httpx
import pytest
from prometheus_client import CollectorRegistry

from policy_controller.config import Settings
from policy_controller.main import build_loop
from policy_controller.metrics import PolicyControllerMetrics

# the run's pods are sip-proxy-N; the recorded cluster's StatefulSet is tb-sip-proxy
RENAME = {'"sip-proxy-': '"tb-sip-proxy-'}


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _loop(prometheus, kubernetes, clock, **settings):
    registry = CollectorRegistry()
    loop = build_loop(
        Settings(**settings),
        PolicyControllerMetrics(registry),
        prometheus_transport=prometheus.transport(),
        kubernetes_transport=kubernetes.transport(),
        clock=clock,
    )
    return loop, registry


def _syncs(loop, count):
    async def scenario():
        try:
            return [await loop.sync() for _ in range(count)]
        finally:
            await loop.prometheus.aclose()
            await loop.kubernetes.aclose()

    return asyncio.run(scenario())


def _value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_a_sync_reads_prometheus_and_the_scale_and_patches(env, prom_replay, kube_replay):
    prometheus = prom_replay(180, rename=RENAME)
    kubernetes = kube_replay("get-scale", "patch-scale")
    loop, registry = _loop(prometheus, kubernetes, Clock())
    [decision] = _syncs(loop, 1)
    assert decision is not None
    # 8 invites/s at 0.8 x 6 per proxy: 2; the recorded scale was 0
    assert (decision.current, decision.desired, decision.action) == (0, 2, "up")
    assert decision.invite_rate == pytest.approx(8.0003, abs=1e-4)
    assert [r.method for r in kubernetes.requests] == ["GET", "PATCH"]
    assert prometheus.mismatches == kubernetes.mismatches == []
    # the four queries, without a time: Prometheus' now
    assert [r.url.params["query"] for r in prometheus.requests] == [
        env["POLICY_CONTROLLER_QUERY_CPU"],
        env["POLICY_CONTROLLER_QUERY_P99_BY_POD"],
        env["POLICY_CONTROLLER_QUERY_P99"],
        env["POLICY_CONTROLLER_QUERY_INVITE_RATE"],
    ]
    assert all("time" not in r.url.params for r in prometheus.requests)
    assert loop.core.view is not None
    assert loop.core.view.pods == frozenset({"tb-sip-proxy-0"})
    assert _value(registry, "policy_controller_desired_replicas") == 2
    assert _value(registry, "policy_controller_current_replicas") == 0
    assert _value(registry, "policy_controller_decisions_total", action="up") == 1
    assert _value(registry, "policy_controller_last_sync_timestamp_seconds") == 1_000
    assert loop.last_error is None


def test_a_dry_run_never_patches(env, prom_replay, kube_replay, monkeypatch):
    monkeypatch.setenv("POLICY_CONTROLLER_DRY_RUN", "true")
    kubernetes = kube_replay("get-scale")  # a PATCH would find no recording
    loop, registry = _loop(prom_replay(180, rename=RENAME), kubernetes, Clock())
    [decision] = _syncs(loop, 1)
    assert decision is not None
    assert (decision.action, decision.desired, decision.patch) == ("up", 2, False)
    assert [r.method for r in kubernetes.requests] == ["GET"]
    assert _value(registry, "policy_controller_decisions_total", action="up") == 1


def test_failed_requests_are_counted_and_the_next_sync_goes_on(
    env, prom_replay, kube_replay, recorded
):
    prometheus = prom_replay(180, rename=RENAME)
    kubernetes = kube_replay("get-scale-bad-token", "get-scale", "patch-scale")
    clock = Clock()
    loop, registry = _loop(prometheus, kubernetes, clock)

    async def scenario():
        try:
            prometheus.fail_with = "bad-query"
            first = await loop.sync()  # both fail: no view, no scale, no decision
            prometheus.fail_with = None
            clock.now += 15
            second = await loop.sync()
            prometheus.fail_with = "bad-query"
            kubernetes.queue.append(recorded.load("kubernetes", "get-scale-after-patch"))
            clock.now += 15
            third = await loop.sync()  # the view of the second sync stays
            return first, second, third
        finally:
            await loop.prometheus.aclose()
            await loop.kubernetes.aclose()

    first, second, third = asyncio.run(scenario())
    assert first is None
    assert second is not None
    assert (second.current, second.desired) == (0, 2)
    assert third is not None
    assert third.current == 2
    assert third.invite_rate == pytest.approx(8.0003, abs=1e-4)  # the kept view's
    assert loop.core.view is not None
    assert loop.core.view.time == 1_015
    assert _value(registry, "policy_controller_errors_total", source="prometheus") == 2
    assert _value(registry, "policy_controller_errors_total", source="kubernetes") == 1
    assert loop.last_error is not None
    assert (loop.last_error.source, loop.last_error.time) == ("prometheus", 1_030)
    assert "bad_data" in loop.last_error.message
    assert kubernetes.mismatches == []


def test_a_forbidden_scale_is_logged_with_the_apis_message(
    env, prom_replay, kube_replay, monkeypatch, caplog
):
    monkeypatch.setenv("POLICY_CONTROLLER_TARGET_NAME", "other")
    kubernetes = kube_replay("get-scale-other-name-forbidden")
    loop, registry = _loop(prom_replay(180), kubernetes, Clock())
    with caplog.at_level(logging.WARNING, logger="policy_controller"):
        assert _syncs(loop, 1) == [None]
    assert kubernetes.mismatches == []
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("kubernetes: GET scale failed, no decision: 403 Forbidden: ")
    assert 'cannot get resource "statefulsets/scale"' in line
    assert _value(registry, "policy_controller_errors_total", source="kubernetes") == 1
    assert loop.last_decision is None


def test_a_refused_patch_is_counted(env, prom_replay, recorded):
    forbidden = recorded.load("kubernetes", "get-scale-other-name-forbidden")["response"]

    def api(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            scale = recorded.load("kubernetes", "get-scale")["response"]["body"]
            return httpx.Response(200, json=scale)
        body = json.dumps(forbidden["body"]).replace("cannot get", "cannot patch")
        return httpx.Response(403, content=body.encode())

    class Api:
        def transport(self):
            return httpx.MockTransport(api)

    loop, registry = _loop(prom_replay(180, rename=RENAME), Api(), Clock())
    [decision] = _syncs(loop, 1)
    assert decision is not None
    assert decision.patch
    assert _value(registry, "policy_controller_errors_total", source="kubernetes") == 1
    assert loop.last_error is not None
    assert loop.last_error.message.startswith("PATCH scale to 2 failed: 403 Forbidden")
    assert "cannot patch" in loop.last_error.message


def test_run_forever_survives_a_crashing_sync(env, prom_replay, kube_replay):
    loop, _ = _loop(prom_replay(180), kube_replay("get-scale"), Clock())
    loop.sync_period_s = 0
    calls: list[int] = []

    async def sync():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        if len(calls) == 3:
            raise asyncio.CancelledError
        return None

    loop.sync = sync

    async def scenario():
        try:
            with pytest.raises(asyncio.CancelledError):
                await loop.run_forever()
        finally:
            await loop.prometheus.aclose()
            await loop.kubernetes.aclose()

    asyncio.run(scenario())
    assert calls == [0, 1, 2]
