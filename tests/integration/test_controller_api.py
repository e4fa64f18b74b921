"""sip-controller's REST API against the running SIP system, including its error paths.

The error paths that need odd settings (an LB that does not answer, short timeouts) run a
second controller in-process, with FastAPI's TestClient, against the same DB and real LB.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from support import SipSystem

from sip_controller.config import Settings
from sip_controller.main import create_app

pytestmark = pytest.mark.integration


def _proxy(sip_system: SipSystem, name: str) -> dict[str, Any]:
    response = sip_system.http.get(f"{sip_system.controller}/proxies/{name}")
    assert response.status_code == 200, response.text
    proxy: dict[str, Any] = response.json()
    return proxy


@contextlib.contextmanager
def side_controller(sip_system: SipSystem, **settings: object) -> Iterator[TestClient]:
    """A second controller on the same DB and LB, with short timeouts and no reconciler; it
    sends the testbed's token (its Kamailio checks it on /RPC, this controller on writes)."""
    state = sip_system.testbed.load_state()
    assert state is not None
    values: dict[str, object] = {
        "database_url": state.database_url,
        "loadbalancer_rpc_urls": sip_system.testbed.settings.lb_rpc_url,
        "enable_timeout_seconds": 1.5,
        "health_check_interval_seconds": 3600,
        "api_token": sip_system.token,
        **settings,
    }
    app = create_app(Settings(**values), CollectorRegistry())  # type: ignore[arg-type]
    with TestClient(app, headers=sip_system.auth) as client:
        yield client


def test_proxies_shows_db_state_and_what_the_lb_lists(sip_system: SipSystem):
    proxies = sip_system.http.get(f"{sip_system.controller}/proxies").json()
    assert [
        (p["name"], p["state"], p["dispatcher_flags"]) for p in proxies if p["state"] != "disabled"
    ] == [
        ("sip-proxy-0", "enabled", 0),
        ("sip-proxy-1", "enabled", 0),
    ]
    for proxy in proxies:
        if proxy["state"] == "enabled":
            assert [lb["flags"] for lb in proxy["loadbalancers"]] == ["AX"]


def test_registrations_come_from_a_proxy_usrloc(sip_system: SipSystem):
    body = sip_system.http.get(f"{sip_system.controller}/registrations").json()
    aors = sip_system.proxy_rpc(0).registered_aors()
    assert body["count"] == len(body["users"]) == len(aors)
    assert sorted(aors) == body["users"]
    assert {"0100", "0149"} <= set(body["users"])
    other = sip_system.http.get(
        f"{sip_system.controller}/registrations", params={"proxy": "sip-proxy-1"}
    ).json()
    assert other["proxy"] == "sip-proxy-1"
    assert set(other["users"]) == set(body["users"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"sip_address": "127.0.1.9"}, "sip_address: '127.0.1.9' is not host:port"),
        ({"sip_address": "127.0.1.9:99999"}, "out of range"),
        ({"sip_address": "127.0.1.9:50x0"}, "is not a number"),
        ({"sip_address": "bad host!:5060"}, "neither an IP address nor a hostname"),
        ({"http_address": "[::1:8080"}, "unclosed IPv6 bracket"),
    ],
)
def test_enable_with_malformed_address_is_422_with_reason(sip_system: SipSystem, body, fragment):
    response = sip_system.http.post(
        f"{sip_system.controller}/proxies/sip-proxy-9/enable", json=body, headers=sip_system.auth
    )
    assert response.status_code == 422
    assert fragment in response.json()["detail"]
    assert sip_system.http.get(f"{sip_system.controller}/proxies/sip-proxy-9").status_code == 404


def test_enable_with_unknown_field_is_422(sip_system: SipSystem):
    response = sip_system.http.post(
        f"{sip_system.controller}/proxies/sip-proxy-9/enable",
        json={"sip": "x"},
        headers=sip_system.auth,
    )
    assert response.status_code == 422


def test_bad_proxy_name_is_422(sip_system: SipSystem):
    response = sip_system.http.post(
        f"{sip_system.controller}/proxies/Sip_Proxy/enable", json={}, headers=sip_system.auth
    )
    assert response.status_code == 422
    assert "PROXY_NAME_PATTERN" in response.json()["detail"]


def test_disable_of_unknown_proxy_is_404(sip_system: SipSystem):
    response = sip_system.http.post(
        f"{sip_system.controller}/proxies/sip-proxy-77/disable", headers=sip_system.auth
    )
    assert response.status_code == 404
    assert "sip-proxy-77" in response.json()["detail"]


def test_enable_by_unresolvable_template_name_is_404(sip_system: SipSystem):
    with side_controller(sip_system, proxy_host_template="{name}.invalid") as client:
        response = client.post("/proxies/sip-proxy-42/enable")
    assert response.status_code == 404
    assert "cannot resolve 'sip-proxy-42.invalid'" in response.json()["detail"]


