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

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def settings_env_names(module: str) -> set[str]:
    settings_cls = __import__(module, fromlist=["Settings"]).Settings
    prefix = settings_cls.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in settings_cls.model_fields}


def kamailio_env_names() -> set[str]:
    text = (ROOT / "kamailio" / "entrypoint.sh").read_text()
    return set(re.findall(r"\$\{([A-Z_]+)(?::?[=-]|\})", text))


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
    # the panel on loopback only, its host port overridable (beside local mode's controller)
    assert svc["scenario-controller"]["ports"] == [
        "127.0.0.1:${SCENARIO_CONTROLLER_HOST_PORT:-8001}:8001"
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
