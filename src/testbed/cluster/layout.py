"""Where the single-node cluster keeps its files and which addresses it uses.

Everything lives under one directory of the project's (TESTBED_CLUSTER_DIR, by default
<state dir>/cluster); the binaries come from the build cache (cluster/build/build.sh).

Addresses: the node is the gateway of its own bridge, imstb0 (10.244.0.1/24, the pod network):
kube-apiserver, the kubelet, CoreDNS and metrics-server listen there, so pods reach them and
nothing listens beyond the host and the cluster network; etcd, the controller manager, the
scheduler and kube-proxy's health and metrics endpoints stay on 127.0.0.1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "cluster" / "build" / "build.sh"
K8S_VERSION = "v1.37.2"


def _default_dir() -> Path:
    state = os.environ.get("TESTBED_STATE_DIR")
    base = Path(state) if state else Path.home() / ".local" / "state" / "ims-testbed"
    return base / "cluster"


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESTBED_CLUSTER_", extra="ignore")

    dir: Path = Field(default_factory=_default_dir)
    node_name: str = "ims-testbed-node"
    bridge: str = "imstb0"
    pod_cidr: str = "10.244.0.0/24"
    node_ip: str = "10.244.0.1"
    service_cidr: str = "10.96.0.0/24"
    api_port: int = 6443
    etcd_port: int = 12379
    etcd_peer_port: int = 12380
    metrics_server_port: int = 4443
    # the kubelet's own cgroup root under every hierarchy, removed on the way down
    cgroup_root: str = "/ims-testbed-cluster"
    # the paper's HPA sync period
    hpa_sync_period: str = "15s"
    # pods get this long to run their preStop hooks when the cluster goes down
    down_grace_seconds: int = 30
    # machine-wide: which directory's cluster owns the bridge, with the host as it was before
    # it, so that a cluster whose processes were killed (a session's end, a crash) can be
    # taken down by the next `up` wherever its directory was
    claim_file: Path = Path("/run/ims-testbed/cluster-claim.json")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfigs(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfigs / "admin.conf"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"
