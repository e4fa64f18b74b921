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
