"""docker-compose.yml, checked without a Docker engine.

The file is validated against the compose-spec JSON schema (the copy check-jsonschema ships),
with YAML anchors and merge keys resolved as Compose resolves them; then its real properties:
start order by health, the analyzers inside their proxies' network namespaces, every /metrics
scraped, the environment names the services read, the images the build script makes.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import ROOT

from service_kit import env_variables

COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def settings_env_names(module: str) -> set[str]:
    """The variables a service's settings read (docs/configuration.md: the field names)."""
    return set(env_variables(__import__(module, fromlist=["Settings"]).Settings))


def kamailio_env_names() -> set[str]:
    """What Kamailio's image reads: the entrypoint's ${NAME}s and the cfgs' $env(NAME)s."""
    text = (ROOT / "kamailio" / "entrypoint.sh").read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)(?::?[=-]|\})", text))
    for cfg in (ROOT / "kamailio").glob("*.cfg"):
        names |= set(re.findall(r"\$env\(([A-Z_]+)\)", cfg.read_text()))
    return names


def depends(service: dict[str, Any]) -> dict[str, str]:
    value = service.get("depends_on", {})
    if isinstance(value, list):
        return dict.fromkeys(value, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in value.items()}


def test_compose_file_matches_the_compose_spec_schema() -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose(), schema)
    # the schema does catch mistakes: a misspelt key and a bad condition are refused
    broken = compose()
    broken["services"]["sip-controller"]["depend_on"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = compose()
    broken["services"]["sip-controller"]["depends_on"]["db-init"]["condition"] = "healthy"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_every_awaited_service_has_a_healthcheck_and_the_order_has_no_cycle() -> None:
    svc = services()
    for name, service in svc.items():
        for dep, condition in depends(service).items():
            assert dep in svc, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                check = svc[dep].get("healthcheck") or {}
                assert check.get("test"), f"{name} waits for {dep}'s health: none"
            if condition == "service_completed_successfully":
                assert svc[dep].get("restart") == "no", f"{dep} is a one-shot job"
    # topological order exists (compose refuses cycles)
    order: list[str] = []
    pending = dict(svc)
    while pending:
        ready = [n for n, s in pending.items() if all(d in order for d in depends(s))]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order.extend(sorted(ready))
        for n in ready:
            del pending[n]
    position = {n: i for i, n in enumerate(order)}
    # the testbed's start order: database, schema, controller, load balancer, proxies
    for before, after in [
        ("mariadb", "db-init"),
        ("db-init", "sip-controller"),
        ("db-init", "sip-loadb"),
        ("sip-loadb", "sip-proxy-0"),
        ("sip-proxy-0", "sip-proxy-1"),
        ("sip-proxy-0-analyzer", "sip-proxy-0-enable"),
        ("sip-controller", "sip-proxy-0-enable"),
        ("sip-controller", "scenario-controller"),
        ("scenario-controller", "sip-client-00"),
        ("sip-loadb", "sip-client-01"),
        ("prometheus", "grafana"),
    ]:
        assert position[before] < position[after], f"{before} must start before {after}"


def test_mariadb_and_the_schema_job() -> None:
    svc = services()
    assert svc["mariadb"]["healthcheck"]["test"][:2] == ["CMD", "healthcheck.sh"]
    assert depends(svc["db-init"]) == {"mariadb": "service_healthy"}
    assert svc["db-init"]["entrypoint"] == ["testbed-db-init"]
    assert svc["db-init"]["command"][:2] == ["--mode", "init"]
    url = svc["db-init"]["environment"]["DATABASE_URL"]
    env = svc["mariadb"]["environment"]
    assert url == (
        f"mysql+pymysql://{env['MARIADB_USER']}:{env['MARIADB_PASSWORD']}"
        f"@mariadb:3306/{env['MARIADB_DATABASE']}"
    )
    for name in ["sip-controller", "sip-loadb", "sip-proxy-0", "sip-proxy-1"]:
        assert svc[name]["environment"]["DATABASE_URL"] == url


def test_two_proxies_each_with_an_analyzer_in_its_network_namespace() -> None:
    svc = services()
    proxies = sorted(n for n in svc if re.fullmatch(r"sip-proxy-\d+", n))
    assert proxies == ["sip-proxy-0", "sip-proxy-1"]
    for proxy in proxies:
        assert svc[proxy]["command"] == ["sip-proxy"]
        analyzer = svc[f"{proxy}-analyzer"]
        assert analyzer["network_mode"] == f"service:{proxy}"
        assert "NET_RAW" in analyzer["cap_add"]
        assert analyzer["environment"]["ANALYZER_PROXY_NAME"] == proxy
        assert analyzer["environment"]["ANALYZER_INTERFACE"] == "eth0"
        enable = svc[f"{proxy}-enable"]
        assert enable["network_mode"] == f"service:{proxy}"
        command = " ".join(enable["command"])
        assert f"http://sip-controller:8000/proxies/{proxy}/enable" in command
        assert '\\"sip_address\\": \\"$$address:5060\\"' in command
        env = svc[proxy]["environment"]
        assert env["OUTBOUND_PROXY"] == "sip:sip-loadb:5060"
        assert env["DMQ_NOTIFICATION_ADDRESS"] == "sip:sip-proxy-0:5061"
    assert svc["sip-loadb"]["command"] == ["sip-loadb"]
    ctl = svc["sip-controller"]["environment"]
    assert ctl["LOADBALANCER_RPC_URLS"] == (
        f"http://sip-loadb:{svc['sip-loadb']['environment']['HTTP_PORT']}/RPC"
    )


def test_client_pods_and_the_panel() -> None:
    svc = services()
    clients = sorted(n for n in svc if n.startswith("sip-client-"))
    assert clients == ["sip-client-00", "sip-client-01"]
    for name in clients:
        env = svc[name]["environment"]
        assert env["POD_ID"] == name.rsplit("-", 1)[1]
        assert env["SCENARIO_CONTROLLER_URL"] == "ws://scenario-controller:8001/ws/clients"
        assert env["OUTBOUND_PROXY"] == "sip-loadb:5060"
    # the panel on loopback unless BIND_ADDRESS says otherwise, its host port overridable
    # (beside local mode's controller)
    assert svc["scenario-controller"]["ports"] == [
        "${BIND_ADDRESS:-127.0.0.1}:${SCENARIO_CONTROLLER_HOST_PORT:-8001}:8001"
    ]
    upload = svc["scenario-upload"]
    assert upload["volumes"] == ["./helm/ims-testbed/scenarios:/scenarios:ro"]


def test_environment_names_are_the_services_own() -> None:
    """Every variable compose sets is one the service reads (local mode's names)."""
    svc = services()
    modules = {
        "sip-controller": "sip_controller.config",
        "db-init": "sip_controller.config",
        "scenario-controller": "scenario_controller.config",
        "csvgen": "csvgen.config",
        "sip-client-00": "sip_client.config",
        "sip-client-01": "sip_client.config",
        "sip-proxy-0-analyzer": "analyzer.config",
        "sip-proxy-1-analyzer": "analyzer.config",
    }
    for name, module in modules.items():
        unknown = set(svc[name]["environment"]) - settings_env_names(module)
        assert not unknown, f"{name}: {sorted(unknown)} are not settings of {module}"
    kamailio = kamailio_env_names()
    for name in ["sip-loadb", "sip-proxy-0", "sip-proxy-1"]:
        unknown = set(svc[name]["environment"]) - kamailio
        assert not unknown, f"{name}: {sorted(unknown)} are not read by kamailio/entrypoint.sh"


def test_images_are_the_ones_build_sh_tags() -> None:
    listed = set(
        subprocess.run(
            [str(ROOT / "docker" / "build.sh"), "--list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    built_here = {}
    for name, service in services().items():
        image = service["image"]
        if image.startswith("ims-testbed/"):
            assert image in listed, f"{name}: {image} is not what docker/build.sh tags"
            if "build" in service:
                built_here[image] = service["build"]
            else:
                # it must not try to pull an image that only exists once built here
                assert service.get("pull_policy") == "never", name
    for image, build in built_here.items():
        stem = image.split("/")[1].split(":")[0]
        assert build["dockerfile"] == f"docker/{stem}.Dockerfile"
        assert build["context"] == "."
    assert {i.split(":")[0] for i in built_here} >= {
        f"ims-testbed/{n}"
        for n in ["sip-controller", "sip-client", "scenario-controller", "csvgen", "analyzer"]
    } | {"ims-testbed/kamailio"}
    version = tomllib.loads((ROOT / "services/sip-client/pyproject.toml").read_text())["project"][
        "version"
    ]
    assert services()["sip-client-00"]["image"] == f"ims-testbed/sip-client:{version}"


def test_prometheus_scrapes_every_metrics_endpoint_and_grafana_gets_the_dashboard() -> None:
    svc = services()
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    targets = {
        target: group.get("labels", {})
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    expected = {
        "sip-loadb:8060": "sip-loadb",
        "sip-controller:8000": "sip-controller",
        "scenario-controller:8001": "scenario-controller",
        "csvgen:8070": "csvgen",
        "sip-client-00:8090": "sip-client",
        "sip-client-01:8090": "sip-client",
        "sip-proxy-0:8080": "sip-proxy",
        "sip-proxy-1:8080": "sip-proxy",
        # the analyzers answer on their proxy's name: they share its network namespace
        "sip-proxy-0:9101": "sip-proxy",
        "sip-proxy-1:9101": "sip-proxy",
    }
    for target, component in expected.items():
        assert target in targets, f"{target} is not scraped"
        assert targets[target]["component"] == component
        host = target.split(":")[0]
        assert host in svc
    # the ports are the ones the services listen on in compose
    assert svc["sip-controller"]["environment"]["SIP_CONTROLLER_PORT"] == "8000"
    assert svc["csvgen"]["environment"]["CSVGEN_PORT"] == "8070"
    assert svc["sip-proxy-0-analyzer"]["environment"]["ANALYZER_HTTP_PORT"] == "9101"
    grafana = svc["grafana"]
    assert "./helm/ims-testbed/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/ims-testbed.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert (
        "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (svc["prometheus"]["volumes"])
    )


# -- security: secrets from .env, loopback ports, Grafana, the token ---------------------------

SCRIPT = ROOT / "scripts" / "compose-env.sh"
SECRETS = [
    "API_TOKEN",
    "DB_PASSWORD",
    "AUTH_SECRET",
    "SUBSCRIBER_PASSWORD_TEMPLATE",
    "GRAFANA_ADMIN_PASSWORD",
]
# what the file held before, and the usual defaults
WELL_KNOWN = ["ims-testbed-shared-secret", "testbed:testbed@", '"{username}"', "prom-operator"]
# the containers of the project's services and Kamailio, each reading API_TOKEN (the analyzers
# serve only reads: they get no token)
TOKEN_SERVICES = [
    "sip-controller",
    "sip-loadb",
    "sip-proxy-0",
    "sip-proxy-1",
    "scenario-controller",
    "scenario-upload",
    "csvgen",
    "sip-client-00",
    "sip-client-01",
    "sip-proxy-0-enable",
    "sip-proxy-1-enable",
]


def required(variable: str) -> str:
    return f"${{{variable}:?run scripts/compose-env.sh}}"


def generate_env(path: Path) -> dict[str, str]:
    subprocess.run([str(SCRIPT), str(path)], check=True, capture_output=True, text=True)
    found = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found[name] = value
    return found


def compose_config(directory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`podman-compose config` of a copy of the file in `directory` (so no .env of the
    checkout is read), with exactly these variables besides PATH."""
    import os
    import sys

    (directory / "docker-compose.yml").write_text(COMPOSE.read_text())
    return subprocess.run(
        [sys.executable, "-m", "podman_compose", "-f", "docker-compose.yml", "config"],
        cwd=directory,
        env={"PATH": os.environ["PATH"], "HOME": str(directory), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_env_script_writes_private_random_secrets_once(tmp_path: Path) -> None:
    import api_token

    first = generate_env(tmp_path / "a.env")
    second = generate_env(tmp_path / "b.env")
    assert list(first) == SECRETS
    assert (tmp_path / "a.env").stat().st_mode & 0o777 == 0o600
    for name in SECRETS:
        assert first[name] != second[name], name
        assert len(first[name].removesuffix("-{username}")) >= 24, name
        assert first[name] not in {"testbed", "ims-testbed-shared-secret", "{username}"}, name
    assert api_token.validate(first["API_TOKEN"])
    assert first["SUBSCRIBER_PASSWORD_TEMPLATE"].endswith("-{username}")
    # the database password goes into DATABASE_URL as it is
    assert re.fullmatch(r"[A-Za-z0-9]+", first["DB_PASSWORD"])
    # an existing file is kept (MariaDB's volume has its password)
    before = (tmp_path / "a.env").read_text()
    result = subprocess.run([str(SCRIPT), str(tmp_path / "a.env")], capture_output=True, text=True)
    assert result.returncode == 0
    assert "kept" in result.stderr
    assert (tmp_path / "a.env").read_text() == before


def test_no_secret_in_the_committed_file() -> None:
    text = COMPOSE.read_text()
    for known in WELL_KNOWN:
        assert known not in text, known
    svc = services()
    for name, service in svc.items():
        for key, value in (service.get("environment") or {}).items():
            secret = any(word in key for word in ("PASSWORD", "SECRET", "TOKEN"))
            # MariaDB's root password is random, a flag (1) and not a secret
            if secret and key != "MARIADB_RANDOM_ROOT_PASSWORD":
                variable = {
                    "MARIADB_PASSWORD": "DB_PASSWORD",
                    "GF_SECURITY_ADMIN_PASSWORD": "GRAFANA_ADMIN_PASSWORD",
                }.get(key, key)
                assert value == required(variable), (name, key, value)
            if key == "DATABASE_URL":
                assert value == (
                    f"mysql+pymysql://testbed:{required('DB_PASSWORD')}@mariadb:3306/kamailio"
                )
    # the seeding and the phones use the same template
    for name in ["db-init", "sip-controller", "sip-client-00", "sip-client-01"]:
        env = svc[name]["environment"]
        assert env["SUBSCRIBER_PASSWORD_TEMPLATE"] == required("SUBSCRIBER_PASSWORD_TEMPLATE")


def test_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    env = generate_env(tmp_path / "secrets.env")
    assert compose_config(tmp_path, env).returncode == 0
    for name in SECRETS:
        result = compose_config(tmp_path, {k: v for k, v in env.items() if k != name})
        assert result.returncode != 0, name
        assert f"{name} is missing a value: run scripts/compose-env.sh" in result.stderr


def _published(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        name: [str(p) for p in service.get("ports", [])]
        for name, service in config["services"].items()
        if service.get("ports")
    }


def test_published_ports_bind_to_loopback_unless_the_user_opts_in(tmp_path: Path) -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    env = generate_env(tmp_path / "secrets.env")
    result = compose_config(tmp_path, env)
    assert result.returncode == 0, result.stderr
    published = _published(yaml.safe_load(result.stdout))
    # grafana and cadvisor are in profiles, the rest publish: all on 127.0.0.1
    assert {"sip-loadb", "sip-controller", "scenario-controller", "csvgen"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), (name, port)
    # the user's opt-in
    exposed = _published(
        yaml.safe_load(compose_config(tmp_path, {**env, "BIND_ADDRESS": "0.0.0.0"}).stdout)
    )
    assert all(p.startswith("0.0.0.0:") for ports in exposed.values() for p in ports)


def test_grafana_has_no_anonymous_access_and_a_generated_admin_password() -> None:
    env = services()["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == required("GRAFANA_ADMIN_PASSWORD")
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_every_service_reads_the_token_and_the_hooks_send_it() -> None:
    svc = services()
    for name in TOKEN_SERVICES:
        assert svc[name]["environment"]["API_TOKEN"] == required("API_TOKEN"), name
    for name in set(svc) - set(TOKEN_SERVICES):
        assert "API_TOKEN" not in (svc[name].get("environment") or {}), name
    for proxy in ("sip-proxy-0", "sip-proxy-1"):
        command = " ".join(svc[f"{proxy}-enable"]["command"])
        # $$: the container's shell expands it, not compose
        assert '-H "Authorization: Bearer $$API_TOKEN"' in command


def test_the_controller_admits_only_the_compose_proxies() -> None:
    env = services()["sip-controller"]["environment"]
    assert env["PROXY_ADDRESS_SOURCE"] == "template"
    assert env["PROXY_HOST_TEMPLATE"] == "{name}"
    pattern = env["PROXY_NAME_PATTERN"].replace("$$", "$")  # compose's escape
    admitted = {name for name in services() if re.fullmatch(pattern, name)}
    assert admitted == {"sip-proxy-0", "sip-proxy-1"}
    for other in ("sip-proxy-2", "evil.example.com", "10.0.0.1", "sip-proxy-0.attacker"):
        assert not re.fullmatch(pattern, other), other
    from sip_controller.config import Settings

    settings = Settings(proxy_address_source="template", proxy_name_pattern=pattern)
    assert settings.proxy_name_pattern == pattern
