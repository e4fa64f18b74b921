"""The app with its loop running against recorded answers (transports injected): /health,
/status, /metrics, and a clean shutdown."""

import time

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from policy_controller import __version__
from policy_controller.config import Settings
from policy_controller.main import create_app

RENAME = {'"sip-proxy-': '"tb-sip-proxy-'}


def _wait(client, check, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get("/status").json()
        if check(status, client):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.01)


def _metric(client, line_start):
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return None


def test_health_status_and_metrics_after_a_sync(env, prom_replay, kube_replay, monkeypatch):
    monkeypatch.setenv("POLICY_CONTROLLER_SYNC_PERIOD_S", "3600")  # one sync in this test
    prometheus = prom_replay(180, rename=RENAME)
    kubernetes = kube_replay("get-scale", "patch-scale")
    app = create_app(
        Settings(),
        CollectorRegistry(),
        prometheus_transport=prometheus.transport(),
        kubernetes_transport=kubernetes.transport(),
    )
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok", "version": __version__}
        status = _wait(client, lambda s, _: s["time"] is not None)
        metrics = client.get("/metrics").text
    decision = status  # flat: the last decision's fields at the top
    assert status["target"] == "statefulsets/tb-sip-proxy"
    assert (status["dry_run"], status["sync_period_s"], status["last_error"]) == (
        False,
        3600,
        None,
    )
    assert (decision["current"], decision["desired"], decision["action"]) == (0, 2, "up")
    assert decision["patch"] is True
    assert decision["reason"].startswith("predictive: up, 8.0/s")
    # start-up 15 + ready 0 + scrape 5 + half of a 30 s window + a 3600 s sync period
    assert decision["lead_time_s"] == 3635
    assert decision["knee_invites_per_second"] == 6
    assert decision["cpu_knee_invites_per_second"] is None  # no CPU limit given
    assert abs(decision["invite_rate"] - 8.0003) < 1e-4
    assert decision["settled_p99_s"] is None  # the one pod was seen just now
    assert (decision["ready"], decision["pending"]) == (0, 0)
    assert time.time() - decision["time"] < 60
    assert prometheus.mismatches == kubernetes.mismatches == []
    for line in (
        "policy_controller_desired_replicas 2.0",
        "policy_controller_current_replicas 0.0",
        "policy_controller_knee_invites_per_second 6.0",
        "policy_controller_lead_time_seconds 3635.0",
        "policy_controller_settled_p99_seconds NaN",
        'policy_controller_decisions_total{action="up"} 1.0',
        'policy_controller_decisions_total{action="hold"} 0.0',
        'policy_controller_errors_total{source="prometheus"} 0.0',
        'policy_controller_errors_total{source="kubernetes"} 0.0',
    ):
        assert line in metrics, line
    for name in (
        "policy_controller_invite_rate",
        "policy_controller_predicted_invite_rate",
        "policy_controller_last_sync_timestamp_seconds",
    ):
        assert f"\n{name} " in metrics, name


def test_the_loop_goes_on_through_errors_and_stops_with_the_app(
    env, prom_replay, kube_replay, monkeypatch
):
    monkeypatch.setenv("POLICY_CONTROLLER_SYNC_PERIOD_S", "0.01")
    prometheus = prom_replay(180)
    prometheus.fail_with = "bad-query"
    kubernetes = kube_replay("get-scale-bad-token", repeat_last=True)
    app = create_app(
        Settings(),
        CollectorRegistry(),
        prometheus_transport=prometheus.transport(),
        kubernetes_transport=kubernetes.transport(),
    )
    with TestClient(app) as client:
        first = client.get("/status").json()
        status = _wait(
            client,
            lambda _, c: (
                (_metric(c, 'policy_controller_errors_total{source="kubernetes"}') or 0) >= 3
            ),
        )
        assert (_metric(client, 'policy_controller_errors_total{source="prometheus"}') or 0) >= 3
        assert client.get("/health").status_code == 200
    for answer in (first, status):  # before and without a decision: a reason all the same
        assert answer["reason"] == "no decision yet"
        assert answer["current"] is answer["desired"] is answer["time"] is None
    assert status["lead_time_s"] == 35.01  # 15 + 0 + 5 + 15 + 0.01
    assert status["last_error"]["source"] in ("prometheus", "kubernetes")
    requests = len(kubernetes.requests)
    time.sleep(0.1)
    assert len(kubernetes.requests) == requests  # the loop stopped with the app
    assert kubernetes.mismatches == []


def test_no_route_changes_state(env):
    document = create_app(Settings(), CollectorRegistry()).openapi()
    methods = {m for path in document["paths"].values() for m in path}
    assert methods == {"get"}
    assert set(document["paths"]) == {"/health", "/status"}
