"""Where a proxy is: each source's answer turned into addresses, and the body checked against it."""

from __future__ import annotations

import json
import re

import pytest

from sip_controller.addresses import HostPort
from sip_controller.errors import ProxyNotReady
from sip_controller.platform import (
    AddressRefused,
    PlatformProxy,
    PlatformUnavailable,
    from_pod,
    from_registry,
    from_template,
    parse_selector,
    settle,
)

REGISTRY = json.dumps(
    {
        "proxies": {
            "sip-proxy-0": {"sip_address": "127.0.1.1:5060", "http_address": "127.0.1.1:8080"},
            "sip-proxy-1": {"sip_address": "127.0.1.2:5071", "http_address": "127.0.1.2:8071"},
        }
    }
)
SELECTOR = {"app.kubernetes.io/component": "sip-proxy", "app.kubernetes.io/instance": "t"}


def _pod(labels: dict[str, str] | None = None, pod_ip: str | None = "10.244.1.7") -> bytes:
    status = {"podIP": pod_ip} if pod_ip else {}
    pod = {"metadata": {"name": "sip-proxy-0", "labels": labels or SELECTOR}, "status": status}
    return json.dumps(pod).encode()


def _settle_registry(name: str, sip: HostPort | None, http: HostPort | None) -> tuple[str, str]:
    proxy = from_registry(name, REGISTRY, "/run/registry.json")
    ips = {hp.host: (hp.host,) for hp in (proxy.sip, proxy.http)}
    addresses = settle(proxy, sip, http, ips)
    return addresses.sip_uri, addresses.http_url


# -- registry ---------------------------------------------------------------------------------


def test_registry_entry_without_a_body_gives_its_addresses():
    assert _settle_registry("sip-proxy-1", None, None) == (
        "sip:127.0.1.2:5071",
        "http://127.0.1.2:8071",
    )


def test_registry_entry_that_the_body_repeats_is_accepted():
    assert _settle_registry(
        "sip-proxy-1", HostPort("127.0.1.2", 5071), HostPort("127.0.1.2", 8071)
    ) == ("sip:127.0.1.2:5071", "http://127.0.1.2:8071")


@pytest.mark.parametrize(
    ("sip", "http", "field", "claimed"),
    [
        (HostPort("127.0.0.1", 5071), None, "sip_address", "127.0.0.1:5071"),  # other host
        (HostPort("127.0.1.2", 5072), None, "sip_address", "127.0.1.2:5072"),  # other port
        (None, HostPort("127.0.1.9", 8071), "http_address", "127.0.1.9:8071"),
        (HostPort("127.0.1.2", 5071), HostPort("evil.example", 8071), "http_address", "evil"),
    ],
)
def test_a_body_that_disagrees_with_the_registry_is_refused_naming_both(sip, http, field, claimed):
    with pytest.raises(AddressRefused) as info:
        _settle_registry("sip-proxy-1", sip, http)
    detail = info.value.detail
    assert info.value.status_code == 403
    assert "'sip-proxy-1'" in detail
    assert f"{field} {claimed}" in detail
    assert "the proxy registry /run/registry.json gives 127.0.1.2:" in detail


def test_a_name_not_in_the_registry_is_refused():
    with pytest.raises(AddressRefused, match="'sip-proxy-7' is not a proxy of this testbed"):
        from_registry("sip-proxy-7", REGISTRY, "/run/registry.json")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "is not JSON"),
        ("[]", "has no 'proxies' object"),
        ('{"proxies": []}', "has no 'proxies' object"),
        ('{"proxies": {"p": "127.0.0.1:5060"}}', "entry 'p' is not an object"),
        ('{"proxies": {"p": {"sip_address": "127.0.0.1:5060"}}}', "entry 'p' has no http_address"),
        (
            '{"proxies": {"p": {"sip_address": "127.0.0.1", "http_address": "h:1"}}}',
            "entry 'p': sip_address: '127.0.0.1' is not host:port",
        ),
    ],
)
def test_a_malformed_registry_is_an_error_naming_the_file(text, reason):
    with pytest.raises(PlatformUnavailable) as info:
        from_registry("p", text, "/run/registry.json")
    assert info.value.status_code == 503
    assert "proxy registry /run/registry.json" in info.value.detail
    assert reason in info.value.detail


# -- template ---------------------------------------------------------------------------------


