"""Local mode's table of components (components.py) and their environments (environment.py):
each service's environment is valid settings of its own Settings class, nothing of the caller's
environment leaks past the listed variables, and Kamailio gets only what its entrypoint reads."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT

import api_token
from service_kit import env_variables
from service_kit.services import discover
from testbed.config import TestbedSettings
from testbed.local import cpusets
from testbed.local.components import (
    KINDS,
    SETTINGS_ENV,
    STOP_ORDER,
    Launch,
    Restart,
    log_file,
    redact,
)
from testbed.local.environment import BASE_VARIABLES, KAMAILIO_TUNABLES, SettingsError
from testbed.local.health import health_problem, status_word
from testbed.local.state import TestbedState

SETTINGS = {s.name: s.settings_class() for s in discover(ROOT)}
PYTHON_KINDS = ("sip-controller", "analyzer", "scenario-controller", "sip-client")
KAMAILIO_KINDS = ("sip-loadb", "sip-proxy")
# what a caller's environment may hold that no component is to see
FOREIGN = {
    "API_TOKEN": "the-callers-own-token-0123",
    "AWS_SECRET_ACCESS_KEY": "not-for-the-testbed",
    "KUBECONFIG": "/home/someone/.kube/config",
    "UV_CACHE_DIR": "/tmp/uv-cache",
    "VIRTUAL_ENV_PROMPT": "(ims)",
    "OUTBOUND_PROXY": "sip:198.51.100.1:5060",
}


def _entrypoint_variables() -> set[str]:
    """Every variable kamailio/entrypoint.sh reads: `${NAME...}` and `$NAME`."""
    text = (ROOT / "kamailio" / "entrypoint.sh").read_text()
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))


@pytest.fixture
def launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Launch:
    for name, value in FOREIGN.items():
        monkeypatch.setenv(name, value)
    settings = TestbedSettings(testbed_state_dir=tmp_path, database_url=None)
    state = TestbedState(
        database_url=f"sqlite:///{tmp_path}/testbed.sqlite",
        database_kind="sqlite",
        api_token=api_token.generate(),
    )
    return Launch(
        settings=settings,
        state=state,
        state_dir=tmp_path,
        registry_file=tmp_path / "proxies.json",
        run_root=tmp_path / "run",
        index=3,
        phones=100,
    )


@pytest.mark.parametrize("kind", PYTHON_KINDS)
def test_a_service_gets_valid_settings_of_its_own_and_the_base_alone(
    kind: str, launch: Launch
) -> None:
    environment = KINDS[kind].environment(launch)
    settings_class = SETTINGS[kind]
    own = set(env_variables(settings_class))
    assert set(environment) <= own | set(BASE_VARIABLES), set(environment) - own
    assert environment["PATH"]  # the programs' PATH is kept
    # read back by the service's own class from exactly this environment
    # strings, as from the environment: the fields parse them
    values: dict[str, Any] = {
        name.lower(): value for name, value in environment.items() if name in own
    }
    settings_class(**values)
    for name in set(FOREIGN) - {"API_TOKEN", "OUTBOUND_PROXY"}:
        assert name not in environment
    # the testbed's own token, never the caller's; none at all for the analyzer (GET only)
    assert environment.get("API_TOKEN") == (None if kind == "analyzer" else launch.token)


def test_the_values_are_the_ones_local_mode_chooses(launch: Launch) -> None:
    controller = KINDS["sip-controller"].environment(launch)
    assert controller["PROXY_ADDRESS_SOURCE"] == "registry"
    assert controller["PROXY_REGISTRY_FILE"] == str(launch.registry_file)
    assert controller["DATABASE_URL"] == launch.state.database_url
    assert controller["LOADBALANCER_RPC_URLS"] == "http://127.0.0.1:8060/RPC"
    analyzer = KINDS["analyzer"].environment(launch)
    assert analyzer["ANALYZER_PROXY_ADDRESS"] == "127.0.1.4:5060"
    assert analyzer["ANALYZER_PROXY_NAME"] == "sip-proxy-3"
    assert analyzer["ANALYZER_HTTP_HOST"] == "127.0.1.4"
    client = KINDS["sip-client"].environment(launch)
    assert (client["POD_ID"], client["PHONES"], client["SIP_CLIENT_ADDRESS"]) == (
        "03",
        "100",
        "127.0.2.4",
    )
    assert client["OUTBOUND_PROXY"] == "127.0.0.1:5060"  # host:port here, not the caller's URI
    assert client["LOG_LEVEL"] == "warning"
    scenario = KINDS["scenario-controller"].environment(launch)
    assert scenario["SCENARIO_DIR"] == str(launch.state_dir / "scenarios")


def test_a_services_own_setting_passes_through_and_a_bad_one_is_refused(
    launch: Launch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAIN_GRACE_SECONDS", "5")
    monkeypatch.setenv("SIP_CLIENT_LOG_LEVEL", "debug")
    assert KINDS["sip-controller"].environment(launch)["DRAIN_GRACE_SECONDS"] == "5.0"
    assert "DRAIN_GRACE_SECONDS" not in KINDS["analyzer"].environment(launch)
    assert KINDS["sip-client"].environment(launch)["LOG_LEVEL"] == "debug"
    monkeypatch.setenv("HEALTH_FAILURE_THRESHOLD", "0")
    with pytest.raises(SettingsError, match=r"^sip-controller: HEALTH_FAILURE_THRESHOLD: "):
        KINDS["sip-controller"].environment(launch)


@pytest.mark.parametrize("kind", KAMAILIO_KINDS)
def test_kamailio_gets_only_what_its_entrypoint_reads(
    kind: str, launch: Launch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_ALGORITHM", "SHA-256")  # a tunable: passed on
    environment = KINDS[kind].environment(launch)
    kamailio = set(environment) - set(BASE_VARIABLES)
    assert kamailio <= _entrypoint_variables(), kamailio - _entrypoint_variables()
    assert set(KAMAILIO_TUNABLES) <= _entrypoint_variables()
    assert environment["AUTH_ALGORITHM"] == "SHA-256"
    assert environment["API_TOKEN"] == launch.token
    assert environment["KAMAILIO_RUN_DIR"] == str(launch.run_root / KINDS[kind].name(3))
    if kind == "sip-proxy":
        assert environment["SIP_ADDRESS"] == "127.0.1.4"
        assert environment["OUTBOUND_PROXY"] == "sip:127.0.0.1:5060"
        # the first proxy notifies itself; a later one joins through its running peer
        assert environment["DMQ_NOTIFICATION_ADDRESS"] == "sip:127.0.1.4:5061"
        peer = Launch(**{**launch.__dict__, "peer_dmq": "sip:127.0.1.1:5061"})
        assert KINDS[kind].environment(peer)["DMQ_NOTIFICATION_ADDRESS"] == "sip:127.0.1.1:5061"
    else:
        assert environment["SIP_ADDRESS"] == "127.0.0.1"
        assert "OUTBOUND_PROXY" not in environment  # not even the caller's


def test_the_supervisor_is_the_testbed_itself_with_its_settings(launch: Launch) -> None:
    environment = KINDS["supervisor"].environment(launch)
    assert TestbedSettings.model_validate_json(environment[SETTINGS_ENV]) == launch.settings
    assert environment["KUBECONFIG"] == FOREIGN["KUBECONFIG"]  # what it restarts reads it
    assert KINDS["supervisor"].command(launch) == [
        sys.executable,
        "-m",
        "testbed.local.supervisor",
    ]


def test_the_table_names_places_and_orders_as_local_mode_always_did(launch: Launch) -> None:
    records = {kind: spec.record(launch) for kind, spec in KINDS.items() if kind != "database"}
    assert {kind: r.name for kind, r in records.items()} == {
        "sip-controller": "sip-controller",
        "sip-loadb": "sip-loadb",
        "sip-proxy": "sip-proxy-3",
        "analyzer": "analyzer-3",
        "scenario-controller": "scenario-controller",
        "sip-client": "sip-client-03",
        "supervisor": "supervisor",
    }
    assert records["sip-proxy"].endpoints == {
        "sip": "udp:127.0.1.4:5060",
        "dmq": "sip:127.0.1.4:5061",
        "http": "127.0.1.4:8080",
    }
    assert records["analyzer"].endpoints == {"http": "127.0.1.4:9101", "watches": "127.0.1.4:5060"}
    assert records["sip-client"].health_url == "http://127.0.2.4:8090/health"
    assert records["sip-controller"].index is None
    assert records["supervisor"].health_url is None
    assert STOP_ORDER == (
        "supervisor",
        "sip-client",
        "scenario-controller",
        "sip-proxy",
        "analyzer",
        "sip-loadb",
        "sip-controller",
        "database",
    )
    assert {k for k, spec in KINDS.items() if spec.placement == cpusets.SUT} == {
        "sip-loadb",
        "sip-proxy",
    }
    assert {k for k, spec in KINDS.items() if spec.restart is Restart.NEVER} == {
        "sip-client",
        "supervisor",
    }
    assert log_file(launch.state_dir, "sip-proxy-3") == launch.state_dir / "logs/sip-proxy-3.log"
    assert KINDS["sip-loadb"].command(launch) == [
        str(launch.settings.kamailio_config_dir / "entrypoint.sh"),
        "sip-loadb",
    ]


def test_a_database_url_is_shown_without_its_password() -> None:
    assert redact("mysql+pymysql://testbed:s3cret@127.0.0.1:3307/testbed") == (
        "mysql+pymysql://testbed:***@127.0.0.1:3307/testbed"
    )
    assert redact("sqlite:////tmp/x.sqlite") == "sqlite:////tmp/x.sqlite"


def test_health_problem_names_what_is_wrong_and_none_when_healthy() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200 if request.url.path == "/health" else 503)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        assert health_problem(http, "http://x/health") is None
        assert health_problem(http, "http://x/busy") == "HTTP 503"
        assert health_problem(http, "http://x/refused") == "unreachable (ConnectError)"
    assert status_word(True, lambda: None, lambda: False) == "healthy"
    assert status_word(True, lambda: "HTTP 503", lambda: True) == "HTTP 503"
    assert status_word(False, lambda: None, lambda: True) == "dead"
    assert status_word(None, lambda: "unused", lambda: True) == "healthy"
    assert status_word(None, lambda: None, lambda: False) == "unreachable"
