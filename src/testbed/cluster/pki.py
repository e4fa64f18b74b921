"""The cluster's certificates, made with the openssl command line (Debian's, always present).

One CA signs every server and client certificate of the control plane, the kubelet and the
add-ons; a second CA signs the front proxy's client certificate (the aggregator's, which
metrics-server trusts); the service-account key pair signs tokens. Client identities follow
Kubernetes' built-in RBAC: the CN is the user, O the groups.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

DAYS = "3650"


@dataclass(frozen=True)
class Cert:
    name: str
    cn: str
    orgs: tuple[str, ...] = ()
    server: bool = False
    client: bool = True
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = field(default=())
    ca: str = "ca"


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _subject(cn: str, orgs: tuple[str, ...] = ()) -> str:
    return "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"


def make_ca(directory: Path, name: str, cn: str) -> None:
    if (directory / f"{name}.crt").exists():
        return
    _openssl(
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-days",
        DAYS,
        "-subj",
        _subject(cn),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=directory,
    )


def make_cert(directory: Path, cert: Cert) -> None:
    if (directory / f"{cert.name}.crt").exists():
        return
    usages = [u for u, on in (("serverAuth", cert.server), ("clientAuth", cert.client)) if on]
    extensions = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    sans = [f"DNS:{d}" for d in cert.dns] + [f"IP:{i}" for i in cert.ips]
    if sans:
        extensions.append(f"subjectAltName={','.join(sans)}")
    (directory / f"{cert.name}.ext").write_text("\n".join(extensions) + "\n")
    _openssl(
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-keyout",
        f"{cert.name}.key",
        "-out",
        f"{cert.name}.csr",
        "-subj",
        _subject(cert.cn, cert.orgs),
        cwd=directory,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{cert.name}.csr",
        "-CA",
        f"{cert.ca}.crt",
        "-CAkey",
        f"{cert.ca}.key",
        "-CAcreateserial",
        "-out",
        f"{cert.name}.crt",
        "-days",
        DAYS,
        "-extfile",
        f"{cert.name}.ext",
        cwd=directory,
    )
    (directory / f"{cert.name}.csr").unlink()
    (directory / f"{cert.name}.ext").unlink()


def make_service_account_keys(directory: Path) -> None:
    if (directory / "sa.key").exists():
        return
    _openssl(
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "sa.key",
        cwd=directory,
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def cluster_certs(node: str, node_ip: str, service_ip: str) -> list[Cert]:
    """Every certificate the cluster uses (the service IP is the API's ClusterIP)."""
    api_names = (
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
    )
    return [
        Cert(
            "apiserver",
            "kube-apiserver",
            server=True,
            client=False,
            dns=api_names,
            ips=(node_ip, service_ip, "127.0.0.1"),
        ),
        # the API server's identity toward kubelets (logs, exec, metrics)
        Cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",)),
        Cert("admin", "kubernetes-admin", orgs=("system:masters",)),
        Cert("controller-manager", "system:kube-controller-manager"),
        Cert("scheduler", "system:kube-scheduler"),
        Cert("kube-proxy", "system:kube-proxy"),
        Cert("kubelet-client", f"system:node:{node}", orgs=("system:nodes",)),
        Cert("kubelet", node, server=True, client=False, dns=(node,), ips=(node_ip,)),
        Cert("coredns", "system:coredns"),
        Cert("metrics-server-client", "system:metrics-server"),
        Cert(
            "metrics-server",
            "metrics-server",
            server=True,
            client=False,
            dns=("metrics-server.kube-system.svc",),
            ips=(node_ip,),
        ),
        Cert("front-proxy-client", "front-proxy-client", ca="front-proxy-ca"),
    ]


def make_pki(directory: Path, node: str, node_ip: str, service_ip: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    make_ca(directory, "ca", "ims-testbed-cluster-ca")
    make_ca(directory, "front-proxy-ca", "ims-testbed-front-proxy-ca")
    make_service_account_keys(directory)
    for cert in cluster_certs(node, node_ip, service_ip):
        make_cert(directory, cert)
    for key in directory.glob("*.key"):
        key.chmod(0o600)
