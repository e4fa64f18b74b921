"""Configuration files of the single-node cluster, rendered from its settings (pure functions).

What each setting is for, where it is not the component's default:
- containerd: its own root, state and socket; runc through the v2 shim with cgroupfs (no
  systemd); `restrict_oom_score_adj`, since lowering a score needs CAP_SYS_RESOURCE, which root
  lacks here (every sandbox fails without it); network namespaces under its state dir; the
  locally built pause image (no registry).
- kubelet: cgroupfs driver with a cgroup root of its own, cgroup v1 accepted
  (failCgroupV1: false), swap tolerated, low eviction thresholds (a shared disk), the node's
  address on the cluster bridge, webhook authentication and authorization.
- kube-proxy: iptables mode; it leaves the host's conntrack sysctls alone and does not route
  NodePorts on localhost (which would switch on route_localnet).
"""

from __future__ import annotations

import base64
import ipaddress
import json
from pathlib import Path

import yaml

from testbed.cluster.layout import ClusterSettings, Layout

PAUSE_IMAGE = "localhost/ims-testbed/pause:3.10.2"


def api_url(settings: ClusterSettings) -> str:
    return f"https://{settings.node_ip}:{settings.api_port}"


def service_ip(settings: ClusterSettings, offset: int = 1) -> str:
    return str(ipaddress.ip_network(settings.service_cidr)[offset])


def containerd_config(layout: Layout) -> str:
    c = layout.containerd
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "runc"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{layout.cni_conf}"
"""


def cni_config(settings: ClusterSettings, layout: Layout) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "ims-testbed-cluster",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": settings.bridge,
                    "isGateway": True,
                    # the node is every pod's default route (Service IPs are routed through it)
                    "isDefaultGateway": True,
                    # pods talk to each other and to the node only: no masquerading out
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": settings.pod_cidr, "gateway": settings.node_ip}]],
                        "dataDir": str(layout.cni_ipam),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def kubeconfig(settings: ClusterSettings, layout: Layout, user: str, cert: str) -> str:
    pki = layout.pki
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ims-testbed",
                    "cluster": {
                        "server": api_url(settings),
                        "certificate-authority": str(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(pki / f"{cert}.crt"),
                        "client-key": str(pki / f"{cert}.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "ims-testbed", "context": {"cluster": "ims-testbed", "user": user}}
            ],
            "current-context": "ims-testbed",
        },
        sort_keys=False,
    )


KUBECONFIGS = {
    "admin": ("kubernetes-admin", "admin"),
    "controller-manager": ("system:kube-controller-manager", "controller-manager"),
    "scheduler": ("system:kube-scheduler", "scheduler"),
    "kube-proxy": ("system:kube-proxy", "kube-proxy"),
    "kubelet": ("kubelet", "kubelet-client"),
    "coredns": ("system:coredns", "coredns"),
    "metrics-server": ("system:metrics-server", "metrics-server-client"),
}


def kubelet_config(settings: ClusterSettings, layout: Layout) -> str:
    pki = layout.pki
    return yaml.safe_dump(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": settings.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": settings.cgroup_root,
            "cgroupsPerQOS": True,
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
            "clusterDNS": [settings.node_ip],
            "clusterDomain": "cluster.local",
            "resolvConf": "/etc/resolv.conf",
            "serializeImagePulls": False,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "nodefs.inodesFree": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # CPU and memory for the pods from cAdvisor; metrics-server reads them every 15 s
            "nodeStatusReportFrequency": "10s",
            "maxPods": 110,
            "podPidsLimit": -1,
        },
        sort_keys=False,
    )


def kube_proxy_config(settings: ClusterSettings, layout: Layout) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(layout.kubeconfigs / "kube-proxy.conf")},
            "hostnameOverride": settings.node_name,
            "clusterCIDR": settings.pod_cidr,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # leave nf_conntrack_max and the TCP timeouts of the host as they are
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
            "iptables": {"localhostNodePorts": False, "syncPeriod": "10s"},
            "nodePortAddresses": [f"{settings.node_ip}/32"],
        },
        sort_keys=False,
    )


def corefile(settings: ClusterSettings, layout: Layout) -> str:
    # Service and pod names only: pods here need nothing outside the cluster, and queries for
    # other names get NXDOMAIN at once instead of waiting for an unreachable upstream
    return f""".:53 {{
    bind {settings.node_ip}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {layout.kubeconfigs / "coredns.conf"}
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""


def bootstrap_manifests(settings: ClusterSettings, layout: Layout) -> str:
    """RBAC for the add-ons that run as host processes, and metrics-server's APIService
    (a Service without selector whose endpoint is the node, where metrics-server listens)."""
    ca = base64.b64encode((layout.pki / "ca.crt").read_bytes()).decode()
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "ims-testbed:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        _user_binding("ClusterRoleBinding", "ims-testbed:coredns", "system:coredns"),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "ims-testbed:metrics-server"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["nodes/metrics"],
                    "verbs": ["get"],
                },
                {
                    "apiGroups": [""],
                    "resources": ["pods", "nodes"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        _user_binding("ClusterRoleBinding", "ims-testbed:metrics-server", "system:metrics-server"),
        _user_binding(
            "ClusterRoleBinding",
            "system:auth-delegator",
            "system:metrics-server",
            name="ims-testbed:metrics-server:auth-delegator",
        ),
        {
            **_user_binding(
                "RoleBinding",
                "extension-apiserver-authentication-reader",
                "system:metrics-server",
                name="ims-testbed:metrics-server:auth-reader",
                role_kind="Role",
            ),
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "metrics-server", "namespace": "kube-system"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 4443}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "metrics-server-node",
                "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "metrics-server"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [settings.node_ip]}],
            "ports": [{"name": "https", "port": settings.metrics_server_port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "caBundle": ca,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def _user_binding(
    kind: str, role: str, user: str, name: str | None = None, role_kind: str = "ClusterRole"
) -> dict[str, object]:
    metadata: dict[str, str] = {"name": name or role}
    if kind == "RoleBinding":
        metadata["namespace"] = "kube-system"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def write_all(settings: ClusterSettings, layout: Layout) -> None:
    """Every configuration file (not the PKI and the bootstrap manifests: those need the CA)."""
    for directory in (layout.config, layout.kubeconfigs, layout.cni_conf, layout.cni_ipam):
        directory.mkdir(parents=True, exist_ok=True)
    files: dict[Path, str] = {
        layout.config / "containerd.toml": containerd_config(layout),
        layout.cni_conf / "10-ims-testbed.conflist": cni_config(settings, layout),
        layout.config / "kubelet.yaml": kubelet_config(settings, layout),
        layout.config / "kube-proxy.yaml": kube_proxy_config(settings, layout),
        layout.config / "Corefile": corefile(settings, layout),
    }
    for name, (user, cert) in KUBECONFIGS.items():
        files[layout.kubeconfigs / f"{name}.conf"] = kubeconfig(settings, layout, user, cert)
    for path, text in files.items():
        path.write_text(text)
    layout.admin_kubeconfig.chmod(0o600)
