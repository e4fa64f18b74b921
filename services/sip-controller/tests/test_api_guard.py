"""The API's protection in-process (TestClient, SQLite): the token on every state-changing
route, and the refusal of addresses the platform does not give, before any request leaves.

The load balancer and the "foreign host" are local listeners that record whatever reaches
them; with real Kamailio the same is checked in tests/test_controller_security.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from sip_controller.config import Settings
from sip_controller.main import create_app

TOKEN = "unit-test-token-0123456789"
MUTATING = [
    ("/proxies/sip-proxy-0/enable", {}),
    ("/proxies/sip-proxy-0/disable", {"grace_seconds": "0"}),
    ("/proxy/enable/sip-proxy-0", {}),
    ("/proxy/disable/sip-proxy-0", {"grace_seconds": "0"}),
]


@dataclass
class Listener:
    """An HTTP server and a UDP socket on 127.0.0.1 that record every request/datagram."""

    http_port: int
    udp: socket.socket
    requests: list[str] = field(default_factory=list)

    @property
    def udp_port(self) -> int:
        port: int = self.udp.getsockname()[1]
        return port

    def datagrams(self) -> list[bytes]:
        received = []
        while True:
            try:
                received.append(self.udp.recv(65535))
            except BlockingIOError:
                return received


@pytest.fixture
def listener() -> Iterator[Listener]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    recorded: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            recorded.append(f"{self.command} {self.path}")
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _record

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield Listener(server.server_address[1], udp, recorded)
    server.shutdown()
    server.server_close()
    udp.close()
    thread.join()


def _client(tmp_path: Path, lb: Listener, **extra: object) -> TestClient:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path}/db.sqlite",
        "loadbalancer_rpc_urls": f"http://127.0.0.1:{lb.http_port}/RPC",
        "subscriber_last": 1,
        "health_check_interval_seconds": 3600,
        "enable_timeout_seconds": 1,
        "api_token": TOKEN,
        **extra,
    }
    return TestClient(create_app(Settings(**values), CollectorRegistry()))  # type: ignore[arg-type]


@pytest.mark.parametrize(("path", "params"), MUTATING)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": f"Bearer {TOKEN}x"}, 403),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        # what a page on another site can send: a simple form post, no Authorization
        (
            {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
            401,
        ),
    ],
)
def test_every_mutating_route_needs_the_token(
    tmp_path: Path, listener: Listener, path, params, headers, status
):
    with _client(tmp_path, listener) as client:
        response = client.post(path, params=params, headers=headers, content=b"sip_address=x")
        assert response.status_code == status, response.text
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert "access-control-allow-origin" not in response.headers
        assert client.get("/proxies/sip-proxy-0").status_code == 404  # no row written
    assert listener.requests == []  # no LB RPC


@pytest.mark.parametrize(("path", "params"), MUTATING)
def test_without_a_configured_token_every_mutating_route_is_503(
    tmp_path: Path, listener: Listener, path, params
):
    with _client(tmp_path, listener, api_token=None) as client:
        response = client.post(path, params=params, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 503
        assert "set API_TOKEN" in response.json()["detail"]
    assert listener.requests == []


def test_reads_stay_open(tmp_path: Path, listener: Listener):
    with _client(tmp_path, listener) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/proxies").json() == []


def test_a_bad_token_setting_stops_the_app(tmp_path: Path, listener: Listener):
    app = create_app(
        Settings.model_construct(**{**Settings().model_dump(), "api_token": "has space in it!!"}),
        CollectorRegistry(),
    )
    with pytest.raises(ValueError, match="API_TOKEN contains whitespace"), TestClient(app):
        pass


def test_registry_refuses_a_foreign_address_and_unknown_names_before_any_request(
    tmp_path: Path, listener: Listener
):
    lb = listener
    registry = tmp_path / "proxies.json"
    registry.write_text(
        json.dumps(
            {
                "proxies": {
                    "sip-proxy-0": {
                        "sip_address": "127.0.1.1:5071",
                        "http_address": "127.0.1.1:8071",
                    }
                }
            }
        )
    )
    foreign = {
        "sip_address": f"127.0.0.1:{listener.udp_port}",
        "http_address": f"127.0.0.1:{listener.http_port}",
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    settings = {"proxy_address_source": "registry", "proxy_registry_file": registry}
    with _client(tmp_path, lb, **settings) as client:
        response = client.post("/proxies/sip-proxy-0/enable", json=foreign, headers=auth)
        assert response.status_code == 403
        detail = response.json()["detail"]
        assert (
            f"'sip-proxy-0': sip_address 127.0.0.1:{listener.udp_port} is not this proxy's address"
            in detail
        )
        assert f"the proxy registry {registry} gives 127.0.1.1:5071" in detail

        response = client.post("/proxy/enable/sip-proxy-5", json=foreign, headers=auth)
        assert response.status_code == 403
        assert "'sip-proxy-5' is not a proxy of this testbed" in response.json()["detail"]

        assert client.get("/proxies/sip-proxy-0").status_code == 404
    # neither the LB (same listener) nor the foreign host heard anything
    assert listener.requests == []
    assert listener.datagrams() == []


def test_template_refuses_a_body_other_than_the_template(tmp_path: Path, listener: Listener):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with _client(tmp_path, listener, proxy_host_template="127.0.1.7") as client:
        response = client.post(
            "/proxies/sip-proxy-0/enable",
            json={"http_address": f"127.0.0.1:{listener.http_port}"},
            headers=auth,
        )
        assert response.status_code == 403
        assert "PROXY_HOST_TEMPLATE (127.0.1.7) gives 127.0.1.7:8080" in response.json()["detail"]
    assert listener.requests == []
