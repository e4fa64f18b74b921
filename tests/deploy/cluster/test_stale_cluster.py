"""A cluster whose processes were all killed at once (what a session's end or a crash does):
its bridge, mounts, cgroups, iptables chains and sysctls stay behind, and the next `up` must
take them down and come up, instead of refusing because the bridge exists."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from testbed.cluster import hoststate
from testbed.cluster.cluster import Cluster, processes_of

POD = """
apiVersion: v1
kind: Pod
metadata: {name: left-behind}
spec:
  containers:
    - name: controller
      image: localhost/ims-testbed/sip-controller:0.1.0
      imagePullPolicy: Never
      env: [{name: DATABASE_URL, value: "sqlite:////tmp/left.sqlite"}]
      readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 1}
"""


def _kill_everything(cluster: Cluster) -> int:
    """SIGKILL every process of the cluster and of its pods, all at once, no cleanup."""
    pids = set(processes_of(cluster.settings.dir))
    for directory in hoststate.cgroup_dirs(cluster.settings.cgroup_root):
        for procs in directory.rglob("cgroup.procs"):
            pids.update(int(p) for p in procs.read_text().split())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes_of(cluster.settings.dir):
        assert time.monotonic() < deadline, processes_of(cluster.settings.dir)
        time.sleep(0.1)
    return len(pids)


@pytest.mark.kills_cluster
def test_up_takes_down_a_cluster_whose_processes_were_killed_and_comes_up(
    cluster: Cluster, host_before: hoststate.HostSnapshot
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=POD)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/left-behind", "--timeout=120s")
    assert _kill_everything(cluster) >= 9  # the components, a shim, the pod's processes
    # what the processes leave behind
    settings = cluster.settings
    assert Path(f"/sys/class/net/{settings.bridge}").exists()
    assert hoststate.mounts_under(settings.dir)
    assert hoststate.read_sysctls() != host_before.sysctls

    said: list[str] = []
    again = Cluster(settings, say=said.append)
    start = time.monotonic()
    again.up()
    print(f"stale cluster taken down and a new one up in {time.monotonic() - start:.1f} s")
    report = next(m for m in said if m.startswith("cluster: stale cluster taken down"))
    assert "'mounts_left': []" in report
    assert "'cgroups_left': []" in report
    assert "'iptables_failures': []" in report
    assert again.is_up()
    nodes = again.kubectl("get", "node", settings.node_name, "-o", "name").stdout
    assert nodes.strip() == f"node/{settings.node_name}"
    # the new cluster's pods are new: the killed one's did not come back with it
    assert "left-behind" not in again.kubectl("get", "pods", "-A", "-o", "name").stdout
    # the fixture's teardown takes this one down and compares the host with host_before
