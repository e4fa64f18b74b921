"""The adapters that ask the platform: the registry file, and the Kubernetes API (a real HTTP
server on 127.0.0.1 standing in for the API server; the chart's real check is tests/cluster)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anyio
import pytest

from sip_controller.addresses import HostPort
from sip_controller.config import Settings
from sip_controller.platform import AddressRefused, PlatformProxy, PlatformUnavailable
from sip_controller.sources import KubernetesSource, RegistrySource, TemplateSource, source_for

SA_TOKEN = "eyJhbGciOiJSUzI1NiJ9.service-account.signature"
SELECTOR = "app.kubernetes.io/component=sip-proxy,app.kubernetes.io/instance=t"
LABELS = {"app.kubernetes.io/component": "sip-proxy", "app.kubernetes.io/instance": "t"}


@dataclass
class FakeApi:
    url: str
    pods: dict[tuple[str, str], dict[str, object]]
    seen: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi("", {})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.seen.append((self.path, self.headers.get("Authorization")))
            parts = self.path.split("/")  # /api/v1/namespaces/<ns>/pods/<name>
            pod = None
            if parts[1:4] == ["api", "v1", "namespaces"] and parts[5:6] == ["pods"]:
                pod = api.pods.get((parts[4], parts[6]))
            body = json.dumps(pod or {"kind": "Status", "code": 404}).encode()
            self.send_response(200 if pod else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield api
    server.shutdown()
    server.server_close()
    thread.join()


def _kube_settings(tmp_path: Path, api: FakeApi, **extra: object) -> Settings:
    (tmp_path / "token").write_text(SA_TOKEN + "\n")
    (tmp_path / "namespace").write_text("ims\n")
    values: dict[str, object] = {
        "proxy_address_source": "kubernetes",
        "proxy_pod_selector": SELECTOR,
        "kubernetes_api_url": api.url,
        "kubernetes_token_file": tmp_path / "token",
        "kubernetes_namespace_file": tmp_path / "namespace",
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _lookup(source: KubernetesSource | RegistrySource, name: str) -> PlatformProxy:
    async def run() -> PlatformProxy:
        try:
            return await source.lookup(name)
        finally:
            if isinstance(source, KubernetesSource):
                await source.aclose()

    return anyio.run(run)


def test_kubernetes_pod_lookup_sends_the_service_account_token(tmp_path: Path, fake_api: FakeApi):
    fake_api.pods[("ims", "sip-proxy-0")] = {
        "metadata": {"name": "sip-proxy-0", "labels": LABELS},
        "status": {"podIP": "10.244.1.7"},
    }
    source = source_for(_kube_settings(tmp_path, fake_api))
    assert isinstance(source, KubernetesSource)
    assert source.namespace == "ims"  # from the service account's namespace file
    proxy = _lookup(source, "sip-proxy-0")
    assert (proxy.sip, proxy.http) == (HostPort("10.244.1.7", 5060), HostPort("10.244.1.7", 8080))
    assert fake_api.seen == [("/api/v1/namespaces/ims/pods/sip-proxy-0", f"Bearer {SA_TOKEN}")]


def test_kubernetes_unknown_pod_and_foreign_pod_are_refused(tmp_path: Path, fake_api: FakeApi):
    fake_api.pods[("other", "mariadb-0")] = {
        "metadata": {"name": "mariadb-0", "labels": {"app": "mariadb"}},
        "status": {"podIP": "10.244.1.9"},
    }
    settings = _kube_settings(tmp_path, fake_api, pod_namespace="other")
    with pytest.raises(AddressRefused, match="no pod 'sip-proxy-3' in namespace 'other'"):
        _lookup(KubernetesSource(settings), "sip-proxy-3")
    with pytest.raises(AddressRefused, match="pod other/mariadb-0 lacks the label"):
        _lookup(KubernetesSource(settings), "mariadb-0")
    assert [path for path, _ in fake_api.seen] == [
        "/api/v1/namespaces/other/pods/sip-proxy-3",
        "/api/v1/namespaces/other/pods/mariadb-0",
    ]


def test_kubernetes_api_unreachable_or_token_missing_is_unavailable(tmp_path: Path):
    api = FakeApi("http://127.0.0.1:9", {})  # discard port: nothing listens
    settings = _kube_settings(tmp_path, api)
    with pytest.raises(
        PlatformUnavailable, match=r"Kubernetes API http://127\.0\.0\.1:9 is unreachable"
    ):
        _lookup(KubernetesSource(settings), "sip-proxy-0")
    (tmp_path / "token").unlink()
    with pytest.raises(PlatformUnavailable, match="cannot read the service account token from"):
        _lookup(KubernetesSource(settings), "sip-proxy-0")


def test_kubernetes_over_https_needs_the_ca_file(tmp_path: Path):
    api = FakeApi("https://kubernetes.default.svc", {})
    settings = _kube_settings(tmp_path, api, kubernetes_ca_file=tmp_path / "ca.crt")
    with pytest.raises(ValueError, match=r"KUBERNETES_CA_FILE .*ca\.crt does not exist"):
        KubernetesSource(settings)


def test_registry_is_reread_on_every_lookup(tmp_path: Path):
    path = tmp_path / "proxies.json"
    source = RegistrySource(path)
    with pytest.raises(PlatformUnavailable, match=f"cannot read the proxy registry {path}"):
        _lookup(source, "sip-proxy-0")
    entry = {"sip_address": "127.0.1.1:5071", "http_address": "127.0.1.1:8071"}
    path.write_text(json.dumps({"proxies": {"sip-proxy-0": entry}}))
    assert _lookup(source, "sip-proxy-0").sip == HostPort("127.0.1.1", 5071)
    path.write_text(json.dumps({"proxies": {}}))  # the proxy stopped
    with pytest.raises(AddressRefused, match="not in the proxy registry"):
        _lookup(source, "sip-proxy-0")


def test_template_is_the_default_source():
    source = source_for(Settings(proxy_host_template="{name}.ims"))
    assert isinstance(source, TemplateSource)

    async def run() -> PlatformProxy:
        return await source.lookup("sip-proxy-2")

    assert anyio.run(run).sip == HostPort("sip-proxy-2.ims", 5060)
