"""The umbrella chart installed on the real cluster and exercised: every pod ready, the proxies'
postStart hooks enable them through the real controller and their preStop hooks drain them,
`kubectl scale` is followed by the load balancer's dispatcher set, phones register and calls
complete through the cluster's load balancer, and the real HPA scales the proxies' StatefulSet
on CPU from metrics-server under load and back down with the chart's behavior policies, and the
predictive policy controller does the same through the StatefulSet's scale subresource, with
RBAC for that alone and its decisions in the release's Prometheus.

Security: the chart's NetworkPolicies are accepted by the API server (this cluster's bridge
network plugin does not enforce them, so only their validity is checked here); the
sip-controller refuses a change without the release's token (401) and an enable whose address
is not the pod's (403); `helm upgrade` keeps the generated secrets (lookup). The test reads the
token and the subscribers' password template from the release's Secrets, as an operator does."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kamailio_rpc import KamailioRpc
from prom_answer import parse_answer, single
from testbed.cluster.cluster import Cluster
from testbed.cluster.layout import REPO_ROOT
from testbed.local import processes
from testbed.sipp import SippResult, SippRunner

NS = "ims-test"
RELEASE = "tb"
CHART = REPO_ROOT / "helm" / "ims-testbed"
# the node's address on the cluster bridge: SIPp's UAS there is reachable from the pods
UAS_PORT = 5090

VALUES: dict[str, Any] = {
    "global": {
        "imageRegistry": "localhost/ims-testbed",
        "imagePullPolicy": "Never",
        "sipProxy": {"autoscaler": "none"},
    },
    # no storage provisioner in the single-node cluster: the database lives in an emptyDir
    "database": {"mariadb": {"projectImage": True, "persistence": {"enabled": False}}},
}
# the paper's A.7 shape (Pods policies, stabilization), with periods short enough for a test
HPA_VALUES: dict[str, Any] = {
    "global": {"sipProxy": {"autoscaler": "hpa"}},
    "autoscaling": {
        "minReplicas": 1,
        "maxReplicas": 3,
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                "selectPolicy": "Max",
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 30,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}],
                "selectPolicy": "Max",
            },
        },
        "cpu": {
            "enabled": True,
            "metric": "ContainerResource",
            "target": {"type": "AverageValue", "averageValue": "10m"},
        },
    },
}


def _deep(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep(out[key], value) if isinstance(value, dict) and key in out else value
    return out


class Release:
    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.cluster = cluster
        self.helm = cluster.kubectl_path().parent / "helm"
        self.tmp = tmp

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return self.cluster.kubectl("-n", NS, *args, check=check, timeout=timeout).stdout

    def helm_run(self, verb: str, values: dict[str, Any], timeout: str = "6m") -> None:
        import subprocess

        values_file = self.tmp / f"values-{verb}-{time.monotonic_ns()}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        result = subprocess.run(
            [
                str(self.helm),
                verb,
                RELEASE,
                str(CHART),
                "-n",
                NS,
                "--create-namespace",
                "-f",
                str(values_file),
                "--wait",
                "--timeout",
                timeout,
                f"--kubeconfig={self.cluster.kubeconfig}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr + self.kubectl("get", "pods", "-o", "wide")

    def secret(self, name: str, key: str) -> str:
        """A key of one of the release's Secrets, decoded (what `kubectl get secret` shows)."""
        data = json.loads(self.kubectl("get", "secret", f"{RELEASE}-{name}", "-o", "json"))
        return base64.b64decode(data["data"][key]).decode()

    @property
    def token(self) -> str:
        return self.secret("api-token", "api-token")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def sipp(self, workdir: Path) -> SippRunner:
        """SIPp with the subscribers' passwords the release generated."""
        template = self.secret("subscribers", "SUBSCRIBER_PASSWORD_TEMPLATE")
        return SippRunner(
            workdir,
            password_for=lambda user: template.format(username=user, domain="testbed.local"),
        )

    def service_ip(self, component: str) -> str:
        return self.kubectl(
            "get", "svc", f"{RELEASE}-{component}", "-o", "jsonpath={.spec.clusterIP}"
        ).strip()

    def proxy_pods(self) -> dict[str, str]:
        pods = json.loads(
            self.kubectl("get", "pods", "-l", "app.kubernetes.io/component=sip-proxy", "-o", "json")
        )["items"]
        return {
            p["metadata"]["name"]: p["status"].get("podIP", "")
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        }

    def dispatcher(self) -> set[str]:
        rpc = KamailioRpc(f"http://{self.service_ip('sip-loadb')}:8060/RPC", token=self.token)
        return {d.uri for d in rpc.dispatcher_list() if d.setid == 1}


