#!/usr/bin/env python3
"""Prometheus HTTP service discovery from the Kubernetes API, for the chart's Prometheus.

The project's Prometheus image is Debian's build, which leaves kubernetes_sd_configs out. This
sidecar serves, as http_sd_configs target groups, what that discovery gives for the two roles
the chart scrapes, with the same __meta_kubernetes_* labels, so prometheus.yml relabels them
exactly as it would relabel Kubernetes discovery's:

  /endpoints  role endpoints in one namespace: every address and port of every Endpoints
              object, with its Service's labels and its pod's labels and container
  /nodes      role node: every node, at its kubelet address

(Kubernetes discovery also lists the pods' container ports that no Service names; nothing
here scrapes those, so they are left out.) Every request lists the objects anew, with the
service-account token read each time (the kubelet rotates it), so Prometheus' refresh_interval
is the only cache. Only the standard library: it runs on the Python of any project image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
META = "__meta_kubernetes_"
# the address Kubernetes discovery gives a node: the first of these types it has
NODE_ADDRESS_TYPES = ["InternalIP", "InternalDNS", "ExternalIP", "ExternalDNS", "Hostname"]

Object = dict[str, Any]
Group = dict[str, Any]


def label_name(name: str) -> str:
    """A Kubernetes label key as Prometheus writes it in a label name (SanitizeLabelName)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def object_labels(kind: str, obj: Object) -> dict[str, str]:
    labels: dict[str, str] = {}
    for key, value in (obj["metadata"].get("labels") or {}).items():
        labels[f"{META}{kind}_label_{label_name(key)}"] = value
        labels[f"{META}{kind}_labelpresent_{label_name(key)}"] = "true"
    return labels


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def non_empty(labels: dict[str, str]) -> dict[str, str]:
    # Prometheus treats an empty label as absent; leave those out
    return {name: value for name, value in labels.items() if value}


class Api:
    """GET on the Kubernetes API with the pod's service account."""

    def __init__(self, url: str, token_file: Path | None, ca_file: Path | None) -> None:
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.context = (
            ssl.create_default_context(cafile=str(ca_file))
            if ca_file is not None and self.url.startswith("https:")
            else None
        )

    def get(self, path: str) -> Object:
        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            headers["Authorization"] = "Bearer " + self.token_file.read_text().strip()
        request = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            body: Object = json.load(response)
        return body

    def items(self, path: str) -> list[Object]:
        """Every object of a list, page by page."""
        items: list[Object] = []
        token = ""
        while True:
            query = {"limit": "500", **({"continue": token} if token else {})}
            page = self.get(f"{path}?{urllib.parse.urlencode(query)}")
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items


