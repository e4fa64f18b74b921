"""The services' settings: one naming rule (docs/configuration.md), what local mode sets, and
each entry point's --help, --host/--port and bad-settings message, run as its own process.

Compose and the chart are checked against the same settings classes in test_deploy_compose.py
(test_environment_names_are_the_services_own) and test_deploy_helm.py
(test_python_services_get_exactly_their_settings)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT, free_port

from service_kit import ServiceSettings, env_variables, envdoc
from service_kit.services import Service, discover
from testbed.config import TestbedSettings
from testbed.local.components import KINDS
from testbed.local.environment import BASE_VARIABLES
from testbed.local.state import TestbedState
from testbed.local.testbed import LocalTestbed

SERVICES = {s.name: s for s in discover(ROOT)}
TOKEN = "entry-point-test-token-0123456789"
BIN = Path(sys.executable).parent
# how each service is started: `python -m` and its console script
COMMANDS = {
    "sip-controller": ([sys.executable, "-m", "sip_controller"], [str(BIN / "sip-controller")]),
    "scenario-controller": (
        [sys.executable, "-m", "scenario_controller"],
        [str(BIN / "scenario-controller")],
    ),
    "sip-client": ([sys.executable, "-m", "sip_client"], [str(BIN / "sip-client")]),
    "analyzer": ([sys.executable, "-m", "analyzer"], [str(BIN / "analyzer"), "serve"]),
    "csvgen": ([sys.executable, "-m", "csvgen", "serve"], [str(BIN / "csvgen"), "serve"]),
    "policy-controller": (
        [sys.executable, "-m", "policy_controller", "serve"],
        [str(BIN / "policy-controller"), "serve"],
    ),
}
# the settings a service has no default for (the chart sets them); the other services have one
# for every setting
REQUIRED = {
    "policy-controller": {
        "POLICY_CONTROLLER_PROMETHEUS_URL": "http://127.0.0.1:9",
        "POLICY_CONTROLLER_QUERY_CPU": "sum(rate(cpu[30s])) by (pod)",
        "POLICY_CONTROLLER_QUERY_P99_BY_POD": "p99_by_pod",
        "POLICY_CONTROLLER_QUERY_P99": "p99",
        "POLICY_CONTROLLER_QUERY_INVITE_RATE": "invite_rate",
        "POLICY_CONTROLLER_TARGET_NAME": "sip-proxy",
        "POLICY_CONTROLLER_KNEE_PER_PROXY": "10",
    },
}
# an empty classic pcap (the global header alone): the analyzer reads it instead of capturing
EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


def _settings(name: str) -> type[ServiceSettings]:
    return SERVICES[name].settings_class()


def test_every_service_is_found_and_follows_the_rule() -> None:
    assert set(SERVICES) == set(COMMANDS)
    for service in SERVICES.values():
        settings = service.settings_class()
        assert issubclass(settings, ServiceSettings), service.name
        # the base class refuses prefixes and aliases: the variable is the field's name
        assert list(env_variables(settings)) == [f.upper() for f in settings.model_fields]


def test_the_configuration_page_is_current() -> None:
    page = ROOT / envdoc.DOC
    assert envdoc.render(page.read_text(), ROOT) == page.read_text(), (
        f"{envdoc.DOC} is stale: run {envdoc.REGENERATE}"
    )


def test_every_name_several_services_read_has_its_one_meaning_written_down() -> None:
    """A name two services read must mean one thing: a new one (a bare SOCKET_BUFFER_BYTES in
    the analyzer, say) fails here until the page says what it means in both."""
    text = (ROOT / envdoc.DOC).read_text()
    section = text.split("### Variables several services read", 1)[1].split("\n\n", 2)[1]
    documented = {
        m.group(1): {s.strip() for s in m.group(2).split(",")}
        for m in re.finditer(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", section, re.MULTILINE)
    }
    shared = {
        name: set(readers)
        for name, readers in envdoc.readers(list(SERVICES.values())).items()
        if len(readers) > 1
    }
    assert documented == shared


def _check_env(service: str, env: dict[str, str]) -> None:
    """Every variable is one the service reads, and the values are valid settings."""
    settings = _settings(service)
    unknown = set(env) - set(env_variables(settings))
    assert not unknown, f"local mode sets {sorted(unknown)} for {service}, which does not read them"
    # strings, as the service reads them from its environment: the fields parse them
    values: dict[str, Any] = {name.lower(): value for name, value in env.items()}
    settings(**values)


def test_local_mode_sets_only_variables_the_services_read(tmp_path: Path) -> None:
    """(tests/unit/test_local_components.py checks the rest of each component's environment.)"""
    testbed = LocalTestbed(TestbedSettings(testbed_state_dir=tmp_path, database_url=None))
    state = TestbedState(
        database_url=f"sqlite:///{tmp_path}/db", database_kind="sqlite", api_token=TOKEN
    )
    for kind in ("sip-controller", "analyzer", "scenario-controller", "sip-client"):
        environment = KINDS[kind].environment(testbed._launch(state, 1, phones=100))
        _check_env(kind, {k: v for k, v in environment.items() if k not in BASE_VARIABLES})


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "COLUMNS": "200"}  # typer's help, unwrapped
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _host_port(service: Service) -> tuple[str, str]:
    host, port = service.settings_class().listen_fields
    return host.upper(), port.upper()