@pytest.fixture(scope="module")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    rel = Release(cluster, tmp_path_factory.mktemp("chart"))
    start = time.monotonic()
    rel.helm_run("install", VALUES)
    print(f"helm install --wait: {time.monotonic() - start:.1f} s")
    print(rel.kubectl("get", "pods", "-o", "wide"))
    try:
        yield rel
    finally:
        import subprocess

        subprocess.run(
            [
                str(rel.helm),
                "uninstall",
                RELEASE,
                "-n",
                NS,
                "--wait",
                "--timeout",
                "3m",
                f"--kubeconfig={cluster.kubeconfig}",
            ],
            capture_output=True,
            check=False,
        )
        cluster.kubectl("delete", "namespace", NS, "--wait=true", check=False, timeout=180)


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {timeout:.0f} s"
        time.sleep(2)


def _hpa_view(release: Release, hpa: str) -> str:
    """The HPA's replicas and the CPU it read (a failing scale test says what it saw)."""
    status = json.loads(release.kubectl("get", "hpa", hpa, "-o", "json"))["status"]
    metrics = [
        (m.get("containerResource") or m.get("resource") or {})
        .get("current", {})
        .get("averageValue")
        for m in status.get("currentMetrics") or []
    ]
    replicas = f"{status.get('currentReplicas')}->{status.get('desiredReplicas')}"
    return f"replicas {replicas} cpu {metrics}"


def _pod_cpu(release: Release) -> str:
    out = release.kubectl("top", "pod", "--containers", "--no-headers", check=False)
    return "; ".join(" ".join(line.split()[:3]) for line in out.splitlines() if "proxy" in line)


def _load(
    release: Release, cluster: Cluster, workdir: Path, rate: int, count: int, callees: int = 100
) -> SippResult:
    """`count` calls at `rate` calls/s through the release's load balancer, from SIPp on the
    node's address of the cluster network: `callees` users registered (all must succeed), then
    calls between as many pairs; SIPp's UAS is stopped whatever happens."""
    lb = f"{release.service_ip('sip-loadb')}:5060"
    node = cluster.settings.node_ip
    sipp = release.sipp(workdir)
    uas = sipp.start_uas(node, UAS_PORT)
    try:
        called = [f"50{n:02d}" for n in range(callees)]
        reg = sipp.register(called, f"{node}:{UAS_PORT}", lb, f"{node}:5091")
        assert reg.successful == len(called), reg.errors
        pairs = [(f"51{n:02d}", c) for n, c in enumerate(called)]
        return sipp.calls(pairs, lb, f"{node}:5092", rate=rate, count=count, timeout=240)
    finally:
        processes.stop(uas)


def test_every_pod_is_ready_and_the_hooks_enabled_each_proxy(release: Release) -> None:
    pods = json.loads(release.kubectl("get", "pods", "-o", "json"))["items"]
    not_ready = [
        p["metadata"]["name"]
        for p in pods
        if p["status"].get("phase") != "Succeeded"
        and not all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    ]
    assert not not_ready, release.kubectl("get", "pods", "-o", "wide")
    proxies = release.proxy_pods()
    assert len(proxies) == 2
    controller = f"http://{release.service_ip('sip-controller')}:8000"
    listed = {p["name"]: p for p in httpx.get(f"{controller}/proxies", timeout=10).json()}
    for name, ip in proxies.items():
        assert listed[name]["state"] == "enabled"
        assert listed[name]["sip_uri"] == f"sip:{ip}:5060"
    assert release.dispatcher() == {f"sip:{ip}:5060" for ip in proxies.values()}


