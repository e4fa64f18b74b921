import pytest
from pydantic import ValidationError

from sip_controller.config import Settings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://u:p@db:3306/kamailio")
    monkeypatch.setenv("LOADBALANCER_RPC_URLS", "http://lb-0:8060/RPC, http://lb-1:8060/RPC")
    monkeypatch.setenv("DRAIN_GRACE_SECONDS", "12.5")
    monkeypatch.setenv("SUBSCRIBER_LAST", "99")
    settings = Settings()
    assert settings.database_url == "mysql+pymysql://u:p@db:3306/kamailio"
    assert settings.loadbalancer_urls == ["http://lb-0:8060/RPC", "http://lb-1:8060/RPC"]
    assert settings.drain_grace_seconds == 12.5
    assert settings.subscriber_last == 99


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOADBALANCER_RPC_URLS", " , "), ("DRAIN_GRACE_SECONDS", "-1"), ("PROXY_SIP_PORT", "70000")],
)
def test_bad_settings_are_refused_with_their_name(monkeypatch: pytest.MonkeyPatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_api_token_from_the_environment_empty_is_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_TOKEN", "t" * 20)
    assert Settings().api_token == "t" * 20
    monkeypatch.setenv("API_TOKEN", "")
    assert Settings().api_token is None


def test_a_bad_api_token_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_TOKEN", "short-secret")
    with pytest.raises(ValidationError, match="API_TOKEN is too short") as info:
        Settings()
    assert "short-secret" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"PROXY_ADDRESS_SOURCE": "registry"}, "needs PROXY_REGISTRY_FILE"),
        ({"PROXY_ADDRESS_SOURCE": "kubernetes"}, "needs PROXY_POD_SELECTOR"),
        ({"PROXY_ADDRESS_SOURCE": "dns"}, "proxy_address_source"),
    ],
)
def test_an_address_source_needs_its_settings(monkeypatch: pytest.MonkeyPatch, env, reason):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_address_source_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PROXY_ADDRESS_SOURCE", "kubernetes")
    monkeypatch.setenv("PROXY_POD_SELECTOR", "app.kubernetes.io/component=sip-proxy")
    monkeypatch.setenv("POD_NAMESPACE", "ims")
    monkeypatch.setenv("KUBERNETES_API_URL", "http://127.0.0.1:1")
    settings = Settings()
    assert settings.proxy_address_source == "kubernetes"
    assert (settings.pod_namespace, settings.kubernetes_api_url) == ("ims", "http://127.0.0.1:1")
    assert str(settings.kubernetes_token_file).endswith("serviceaccount/token")
