"""A real single-node Kubernetes cluster on this machine: `testbed cluster up | status | down`.

Every component runs as a host process started here, with its files in the cluster directory:
etcd (Debian's), kube-apiserver, kube-controller-manager (HPA sync every 15 s), kube-scheduler,
containerd (Debian's) and the kubelet, kube-proxy (iptables), CoreDNS and metrics-server (behind
the aggregated metrics API). `up` records the host's state first and each process by PID and
start time; `down` deletes the pods (their preStop hooks run), stops exactly those processes,
unmounts, removes the cgroups, the bridge and the iptables chains that were added and writes the
changed sysctls back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from testbed.cluster import configs, hoststate, pki
from testbed.cluster.layout import BUILD_SCRIPT, ClusterSettings, Layout
from testbed.local import processes

# start order; down stops them in reverse
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "coredns",
    "metrics-server",
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ClusterError(RuntimeError):
    """The cluster could not be brought up or down (names the component and its log)."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    log: Path


def binaries_dir(build: bool = True) -> Path:
    """The cached binaries (building them first when missing and `build`)."""
    args = [str(BUILD_SCRIPT)] if build else [str(BUILD_SCRIPT), "--print-dir"]
    result = subprocess.run(args, capture_output=False, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise ClusterError(f"{BUILD_SCRIPT} failed (exit {result.returncode})")
    return Path(result.stdout.strip().splitlines()[-1])


class Cluster:
    def __init__(
        self, settings: ClusterSettings | None = None, say: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings or ClusterSettings()
        self.layout = Layout(self.settings.dir)
        self.say = say or (lambda message: None)

    # -- state ---------------------------------------------------------------------------

    def _load(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.layout.state_file.read_text())
            return data
        except FileNotFoundError:
            return {}

    def _save(self, state: dict[str, object]) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.layout.state_file)

    def _handles(self) -> dict[str, processes.ProcessHandle]:
        raw = self._load().get("processes", {})
        assert isinstance(raw, dict)
        return {
            name: processes.ProcessHandle(p["pid"], p["start_ticks"]) for name, p in raw.items()
        }

    def _record(self, name: str, handle: processes.ProcessHandle) -> None:
        state = self._load()
        procs = state.setdefault("processes", {})
        assert isinstance(procs, dict)
        procs[name] = {"pid": handle.pid, "start_ticks": handle.start_ticks}
        self._save(state)

    @property
    def kubeconfig(self) -> Path:
        return self.layout.admin_kubeconfig

    def is_up(self) -> bool:
        handles = self._handles()
        return bool(handles) and all(h.alive() for h in handles.values())

    # -- up ------------------------------------------------------------------------------

    def up(self, timeout: float = 180.0) -> Path:
        recover_stale(self.settings, self.say)
        if self._handles():
            if self.is_up():
                self.say("cluster: already up")
                return self.kubeconfig
            raise ClusterError(
                "cluster: a previous cluster was not taken down completely; "
                "run `testbed cluster down`"
            )
        if Path(f"/sys/class/net/{self.settings.bridge}").exists():
            claim = read_claim(self.settings.claim_file)
            owner = f"the cluster in {claim['dir']}" if claim else "no cluster of the testbed's"
            raise ClusterError(
                f"cluster: {self.settings.bridge} exists and {owner} runs on it; "
                "`testbed cluster down` with that directory (TESTBED_CLUSTER_DIR) takes it down"
            )
        bins = binaries_dir()
        self.bins = bins
        s, lay = self.settings, self.layout
        lay.root.mkdir(parents=True, exist_ok=True)
        lay.logs.mkdir(parents=True, exist_ok=True)
        # the host as it was, before anything changes it
        host = hoststate.snapshot(s.cgroup_root).to_json()
        self._save({"host": host, "processes": {}, "bins": str(bins)})
        claim = {"dir": str(lay.root.resolve()), "host": host, "bins": str(bins)}
        _write_claim(s.claim_file, claim)
        start = time.monotonic()
        try:
            self._bridge()
            pki.make_pki(lay.pki, s.node_name, s.node_ip, configs.service_ip(s))
            configs.write_all(s, lay)
            self._start_etcd()
            self._start_apiserver(timeout)
            self._kubectl("apply", "-f", "-", stdin=configs.bootstrap_manifests(s, lay))
            self._start_controllers()
            self._start_containerd(timeout)
            self._load_pause_image()
            self._start_kubelet(timeout)
            self._start_kube_proxy()
            self._start_coredns()
            self._start_metrics_server(timeout)
        except BaseException:
            self.say("cluster: start failed; taking down what was started")
            with contextlib.suppress(Exception):
                self.down()
            raise
        self.say(f"cluster: up in {time.monotonic() - start:.1f} s; KUBECONFIG={self.kubeconfig}")
        return self.kubeconfig

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> processes.ProcessHandle:
        handle = processes.spawn(argv, {"PATH": PATH, **(env or {})}, self.layout.log(name))
        self._record(name, handle)
        time.sleep(0.2)
        if not handle.alive():
            raise ClusterError(f"{name} exited at once:\n{processes.tail(self.layout.log(name))}")
        return handle

    def _bridge(self) -> None:
        s = self.settings
        if not Path(f"/sys/class/net/{s.bridge}").exists():
            subprocess.run(["ip", "link", "add", s.bridge, "type", "bridge"], check=True)
        prefix = s.pod_cidr.split("/")[1]
        subprocess.run(
            ["ip", "addr", "replace", f"{s.node_ip}/{prefix}", "dev", s.bridge], check=True
        )
        subprocess.run(["ip", "link", "set", s.bridge, "up"], check=True)

    def _start_etcd(self) -> None:
        s, lay = self.settings, self.layout
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        self._spawn(
            "etcd",
            [
                etcd,
                "--name",
                "ims-testbed",
                "--data-dir",
                str(lay.etcd_data),
                "--listen-client-urls",
                f"http://127.0.0.1:{s.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{s.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{s.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{s.etcd_peer_port}",
                "--initial-cluster",
                f"ims-testbed=http://127.0.0.1:{s.etcd_peer_port}",
                "--quota-backend-bytes",
                str(2 * 1024**3),
            ],
            # Debian's etcd 3.4 refuses to start on amd64 without this only on other arches
            {"ETCD_UNSUPPORTED_ARCH": ""},
        )
        self._wait(
            "etcd",
            lambda: (
                httpx.get(f"http://127.0.0.1:{s.etcd_port}/health", timeout=2).status_code == 200
            ),
            30,
        )

    def _start_apiserver(self, timeout: float) -> None:
        s, lay = self.settings, self.layout
        p = lay.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.bins / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{s.etcd_port}",
                f"--bind-address={s.node_ip}",
                f"--advertise-address={s.node_ip}",
                f"--secure-port={s.api_port}",
                f"--service-cluster-ip-range={s.service_cidr}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
                # the aggregator reaches metrics-server at its endpoint (the node), not through
                # a ClusterIP the host may not route yet
                "--enable-aggregator-routing=true",
                "--profiling=false",
                "--event-ttl=1h",
            ],
        )
        self._wait("kube-apiserver", lambda: self._api_get("/readyz") == 200, timeout)

    def _start_controllers(self) -> None:
        s, lay = self.settings, self.layout
        p, k = lay.pki, lay.kubeconfigs
        cm = k / "controller-manager.conf"
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bins / "kube-controller-manager"),
                f"--kubeconfig={cm}",
                f"--authentication-kubeconfig={cm}",
                f"--authorization-kubeconfig={cm}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                f"--cluster-signing-cert-file={p / 'ca.crt'}",
                f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={s.service_cidr}",
                f"--horizontal-pod-autoscaler-sync-period={s.hpa_sync_period}",
                "--profiling=false",
            ],
        )
        sched = k / "scheduler.conf"
        self._spawn(
            "kube-scheduler",
            [
                str(self.bins / "kube-scheduler"),
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )

    def _start_containerd(self, timeout: float) -> None:
        lay = self.layout
        (lay.containerd / "root").mkdir(parents=True, exist_ok=True)
        self._spawn("containerd", ["containerd", "--config", str(lay.config / "containerd.toml")])
        self._wait("containerd", lambda: self._ctr("version").returncode == 0, timeout)

    def _ctr(self, *args: str, stdin_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = ["ctr", "--address", str(self.layout.containerd_socket), "-n", "k8s.io", *args]
        if stdin_file is None:
            return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        with stdin_file.open("rb") as f:
            result = subprocess.run(command, stdin=f, capture_output=True, check=False, timeout=600)
        return subprocess.CompletedProcess(
            command,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )

    def _load_pause_image(self) -> None:
        from testbed.cluster.images import import_archive, pause_archive

        import_archive(self, pause_archive(self.bins / "pause", self.layout.root / "images"))

    def _start_kubelet(self, timeout: float) -> None:
        s, lay = self.settings, self.layout
        lay.kubelet.mkdir(parents=True, exist_ok=True)
        hoststate.make_cgroups(s.cgroup_root)
        self._spawn(
            "kubelet",
            [
                str(self.bins / "kubelet"),
                f"--config={lay.config / 'kubelet.yaml'}",
                f"--kubeconfig={lay.kubeconfigs / 'kubelet.conf'}",
                f"--root-dir={lay.kubelet}",
                f"--cert-dir={lay.kubelet / 'pki'}",
                f"--hostname-override={s.node_name}",
                f"--node-ip={s.node_ip}",
            ],
        )
        self._wait("kubelet", self._node_ready, timeout)

    def _start_kube_proxy(self) -> None:
        self._spawn(
            "kube-proxy",
            [str(self.bins / "kube-proxy"), f"--config={self.layout.config / 'kube-proxy.yaml'}"],
        )
        self._wait(
            "kube-proxy",
            lambda: httpx.get("http://127.0.0.1:10256/healthz", timeout=2).status_code == 200,
            60,
        )

    def _start_coredns(self) -> None:
        self._spawn(
            "coredns",
            [str(self.bins / "coredns"), "-conf", str(self.layout.config / "Corefile")],
        )
        self._wait(
            "coredns",
            lambda: httpx.get("http://127.0.0.1:18181/ready", timeout=2).status_code == 200,
            60,
        )

    def _start_metrics_server(self, timeout: float) -> None:
        s, lay = self.settings, self.layout
        p, conf = lay.pki, lay.kubeconfigs / "metrics-server.conf"
        self._spawn(
            "metrics-server",
            [
                str(self.bins / "metrics-server"),
                f"--kubeconfig={conf}",
                f"--authentication-kubeconfig={conf}",
                f"--authorization-kubeconfig={conf}",
                f"--bind-address={s.node_ip}",
                f"--secure-port={s.metrics_server_port}",
                f"--tls-cert-file={p / 'metrics-server.crt'}",
                f"--tls-private-key-file={p / 'metrics-server.key'}",
                f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                f"--kubelet-certificate-authority={p / 'ca.crt'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={p / 'metrics-server-client.crt'}",
                f"--kubelet-client-key={p / 'metrics-server-client.key'}",
                "--metric-resolution=15s",
            ],
        )
        self._wait(
            "metrics-server",
            lambda: self._api_get("/apis/metrics.k8s.io/v1beta1/nodes") == 200,
            timeout,
        )

    # -- helpers -------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        p = self.layout.pki
        context = ssl.create_default_context(cafile=str(p / "ca.crt"))
        context.load_cert_chain(str(p / "admin.crt"), str(p / "admin.key"))
        return context

    def _api_get(self, path: str) -> int:
        url = configs.api_url(self.settings) + path
        return httpx.get(url, verify=self._ssl(), timeout=5).status_code

    def _node_ready(self) -> bool:
        result = self._kubectl(
            "get",
            "node",
            self.settings.node_name,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            check=False,
        )
        return result.stdout.strip() == "True"

    def kubectl_path(self) -> Path:
        bins = Path(str(self._load().get("bins") or binaries_dir(build=False)))
        return bins / "kubectl"

    def _kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.kubectl_path()), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()}")
        return result

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._kubectl(*args, stdin=stdin, check=check, timeout=timeout)

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        handle = self._handles().get(name)
        while True:
            with contextlib.suppress(Exception):
                if ready():
                    self.say(f"cluster: {name} ready")
                    return
            if handle is not None and not handle.alive():
                raise ClusterError(f"{name} exited:\n{processes.tail(self.layout.log(name), 30)}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{name} not ready within {timeout:.0f} s:\n"
                    f"{processes.tail(self.layout.log(name), 30)}"
                )
            time.sleep(0.5)

    # -- status and down -----------------------------------------------------------------

    def status(self) -> list[ComponentStatus]:
        handles = self._handles()
        return [
            ComponentStatus(
                name,
                handles[name].pid if name in handles else None,
                name in handles and handles[name].alive(),
                self.layout.log(name),
            )
            for name in COMPONENTS
        ]

    def down(self) -> dict[str, object]:
        """Stop everything `up` started and put the host back; returns what was restored and
        anything that could not be (empty lists when the host is as it was)."""
        state = self._load()
        handles = self._handles()
        report: dict[str, object] = {}
        if not state:
            claim = read_claim(self.settings.claim_file)
            elsewhere = f" (the cluster on this machine is in {claim['dir']})" if claim else ""
            return {"note": f"no cluster state in {self.layout.root}; nothing to do{elsewhere}"}
        if handles.get("kube-apiserver") and handles["kube-apiserver"].alive():
            self._delete_pods()
        # no new pods from here on
        for name in ("kube-controller-manager", "kube-scheduler"):
            if name in handles:
                processes.stop(handles[name])
        if "kubelet" in handles:
            processes.stop(handles["kubelet"], timeout=20)
        if "containerd" in handles and handles["containerd"].alive():
            self._remove_containers()
        if "kube-proxy" in handles:
            processes.stop(handles["kube-proxy"])
            bins = Path(str(state.get("bins", "")))
            if (bins / "kube-proxy").exists():
                subprocess.run(
                    [str(bins / "kube-proxy"), "--cleanup"], capture_output=True, check=False
                )
        for name in reversed(COMPONENTS):
            if name in handles:
                processes.stop(handles[name], timeout=15)
        self._stop_shims()
        snapshot = hoststate.HostSnapshot.from_json(state["host"])  # type: ignore[arg-type]
        report["mounts_left"] = hoststate.unmount_under(self.layout.root)
        cgroups_left: list[str] = []
        for _ in range(10):
            cgroups_left = hoststate.remove_cgroups(self.settings.cgroup_root)
            if not cgroups_left:
                break
            time.sleep(0.5)
        report["cgroups_left"] = cgroups_left
        for link in hoststate.links():
            if link not in snapshot.links and (
                link == self.settings.bridge or self._on_bridge(link)
            ):
                hoststate.delete_link(link)
        hoststate.delete_link(
            self.settings.bridge
        ) if self.settings.bridge not in snapshot.links else None
        others = _podman_containers_running()
        report["iptables_failures"] = hoststate.restore_iptables(snapshot, keep_shared=others)
        report["sysctls_restored"] = hoststate.restore_sysctls(snapshot)
        # each `up` is a new cluster: its objects (etcd), pods' directories, IP allocations and
        # runtime state go; the PKI, configuration and containerd's image store stay
        for directory in (
            self.layout.etcd_data,
            self.layout.kubelet,
            self.layout.cni_ipam,
            self.layout.containerd / "state",
        ):
            shutil.rmtree(directory, ignore_errors=True)
        self.layout.state_file.unlink(missing_ok=True)
        claim = read_claim(self.settings.claim_file)
        if claim and Path(str(claim["dir"])) == self.layout.root.resolve():
            self.settings.claim_file.unlink(missing_ok=True)
        return report

    def _on_bridge(self, link: str) -> bool:
        master = Path(f"/sys/class/net/{link}/master")
        return master.exists() and master.resolve().name == self.settings.bridge

    def _delete_pods(self) -> None:
        grace = self.settings.down_grace_seconds
        self._kubectl(
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            f"--grace-period={grace}",
            f"--timeout={grace + 15}s",
            "--wait=true",
            check=False,
            timeout=grace + 30,
        )
        # stragglers (their controllers may have recreated them meanwhile): at once
        self._kubectl(
            "delete",
            "pods",
            "--all",
            "--all-namespaces",
            "--grace-period=0",
            "--force",
            check=False,
            timeout=60,
        )

    def _remove_containers(self) -> None:
        for kind in ("tasks", "containers"):
            listed = self._ctr(kind, "ls", "-q").stdout.split()
            for item in listed:
                if kind == "tasks":
                    self._ctr("tasks", "kill", "-s", "SIGKILL", item)
                    time.sleep(0.1)
                    self._ctr("tasks", "delete", "-f", item)
                else:
                    self._ctr("containers", "delete", item)

    def _stop_shims(self) -> None:
        """containerd's shims outlive it; stop those of this cluster (found by its socket)."""
        for pid, cmdline in _command_lines_naming(str(self.layout.containerd)).items():
            if "containerd-shim" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