def test_network_policies_are_applied(release: Release) -> None:
    listed = json.loads(release.kubectl("get", "networkpolicy", "-o", "json"))["items"]
    names = {p["metadata"]["name"] for p in listed}
    components = ["sip-loadb", "sip-proxy", "sip-client", "sip-controller"]
    components += ["scenario-controller", "csvgen", "mariadb"]
    assert names == {f"{RELEASE}-{c}" for c in components}
    for policy in listed:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert all(rule.get("from") for rule in policy["spec"]["ingress"]), policy


def test_the_controller_refuses_changes_without_the_token_and_foreign_addresses(
    release: Release,
) -> None:
    controller = f"http://{release.service_ip('sip-controller')}:8000"
    proxy = f"{RELEASE}-sip-proxy-0"
    before = release.dispatcher()
    missing = httpx.post(f"{controller}/proxies/{proxy}/disable?grace_seconds=0", timeout=10)
    assert missing.status_code == 401, missing.text
    wrong = httpx.post(
        f"{controller}/proxies/{proxy}/disable?grace_seconds=0",
        headers={"Authorization": "Bearer not-the-token-of-this-release"},
        timeout=10,
    )
    assert wrong.status_code == 403, wrong.text
    # with the token, an address that is not the pod's is refused before anything happens
    foreign = httpx.post(
        f"{controller}/proxies/{proxy}/enable",
        headers=release.headers(),
        json={"sip_address": "192.0.2.10:5060", "http_address": "192.0.2.10:8080"},
        timeout=30,
    )
    assert foreign.status_code == 403, foreign.text
    # and a name that is no proxy pod of the release (the database's pod) is unknown
    stranger = httpx.post(
        f"{controller}/proxies/{RELEASE}-mariadb-0/enable", headers=release.headers(), timeout=30
    )
    assert stranger.status_code == 403, stranger.text
    # Kamailio's RPC wants the token too
    rpc = httpx.post(
        f"http://{release.service_ip('sip-loadb')}:8060/RPC",
        json={"jsonrpc": "2.0", "method": "dispatcher.list", "id": 1},
        timeout=10,
    )
    assert rpc.status_code == 401, rpc.text
    assert release.dispatcher() == before


def test_helm_upgrade_keeps_the_generated_secrets(release: Release) -> None:
    keys = {
        "api-token": "api-token",
        "subscribers": "SUBSCRIBER_PASSWORD_TEMPLATE",
        "sip-proxy": "AUTH_SECRET",
        "database": "MARIADB_PASSWORD",
    }
    before = {name: release.secret(name, key) for name, key in keys.items()}
    release.helm_run("upgrade", VALUES)
    assert {name: release.secret(name, key) for name, key in keys.items()} == before
    # the pods still agree with each other: the controller lists every proxy enabled
    controller = f"http://{release.service_ip('sip-controller')}:8000"
    listed = httpx.get(f"{controller}/proxies", timeout=10).json()
    assert listed
    assert all(p["state"] == "enabled" for p in listed), listed


