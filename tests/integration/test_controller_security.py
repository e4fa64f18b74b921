"""sip-controller's protection against the running SIP system (real Kamailio, the testbed's
controller in registry mode): no state change without the token, none from another site,
and no address the platform did not give ever reaches a load balancer or gets a request.

After every refused request the DB rows and every LB's dispatcher set (read over RPC) are
what they were; a local listener (HTTP/TCP and UDP on 127.0.0.1) stands in for the foreign
host and must record nothing.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session
from support import SipSystem

from kamailio_rpc import KamailioRpc
from sip_controller.config import Settings
from sip_controller.main import create_app
from testbed_db import Dispatcher, make_engine

pytestmark = pytest.mark.integration

ROUTES = [
    ("/proxies/sip-proxy-1/enable", {}),
    ("/proxies/sip-proxy-1/disable", {"grace_seconds": "0"}),
    ("/proxy/enable/sip-proxy-1", {}),
    ("/proxy/disable/sip-proxy-1", {"grace_seconds": "0"}),
]


@dataclass
class Listener:
    """A foreign host: TCP connections (an HTTP server) and UDP datagrams are recorded."""

    http_port: int
    udp: socket.socket
    connections: list[tuple[str, int]] = field(default_factory=list)

    @property
    def udp_port(self) -> int:
        port: int = self.udp.getsockname()[1]
        return port

    def body(self) -> dict[str, str]:
        return {
            "sip_address": f"127.0.0.1:{self.udp_port}",
            "http_address": f"127.0.0.1:{self.http_port}",
        }

    def heard(self) -> list[object]:
        datagrams: list[object] = []
        while True:
            try:
                datagrams.append(self.udp.recv(65535))
            except BlockingIOError:
                return [*self.connections, *datagrams]


@pytest.fixture
def foreign() -> Iterator[Listener]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    connections: list[tuple[str, int]] = []

    class Recording(ThreadingHTTPServer):
        def verify_request(self, request: object, client_address: object) -> bool:
            connections.append(client_address)  # type: ignore[arg-type]
            return True

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)  # a "healthy proxy", were it ever asked
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = Recording(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield Listener(server.server_address[1], udp, connections)
    server.shutdown()
    server.server_close()
    udp.close()
    thread.join()


def _snapshot(sip_system: SipSystem) -> tuple[object, ...]:
    """The DB's proxy and dispatcher rows, and what every LB lists (over RPC)."""
    state = sip_system.testbed.load_state()
    assert state is not None
    engine = make_engine(state.database_url)
    try:
        with Session(engine) as session:
            dispatcher = sorted(
                (d.setid, d.destination, d.flags, d.description)
                for d in session.scalars(select(Dispatcher))
            )
    finally:
        engine.dispose()
    proxies = sorted(
        (p["name"], p["state"], p["sip_uri"], p["http_url"], p["dispatcher_flags"])
        for p in sip_system.http.get(f"{sip_system.controller}/proxies").json()
    )
    lbs = [
        sorted((t.uri, t.flags) for t in KamailioRpc(url, token=sip_system.token).dispatcher_list())
        for url in sip_system.testbed.settings.lb_rpc_url.split(",")
    ]
    assert any(uri == "sip:127.0.1.2:5060" for uri, _ in lbs[0])  # sip-proxy-1 is served
    return tuple(dispatcher), tuple(proxies), tuple(map(tuple, lbs))


@pytest.mark.parametrize(("path", "params"), ROUTES)
@pytest.mark.parametrize("attack", ["no token", "wrong token", "cross-site form"])
def test_mutating_routes_refuse_and_change_nothing(
    sip_system: SipSystem, foreign: Listener, path, params, attack
):
    before = _snapshot(sip_system)
    url = f"{sip_system.controller}{path}"
    if attack == "cross-site form":
        # what a page on http://evil.example can make the operator's browser send: a simple
        # form post (no preflight), with no Authorization header
        response = sip_system.http.post(
            url, params=params, data=foreign.body(), headers={"Origin": "http://evil.example"}
        )
        expected = 401
        assert "access-control-allow-origin" not in response.headers
    else:
        headers = {"Authorization": f"Bearer {sip_system.token[::-1]}"}
        headers = headers if attack == "wrong token" else {}
        response = sip_system.http.post(url, params=params, json=foreign.body(), headers=headers)
        expected = 403 if attack == "wrong token" else 401
    assert response.status_code == expected, response.text
    assert _snapshot(sip_system) == before
    assert foreign.heard() == []