@pytest.mark.slow  # starts the real entry point, one process per case
@pytest.mark.parametrize("how", [0, 1], ids=["python-m", "script"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_names_host_port_and_the_variables(name: str, how: int) -> None:
    result = _run([*COMMANDS[name][how], "--help"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    host, port = _host_port(SERVICES[name])
    for text in ("--host", "--port", host, port):
        assert text in result.stdout, text


@pytest.mark.slow  # starts the real entry point, one process per case
@pytest.mark.parametrize("how", [0, 1], ids=["python-m", "script"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bad_settings_are_one_line_each_and_exit_2(name: str, how: int) -> None:
    _, port = _host_port(SERVICES[name])
    env = {**os.environ, **REQUIRED.get(name, {}), port: "not-a-port"}
    # a second bad variable of the service's own
    second = {
        "sip-controller": ("SUBSCRIBER_FIRST", "-1"),
        "scenario-controller": ("PROGRESS_INTERVAL_SECONDS", "0"),
        "sip-client": ("PHONES", "101"),
        "analyzer": ("ANALYZER_BACKEND", "scapy"),
        "csvgen": ("CSVGEN_MAX_ROWS", "0"),
        "policy-controller": ("POLICY_CONTROLLER_TREND_POINTS", "2"),
    }[name]
    env[second[0]] = second[1]
    result = _run(COMMANDS[name][how], env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == sorted([port, second[0]])
    assert all(line.startswith(f"{name}: ") for line in lines), lines
    assert "Traceback" not in result.stderr
    assert "not-a-port" not in result.stderr  # the value is not echoed (it may be a secret)


def _service_env(name: str, tmp_path: Path) -> dict[str, str]:
    """What each service needs to start alone, on loopback, touching only tmp_path."""
    return {
        "sip-controller": {
            "DATABASE_URL": f"sqlite:///{tmp_path}/testbed.sqlite",
            "SUBSCRIBER_LAST": "0",
            # a closed port: never another testbed's load balancer
            "LOADBALANCER_RPC_URLS": f"http://127.0.0.1:{free_port()}/RPC",
        },
        "scenario-controller": {
            "SCENARIO_DIR": str(tmp_path / "scenarios"),
            "RUNS_DIR": str(tmp_path / "runs"),
            "SIP_CONTROLLER_URL": "",
        },
        "sip-client": {"SIP_CLIENT_ADDRESS": "127.0.0.1", "SIP_CLIENT_PORT": "0"},
        "analyzer": {"ANALYZER_PCAP_FILE": str(tmp_path / "empty.pcap")},
        "csvgen": {},
        # closed ports: never a real Prometheus or API server; the loop counts the failures
        "policy-controller": {
            **REQUIRED["policy-controller"],
            "POLICY_CONTROLLER_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "POLICY_CONTROLLER_KUBE_API": f"http://127.0.0.1:{free_port()}",
            "POLICY_CONTROLLER_KUBE_TOKEN_FILE": str(tmp_path / "token"),
            "POLICY_CONTROLLER_NAMESPACE": "test",
        },
    }[name]


@pytest.mark.slow  # starts the real entry point, one process per case
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_line_beats_the_environment(name: str, tmp_path: Path) -> None:
    """Started with --host/--port while the variables name another port (and a bad host), the
    service answers /health on the command line's."""
    (tmp_path / "empty.pcap").write_bytes(EMPTY_PCAP)
    host, port = _host_port(SERVICES[name])
    cli_port, env_port = free_port(), free_port()
    env = {
        **os.environ,
        **_service_env(name, tmp_path),
        "API_TOKEN": TOKEN,
        host: "192.0.2.1",  # TEST-NET: not an address of this machine, binding would fail
        port: str(env_port),
    }
    log = (tmp_path / "service.log").open("w")
    command = [*COMMANDS[name][0], "--host", "127.0.0.1", "--port", str(cli_port)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{cli_port}/health", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "service.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "service.log").read_text()
            time.sleep(0.2)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{env_port}/health", timeout=2)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