def test_kubectl_scale_is_followed_by_the_load_balancer(release: Release) -> None:
    release.kubectl("scale", "statefulset", f"{RELEASE}-sip-proxy", "--replicas=3")
    release.kubectl(
        "rollout", "status", f"statefulset/{RELEASE}-sip-proxy", "--timeout=180s", timeout=190
    )
    _wait(lambda: len(release.dispatcher()) == 3, 60, "3 proxies in the dispatcher set")
    assert release.dispatcher() == {f"sip:{ip}:5060" for ip in release.proxy_pods().values()}
    # scale in: the preStop hooks drain the two highest ordinals before they stop
    release.kubectl("scale", "statefulset", f"{RELEASE}-sip-proxy", "--replicas=1")
    release.kubectl(
        "wait",
        "--for=delete",
        f"pod/{RELEASE}-sip-proxy-2",
        f"pod/{RELEASE}-sip-proxy-1",
        "--timeout=120s",
        timeout=130,
    )
    _wait(lambda: len(release.dispatcher()) == 1, 60, "1 proxy in the dispatcher set")
    remaining = release.proxy_pods()
    assert list(remaining) == [f"{RELEASE}-sip-proxy-0"]
    assert release.dispatcher() == {f"sip:{remaining[f'{RELEASE}-sip-proxy-0']}:5060"}
    log = release.kubectl("logs", f"deploy/{RELEASE}-sip-controller", "-c", "sip-controller")
    for name in (f"{RELEASE}-sip-proxy-1", f"{RELEASE}-sip-proxy-2"):
        assert f"POST /proxies/{name}/enable" in log
        assert f"POST /proxies/{name}/disable" in log


def test_phones_register_and_calls_complete_through_the_cluster_load_balancer(
    release: Release, cluster: Cluster, tmp_path: Path
) -> None:
    # the chart's own softphone pods, through the scenario controller
    panel = f"http://{release.service_ip('scenario-controller')}:8001"
    httpx.post(f"{panel}/register", headers=release.headers(), timeout=10).raise_for_status()

    def registered() -> bool:
        pods = httpx.get(f"{panel}/clients", timeout=10).json()["pods"]
        return bool(pods) and all(int(p["registered"]) == int(p["phones"]) for p in pods)

    _wait(registered, 120, "every phone of the client pods registered")
    # SIPp, an independent peer, on the node's address of the cluster network
    calls = _load(release, cluster, tmp_path, rate=10, count=20, callees=20)
    assert calls.successful == 20, calls.errors
    assert calls.failed == 0


# two minutes of load, then the scale-down window and one step per 15 s
@pytest.mark.timeout(900)
def test_the_hpa_scales_the_proxies_on_cpu_under_load_and_back(
    release: Release, cluster: Cluster, tmp_path: Path
) -> None:
    release.helm_run("upgrade", _deep(VALUES, HPA_VALUES))
    hpa = f"{RELEASE}-sip-proxy"

    def replicas() -> int:
        status = json.loads(release.kubectl("get", "hpa", hpa, "-o", "json"))["status"]
        return int(status.get("currentReplicas", 0))

    _wait(lambda: replicas() == 1, 120, "the HPA at its minimum")
    # 15 calls/s for two minutes: well over the 10m target per proxy, yet within one proxy's
    # 30m limit on a slow machine too (at 25/s a fresh CI machine saturated the first proxy for
    # 20 s before the HPA's first step, and a call timed out there)
    calls = _load(release, cluster, tmp_path, rate=15, count=15 * 120)
    peak = replicas()
    events = release.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={hpa}", "-o", "json"
    )
    rescales = [
        e["message"] for e in json.loads(events)["items"] if e["reason"] == "SuccessfulRescale"
    ]
    print("HPA events:", rescales)
    assert any("above target" in m for m in rescales), rescales
    assert peak >= 2
    # scaling during the load lost no call: every pod joined and left through the hooks
    assert calls.failed == 0, calls.errors
    seen: list[str] = []

    def back_at_one() -> bool:
        seen.append(f"{_hpa_view(release, hpa)} | {_pod_cpu(release)}")
        return replicas() == 1

    try:
        _wait(back_at_one, 240, "the HPA back at one proxy after the load")
    finally:
        print("HPA after the load (every ~2 s):", *seen[::5], sep="\n  ")
    rescales = [
        e["message"]
        for e in json.loads(
            release.kubectl(
                "get", "events", "--field-selector", f"involvedObject.name={hpa}", "-o", "json"
            )
        )["items"]
        if e["reason"] == "SuccessfulRescale"
    ]
    assert any("below target" in m for m in rescales), rescales