def test_enable_of_a_proxy_that_is_not_up_is_503_and_writes_nothing(
    sip_system: SipSystem, tmp_path: Path
):
    # the platform (a registry of its own) knows sip-proxy-42, but nothing runs there
    registry = tmp_path / "proxies.json"
    entry = {"sip_address": "127.0.1.42:5060", "http_address": "127.0.1.42:8080"}
    registry.write_text(json.dumps({"proxies": {"sip-proxy-42": entry}}))
    settings = {"proxy_address_source": "registry", "proxy_registry_file": registry}
    with side_controller(sip_system, **settings) as client:
        response = client.post("/proxies/sip-proxy-42/enable", json=entry)
        assert response.status_code == 503
        assert "/health did not answer" in response.json()["detail"]
        assert client.get("/proxies/sip-proxy-42").status_code == 404
    assert all("127.0.1.42" not in t.uri for t in sip_system.lb_rpc().dispatcher_list())


def test_unreachable_lb_is_502_and_leaves_db_and_lb_as_they_were(sip_system: SipSystem):
    state = sip_system.testbed.load_state()
    assert state is not None
    settings = Settings(
        database_url=state.database_url,
        loadbalancer_rpc_urls=f"{sip_system.testbed.settings.lb_rpc_url},http://127.0.0.1:9/RPC",
        health_check_interval_seconds=3600,
        rpc_timeout_seconds=2,
        api_token=sip_system.token,
    )
    before = _proxy(sip_system, "sip-proxy-1")
    with TestClient(create_app(settings, CollectorRegistry()), headers=sip_system.auth) as client:
        response = client.post("/proxies/sip-proxy-1/disable", params={"grace_seconds": 0})
        assert response.status_code == 502
        detail = response.json()["detail"]
        assert "http://127.0.0.1:9/RPC" in detail
        assert "left as it was" in detail
    after = _proxy(sip_system, "sip-proxy-1")
    assert (
        (after["state"], after["dispatcher_flags"])
        == (before["state"], before["dispatcher_flags"])
        == ("enabled", 0)
    )
    # the reachable LB was reloaded back to the old set
    assert after["loadbalancers"][0]["flags"] == "AX"


def test_paper_form_hooks_disable_and_enable(sip_system: SipSystem):
    base = sip_system.controller
    disabled = sip_system.http.post(
        f"{base}/proxy/disable/sip-proxy-1", params={"grace_seconds": 5}, headers=sip_system.auth
    )
    try:
        assert disabled.status_code == 200, disabled.text
        body = disabled.json()
        assert (body["state"], body["dispatcher_flags"], body["drained"]) == (
            "disabled",
            None,
            True,
        )
        assert all(t.uri != "sip:127.0.1.2:5060" for t in sip_system.lb_rpc().dispatcher_list())
    finally:
        enabled = sip_system.http.post(
            f"{base}/proxy/enable/sip-proxy-1",
            json={"sip_address": "127.0.1.2:5060", "http_address": "127.0.1.2:8080"},
            headers=sip_system.auth,
        )
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["loadbalancers"][0]["flags"] == "AX"


def test_reconciler_takes_an_unhealthy_proxy_out_and_brings_it_back(sip_system: SipSystem):
    state = sip_system.testbed.load_state()
    assert state is not None
    proxy = state.get("sip-proxy-1")
    assert proxy is not None
    assert proxy.pid is not None
    # freeze every process of the proxy (it leads its own process group)
    os.killpg(proxy.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 20
        while _proxy(sip_system, "sip-proxy-1")["state"] != "unhealthy":
            assert time.monotonic() < deadline, "not marked unhealthy within 20 s"
            time.sleep(0.5)
        # out of the set, not inactive in it (an inactive row's share goes to the next proxy)
        assert _proxy(sip_system, "sip-proxy-1")["loadbalancers"][0]["flags"] is None
    finally:
        os.killpg(proxy.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while _proxy(sip_system, "sip-proxy-1")["state"] != "enabled":
        assert time.monotonic() < deadline, "not re-enabled within 20 s"
        time.sleep(0.5)
    assert _proxy(sip_system, "sip-proxy-1")["loadbalancers"][0]["flags"] == "AX"


def test_metrics_export_proxy_states_and_http_stats(sip_system: SipSystem):
    text = sip_system.http.get(f"{sip_system.controller}/metrics").text
    assert 'sip_controller_proxies{state="enabled"} 2.0' in text
    assert "http_requests_total" in text or "http_request_duration_seconds" in text


def test_health(sip_system: SipSystem):
    body = sip_system.http.get(f"{sip_system.controller}/health").json()
    assert body["status"] == "ok"
