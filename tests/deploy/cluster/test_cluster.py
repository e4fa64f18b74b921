"""The single-node cluster itself: a node of the pinned version, pods from locally built images
with Services, DNS, logs and exec, and the resource metrics the HPA reads."""

from __future__ import annotations

import json
import subprocess
import time

import httpx

from testbed.cluster.cluster import COMPONENTS, Cluster
from testbed.cluster.layout import K8S_VERSION

PROBE = """
apiVersion: v1
kind: Pod
metadata: {name: probe, labels: {app: probe}}
spec:
  containers:
    - name: controller
      image: localhost/ims-testbed/sip-controller:0.1.0
      imagePullPolicy: Never
      env: [{name: DATABASE_URL, value: "sqlite:////tmp/probe.sqlite"}]
      readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: probe}
spec: {selector: {app: probe}, ports: [{port: 8000}]}
"""


def test_node_is_ready_with_the_pinned_kubernetes_and_containerd(cluster: Cluster) -> None:
    node = json.loads(
        cluster.kubectl("get", "node", cluster.settings.node_name, "-o", "json").stdout
    )
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == K8S_VERSION
    assert info["containerRuntimeVersion"].startswith("containerd://1.")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.settings.node_ip


def test_a_pod_from_a_local_image_serves_through_its_service_name_and_cluster_ip(
    cluster: Cluster,
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=PROBE)
    try:
        cluster.kubectl("wait", "--for=condition=Ready", "pod/probe", "--timeout=120s", timeout=130)
        # inside the cluster: CoreDNS resolves the Service, kube-proxy forwards to the pod
        inside = cluster.kubectl(
            "exec",
            "probe",
            "--",
            "python3",
            "-c",
            "import socket, urllib.request as u; "
            "print(socket.gethostbyname('probe.default.svc.cluster.local')); "
            "print(u.urlopen('http://probe:8000/health', timeout=5).read().decode())",
        ).stdout.split()
        cluster_ip = cluster.kubectl(
            "get", "svc", "probe", "-o", "jsonpath={.spec.clusterIP}"
        ).stdout.strip()
        assert inside[0] == cluster_ip
        assert json.loads(inside[1])["status"] == "ok"
        # from the node: the same ClusterIP (kube-proxy writes the node's rules asynchronously:
        # a second or two after the endpoint is ready on a busy machine)
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://{cluster_ip}:8000/health", timeout=5).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(1)
        assert health["status"] == "ok"
        assert "Uvicorn running" in cluster.kubectl("logs", "probe").stdout
        # names outside the cluster fail at once (no upstream to wait for)
        start = time.monotonic()
        failed = cluster.kubectl(
            "exec",
            "probe",
            "--",
            "python3",
            "-c",
            "import socket; socket.gethostbyname('pypi.org')",
            check=False,
        )
        assert failed.returncode != 0
        assert time.monotonic() - start < 10
    finally:
        cluster.kubectl("delete", "-f", "-", "--grace-period=1", "--wait=false", stdin=PROBE)


def test_metrics_api_reports_the_cpu_of_pods(cluster: Cluster) -> None:
    """What the HPA controller reads (metrics-server behind the aggregated API)."""
    deadline = time.monotonic() + 120
    while True:
        result = cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes", check=False)
        if result.returncode == 0:
            items = json.loads(result.stdout)["items"]
            if items and items[0]["usage"].get("cpu"):
                break
        assert time.monotonic() < deadline, result.stderr
        time.sleep(3)
    assert items[0]["metadata"]["name"] == cluster.settings.node_name


def test_status_lists_every_component_running(cluster: Cluster) -> None:
    rows = cluster.status()
    assert [r.name for r in rows] == list(COMPONENTS)
    assert {"etcd", "kube-apiserver", "kubelet", "coredns", "metrics-server"} <= set(COMPONENTS)
    assert all(r.running and r.pid for r in rows)
    # and only what listens where it should: nothing on a public address
    listening = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True).stdout
    for line in listening.splitlines():
        local = line.split()[4]
        owner = line.split()[-1]
        if any(
            f'"{name}"' in owner
            for name in (
                "kube-apiserver",
                "kubelet",
                "etcd",
                "coredns",
                "metrics-server",
                "kube-proxy",
                "kube-controller",
                "kube-scheduler",
            )
        ):
            host = local.rsplit(":", 1)[0].strip("[]")
            assert host in ("127.0.0.1", cluster.settings.node_ip, "::1"), line