PREDICTIVE_VALUES: dict[str, Any] = {
    "global": {"sipProxy": {"autoscaler": "predictive"}},
    "prometheus": {"enabled": True},
    "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
    "policyController": {
        "env": {
            # a knee well under what the load below brings to one proxy: the controller must
            # ask for more proxies whatever this machine's speed; decisions every 5 s
            "POLICY_CONTROLLER_KNEE_PER_PROXY": "4",
            "POLICY_CONTROLLER_TARGET_SHARE": "0.8",
            "POLICY_CONTROLLER_SYNC_PERIOD_S": "5",
            "POLICY_CONTROLLER_STARTUP_DELAY_S": "10",
            "POLICY_CONTROLLER_P0_MS": "500",
        }
    },
}


def _can_i(release: Release, *what: str) -> bool:
    account = f"system:serviceaccount:{NS}:{RELEASE}-policy-controller"
    out = release.kubectl("auth", "can-i", *what, f"--as={account}", check=False)
    return out.strip() == "yes"


def _prometheus_value(release: Release, expr: str) -> float | None:
    url = f"http://{release.service_ip('prometheus')}:9090/api/v1/query"
    response = httpx.get(url, params={"query": expr}, timeout=10)
    return single(parse_answer(response.status_code, response.json()))


# the upgrade, two minutes of load, and the guarded scale-in back to one proxy
@pytest.mark.timeout(900)
def test_the_predictive_policy_controller_scales_the_proxies_through_their_scale_subresource(
    release: Release, cluster: Cluster, tmp_path: Path
) -> None:
    release.helm_run("upgrade", _deep(VALUES, PREDICTIVE_VALUES))
    sts = f"{RELEASE}-sip-proxy"
    assert not json.loads(release.kubectl("get", "hpa", "-o", "json"))["items"]
    # its ServiceAccount may read and set the proxies' scale, and nothing else
    assert _can_i(release, "get", f"statefulsets/{sts}", "--subresource=scale")
    assert _can_i(release, "patch", f"statefulsets/{sts}", "--subresource=scale")
    assert not _can_i(release, "patch", f"statefulsets/{sts}")
    assert not _can_i(release, "patch", f"statefulsets/{RELEASE}-sip-loadb", "--subresource=scale")
    assert not _can_i(release, "get", "pods")
    assert not _can_i(release, "get", "secrets")

    def replicas() -> int:
        return int(
            release.kubectl("get", "statefulset", sts, "-o", "jsonpath={.spec.replicas}") or 0
        )

    policy = f"http://{release.service_ip('policy-controller')}:8095"
    _wait(lambda: replicas() == 1, 240, "the policy controller at its minimum")
    peak = [1]
    reasons: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(2):
            try:
                peak[0] = max(peak[0], replicas())
                reasons.append(httpx.get(f"{policy}/status", timeout=5).json().get("reason", ""))
            except (AssertionError, httpx.HTTPError, ValueError) as exc:
                reasons.append(f"watch: {exc}")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        # 10 calls/s for two minutes: 3 proxies at the knee of 4 x 0.8, yet within one
        # proxy's 30m limit (no call should fail while the pool grows)
        calls = _load(release, cluster, tmp_path, rate=10, count=10 * 120)
    finally:
        stop.set()
        watcher.join(10)
    ups = [r for r in reasons if r.startswith("predictive: up")]
    print("policy controller decisions (up):", *ups[:5], sep="\n  ")
    assert ups, reasons[-10:]
    assert peak[0] >= 2, reasons[-10:]
    # scaling during the load lost no call: every pod joined and left through the hooks
    assert calls.failed == 0, calls.errors
    # its decisions are series in the release's Prometheus (the dashboard's row)
    assert (_prometheus_value(release, "max(policy_controller_desired_replicas)") or 0) >= 2
    assert (_prometheus_value(release, "max(policy_controller_invite_rate)") or 0) > 0
    errors = _prometheus_value(release, "sum(policy_controller_errors_total)")
    print("policy controller errors:", errors)
    # after the load: back to one proxy once the guard's look-back has passed
    _wait(lambda: replicas() == 1, 300, "the policy controller back at one proxy")
    assert replicas() == 1