def test_template_host_matches_a_claimed_ip_it_resolves_to_and_itself():
    proxy = from_template("sip-proxy-0", "{name}.ims", 5060, 8080)
    ips = {"sip-proxy-0.ims": ("10.0.0.5", "10.0.0.6")}
    # compose: the hook sends its own IP, the template's host resolves to it
    claimed = settle(proxy, HostPort("10.0.0.6", 5060), None, ips)
    assert (claimed.sip_uri, claimed.http_url) == ("sip:10.0.0.6:5060", "http://10.0.0.5:8080")
    by_name = settle(
        proxy, HostPort("SIP-PROXY-0.ims", 5060), HostPort("sip-proxy-0.ims", 8080), ips
    )
    assert (by_name.sip_uri, by_name.http_url) == ("sip:10.0.0.5:5060", "http://10.0.0.5:8080")


def test_template_refuses_an_ip_the_host_does_not_resolve_to_and_another_hostname():
    proxy = from_template("sip-proxy-0", "{name}.ims", 5060, 8080)
    ips = {"sip-proxy-0.ims": ("10.0.0.5",)}
    with pytest.raises(AddressRefused, match=r"sip_address 10\.0\.0\.9:5060 is not this proxy"):
        settle(proxy, HostPort("10.0.0.9", 5060), None, ips)
    # a hostname that is not the template's is refused without resolving it
    with pytest.raises(AddressRefused, match=r"PROXY_HOST_TEMPLATE \(sip-proxy-0\.ims\) gives"):
        settle(proxy, None, HostPort("other.ims", 8080), ips)


def test_ipv6_claims_compare_as_addresses():
    proxy = from_template("p", "fd00::5", 5060, 8080)
    addresses = settle(proxy, HostPort("fd00:0::0005", 5060), None, {"fd00::5": ("fd00::5",)})
    assert addresses.sip_uri == "sip:[fd00::5]:5060"


# -- kubernetes -------------------------------------------------------------------------------


def test_pod_with_the_labels_and_an_ip_gives_its_ip_and_the_ports():
    proxy = from_pod("sip-proxy-0", "ims", 200, _pod(), SELECTOR, 5060, 8080)
    assert proxy == PlatformProxy(
        "sip-proxy-0",
        HostPort("10.244.1.7", 5060),
        HostPort("10.244.1.7", 8080),
        "pod ims/sip-proxy-0",
    )
    ips = {"10.244.1.7": ("10.244.1.7",)}
    with pytest.raises(
        AddressRefused,
        match=r"sip_address 10\.244\.1\.8:5060 .* pod ims/sip-proxy-0 gives 10\.244\.1\.7:5060",
    ):
        settle(proxy, HostPort("10.244.1.8", 5060), None, ips)


def test_unknown_pod_is_refused():
    with pytest.raises(AddressRefused, match="no pod 'sip-proxy-9' in namespace 'ims'"):
        from_pod("sip-proxy-9", "ims", 404, b'{"kind":"Status"}', SELECTOR, 5060, 8080)


def test_pod_of_another_kind_or_release_is_refused_naming_the_label():
    labels = {**SELECTOR, "app.kubernetes.io/instance": "other"}
    with pytest.raises(
        AddressRefused, match=r"lacks the label\(s\) app\.kubernetes\.io/instance=t of"
    ):
        from_pod("mariadb-0", "ims", 200, _pod(labels), SELECTOR, 5060, 8080)
    with pytest.raises(AddressRefused, match=re.escape("app.kubernetes.io/component=sip-proxy")):
        from_pod("mariadb-0", "ims", 200, _pod({"app": "db"}), SELECTOR, 5060, 8080)


def test_pod_without_ip_is_not_ready():
    with pytest.raises(ProxyNotReady, match="pod ims/sip-proxy-0 has no podIP"):
        from_pod("sip-proxy-0", "ims", 200, _pod(pod_ip=None), SELECTOR, 5060, 8080)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (403, b"{}", "refused to read pod ims/p \\(HTTP 403\\): .*needs get on pods"),
        (500, b"{}", "answered HTTP 500 for pod ims/p"),
        (200, b"<html>", "answer for pod ims/p is not JSON"),
    ],
)
def test_kubernetes_api_errors_are_unavailable(status, body, reason):
    with pytest.raises(PlatformUnavailable, match=reason):
        from_pod("p", "ims", status, body, SELECTOR, 5060, 8080)


def test_selector_parsing():
    assert parse_selector("a=1, b==2") == {"a": "1", "b": "2"}
    for bad, reason in [("a!=1", "only equality"), ("a", "not key=value"), (" , ", "is empty")]:
        with pytest.raises(ValueError, match=reason):
            parse_selector(bad)