@pytest.mark.parametrize("form", ["/proxies/{name}/enable", "/proxy/enable/{name}"])
def test_registry_refuses_a_foreign_address_and_an_unknown_name(
    sip_system: SipSystem, foreign: Listener, form
):
    before = _snapshot(sip_system)
    registry = sip_system.testbed.store.registry_path
    for body in (foreign.body(), {"http_address": foreign.body()["http_address"]}):
        response = sip_system.http.post(
            f"{sip_system.controller}{form.format(name='sip-proxy-1')}",
            json=body,
            headers=sip_system.auth,
        )
        assert response.status_code == 403, response.text
        detail = response.json()["detail"]
        field = next(iter(body))
        assert f"'sip-proxy-1': {field} {body[field]} is not this proxy's address" in detail
        assert f"the proxy registry {registry} gives 127.0.1.2:" in detail
    # a name the testbed never started, at the foreign address
    response = sip_system.http.post(
        f"{sip_system.controller}{form.format(name='sip-proxy-7')}",
        json=foreign.body(),
        headers=sip_system.auth,
    )
    assert response.status_code == 403, response.text
    assert "'sip-proxy-7' is not a proxy of this testbed" in response.json()["detail"]
    assert _snapshot(sip_system) == before
    assert foreign.heard() == []


def test_template_refuses_a_foreign_address_and_enables_the_right_one(
    sip_system: SipSystem, foreign: Listener
):
    """A controller in template mode (compose's), on the same DB and LB: the template points
    at sip-proxy-1's address, a body naming another host is refused, the right one enabled."""
    state = sip_system.testbed.load_state()
    assert state is not None
    s = sip_system.testbed.settings
    settings = Settings(
        database_url=state.database_url,
        loadbalancer_rpc_urls=s.lb_rpc_url,
        health_check_interval_seconds=3600,
        proxy_host_template=s.proxy_address(1),
        proxy_sip_port=s.proxy_sip_port,
        proxy_http_port=s.proxy_http_port,
        api_token=sip_system.token,
    )
    before = _snapshot(sip_system)
    with TestClient(create_app(settings, CollectorRegistry())) as client:
        refused = client.post(
            "/proxies/sip-proxy-1/enable", json=foreign.body(), headers=sip_system.auth
        )
        assert refused.status_code == 403, refused.text
        assert f"PROXY_HOST_TEMPLATE ({s.proxy_address(1)}) gives" in refused.json()["detail"]
        assert _snapshot(sip_system) == before
        assert foreign.heard() == []

        right = {
            "sip_address": f"{s.proxy_address(1)}:{s.proxy_sip_port}",
            "http_address": f"{s.proxy_address(1)}:{s.proxy_http_port}",
        }
        enabled = client.post("/proxies/sip-proxy-1/enable", json=right, headers=sip_system.auth)
        assert enabled.status_code == 200, enabled.text
        assert (enabled.json()["state"], enabled.json()["loadbalancers"][0]["flags"]) == (
            "enabled",
            "AX",
        )
    assert _snapshot(sip_system) == before


def test_with_the_token_and_the_registry_address_disable_and_enable_work(sip_system: SipSystem):
    base = sip_system.controller
    before = _snapshot(sip_system)
    disabled = sip_system.http.post(
        f"{base}/proxies/sip-proxy-1/disable",
        params={"grace_seconds": 2},
        headers=sip_system.auth,
    )
    try:
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["state"] == "disabled"
        listed = sip_system.lb_rpc().dispatcher_list()
        assert all(t.uri != "sip:127.0.1.2:5060" for t in listed)
    finally:
        # no body: the addresses come from the registry the testbed wrote
        enabled = sip_system.http.post(
            f"{base}/proxies/sip-proxy-1/enable", headers=sip_system.auth
        )
    assert enabled.status_code == 200, enabled.text
    body = enabled.json()
    assert (body["sip_uri"], body["loadbalancers"][0]["flags"]) == ("sip:127.0.1.2:5060", "AX")
    assert _snapshot(sip_system) == before