def _podman_containers_running() -> bool:
    """Whether other container networks (podman's) may still use the shared CNI chains."""
    if shutil.which("podman") is None:
        return False
    from testbed.containers.engine import EngineError, engine

    try:
        eng = engine()
        if eng.name != "podman":
            return False
        return bool(eng.run("ps", "-q").stdout.strip())
    except (EngineError, subprocess.SubprocessError, OSError):
        return False


# -- a cluster whose processes were killed ---------------------------------------------------


def read_claim(claim_file: Path) -> dict[str, object] | None:
    try:
        data: dict[str, object] = json.loads(claim_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data.get("dir"), str) and "host" in data else None


def _write_claim(claim_file: Path, claim: dict[str, object]) -> None:
    claim_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = claim_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(claim))
    tmp.replace(claim_file)


def _command_lines_naming(marker: str) -> dict[int, str]:
    """Live (non-zombie) processes other than this one whose command line contains `marker`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def processes_of(root: Path) -> list[int]:
    """Live processes that name a file of the cluster directory on their command line (every
    component and containerd's shims do), so a cluster counts as running even when its state
    file is gone or its PIDs were recorded by another `up`."""
    return list(_command_lines_naming(str(root.resolve()) + "/"))


def recover_stale(
    settings: ClusterSettings, say: Callable[[str], None]
) -> dict[str, object] | None:
    """Take down the claimed cluster when none of its processes is left (they were killed with
    the session that started them, or crashed): its mounts, cgroups, bridge, iptables chains and
    sysctls outlive them and would keep every later `up` out. Returns `down`'s report, or None
    when there was nothing stale. A cluster with a live process is left alone."""
    claim = read_claim(settings.claim_file)
    if claim is None:
        return None
    root = Path(str(claim["dir"]))
    if processes_of(root):
        return None
    stale = Cluster(settings.model_copy(update={"dir": root}), say)
    if not stale._handles() and not stale.layout.state_file.exists():
        # its directory went (a temporary one, cleaned): the claim kept the host as it was
        stale._save({"host": claim["host"], "processes": {}, "bins": claim.get("bins", "")})
    say(f"cluster: the cluster in {root} has no process left; taking down what it left behind")
    report = stale.down()
    say(f"cluster: stale cluster taken down: {report}")
    return report