def pod_labels(pod: Object, port: int) -> dict[str, str]:
    """The pod's labels and, when one of its containers has the port, that container's."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    labels = {
        f"{META}pod_name": pod["metadata"]["name"],
        f"{META}pod_ip": status.get("podIP", ""),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_phase": status.get("phase", ""),
        **object_labels("pod", pod),
    }
    # init containers too: the analyzer is a native sidecar (an init container) on 1.29+
    containers = [(c, "false") for c in spec.get("containers") or []]
    containers += [(c, "true") for c in spec.get("initContainers") or []]
    for container, init in containers:
        for container_port in container.get("ports") or []:
            if container_port["containerPort"] == port:
                labels |= {
                    f"{META}pod_container_name": container["name"],
                    f"{META}pod_container_port_name": container_port.get("name", ""),
                    f"{META}pod_container_port_number": str(port),
                    f"{META}pod_container_port_protocol": container_port.get("protocol", "TCP"),
                    f"{META}pod_container_init": init,
                }
                return labels
    return labels


def endpoints_groups(api: Api, namespace: str) -> list[Group]:
    base = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}"
    services = {s["metadata"]["name"]: s for s in api.items(f"{base}/services")}
    pods = {p["metadata"]["name"]: p for p in api.items(f"{base}/pods")}
    groups: list[Group] = []
    for endpoints in api.items(f"{base}/endpoints"):
        name = endpoints["metadata"]["name"]
        common = {
            f"{META}namespace": namespace,
            f"{META}endpoints_name": name,
            **object_labels("endpoints", endpoints),
        }
        if name in services:
            common |= {f"{META}service_name": name, **object_labels("service", services[name])}
        for subset in endpoints.get("subsets") or []:
            for port in subset.get("ports") or []:
                for ready, key in (("true", "addresses"), ("false", "notReadyAddresses")):
                    for address in subset.get(key) or []:
                        ref = address.get("targetRef") or {}
                        labels = common | {
                            f"{META}endpoint_ready": ready,
                            f"{META}endpoint_port_name": port.get("name", ""),
                            f"{META}endpoint_port_protocol": port.get("protocol", "TCP"),
                            f"{META}endpoint_hostname": address.get("hostname", ""),
                            f"{META}endpoint_node_name": address.get("nodeName", ""),
                            f"{META}endpoint_address_target_kind": ref.get("kind", ""),
                            f"{META}endpoint_address_target_name": ref.get("name", ""),
                        }
                        pod = pods.get(ref.get("name", "")) if ref.get("kind") == "Pod" else None
                        if pod is not None:
                            labels |= pod_labels(pod, port["port"])
                        groups.append(
                            {
                                "targets": [host_port(address["ip"], port["port"])],
                                "labels": non_empty(labels),
                            }
                        )
    return groups


def node_groups(api: Api) -> list[Group]:
    groups: list[Group] = []
    for node in api.items("/api/v1/nodes"):
        status = node.get("status") or {}
        addresses: dict[str, str] = {}
        for address in status.get("addresses") or []:
            addresses.setdefault(address["type"], address["address"])
        host = next((addresses[t] for t in NODE_ADDRESS_TYPES if t in addresses), None)
        if host is None:
            continue  # as Kubernetes discovery does: a node without an address is no target
        kubelet = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
        labels = {
            f"{META}node_name": node["metadata"]["name"],
            **object_labels("node", node),
            **{f"{META}node_address_{kind}": value for kind, value in addresses.items()},
        }
        groups.append(
            {
                "targets": [host_port(host, int(kubelet.get("Port", 10250)))],
                "labels": non_empty(labels),
            }
        )
    return groups


class DiscoveryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], roles: dict[str, Callable[[], Any]]) -> None:
        super().__init__(address, Handler)
        self.roles = roles


class Handler(BaseHTTPRequestHandler):
    server: DiscoveryServer

    def do_GET(self) -> None:
        role = self.server.roles.get(urllib.parse.urlsplit(self.path).path)
        if role is None:
            self.send_error(404, "roles: " + ", ".join(sorted(self.server.roles)))
            return
        try:
            body = json.dumps(role()).encode()
        except (OSError, ValueError, KeyError) as exc:
            # Prometheus keeps the targets it had and asks again at the next refresh
            self.send_error(502, f"Kubernetes API: {exc}")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one request per role and refresh: only failures are worth a line


def in_cluster_url() -> str:
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes.default.svc")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return "https://" + host_port(host, int(port))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", required=True, help="the namespace of role endpoints")
    parser.add_argument("--listen", default="127.0.0.1:9091", help="host:port to serve on")
    parser.add_argument("--api", default=None, help="API server URL (default: in-cluster)")
    parser.add_argument("--token-file", type=Path, default=SERVICE_ACCOUNT / "token")
    parser.add_argument("--ca-file", type=Path, default=SERVICE_ACCOUNT / "ca.crt")
    args = parser.parse_args(argv)
    api = Api(args.api or in_cluster_url(), args.token_file, args.ca_file)
    host, _, port = args.listen.rpartition(":")
    roles: dict[str, Callable[[], Any]] = {
        "/endpoints": lambda: endpoints_groups(api, args.namespace),
        "/nodes": lambda: node_groups(api),
    }
    server = DiscoveryServer((host.strip("[]"), int(port)), roles)
    print(f"kube_sd: serving {', '.join(roles)} on {args.listen}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
