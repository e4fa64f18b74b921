"""The Helm umbrella chart (helm/ims-testbed) and its subcharts, checked without a cluster.

`helm lint` and `helm template` run with the default values and with each scaling and
workload option; every subchart also lints and renders alone, carries its service's version and
can be left out; every rendered manifest is validated against the Kubernetes API schemas
offline (kubernetes-validate, strict: unknown fields are errors). The tests then assert what
the manifests do: the proxies' hooks call the sip-controller's real endpoints, the analyzer
sits in the proxy's pod on its address, the HPA scales the proxies' StatefulSet with the values
given and reads as the local autoscaler reads it, prometheus-adapter serves the metric names
the HPA asks for, the dashboard queries only metrics something exports, and every environment
variable is a setting the service reads. helm comes from scripts/setup.sh (.tools/bin/helm).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from metric_catalog import exported_metrics
from support import ROOT, free_port

from service_kit import env_variables

CHART = ROOT / "helm" / "ims-testbed"
RELEASE, NAMESPACE = "testbed", "lab"
KUBE_VERSION = "1.30.0"
RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
# the oldest and newest API versions the manifests are validated against
SCHEMA_VERSIONS = ["1.29.0", "1.37.0"]
CRD_KINDS = {"ServiceMonitor", "ScaledObject"}
CONTROLLER_URL = f"http://{RELEASE}-sip-controller.{NAMESPACE}.svc.cluster.local:8000"
LOCAL_REGISTRY = "localhost/ims-testbed"
PROJECT_MARIADB = ("--set", "database.mariadb.projectImage=true")
# subchart -> the pyproject.toml whose version it carries (the Kamailio image's is the root's)
SUBCHARTS = {
    "sip-loadb": "pyproject.toml",
    "sip-proxy": "pyproject.toml",
    "sip-controller": "services/sip-controller/pyproject.toml",
    "scenario-controller": "services/scenario-controller/pyproject.toml",
    "sip-client": "services/sip-client/pyproject.toml",
    "csvgen": "services/csvgen/pyproject.toml",
    # the version of the software their image packages: MariaDB, Prometheus
    "database": None,
    "prometheus": None,
}
# subcharts left out unless switched on, and the scenario below that switches each on
OFF_BY_DEFAULT = {"prometheus": "prometheus"}

SCENARIOS: dict[str, list[str]] = {
    "default": [],
    "p99": ["--set", "autoscaling.p99.enabled=true"],
    "arrival-external": ["--set", "autoscaling.arrivalRate.enabled=true"],
    "arrival-object": [
        "--set",
        "autoscaling.arrivalRate.enabled=true",
        "--set",
        "autoscaling.arrivalRate.metricType=Object",
    ],
    "cpu-pods": ["--set", "autoscaling.cpu.metric=Pods"],
    "all-metrics": [
        "--set",
        "autoscaling.p99.enabled=true",
        "--set",
        "autoscaling.arrivalRate.enabled=true",
        "--set",
        "autoscaling.cpu.metric=Pods",
    ],
    "keda": ["--set", "global.sipProxy.autoscaler=keda"],
    "predictive": [
        "--set",
        "global.sipProxy.autoscaler=predictive",
        "--set",
        "prometheus.enabled=true",
    ],
    "fixed": ["--set", "global.sipProxy.autoscaler=none"],
    "proxy-deployment": ["--set", "global.sipProxy.workload=Deployment"],
    "classic-sidecar": ["--set", "sip-proxy.analyzer.nativeSidecar=false"],
    "lb-statefulset": [
        "--set",
        "global.sipLoadb.workload=StatefulSet",
        "--set",
        "global.sipLoadb.replicas=3",
    ],
    "external-db": [
        "--set",
        "global.database.url=mysql+pymysql://u:p@db.example:3306/kamailio",
        "--set",
        "database.mariadb.enabled=false",
    ],
    "monitoring": ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
    "exposed": [
        "--set",
        "scenario-controller.ingress.enabled=true",
        "--set",
        "scenario-controller.persistence.enabled=true",
    ],
    # locally built images on a cluster without a registry, the project's MariaDB among them
    "local-images": [
        "--set",
        f"global.imageRegistry={LOCAL_REGISTRY}",
        "--set",
        "global.imagePullPolicy=Never",
        "--set",
        "database.mariadb.projectImage=true",
    ],
    # the release's own Prometheus, with defaults and on the registry-less cluster
    "prometheus": ["--set", "prometheus.enabled=true"],
    "prometheus-local": [
        "--set",
        f"global.imageRegistry={LOCAL_REGISTRY}",
        "--set",
        "global.imagePullPolicy=Never",
        "--set",
        "database.mariadb.projectImage=true",
        "--set",
        "prometheus.enabled=true",
    ],
}


def helm_binary() -> str:
    cached = ROOT / ".tools" / "bin" / "helm"
    found = str(cached) if cached.exists() else shutil.which("helm")
    if not found:
        pytest.fail("helm is missing: scripts/setup.sh builds it into .tools/bin")
    return found


def helm(
    *args: str, check: bool = True, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_binary(), *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "HELM_CACHE_HOME": "/tmp/helm-cache",
            "KUBECONFIG": "/dev/null",
            **(extra_env or {}),
        },
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)}\n{result.stderr}")
    return result


@functools.cache
def _render(flags: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    out = helm(
        "template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, *flags
    ).stdout
    return tuple(d for d in yaml.safe_load_all(out) if d)


def render(scenario: str = "default", *extra: str) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(d)) for d in _render((*SCENARIOS[scenario], *extra))]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"{len(matches)} {kind} {name or ''} rendered"
    return matches[0]


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    pool = spec.get("initContainers", []) if init else spec["containers"]
    matches = [c for c in pool if c["name"] == name]
    assert len(matches) == 1, f"container {name} (init={init}): {len(matches)}"
    found: dict[str, Any] = matches[0]
    return found


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def values(subchart: str | None = None) -> dict[str, Any]:
    """The umbrella's values.yaml, or a subchart's (which holds that component's defaults)."""
    path = (
        CHART / "values.yaml" if subchart is None else CHART / "charts" / subchart / "values.yaml"
    )
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def chart_meta(subchart: str | None = None) -> dict[str, Any]:
    path = CHART / "Chart.yaml" if subchart is None else CHART / "charts" / subchart / "Chart.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def project_version(pyproject: str) -> str:
    version: str = tomllib.loads((ROOT / pyproject).read_text())["project"]["version"]
    return version


def made_by(doc: dict[str, Any]) -> str:
    """The chart that rendered an object, from its helm.sh/chart label (<name>-<version>)."""
    label: str = doc["metadata"]["labels"]["helm.sh/chart"]
    return label.rsplit("-", 1)[0]


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def settings_env(module: str) -> dict[str, Any]:
    """A service's settings by environment name (docs/configuration.md: the field names)."""
    return dict(env_variables(__import__(module, fromlist=["Settings"]).Settings))


def kamailio_env_names() -> set[str]:
    """What Kamailio's image reads: the entrypoint's ${NAME}s and the cfgs' $env(NAME)s."""
    text = (ROOT / "kamailio" / "entrypoint.sh").read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)(?::?[=-]|\})", text))
    for cfg in (ROOT / "kamailio").glob("*.cfg"):
        names |= set(re.findall(r"\$env\(([A-Z_]+)\)", cfg.read_text()))
    return names


def stable(doc: dict[str, Any]) -> dict[str, Any]:
    """An object with the values of a Secret masked: the chart draws new random ones on each
    render (the keys stay)."""
    if doc["kind"] != "Secret":
        return doc
    masked: dict[str, Any] = json.loads(json.dumps(doc))
    for field in ("data", "stringData"):
        if field in masked:
            masked[field] = dict.fromkeys(masked[field], "<random>")
    return masked


def proxy(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        d
        for d in docs
        if d["kind"] in ("StatefulSet", "Deployment")
        and d["metadata"]["name"] == f"{RELEASE}-sip-proxy"
    )


# -- lint, render, validate --------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_helm_lint_passes(scenario: str) -> None:
    flags = [f for f in SCENARIOS[scenario] if f != "--api-versions"]
    flags = [f for f in flags if not f.startswith("monitoring.coreos.com")]
    result = helm("lint", "--strict", str(CHART), *flags, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_manifest_is_valid_against_the_kubernetes_api(scenario: str) -> None:
    docs = render(scenario)
    assert docs
    for doc in docs:
        assert doc["metadata"]["name"].startswith(RELEASE), doc["metadata"]["name"]
        if doc["kind"] in CRD_KINDS:
            continue  # no schema ships for CRDs; their content is asserted below
        for version in SCHEMA_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} on {version}: {exc}")


def test_validation_catches_a_broken_manifest() -> None:
    statefulset = proxy(render())
    container(pod_spec(statefulset), "sip-proxy")["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, SCHEMA_VERSIONS[0], strict=True)


def test_misconfigurations_fail_with_a_reason() -> None:
    base = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    cases = {
        "global.sipProxy.autoscaler must be hpa, keda, predictive or none": [
            "--set",
            "global.sipProxy.autoscaler=both",
        ],
        "keep replicas 1 or use workload StatefulSet": ["--set", "global.sipLoadb.replicas=2"],
        "enable at least one of cpu, p99, arrivalRate": ["--set", "autoscaling.cpu.enabled=false"],
        "set global.database.url or global.database.existingSecret": [
            "--set",
            "database.mariadb.enabled=false",
        ],
        "name yours in global.database.existingSecret": ["--set", "database.enabled=false"],
        "pod ids are two digits": ["--set", "sip-client.replicas=101"],
        "set global.sipController.drainGraceSeconds": [
            "--set",
            "sip-controller.env.DRAIN_GRACE_SECONDS=60",
        ],
    }
    for reason, flags in cases.items():
        result = helm(*base, *flags, check=False)
        assert result.returncode != 0
        assert reason in result.stderr, result.stderr


# -- the umbrella and its subcharts ------------------------------------------------------------

# no repository, no proxy that answers: `helm dependency` fails if it tries the network
OFFLINE = {
    "HELM_REPOSITORY_CONFIG": "/nonexistent/repositories.yaml",
    "HELM_REPOSITORY_CACHE": "/nonexistent/cache",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
}


@pytest.fixture(scope="module")
def umbrella_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the umbrella whose subcharts have their own dependency (common) built, as
    `helm dependency build charts/<name>` leaves them to be used alone."""
    chart = tmp_path_factory.mktemp("umbrella") / "ims-testbed"
    shutil.copytree(CHART, chart, symlinks=True)
    for name in SUBCHARTS:
        helm("dependency", "build", str(chart / "charts" / name), extra_env=OFFLINE)
    return chart


def test_subcharts_are_local_dependencies_switched_by_enabled() -> None:
    dependencies = {d["name"]: d for d in chart_meta()["dependencies"]}
    present = {p.name for p in (CHART / "charts").iterdir() if p.is_dir()}
    assert set(dependencies) == present == {*SUBCHARTS, "common"}
    assert chart_meta("common")["type"] == "library"
    for name, dependency in dependencies.items():
        # no repository: helm takes the chart from charts/ and never fetches it
        assert not dependency.get("repository"), name
        assert dependency["version"] == chart_meta(name)["version"], name
        if name != "common":
            assert dependency["condition"] == f"{name}.enabled"
            assert values()[name]["enabled"] is (name not in OFF_BY_DEFAULT), name
            assert values(name)["enabled"] is (name not in OFF_BY_DEFAULT), name
    # helm finds each one unpacked in charts/ at the version asked for
    listed = helm("dependency", "list", str(CHART)).stdout.splitlines()
    status = {line.split()[0]: line.split()[-1] for line in listed[1:] if line.strip()}
    assert status == dict.fromkeys(dependencies, "unpacked")


def test_helm_dependency_needs_no_network(umbrella_copy: Path) -> None:
    for name in SUBCHARTS:
        built = umbrella_copy / "charts" / name / "charts"
        assert [p.name for p in built.iterdir()] == [
            f"common-{chart_meta('common')['version']}.tgz"
        ]
    result = helm("dependency", "build", str(umbrella_copy), extra_env=OFFLINE)
    assert "did not declare a repository. Assuming it exists in the charts directory" in (
        result.stdout
    )
    # the subcharts stay as they are, and the umbrella renders as before
    assert {p.name for p in (umbrella_copy / "charts").iterdir()} == {*SUBCHARTS, "common"}
    out = helm("template", RELEASE, str(umbrella_copy), "-n", NAMESPACE).stdout
    assert sorted(map(key, [d for d in yaml.safe_load_all(out) if d])) == sorted(map(key, render()))


@pytest.mark.parametrize("name", list(SUBCHARTS))
def test_subchart_carries_its_services_version(name: str) -> None:
    meta = chart_meta(name)
    pyproject = SUBCHARTS[name]
    if pyproject is None:
        # the database: the MariaDB version of Docker Hub's image and of the project's build;
        # prometheus: the Prometheus version of the project's build of Debian's package
        image = values(name)["mariadb"]["image"] if name == "database" else values(name)["image"]
        tag = image["tag"]
        assert meta["appVersion"] == tag
        assert f"ims-testbed/{image['repository']}:{tag}" in built_images()
        assert meta["version"] == f"{tag}.0"
        return
    version = project_version(pyproject)
    assert meta["version"] == meta["appVersion"] == version
    # and the image it runs is tagged with it
    image = (
        values()["global"]["sipController"]["image"]
        if name == "sip-controller"
        else values(name)["image"]
    )
    assert image["tag"] == version


def test_umbrella_and_library_carry_the_repositorys_version() -> None:
    version = project_version("pyproject.toml")
    assert chart_meta()["version"] == chart_meta()["appVersion"] == version
    assert chart_meta("common")["version"] == version


@pytest.mark.parametrize("name", list(SUBCHARTS))
def test_subchart_lints_and_renders_alone(name: str, umbrella_copy: Path) -> None:
    """A subchart alone (its own values and global defaults) gives exactly the objects it
    gives inside the umbrella."""
    chart = umbrella_copy / "charts" / name
    result = helm("lint", "--strict", str(chart), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    out = helm(
        "template", RELEASE, str(chart), "-n", NAMESPACE, "--kube-version", KUBE_VERSION
    ).stdout
    alone = [stable(json.loads(json.dumps(d))) for d in yaml.safe_load_all(out) if d]
    inside = [stable(d) for d in render(OFF_BY_DEFAULT.get(name, "default")) if made_by(d) == name]
    assert inside
    assert sorted(alone, key=key) == sorted(inside, key=key)


def test_library_chart_lints_alone() -> None:
    result = helm("lint", "--strict", str(CHART / "charts" / "common"), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_subcharts_global_defaults_are_the_umbrellas() -> None:
    """A subchart repeats the global values it reads so that it renders alone; inside the
    umbrella the umbrella's win, so they must be the same."""

    def within(part: dict[str, Any], whole: dict[str, Any], path: str) -> None:
        for name, value in part.items():
            assert name in whole, f"{path}{name} is not an umbrella global"
            if isinstance(value, dict):
                within(value, whole[name], f"{path}{name}.")
            else:
                assert value == whole[name], f"{path}{name}"

    for name in SUBCHARTS:
        within(values(name)["global"], values()["global"], f"{name}: global.")


@pytest.mark.parametrize(
    ("name", "with_it"),
    [
        # the umbrella's NetworkPolicy of a component goes with it
        ("csvgen", {("NetworkPolicy", f"{RELEASE}-csvgen")}),
        ("sip-client", {("NetworkPolicy", f"{RELEASE}-sip-client")}),
        ("scenario-controller", {("NetworkPolicy", f"{RELEASE}-scenario-controller")}),
        # the umbrella's HPA scales the proxies, so it goes with them
        (
            "sip-proxy",
            {
                ("HorizontalPodAutoscaler", f"{RELEASE}-sip-proxy"),
                ("NetworkPolicy", f"{RELEASE}-sip-proxy"),
            },
        ),
    ],
)
def test_a_subchart_can_be_left_out(name: str, with_it: set[tuple[str, str]]) -> None:
    full = {key(d): stable(d) for d in render()}
    without = {key(d): stable(d) for d in render("default", "--set", f"{name}.enabled=false")}
    own = {k for k, d in full.items() if made_by(d) == name}
    assert own
    assert set(full) - set(without) == own | with_it
    # everything else is rendered exactly as before
    assert all(full[k] == d for k, d in without.items())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("sipProxy.replicas=3", "sip-proxy"),
        ("sipLoadb.replicas=2", "sip-loadb"),
        ("sipController.port=9000", "sip-controller"),
        ("scenarioController.port=9001", "scenario-controller"),
        ("sipClient.replicas=4", "sip-client"),
        ("fullnameOverride=lab", "global.fullnameOverride"),
        ("clusterDomain=k8s.local", "global.clusterDomain"),
        ("autoscaling.enabled=false", "global.sipProxy.autoscaler"),
        ("keda.enabled=true", "global.sipProxy.autoscaler"),
        ("database.url=mysql+pymysql://u:p@db:3306/k", "global.database.url"),
        ("database.init.backoffLimit=2", "sip-controller.dbInit"),
    ],
)
def test_values_of_the_single_chart_fail_with_their_new_place(old: str, new: str) -> None:
    """The keys of the one chart this umbrella replaced (e.g. kept by --reuse-values) are not
    silently ignored."""
    result = helm("template", RELEASE, str(CHART), "--set", old, check=False)
    assert result.returncode != 0
    assert f"moved to {new}" in result.stderr, result.stderr


# -- the proxies: StatefulSet, hooks, analyzer, DMQ -------------------------------------------


def test_proxy_statefulset_follows_the_paper() -> None:
    docs = render()
    sts = find(docs, "StatefulSet", f"{RELEASE}-sip-proxy")
    spec = pod_spec(sts)
    kamailio = container(spec, "sip-proxy")
    assert kamailio["image"] == "ims-testbed/kamailio:" + values("sip-proxy")["image"]["tag"]
    assert kamailio["args"] == ["sip-proxy"]
    # the governing Service exists and is headless
    governing = find(docs, "Service", sts["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    # readiness on Kamailio's /health on its HTTP port (8080)
    probe = kamailio["readinessProbe"]
    ports = {p["name"]: p["containerPort"] for p in kamailio["ports"]}
    assert probe["httpGet"]["path"] == "/health"
    assert ports[probe["httpGet"]["port"]] == 8080
    # CPU requests and limits from values (the paper's 20m / 30m)
    assert kamailio["resources"] == values("sip-proxy")["resources"]
    assert kamailio["resources"]["limits"]["cpu"] == "30m"
    custom = render("default", "--set", "sip-proxy.resources.limits.cpu=50m")
    assert container(pod_spec(proxy(custom)), "sip-proxy")["resources"]["limits"]["cpu"] == "50m"
    # the HPA owns the replica count
    assert "replicas" not in sts["spec"]
    assert proxy(render("fixed"))["spec"]["replicas"] == 2
    # the addresses Kamailio listens on are the pod's
    assert env(kamailio)["SIP_ADDRESS"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def _run_hook(command: list[str], tmp_path: Path, environment: dict[str, str]) -> list[str]:
    """Run a hook's shell command with a curl that records its arguments."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    record = tmp_path / "curl.args"
    (fake / "curl").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (fake / "curl").chmod(0o755)
    subprocess.run(
        command, env={"PATH": f"{fake}:/usr/bin:/bin", **environment}, check=True, timeout=10
    )
    return record.read_text().splitlines()


def test_lifecycle_hooks_call_the_controllers_enable_and_disable(tmp_path: Path) -> None:
    from sip_controller.main import create_app

    # the controller's own API: both hooks exist as POST routes
    paths = create_app().openapi()["paths"]
    assert "post" in paths["/proxies/{name}/enable"]
    assert "post" in paths["/proxies/{name}/disable"]

    docs = render()
    sts = proxy(docs)
    kamailio = container(pod_spec(sts), "sip-proxy")
    variables = env(kamailio)
    # the URL is the controller's Service, on the port it listens on
    assert variables["SIP_CONTROLLER_URL"] == CONTROLLER_URL
    service = find(docs, "Service", f"{RELEASE}-sip-controller")
    assert service["spec"]["ports"][0]["port"] == 8000
    controller = container(
        pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller"
    )
    assert env(controller)["SIP_CONTROLLER_PORT"] == "8000"
    assert variables["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}

    # both hooks send the API token the container has from the release's Secret
    assert variables["API_TOKEN"] == {
        "secretKeyRef": {"name": f"{RELEASE}-api-token", "key": "api-token"}
    }
    token = "t0ken-of-the-release-0123456789"
    hook_env = {
        "SIP_CONTROLLER_URL": CONTROLLER_URL,
        "POD_NAME": "testbed-sip-proxy-3",
        "SIP_ADDRESS": "10.244.1.7",
        "API_TOKEN": token,
    }
    enable = _run_hook(kamailio["lifecycle"]["postStart"]["exec"]["command"], tmp_path, hook_env)
    assert enable[-1] == f"{CONTROLLER_URL}/proxies/testbed-sip-proxy-3/enable"
    assert enable[enable.index("-X") + 1] == "POST"
    headers = [enable[i + 1] for i, arg in enumerate(enable) if arg == "-H"]
    assert f"Authorization: Bearer {token}" in headers
    body = json.loads(enable[enable.index("-d") + 1])
    assert body == {"sip_address": "10.244.1.7:5060", "http_address": "10.244.1.7:8080"}
    # the body is what the controller's hook accepts
    from sip_controller.api.models import EnableRequest

    EnableRequest.model_validate(body)
    assert "--retry" in enable

    disable = _run_hook(kamailio["lifecycle"]["preStop"]["exec"]["command"], tmp_path, hook_env)
    assert disable[-1] == f"{CONTROLLER_URL}/proxies/testbed-sip-proxy-3/disable"
    headers = [disable[i + 1] for i, arg in enumerate(disable) if arg == "-H"]
    assert headers == [f"Authorization: Bearer {token}"]
    # the drain fits in the grace period: DRAIN_GRACE_SECONDS + margin, curl gives up before
    drain = int(values()["global"]["sipController"]["drainGraceSeconds"])
    grace = pod_spec(sts)["terminationGracePeriodSeconds"]
    assert grace == drain + values("sip-proxy")["terminationMarginSeconds"]
    assert drain < int(disable[disable.index("--max-time") + 1]) < grace
    assert env(controller)["DRAIN_GRACE_SECONDS"] == str(drain)


def test_analyzer_is_a_sidecar_in_the_proxys_pod_on_its_address() -> None:
    spec = pod_spec(proxy(render()))
    analyzer = container(spec, "analyzer", init=True)
    # a native sidecar: started before Kamailio (startupProbe gates it), stopped after it
    assert analyzer["restartPolicy"] == "Always"
    names = [c["name"] for c in spec["initContainers"]]
    assert names == ["wait-for-schema", "analyzer"]
    assert analyzer["startupProbe"]["httpGet"]["path"] == "/health"
    variables = env(analyzer)
    assert variables["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # the same pod address Kamailio listens on, and its SIP port
    assert variables["ANALYZER_PROXY_ADDRESS"] == "$(POD_IP):5060"
    assert env(container(spec, "sip-proxy"))["SIP_PORT"] == "5060"
    assert variables["ANALYZER_PROXY_NAME"] == "$(POD_NAME)"
    assert variables["ANALYZER_INTERFACE"] == "eth0"
    assert "hostNetwork" not in spec
    # capture capability only, and the file capability the image relies on may be gained
    security = analyzer["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["allowPrivilegeEscalation"] is True
    assert security["runAsNonRoot"] is True
    assert container(spec, "sip-proxy")["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # scraped through the proxies' Service
    ports = {
        p["name"]: p["port"]
        for p in find(render(), "Service", f"{RELEASE}-sip-proxy")["spec"]["ports"]
    }
    assert ports["analyzer"] == 9101 == int(variables["ANALYZER_HTTP_PORT"])


def test_analyzer_as_a_classic_sidecar_outlives_the_drain() -> None:
    # nativeSidecar false, and auto on a cluster without native sidecars (before 1.29)
    for docs in (render("classic-sidecar"), _render_old_cluster()):
        spec = pod_spec(proxy(docs))
        assert [c["name"] for c in spec["containers"]] == ["analyzer", "sip-proxy"]
        assert all(c["name"] != "analyzer" for c in spec["initContainers"])
        sleep = container(spec, "analyzer")["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep"
        assert int(values()["global"]["sipController"]["drainGraceSeconds"]) < int(sleep[1])
        assert int(sleep[1]) < spec["terminationGracePeriodSeconds"]


def _render_old_cluster() -> list[dict[str, Any]]:
    """nativeSidecar: auto on a cluster without native sidecars (before 1.29)."""
    out = helm("template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", "1.28.0").stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_dmq_headless_service_is_the_notification_address() -> None:
    docs = render()
    dmq = find(docs, "Service", f"{RELEASE}-sip-proxy-dmq")
    assert dmq["spec"]["clusterIP"] == "None"
    assert dmq["spec"]["publishNotReadyAddresses"] is True
    assert dmq["spec"]["ports"] == [
        {"name": "dmq", "protocol": "UDP", "port": 5061, "targetPort": "dmq"}
    ]
    assert dmq["spec"]["selector"] == proxy(docs)["spec"]["selector"]["matchLabels"]
    variables = env(container(pod_spec(proxy(docs)), "sip-proxy"))
    assert variables["DMQ_NOTIFICATION_ADDRESS"] == (
        f"sip:{RELEASE}-sip-proxy-dmq.{NAMESPACE}.svc.cluster.local:5061"
    )
    # one name, every proxy: the config notifies each address it resolves to
    assert 'modparam("dmq", "multi_notify", 1)' in (ROOT / "kamailio" / "sip-proxy.cfg").read_text()
    assert (
        variables["OUTBOUND_PROXY"] == f"sip:{RELEASE}-sip-loadb.{NAMESPACE}.svc.cluster.local:5060"
    )
    assert variables["AUTH_SECRET"]["secretKeyRef"]["name"] == f"{RELEASE}-sip-proxy"


def test_proxies_as_a_deployment() -> None:
    docs = render("proxy-deployment")
    deployment = find(docs, "Deployment", f"{RELEASE}-sip-proxy")
    assert not [
        d for d in kinds(docs, "StatefulSet") if d["metadata"]["name"].endswith("sip-proxy")
    ]
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{RELEASE}-sip-proxy",
    }
    # hooks carry the pod's addresses, so no per-pod DNS name is needed
    hook = " ".join(
        container(pod_spec(deployment), "sip-proxy")["lifecycle"]["postStart"]["exec"]["command"]
    )
    assert "$SIP_ADDRESS" in hook


# -- scaling -----------------------------------------------------------------------------------


def test_cpu_hpa_targets_the_proxy_statefulset_with_the_papers_behavior() -> None:
    docs = render()
    hpa = find(docs, "HorizontalPodAutoscaler")
    sts = proxy(docs)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": sts["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 50)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "cpu",
                "container": "sip-proxy",
                "target": {"type": "AverageValue", "averageValue": "10m"},
            },
        }
    ]
    # the container it names is the proxy's
    assert "sip-proxy" in [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]
    paper = {
        "stabilizationWindowSeconds": 30,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    }
    assert hpa["spec"]["behavior"] == {"scaleUp": paper, "scaleDown": paper}
    # values given on the command line reach it
    custom = find(
        render(
            "default",
            "--set",
            "autoscaling.maxReplicas=7",
            "--set",
            "autoscaling.cpu.target.averageValue=25m",
            "--set",
            "autoscaling.behavior.scaleUp.stabilizationWindowSeconds=0",
        ),
        "HorizontalPodAutoscaler",
    )
    assert custom["spec"]["maxReplicas"] == 7
    assert custom["spec"]["metrics"][0]["containerResource"]["target"]["averageValue"] == "25m"
    assert custom["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    # nothing else is on by default
    assert not kinds(docs, "ScaledObject")
    assert not [d for d in kinds(docs, "ConfigMap") if d["metadata"]["name"].endswith("adapter")]


def _adapter_rules(docs: list[dict[str, Any]]) -> dict[str, Any]:
    config = find(docs, "ConfigMap", f"{RELEASE}-prometheus-adapter")
    rules: dict[str, Any] = yaml.safe_load(config["data"]["config.yaml"])
    return rules


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("p99", {"Pods/sip_response_time_p99_seconds"}),
        ("arrival-external", {"External/sip_invites_per_second"}),
        ("arrival-object", {"Object/sip_invites_per_second"}),
        ("cpu-pods", {"Pods/container_cpu_usage_per_second"}),
        (
            "all-metrics",
            {
                "Pods/container_cpu_usage_per_second",
                "Pods/sip_response_time_p99_seconds",
                "External/sip_invites_per_second",
            },
        ),
    ],
)
def test_custom_metric_hpas_are_served_by_the_adapter_rules(
    scenario: str, expected: set[str]
) -> None:
    from testbed.autoscale.hpa import HpaManifest
    from testbed.autoscale.policies import SERVED_METRICS

    docs = render(scenario)
    hpa = find(docs, "HorizontalPodAutoscaler")
    # the local autoscaler reads the very manifest the chart renders
    manifest = HpaManifest.model_validate(hpa)
    keys = {m.key for m in manifest.spec.metrics}
    assert expected <= keys
    # and can replay it: every metric is one it serves
    assert keys <= set(SERVED_METRICS)
    assert manifest.spec.scaleTargetRef.name == proxy(docs)["metadata"]["name"]
    rules = _adapter_rules(docs)
    served = {
        "Pods": {r["name"]["as"] for r in rules["rules"] if "pod" in r["resources"]["overrides"]},
        "Object": {
            r["name"]["as"] for r in rules["rules"] if "service" in r["resources"]["overrides"]
        },
        "External": {r["name"]["as"] for r in rules["externalRules"]},
    }
    for key in keys - {"Resource/cpu"}:
        kind, name = key.split("/")
        assert name in served[kind], f"{key}: no prometheus-adapter rule serves it"
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Object":
            described = metric["object"]["describedObject"]
            service = find(docs, "Service", described["name"])
            assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "sip-loadb"
        if metric["type"] == "External":
            assert metric["external"]["metric"]["selector"] == {
                "matchLabels": {"component": "sip-loadb"}
            }
    # every rule reads a series that exists: the analyzer's histogram, the LB's new_invites
    # counter (xhttp_prom: kamailio_<group>_<name>), cAdvisor's CPU counter
    exported = exported_metrics()
    for rule in [*rules["rules"], *rules["externalRules"]]:
        series = re.match(r"([a-zA-Z_:]+)", rule["seriesQuery"])
        assert series is not None
        assert series.group(1) in exported, rule["seriesQuery"]


def test_adapter_config_can_go_to_the_adapters_namespace() -> None:
    docs = render("p99", "--set", "prometheusAdapter.namespace=monitoring")
    config = find(docs, "ConfigMap", f"{RELEASE}-prometheus-adapter")
    assert config["metadata"]["namespace"] == "monitoring"


def test_local_mode_runs_the_charts_very_rule_text() -> None:
    """The recording rules, the adapter's rules and KEDA's queries as the chart renders them
    (with metrics.window) are the text local mode renders from the same files."""
    from testbed.local.rules import chart_queries

    window = ["--set", "metrics.window=12s", "--api-versions", RULE_API]
    adapter_on = ["--set", "prometheusAdapter.configMap=true"]
    local = chart_queries(CHART, 12, NAMESPACE)

    rule = find(render("default", *window), "PrometheusRule")
    assert rule["metadata"]["name"] == f"{RELEASE}-monitoring"
    recorded = {r["record"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert recorded == local.recorded
    assert all("[12s]" in expr and f'namespace="{NAMESPACE}"' in expr for expr in recorded.values())
    own = render("default", *window, "--set", "prometheus.enabled=true")
    rules_map = find(own, "ConfigMap", f"{RELEASE}-prometheus-rules")
    assert yaml.safe_load(rules_map["data"]["recording-rules.yaml"]) == yaml.safe_load(
        local.rules_text
    )
    prometheus_yml = yaml.safe_load(
        find(own, "ConfigMap", f"{RELEASE}-prometheus")["data"]["prometheus.yml"]
    )
    assert prometheus_yml["rule_files"] == ["/etc/prometheus-rules/*.yaml"]
    volumes = pod_spec(find(own, "Deployment", f"{RELEASE}-prometheus"))["volumes"]
    assert {"name": f"{RELEASE}-prometheus-rules", "optional": True} in [
        v.get("configMap") for v in volumes
    ]

    config = yaml.safe_load(
        find(render("default", *window, *adapter_on), "ConfigMap", f"{RELEASE}-prometheus-adapter")[
            "data"
        ]["config.yaml"]
    )
    assert {r["name"]["as"]: r["metricsQuery"] for r in config["rules"]} == {
        name: rule.metrics_query for name, rule in local.custom.items()
    }
    assert {r["name"]["as"]: r["metricsQuery"] for r in config["externalRules"]} == {
        name: rule.metrics_query for name, rule in local.external.items()
    }
    triggers = find(render("keda", *window), "ScaledObject")["spec"]["triggers"]
    assert [t["metadata"]["query"] for t in triggers] == local.keda


def test_keda_scaled_object_alternative() -> None:
    docs = render("keda")
    assert not kinds(docs, "HorizontalPodAutoscaler")
    scaled = find(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": f"{RELEASE}-sip-proxy",
    }
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 50)
    assert (
        scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        == (values()["autoscaling"]["behavior"])
    )
    triggers = scaled["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus", "prometheus"]
    for trigger in triggers:
        query = trigger["metadata"]["query"]
        assert f'namespace="{NAMESPACE}"' in query  # templated
        assert trigger["metadata"]["serverAddress"] == values()["keda"]["prometheusServer"]
        float(trigger["metadata"]["threshold"])
    assert "analyzer_sip_response_time_seconds_bucket" in triggers[0]["metadata"]["query"]
    assert triggers[0]["metricType"] == "Value"
    assert "kamailio_script_new_invites" in triggers[1]["metadata"]["query"]
    assert "replicas" not in proxy(docs)["spec"]


def test_predictive_controller_replaces_the_hpa_with_rbac_for_the_scale_alone() -> None:
    docs = render("predictive")
    assert not kinds(docs, "HorizontalPodAutoscaler")
    assert not kinds(docs, "ScaledObject")
    assert "replicas" not in proxy(docs)["spec"]  # the controller owns the count
    name = f"{RELEASE}-policy-controller"
    role = find(docs, "Role", name)
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["statefulsets/scale"],
            "resourceNames": [f"{RELEASE}-sip-proxy"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = find(docs, "RoleBinding", name)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    deployment = find(docs, "Deployment", name)
    spec = pod_spec(deployment)
    assert spec["serviceAccountName"] == name
    assert deployment["spec"]["replicas"] == 1
    variables = env(container(spec, "policy-controller"))
    assert variables["POLICY_CONTROLLER_TARGET_KIND"] == "statefulsets"
    assert variables["POLICY_CONTROLLER_TARGET_NAME"] == f"{RELEASE}-sip-proxy"
    assert variables["POLICY_CONTROLLER_PROMETHEUS_URL"] == (
        f"http://{RELEASE}-prometheus.{NAMESPACE}.svc.cluster.local:9090"
    )
    bounds = values()["autoscaling"]
    assert variables["POLICY_CONTROLLER_MIN_REPLICAS"] == str(bounds["minReplicas"])
    assert variables["POLICY_CONTROLLER_MAX_REPLICAS"] == str(bounds["maxReplicas"])
    # the proxies' CPU limit (30m), which the policy measures its knee against
    limit = values("sip-proxy")["resources"]["limits"]["cpu"]
    assert float(variables["POLICY_CONTROLLER_CPU_LIMIT_CORES"]) == int(limit.rstrip("m")) / 1000
    # every variable is one the service reads, none is set twice
    names = [e["name"] for e in container(spec, "policy-controller")["env"]]
    assert len(names) == len(set(names))
    assert set(names) <= set(settings_env("policy_controller.config"))
    # scraped like every service: the Service is labelled and names its port http
    service = find(docs, "Service", name)
    assert service["metadata"]["labels"]["ims-testbed/metrics"] == "true"
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    # a Deployment of proxies: the same, on deployments/scale
    other = render("predictive", "--set", "global.sipProxy.workload=Deployment")
    assert find(other, "Role", name)["rules"][0]["resources"] == ["deployments/scale"]


def test_predictive_controller_reads_local_modes_very_queries() -> None:
    """The PromQL the controller gets is what local mode renders from the same rules, with
    the chart's window and scrape interval (the policy's lead time depends on them)."""
    from testbed.autoscale.prom_metrics import LB_SELECTOR, P99_SERIES
    from testbed.local.rules import (
        CPU_POD_METRIC,
        INVITE_RATE_METRIC,
        P99_POD_METRIC,
        chart_queries,
    )

    local = chart_queries(CHART, 12, NAMESPACE)
    docs = render(
        "predictive", "--set", "metrics.window=12s", "--set", "prometheus.scrapeInterval=1m30s"
    )
    variables = env(
        container(
            pod_spec(find(docs, "Deployment", f"{RELEASE}-policy-controller")), "policy-controller"
        )
    )
    assert variables["POLICY_CONTROLLER_QUERY_CPU"] == local.namespace_query(CPU_POD_METRIC)
    assert variables["POLICY_CONTROLLER_QUERY_P99_BY_POD"] == local.namespace_query(P99_POD_METRIC)
    assert variables["POLICY_CONTROLLER_QUERY_P99"] == local.keda_query(P99_SERIES)
    assert variables["POLICY_CONTROLLER_QUERY_INVITE_RATE"] == local.external_query(
        INVITE_RATE_METRIC, LB_SELECTOR
    )
    assert "[12s]" in variables["POLICY_CONTROLLER_QUERY_CPU"]
    assert float(variables["POLICY_CONTROLLER_METRIC_WINDOW_S"]) == 12
    assert float(variables["POLICY_CONTROLLER_SCRAPE_INTERVAL_S"]) == 90


def test_predictive_controller_needs_a_prometheus_and_a_rule_for_each_query() -> None:
    base = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
    base += ["--set", "global.sipProxy.autoscaler=predictive"]
    result = helm(*base, check=False)
    assert result.returncode != 0
    assert "policyController.prometheusUrl" in result.stderr
    given = helm(*base, "--set", "policyController.prometheusUrl=http://prom:9090").stdout
    assert "http://prom:9090" in given
    result = helm(
        *base,
        "--set",
        "prometheus.enabled=true",
        "--set",
        "keda.triggers=null",
        check=False,
    )
    assert result.returncode != 0
    assert (
        "keda.triggers: 0 queries read analyzer_sip_response_time_seconds_bucket" in result.stderr
    )


# -- environment names -------------------------------------------------------------------------

# settings left at the service's default, and why
LEFT_AT_DEFAULT = {
    "sip-client": {"POD_ID"},  # the image's entrypoint derives it from the StatefulSet ordinal
    "analyzer": {"ANALYZER_PCAP_FILE"},  # a sidecar captures live
    "csvgen": {"CSVGEN_DATA_DIR"},  # the data the package ships
    # the experiment view's memory bound and `testbed view`'s read-only folder (local only)
    "scenario-controller": {"EXPERIMENT_KEEP_ROWS", "EXPERIMENT_REPLAY"},
    # local mode's address source; the in-cluster API's address, token, CA and namespace files
    # (the service account's, at their standard paths)
    "sip-controller": {
        "PROXY_REGISTRY_FILE",
        "KUBERNETES_API_URL",
        "KUBERNETES_TOKEN_FILE",
        "KUBERNETES_CA_FILE",
        "KUBERNETES_NAMESPACE_FILE",
    },
}
# set for the hooks and the downward API, read by no service
HELPER_VARIABLES = {"POD_NAME", "POD_IP", "SIP_CONTROLLER_URL"}
# derived by kamailio/entrypoint.sh from the settings above
KAMAILIO_DERIVED = {
    "SIP_LISTEN",
    "DMQ_LISTEN",
    "HTTP_LISTEN",
    "DMQ_SERVER_ADDRESS",
    "KAMAILIO_CTL_SOCKET",
    "KAMAILIO_DB_URL",
    "KAMAILIO_CONFIG_DIR",
}


@pytest.mark.parametrize(
    ("workload", "kind", "name", "module"),
    [
        ("Deployment", "Deployment", "sip-controller", "sip_controller.config"),
        ("Deployment", "Deployment", "scenario-controller", "scenario_controller.config"),
        ("Deployment", "Deployment", "csvgen", "csvgen.config"),
        ("StatefulSet", "StatefulSet", "sip-client", "sip_client.config"),
        ("analyzer", "StatefulSet", "analyzer", "analyzer.config"),
    ],
)
def test_python_services_get_exactly_their_settings(
    workload: str, kind: str, name: str, module: str
) -> None:
    docs = render()
    if workload == "analyzer":
        c = container(pod_spec(proxy(docs)), "analyzer", init=True)
    else:
        c = container(pod_spec(find(docs, kind, f"{RELEASE}-{name}")), name)
    names = set(env(c))
    fields = set(settings_env(module))
    extra = names - fields
    assert extra <= HELPER_VARIABLES, f"{name}: {sorted(extra)} are not settings of {module}"
    names -= extra
    assert fields - names == LEFT_AT_DEFAULT[name], f"{name}: settings without a value"


@pytest.mark.parametrize("component", ["sip-proxy", "sip-loadb"])
def test_kamailio_pods_get_only_the_entrypoints_variables(component: str) -> None:
    docs = render()
    workload = (
        proxy(docs)
        if component == "sip-proxy"
        else find(docs, "Deployment", f"{RELEASE}-sip-loadb")
    )
    names = set(env(container(pod_spec(workload), component))) - HELPER_VARIABLES
    known = kamailio_env_names()
    assert names <= known, sorted(names - known)
    if component == "sip-proxy":
        assert known - KAMAILIO_DERIVED - names == set(), "proxy settings the chart does not set"


def test_shared_settings_agree_across_components() -> None:
    docs = render()
    controller = env(
        container(pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller")
    )
    client = env(
        container(pod_spec(find(docs, "StatefulSet", f"{RELEASE}-sip-client")), "sip-client")
    )
    kamailio = env(container(pod_spec(proxy(docs)), "sip-proxy"))
    for key in ["SIP_DOMAIN"]:
        assert controller[key] == client[key] == kamailio[key] == values()["global"]["sipDomain"]
    assert controller["SUBSCRIBER_PASSWORD_TEMPLATE"] == client["SUBSCRIBER_PASSWORD_TEMPLATE"]
    assert controller["DATABASE_URL"] == kamailio["DATABASE_URL"]
    assert controller["PROXY_SIP_PORT"] == kamailio["SIP_PORT"]
    assert controller["PROXY_HTTP_PORT"] == kamailio["HTTP_PORT"]
    assert controller["PROXY_HOST_TEMPLATE"] == (
        f"{{name}}.{RELEASE}-sip-proxy.{NAMESPACE}.svc.cluster.local"
    )
    # the client pods reach the LB's Service and the scenario controller's
    lb = find(docs, "Service", f"{RELEASE}-sip-loadb")
    sip = next(p for p in lb["spec"]["ports"] if p["name"] == "sip")
    assert (
        client["OUTBOUND_PROXY"]
        == f"{RELEASE}-sip-loadb.{NAMESPACE}.svc.cluster.local:{sip['port']}"
    )
    assert sip["protocol"] == "UDP"
    sc = find(docs, "Service", f"{RELEASE}-scenario-controller")
    assert client["SCENARIO_CONTROLLER_URL"] == (
        f"ws://{RELEASE}-scenario-controller.{NAMESPACE}.svc.cluster.local:"
        f"{sc['spec']['ports'][0]['port']}/ws/clients"
    )
    assert client["SIP_CLIENT_ADDRESS"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    sc_env = env(
        container(
            pod_spec(find(docs, "Deployment", f"{RELEASE}-scenario-controller")),
            "scenario-controller",
        )
    )
    assert sc_env["SIP_CONTROLLER_URL"] == CONTROLLER_URL


# -- load balancer, controller, clients, database ----------------------------------------------


def test_load_balancer_rpc_urls_reach_every_lb_pod() -> None:
    docs = render()
    controller = env(
        container(pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller")
    )
    lb = find(docs, "Deployment", f"{RELEASE}-sip-loadb")
    assert lb["spec"]["replicas"] == 1
    http = env(container(pod_spec(lb), "sip-loadb"))["HTTP_PORT"]
    assert controller["LOADBALANCER_RPC_URLS"] == (
        f"http://{RELEASE}-sip-loadb.{NAMESPACE}.svc.cluster.local:{http}/RPC"
    )
    service = find(docs, "Service", f"{RELEASE}-sip-loadb")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["http"] == int(http)
    # paper A.10: a ClusterIP Service with SIP over UDP
    assert service["spec"]["type"] == "ClusterIP"

    docs = render("lb-statefulset")
    sts = find(docs, "StatefulSet", f"{RELEASE}-sip-loadb")
    headless = find(docs, "Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    urls = env(
        container(pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller")
    )["LOADBALANCER_RPC_URLS"].split(",")
    assert urls == [
        f"http://{RELEASE}-sip-loadb-{i}.{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local:8060/RPC"
        for i in range(3)
    ]
    from sip_controller.config import Settings

    assert Settings(loadbalancer_rpc_urls=",".join(urls)).loadbalancer_urls == urls


def test_controller_rbac_reads_pods() -> None:
    docs = render()
    deployment = find(docs, "Deployment", f"{RELEASE}-sip-controller")
    account = pod_spec(deployment)["serviceAccountName"]
    assert find(docs, "ServiceAccount", account)
    binding = find(docs, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    role = find(docs, "Role", binding["roleRef"]["name"])
    pods = next(r for r in role["rules"] if "pods" in r["resources"])
    assert set(pods["verbs"]) == {"get", "list", "watch"}
    assert all(not set(r["verbs"]) - {"get", "list", "watch"} for r in role["rules"])
    # the controller needs no other pod's token
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet") and doc is not deployment:
            assert pod_spec(doc).get("automountServiceAccountToken") is False, doc["metadata"][
                "name"
            ]


def test_client_pods_are_a_statefulset_whose_ordinal_is_the_pod_id() -> None:
    docs = render()
    sts = find(docs, "StatefulSet", f"{RELEASE}-sip-client")
    assert sts["spec"]["replicas"] == 2
    assert find(docs, "Service", sts["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    c = container(pod_spec(sts), "sip-client")
    # no POD_ID: the image's entrypoint takes the ordinal of <name>-<n> (tested with the image)
    assert "POD_ID" not in env(c)
    assert "command" not in c
    assert "args" not in c
    assert c["image"].startswith("ims-testbed/sip-client:")
    assert (
        len(
            find(
                render("default", "--set", "sip-client.replicas=10"),
                "StatefulSet",
                f"{RELEASE}-sip-client",
            )["metadata"]["name"]
        )
        < 60
    )


def test_database_job_and_hooks() -> None:
    docs = render()
    job = find(docs, "Job")
    annotations = job["metadata"]["annotations"]
    # the chart's MariaDB exists only once installed: post-install (and pre-upgrade)
    assert annotations["helm.sh/hook"] == "post-install,pre-upgrade"
    c = pod_spec(job)["containers"][0]
    assert c["command"][:3] == ["testbed-db-init", "--mode", "init"]
    assert env(c)["DATABASE_URL"]["secretKeyRef"]["key"] == "DATABASE_URL"
    assert {"SUBSCRIBER_FIRST", "SUBSCRIBER_LAST", "SIP_DOMAIN"} <= set(env(c))
    secret = find(docs, "Secret", f"{RELEASE}-database")
    assert "annotations" not in secret["metadata"]
    url = secret["stringData"]["DATABASE_URL"]
    password = secret["stringData"]["MARIADB_PASSWORD"]
    # a generated password (no default), the same in the URL and for MariaDB's user
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password), password
    assert url == (
        f"mysql+pymysql://testbed:{password}@{RELEASE}-mariadb.{NAMESPACE}.svc.cluster.local"
        ":3306/kamailio"
    )
    mariadb = find(docs, "StatefulSet", f"{RELEASE}-mariadb")
    assert (
        container(pod_spec(mariadb), "mariadb")["readinessProbe"]["exec"]["command"][0]
        == "healthcheck.sh"
    )
    # Kamailio waits for the schema rather than crash-looping
    for workload in (proxy(docs), find(docs, "Deployment", f"{RELEASE}-sip-loadb")):
        wait = container(pod_spec(workload), "wait-for-schema", init=True)
        assert wait["command"][:3] == ["testbed-db-init", "--mode", "check"]

    docs = render("external-db")
    assert not [d for d in kinds(docs, "StatefulSet") if d["metadata"]["name"].endswith("mariadb")]
    job = find(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    secret = find(docs, "Secret", f"{RELEASE}-database")
    assert secret["stringData"]["DATABASE_URL"] == "mysql+pymysql://u:p@db.example:3306/kamailio"
    # the Secret the pre-install Job reads is there before it
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )


def test_scenarios_come_from_a_configmap_uploaded_at_start() -> None:
    docs = render("exposed")
    deployment = find(docs, "Deployment", f"{RELEASE}-scenario-controller")
    spec = pod_spec(deployment)
    c = container(spec, "scenario-controller")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    configmap = find(docs, "ConfigMap", volumes["scenarios"]["configMap"]["name"])
    expected = {p.name for p in (CHART / "scenarios").glob("*.csv")}
    assert set(configmap["data"]) == expected
    for name in expected:
        assert configmap["data"][name] == (CHART / "scenarios" / name).read_text().rstrip("\n")
    hook = " ".join(c["lifecycle"]["postStart"]["exec"]["command"])
    assert f"testbed-upload-scenarios {mounts['scenarios']}" in hook
    assert (
        volumes["data"]["persistentVolumeClaim"]["claimName"]
        == find(docs, "PersistentVolumeClaim")["metadata"]["name"]
    )
    assert env(c)["SCENARIO_DIR"].startswith(mounts["data"])
    ingress = find(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-scenario-controller", "port": {"name": "http"}}
    inline = render("default", "--set-string", "scenario-controller.scenarios.extra\\.csv=a;b")
    assert (
        "extra.csv" in find(inline, "ConfigMap", f"{RELEASE}-scenario-controller-scenarios")["data"]
    )


@functools.cache
def built_images() -> frozenset[str]:
    """The image references docker/build.sh tags."""
    listed = subprocess.run(
        [str(ROOT / "docker" / "build.sh"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    return frozenset(listed)


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        c
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
        for c in [*pod_spec(d).get("initContainers", []), *pod_spec(d)["containers"]]
    ]


def test_images_carry_each_services_version() -> None:
    # Prometheus comes with kube-prometheus-stack (the prometheus subchart is off by default),
    # the debug image is for `kubectl debug`, the policy controller runs instead of the HPA
    # (global.sipProxy.autoscaler predictive)
    expected = {
        i
        for i in built_images()
        if not i.endswith("-debug")
        and not i.startswith(("ims-testbed/prometheus:", "ims-testbed/policy-controller:"))
    }
    ours = {c["image"] for c in containers(render("default", *PROJECT_MARIADB))}
    assert ours == expected
    predictive = {c["image"] for c in containers(render("predictive", *PROJECT_MARIADB))}
    assert predictive - ours == {
        i
        for i in built_images()
        if i.startswith(("ims-testbed/prometheus:", "ims-testbed/policy-controller:"))
    }
    # by default the database is Docker Hub's image of the same MariaDB version
    upstream = {c["image"] for c in containers(render())}
    assert upstream == {i.replace("ims-testbed/mariadb:", "mariadb:") for i in expected}
    for image in ours:
        name, tag = image.split("/")[1].split(":")
        if name == "mariadb":
            assert tag == chart_meta("database")["appVersion"], image
            continue
        pyproject = "pyproject.toml" if name == "kamailio" else f"services/{name}/pyproject.toml"
        assert tag == project_version(pyproject), image


def test_images_can_point_at_a_local_build_with_one_setting() -> None:
    """global.imageRegistry renames every project image at once (a cluster without a registry
    runs the images built on the node, with imagePullPolicy Never)."""
    local = containers(render("local-images"))
    assert {c["imagePullPolicy"] for c in local} == {"Never"}
    images = {c["image"] for c in local}
    assert all(i.startswith(f"{LOCAL_REGISTRY}/") for i in images), images
    default = {c["image"] for c in containers(render("default", *PROJECT_MARIADB))}
    assert {i.removeprefix(f"{LOCAL_REGISTRY}/") for i in images} == {
        i.removeprefix("ims-testbed/") for i in default
    }
    # Docker Hub's MariaDB keeps its own name whatever the registry
    hub = render("default", "--set", f"global.imageRegistry={LOCAL_REGISTRY}")
    mariadb = container(pod_spec(find(hub, "StatefulSet", f"{RELEASE}-mariadb")), "mariadb")
    assert mariadb["image"] == "mariadb:" + chart_meta("database")["appVersion"]


def test_database_chart_runs_the_projects_mariadb_image(tmp_path: Path) -> None:
    """database.mariadb.projectImage: the image docker/mariadb.Dockerfile builds, run as its
    non-root user, with the MARIADB_* variables and the probe its own scripts implement."""
    docs = render("local-images")
    spec = pod_spec(find(docs, "StatefulSet", f"{RELEASE}-mariadb"))
    mariadb = container(spec, "mariadb")
    assert mariadb["image"] == f"{LOCAL_REGISTRY}/mariadb:" + chart_meta("database")["appVersion"]
    dockerfile = (ROOT / "docker" / "mariadb.Dockerfile").read_text()
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user is not None
    security = spec["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user[1]), int(user[2]))
    assert security["runAsNonRoot"] is True
    # the volume belongs to that group, so the server can initialise it
    assert security["fsGroup"] == int(user[2])
    assert mariadb["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    scripts = ROOT / "docker" / "mariadb"
    read = set(re.findall(r"\$\{(MARIADB_[A-Z_]+)", (scripts / "entrypoint.sh").read_text()))
    assert set(env(mariadb)) == {
        "MARIADB_RANDOM_ROOT_PASSWORD",
        "MARIADB_DATABASE",
        "MARIADB_USER",
        "MARIADB_PASSWORD",
    }
    assert set(env(mariadb)) <= read
    # the readiness probe, run with the image's healthcheck.sh against stand-in clients
    probe = mariadb["readinessProbe"]["exec"]["command"]
    assert probe[0] == "healthcheck.sh"
    assert "/usr/local/bin/healthcheck.sh" in dockerfile
    fake = tmp_path / "bin"
    fake.mkdir()
    for name, script in {"mariadb-admin": "exit $ADMIN", "mariadb": "echo $INNODB"}.items():
        (fake / name).write_text(f"#!/bin/sh\n{script}\n")
        (fake / name).chmod(0o755)

    def run_probe(admin: int, innodb: str) -> int:
        return subprocess.run(
            ["bash", str(scripts / "healthcheck.sh"), *probe[1:]],
            env={"PATH": f"{fake}:/usr/bin:/bin", "ADMIN": str(admin), "INNODB": innodb},
            check=False,
        ).returncode

    assert run_probe(0, "1") == 0
    assert run_probe(1, "1") != 0  # the server does not answer
    assert run_probe(0, "") != 0  # InnoDB not up yet
    # Docker Hub's image (the default) starts as root and drops it itself
    upstream = pod_spec(find(render(), "StatefulSet", f"{RELEASE}-mariadb"))
    assert "securityContext" not in upstream
    assert "securityContext" not in container(upstream, "mariadb")


# -- observability -----------------------------------------------------------------------------


def test_kamailio_metric_names_come_from_the_configs() -> None:
    loadb = (ROOT / "kamailio" / "sip-loadb.cfg").read_text()
    assert 'modparam("statistics", "variable", "new_invites")' in loadb
    for cfg in ["sip-proxy.cfg", "sip-loadb.cfg"]:
        text = (ROOT / "kamailio" / cfg).read_text()
        assert 'modparam("xhttp_prom", "xhttp_prom_stats", "all")' in text


def test_dashboard_queries_use_the_metric_names_the_services_export() -> None:
    dashboard = json.loads((CHART / "dashboards" / "ims-testbed.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in panels)
    # the paper's figure 3.12: invite rate per proxy and LB, CPU, p99 vs P0, 200 OK,
    # REGISTER rate, replicas
    for needed in ["INVITE rate", "CPU", "p99", "200 OK", "REGISTER", "Proxies"]:
        assert needed in titles, needed
    known = exported_metrics()
    assert {
        "analyzer_sip_messages_total",
        "analyzer_sip_response_time_seconds_bucket",
        "sip_client_calls_total",
        "sip_client_call_setup_seconds_bucket",
        "scenario_controller_invites_sent_total",
        "scenario_controller_schedule_lag_seconds_bucket",
        "scenario_controller_clients_connected",
        "sip_controller_proxies",
        "testbed_replicas",
    } <= known
    functions = {
        "sum",
        "rate",
        "histogram_quantile",
        "by",
        "max",
        "vector",
        "le",
        "pod",
        "state",
        "outcome",
        "component",
        "container",
        "resource",
        "statefulset",
        "horizontalpodautoscaler",
        "direction",
        "method",
        "status",
        "increase",
        "action",
    }
    used: set[str] = set()
    for panel in panels:
        for target in panel["targets"]:
            expr = target["expr"]
            # drop label matchers' values, then every identifier is a function, label or metric
            bare = re.sub(r'"[^"]*"', "", expr)
            bare = re.sub(r"\[[^\]]*\]", "", bare)
            for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
                if word in functions or word.startswith("$"):
                    continue
                used.add(word)
    unknown = {w for w in used if w not in known and not w.startswith("__")}
    unknown -= {"p0", "window", "rate_interval"}
    assert not unknown, f"dashboard metrics nobody exports: {sorted(unknown)}"
    assert {
        "kamailio_core_rcv_requests_invite",
        "analyzer_sip_response_time_seconds_bucket",
        "analyzer_sip_messages_total",
        "sip_controller_proxies",
    } <= used


def test_dashboard_configmap_and_service_monitors() -> None:
    docs = render()
    dashboard = find(docs, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["ims-testbed.json"]) == json.loads(
        (CHART / "dashboards" / "ims-testbed.json").read_text()
    )
    # no ServiceMonitor without the CRD
    assert not kinds(docs, "ServiceMonitor")
    docs = render("monitoring", "--set", "monitoring.serviceMonitors.labels.release=kps")
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        s
        for s in kinds(docs, "Service")
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
    ]
    components = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in scraped}
    assert set(components) == {
        "sip-proxy",
        "sip-loadb",
        "sip-controller",
        "scenario-controller",
        "csvgen",
        "sip-client",
    }
    # one Service per component, so no pod is scraped twice
    assert len(scraped) == len(components)
    endpoints = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert endpoints == {"http", "analyzer"}
    for service in scraped:
        names = {p["name"] for p in service["spec"]["ports"]}
        assert names & endpoints, service["metadata"]["name"]
    assert {p["name"] for p in components["sip-proxy"]["spec"]["ports"]} >= {"http", "analyzer"}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["path"] == "/metrics"
        targets = {r["targetLabel"] for r in endpoint["relabelings"]}
        assert {"component", "pod"} <= targets


def test_notes_tell_how_to_open_the_panel_and_the_dashboard(tmp_path: Path) -> None:
    """NOTES.txt rendered through `tpl` in a copy of the chart (helm only renders NOTES on a
    real install)."""
    chart = tmp_path / "ims-testbed"
    shutil.copytree(CHART, chart)
    shutil.move(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )

    def notes_of(*flags: str) -> str:
        out = helm(
            "template",
            RELEASE,
            str(chart),
            "-n",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--show-only",
            "templates/notes.yaml",
            *flags,
        ).stdout
        text: str = yaml.safe_load(out)["data"]["notes"]
        return text

    notes = notes_of()
    panel = f"kubectl -n {NAMESPACE} port-forward svc/{RELEASE}-scenario-controller 8001:8001"
    assert panel in notes
    # without the scenario controller there is no panel to open
    assert panel not in notes_of("--set", "scenario-controller.enabled=false")
    assert "http://127.0.0.1:8001/" in notes
    assert "port-forward svc/kube-prometheus-stack-grafana 3000:80" in notes
    assert "/d/ims-testbed" in notes
    assert (
        json.loads((CHART / "dashboards" / "ims-testbed.json").read_text())["uid"] == "ims-testbed"
    )
    assert f"helm/fetch_results.py -n {NAMESPACE} -r {RELEASE}" in notes
    # how to read the token every change needs: the Secret the pods read it from
    assert (
        f"kubectl -n {NAMESPACE} get secret {RELEASE}-api-token -o jsonpath='{{.data.api-token}}'"
        " | base64 -d"
    ) in notes
    assert find(render(), "Secret", f"{RELEASE}-api-token")["data"]["api-token"]
    assert (ROOT / "helm" / "fetch_results.py").exists()


# -- the release's own Prometheus (subchart prometheus) ----------------------------------------

PROMETHEUS = f"{RELEASE}-prometheus"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MONITORED = ("--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")


def debian_binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: scripts/setup.sh installs Debian's prometheus package")
    return found


# the components whose NetworkPolicy admits Prometheus (/metrics); mariadb has none
SCRAPED_BY_POLICY = [
    "sip-loadb",
    "sip-proxy",
    "sip-client",
    "sip-controller",
    "scenario-controller",
    "csvgen",
]


def test_prometheus_is_left_out_unless_enabled() -> None:
    assert values()["prometheus"] == {"enabled": False}
    default = {key(d): stable(d) for d in render()}
    assert not [k for k, d in default.items() if made_by(d) == "prometheus"]
    enabled = {key(d): stable(d) for d in render("prometheus")}
    own = {k for k, d in enabled.items() if made_by(d) == "prometheus"}
    assert own == {
        ("ServiceAccount", PROMETHEUS),
        ("Role", PROMETHEUS),
        ("RoleBinding", PROMETHEUS),
        ("ClusterRole", f"{PROMETHEUS}-{NAMESPACE}"),
        ("ClusterRoleBinding", f"{PROMETHEUS}-{NAMESPACE}"),
        ("ConfigMap", PROMETHEUS),
        ("Service", PROMETHEUS),
        ("Deployment", PROMETHEUS),
    }
    # switching it on adds exactly its objects, and the umbrella's recording rules for it,
    # and changes nothing else
    assert set(enabled) - set(default) == own | {("ConfigMap", f"{PROMETHEUS}-rules")}
    changed = {k for k, d in default.items() if enabled[k] != d}
    # only the NetworkPolicies that let Prometheus scrape: they admit the release's own too
    assert changed == {("NetworkPolicy", f"{RELEASE}-{c}") for c in SCRAPED_BY_POLICY}
    own_prometheus = {"podSelector": {"matchLabels": selector_labels("prometheus")}}
    for k in changed:
        for rule in enabled[k]["spec"]["ingress"]:
            extra = [p for p in rule["from"] if p not in _rule(default[k], rule["ports"])["from"]]
            assert extra in ([], [own_prometheus]), (k, extra)


def test_prometheus_runs_the_projects_image_as_the_other_pods_run() -> None:
    docs = render("prometheus")
    deployment = find(docs, "Deployment", PROMETHEUS)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = pod_spec(deployment)
    server = container(spec, "prometheus")
    tag = chart_meta("prometheus")["appVersion"]
    assert server["image"] == f"ims-testbed/prometheus:{tag}"
    assert server["image"] in built_images()
    # the image's command line (prom/prometheus'), the config where the ConfigMap is mounted
    dockerfile = (ROOT / "docker" / "prometheus.Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/bin/prometheus"]' in dockerfile
    assert "command" not in server
    args = dict(a.removeprefix("--").split("=", 1) for a in server["args"])
    mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
    assert args["config.file"] == f"{mounts['config']}/prometheus.yml"
    assert args["storage.tsdb.path"] == mounts["data"] == "/prometheus"
    assert args["web.listen-address"] == "0.0.0.0:9090"
    assert args["storage.tsdb.retention.time"] == values("prometheus")["retention"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"]["name"] == PROMETHEUS
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    # readiness on /-/ready at the port the Service forwards to
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert server["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http"}
    assert ports["http"] == 9090
    assert server["resources"] == values("prometheus")["resources"]
    # non-root as the image's user (USER 10001:10001), its group owning the volume
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert user is not None
    security = spec["securityContext"]
    assert security == {**values()["global"]["podSecurityContext"], "fsGroup": int(user[2])}
    assert (security["runAsUser"], security["runAsGroup"]) == (int(user[1]), int(user[2]))
    for c in spec["containers"]:
        assert c["securityContext"] == values()["global"]["containerSecurityContext"], c["name"]
    # a ClusterIP Service named as the components are, not scraped itself
    service = find(docs, "Service", PROMETHEUS)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 9090, "targetPort": "http"}]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert "ims-testbed/metrics" not in service["metadata"]["labels"]
    # a changed config restarts the pod
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    other = find(
        render("prometheus", "--set", "prometheus.scrapeInterval=15s"), "Deployment", PROMETHEUS
    )
    assert other["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum
    # a persistent volume instead of emptyDir, valid against the API
    persistent = render(
        "prometheus",
        "--set",
        "prometheus.persistence.enabled=true",
        "--set",
        "prometheus.persistence.storageClass=local",
    )
    claim = find(persistent, "PersistentVolumeClaim", PROMETHEUS)
    assert claim["spec"]["storageClassName"] == "local"
    with_claim = find(persistent, "Deployment", PROMETHEUS)
    data = {v["name"]: v for v in pod_spec(with_claim)["volumes"]}["data"]
    assert data["persistentVolumeClaim"] == {"claimName": PROMETHEUS}
    for doc in (claim, with_claim):
        kubernetes_validate.validate(doc, SCHEMA_VERSIONS[-1], strict=True)


def test_prometheus_rbac_reads_services_endpoints_pods_and_the_nodes_metrics() -> None:
    docs = render("prometheus")
    spec = pod_spec(find(docs, "Deployment", PROMETHEUS))
    assert find(docs, "ServiceAccount", spec["serviceAccountName"])
    assert spec["serviceAccountName"] == PROMETHEUS
    # the token is mounted for this pod and the sip-controller's, no other
    assert spec["automountServiceAccountToken"] is True
    mounting = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        and pod_spec(d).get("automountServiceAccountToken") is not False
    }
    assert mounting == {PROMETHEUS, f"{RELEASE}-sip-controller"}

    def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (group, resource, verb)
            for r in rules
            for group in r["apiGroups"]
            for resource in r["resources"]
            for verb in r["verbs"]
        }

    read = ["get", "list", "watch"]
    subject = [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": NAMESPACE}]
    binding = find(docs, "RoleBinding", PROMETHEUS)
    assert binding["subjects"] == subject
    role = find(docs, "Role", binding["roleRef"]["name"])
    assert granted(role["rules"]) == {
        *(("", r, v) for r in ["services", "endpoints", "pods"] for v in read),
        *(("discovery.k8s.io", "endpointslices", v) for v in read),
    }
    cluster_binding = find(docs, "ClusterRoleBinding")
    assert cluster_binding["subjects"] == subject
    cluster_role = find(docs, "ClusterRole", cluster_binding["roleRef"]["name"])
    assert granted(cluster_role["rules"]) == {
        ("", r, v) for r in ["nodes", "nodes/proxy", "nodes/metrics"] for v in read
    }
    # cluster-wide names carry the namespace: the same release name elsewhere does not clash
    assert cluster_role["metadata"]["name"] == f"{PROMETHEUS}-{NAMESPACE}"
    elsewhere = helm(
        "template",
        RELEASE,
        str(CHART),
        "-n",
        "lab2",
        "--set",
        "prometheus.enabled=true",
        "--show-only",
        "charts/prometheus/templates/prometheus.yaml",
    ).stdout
    cluster_wide = {
        key(d) for d in yaml.safe_load_all(elsewhere) if d and d["kind"].startswith("Cluster")
    }
    assert cluster_wide == {
        ("ClusterRole", f"{PROMETHEUS}-lab2"),
        ("ClusterRoleBinding", f"{PROMETHEUS}-lab2"),
    }


def test_prometheus_runs_on_the_local_images() -> None:
    docs = render("prometheus-local")
    spec = pod_spec(find(docs, "Deployment", PROMETHEUS))
    tag = chart_meta("prometheus")["appVersion"]
    images = {c["name"]: c["image"] for c in spec["containers"]}
    assert images["prometheus"] == f"{LOCAL_REGISTRY}/prometheus:{tag}"
    assert {c["imagePullPolicy"] for c in spec["containers"]} == {"Never"}
    # every image it names is one docker/build.sh builds, renamed by the one setting
    assert all(i.startswith(f"{LOCAL_REGISTRY}/") for i in images.values())
    assert {i.replace(LOCAL_REGISTRY, "ims-testbed", 1) for i in images.values()} <= (
        built_images()
    )


def test_prometheus_discovery_sidecar_serves_prometheus_yml_its_targets() -> None:
    """Debian's Prometheus (the image's) has no kubernetes_sd_configs: a sidecar running the
    ConfigMap's kube_sd.py serves http_sd_configs on loopback, from an image with Python."""
    docs = render("prometheus", "--set", "prometheus.discovery.port=9555")
    spec = pod_spec(find(docs, "Deployment", PROMETHEUS))
    sidecar = container(spec, "discovery")
    controller = pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller"))
    assert sidecar["image"] == container(controller, "sip-controller")["image"]
    assert sidecar["command"][:2] == ["python", "/etc/prometheus/kube_sd.py"]
    assert {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]} == {
        "config": "/etc/prometheus"
    }
    assert f"--namespace={NAMESPACE}" in sidecar["command"]
    assert "--listen=127.0.0.1:9555" in sidecar["command"]
    configmap = find(docs, "ConfigMap", PROMETHEUS)
    shipped = CHART / "charts" / "prometheus" / "files" / "kube_sd.py"
    assert configmap["data"]["kube_sd.py"] == shipped.read_text()
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    urls = {
        job["job_name"]: [c["url"] for c in job["http_sd_configs"]]
        for job in config["scrape_configs"]
    }
    assert urls == {
        "ims-testbed": ["http://127.0.0.1:9555/endpoints"],
        "kubelet": ["http://127.0.0.1:9555/nodes"],
    }
    # the Debian binary really lacks Kubernetes discovery (else the sidecar could go)
    probe = subprocess.run(
        [debian_binary("promtool"), "check", "config", "/dev/stdin"],
        input="scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: node}]\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0
    assert "field kubernetes_sd_configs not found" in probe.stdout + probe.stderr


def _service_account(directory: Path) -> Path:
    """Stand-ins for the pod's token and CA (a CA bundle Prometheus can load)."""
    account = directory / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("token-of-the-pod\n")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", account / "ca.crt")
    return account


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """The rendered prometheus.yml, checked by the promtool of the Prometheus the image
    packages (Debian's 2.42), with the service account's files at paths that exist."""
    docs = render("prometheus", "--set", "prometheus.scrapeInterval=2s")
    config = find(docs, "ConfigMap", PROMETHEUS)["data"]["prometheus.yml"]
    assert config.count(SERVICE_ACCOUNT_DIR) == 2  # the token and the CA, nothing else
    account = _service_account(tmp_path)

    def check(text: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "prometheus.yml"
        path.write_text(text)
        return subprocess.run(
            [debian_binary("promtool"), "check", "config", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )

    result = check(config.replace(SERVICE_ACCOUNT_DIR, str(account)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # the check is a real one: a missing token file and a bad interval fail it
    assert check(config).returncode != 0
    bad = find(
        render("prometheus", "--set", "prometheus.scrapeInterval=5"), "ConfigMap", PROMETHEUS
    )
    broken = check(bad["data"]["prometheus.yml"].replace(SERVICE_ACCOUNT_DIR, str(account)))
    assert broken.returncode != 0
    assert "not a valid duration" in broken.stdout + broken.stderr
    # the interval an experiment sets lands in the config (and in the discovery refresh)
    parsed = yaml.safe_load(config)
    assert parsed["global"] == {"scrape_interval": "2s", "evaluation_interval": "2s"}
    jobs = {j["job_name"]: j for j in parsed["scrape_configs"]}
    for job in jobs.values():
        assert job["http_sd_configs"][0]["refresh_interval"] == "2s"
    default = yaml.safe_load(prometheus_config(render("prometheus")))
    assert default["global"]["scrape_interval"] == values("prometheus")["scrapeInterval"] == "5s"


def prometheus_config(docs: list[dict[str, Any]]) -> str:
    text: str = find(docs, "ConfigMap", PROMETHEUS)["data"]["prometheus.yml"]
    return text


def test_prometheus_relabelling_mirrors_the_service_monitor() -> None:
    """The rules as written: the ServiceMonitor's selector, ports and path, and the labels
    the dashboard and the adapter rules need (the live test below runs them)."""
    docs = render("prometheus", *MONITORED)
    monitor = find(docs, "ServiceMonitor")
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_config(docs))["scrape_configs"]}
    job = jobs["ims-testbed"]
    assert job["metrics_path"] == {e["path"] for e in monitor["spec"]["endpoints"]}.pop()
    keep = {
        r["source_labels"][0]: r["regex"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep"
    }
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert {
        f"__meta_kubernetes_service_label_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v
        for k, v in selector.items()
    }.items() <= keep.items()
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert set(keep["__meta_kubernetes_endpoint_port_name"].split("|")) == ports
    assert keep["__meta_kubernetes_endpoint_ready"] == "true"
    targets = {
        r["target_label"]: r["source_labels"] for r in job["relabel_configs"] if "target_label" in r
    }
    assert targets["component"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    assert targets["pod"] == ["__meta_kubernetes_pod_name"]
    assert targets["container"] == ["__meta_kubernetes_pod_container_name"]
    assert targets["namespace"] == ["__meta_kubernetes_namespace"]
    assert targets["service"] == ["__meta_kubernetes_service_name"]
    # the ServiceMonitor's own relabelings give the same component and pod
    for endpoint in monitor["spec"]["endpoints"]:
        for r in endpoint["relabelings"]:
            assert targets[r["targetLabel"]] == r["sourceLabels"]
    # the kubelet's resource metrics through the API server's node proxy with the pod's
    # token, this namespace only
    kubelet = jobs["kubelet"]
    assert kubelet["scheme"] == "https"
    assert kubelet["tls_config"] == {"ca_file": f"{SERVICE_ACCOUNT_DIR}/ca.crt"}
    assert kubelet["authorization"] == {"credentials_file": f"{SERVICE_ACCOUNT_DIR}/token"}
    assert kubelet["metric_relabel_configs"] == [
        {"source_labels": ["namespace"], "regex": NAMESPACE, "action": "keep"}
    ]


class FakeKubernetes(ThreadingHTTPServer):
    """The Kubernetes API as the discovery sidecar and Prometheus use it: object lists, and
    a node's resource metrics behind the API server's node proxy. Records every request."""

    daemon_threads = True

    def __init__(self, lists: dict[str, list[dict[str, Any]]], texts: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _FakeKubernetesHandler)
        self.lists = lists
        self.texts = texts
        self.seen: list[tuple[str, str]] = []  # (path, Authorization)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeKubernetesHandler(BaseHTTPRequestHandler):
    server: FakeKubernetes

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        self.server.seen.append((path, self.headers.get("Authorization", "")))
        if path in self.server.lists:
            body = json.dumps(
                {
                    "kind": "List",
                    "metadata": {"resourceVersion": "1"},
                    "items": self.server.lists[path],
                }
            ).encode()
            kind = "application/json"
        elif path in self.server.texts:
            body, kind = self.server.texts[path].encode(), "text/plain; version=0.0.4"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _pods_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A running pod per replica of every workload the chart renders (two proxies), on
    loopback addresses of their own."""
    pods: list[dict[str, Any]] = []
    for workload in docs:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        template = workload["spec"]["template"]
        for i in range(workload["spec"].get("replicas", 2)):
            pods.append(
                {
                    "metadata": {
                        "name": f"{workload['metadata']['name']}-{i}",
                        "namespace": NAMESPACE,
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": template["spec"],
                    "status": {"phase": "Running", "podIP": f"127.0.31.{len(pods) + 1}"},
                }
            )
    return pods


def _container_port(pod: dict[str, Any], name: str) -> tuple[str, int]:
    """The container that has a named port, and its number (init containers too)."""
    spec = pod["spec"]
    for c in [*spec["containers"], *spec.get("initContainers", [])]:
        for port in c.get("ports", []):
            if port.get("name") == name:
                return c["name"], port["containerPort"]
    raise AssertionError(f"{pod['metadata']['name']}: no port {name}")


def _endpoints_of(
    service: dict[str, Any], pods: list[dict[str, Any]], not_ready: set[str]
) -> dict[str, Any]:
    """What the endpoints controller makes of a Service: its pods' addresses and ports."""
    selector = service["spec"].get("selector") or {}
    members = [p for p in pods if selector and selector.items() <= p["metadata"]["labels"].items()]
    publish = service["spec"].get("publishNotReadyAddresses", False)

    def address(pod: dict[str, Any]) -> dict[str, Any]:
        return {
            "ip": pod["status"]["podIP"],
            "targetRef": {"kind": "Pod", "name": pod["metadata"]["name"], "namespace": NAMESPACE},
        }

    subsets = []
    if members:
        ports = [
            {
                "name": p["name"],
                "port": _container_port(members[0], p["targetPort"])[1],
                "protocol": p.get("protocol", "TCP"),
            }
            for p in service["spec"]["ports"]
        ]
        ready = [p for p in members if publish or p["metadata"]["name"] not in not_ready]
        subsets.append(
            {
                "addresses": [address(p) for p in ready],
                "notReadyAddresses": [address(p) for p in members if p not in ready],
                "ports": ports,
            }
        )
    return {
        "metadata": {"name": service["metadata"]["name"], "namespace": NAMESPACE},
        "subsets": subsets,
    }


def _wait_for(what: str, probe: Any, logs: list[Path], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            tails = "\n".join(f"{p.name}:\n{p.read_text()[-3000:]}" for p in logs)
            pytest.fail(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.5)


def test_prometheus_scrapes_what_the_service_monitor_selects_with_its_labels(
    tmp_path: Path,
) -> None:
    """The real thing, but for the cluster: Debian's Prometheus 2.42 (the image's) runs the
    rendered prometheus.yml and the Deployment's arguments, the discovery sidecar runs the
    ConfigMap's script with its container's command, both against a stand-in API server that
    lists the release's own rendered Services and pods (and another release's). Prometheus
    must end up scraping exactly the ServiceMonitor's targets, labelled component, pod,
    container, namespace and service, and the node's cAdvisor of this namespace only."""
    sd_port, web_port = free_port(), free_port()
    docs = render(
        "prometheus",
        *MONITORED,
        "--set",
        "prometheus.scrapeInterval=1s",
        "--set",
        f"prometheus.discovery.port={sd_port}",
    )
    monitor = find(docs, "ServiceMonitor")
    pods = _pods_of(docs)
    # besides the release's own: a csvgen pod still starting (not ready), and another
    # release's csvgen with its Service
    csvgen = next(p for p in pods if p["metadata"]["name"] == f"{RELEASE}-csvgen-0")
    starting, stranger = json.loads(json.dumps(csvgen)), json.loads(json.dumps(csvgen))
    starting["metadata"]["name"] = f"{RELEASE}-csvgen-starting"
    starting["status"]["podIP"] = "127.0.31.200"
    stranger["metadata"]["name"] = "other-csvgen-0"
    stranger["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    stranger["status"]["podIP"] = "127.0.31.201"
    other = json.loads(json.dumps(find(docs, "Service", f"{RELEASE}-csvgen")))
    other["metadata"]["name"] = "other-csvgen"
    for labels in (other["metadata"]["labels"], other["spec"]["selector"]):
        labels["app.kubernetes.io/instance"] = "other"
    pods += [starting, stranger]
    by_name = {p["metadata"]["name"]: p for p in pods}
    services = [*kinds(docs, "Service"), other]
    endpoints = [_endpoints_of(s, pods, {starting["metadata"]["name"]}) for s in services]

    # what the ServiceMonitor selects: its Services' ready addresses on its ports
    selector = monitor["spec"]["selector"]["matchLabels"]
    monitored_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    expected: dict[str, tuple[dict[str, Any], str, str]] = {}  # address: pod, container, service
    for service, endpoint in zip(services, endpoints, strict=True):
        if not selector.items() <= service["metadata"]["labels"].items():
            continue
        for subset in endpoint["subsets"]:
            for port in [p for p in subset["ports"] if p["name"] in monitored_ports]:
                for address in subset["addresses"]:
                    pod = by_name[address["targetRef"]["name"]]
                    owner = _container_port(pod, port["name"])[0]
                    expected[f"{address['ip']}:{port['port']}"] = (
                        pod,
                        owner,
                        service["metadata"]["name"],
                    )
    components = {
        p["metadata"]["labels"]["app.kubernetes.io/component"] for p, _, _ in expected.values()
    }
    assert components == {
        "sip-proxy",
        "sip-loadb",
        "sip-controller",
        "scenario-controller",
        "csvgen",
        "sip-client",
    }

    api = f"/api/v1/namespaces/{NAMESPACE}"
    resource_path = "/api/v1/nodes/node-1/proxy/metrics/resource"
    fake = FakeKubernetes(
        {
            f"{api}/services": services,
            f"{api}/pods": pods,
            f"{api}/endpoints": endpoints,
            "/api/v1/nodes": [
                {
                    "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux"}},
                    "status": {
                        "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    },
                }
            ],
        },
        {
            resource_path: "# TYPE container_cpu_usage_seconds_total counter\n"
            'container_cpu_usage_seconds_total{container="sip-proxy",id="/a",'
            f'namespace="{NAMESPACE}",pod="{RELEASE}-sip-proxy-0"}} 1.5\n'
            'container_cpu_usage_seconds_total{container="coredns",id="/b",'
            'namespace="kube-system",pod="coredns-0"} 7\n'
        },
    )

    # the pod's files: its token and CA, prometheus.yml and the sidecar from the ConfigMap
    account = _service_account(tmp_path)
    configmap = find(docs, "ConfigMap", PROMETHEUS)
    config = configmap["data"]["prometheus.yml"].replace(SERVICE_ACCOUNT_DIR, str(account))
    # no cluster DNS or API server certificate here: the node proxy at the stand-in, in HTTP
    assert "kubernetes.default.svc:443" in config
    config = config.replace("kubernetes.default.svc:443", fake.url.removeprefix("http://"))
    config = config.replace("scheme: https", "scheme: http")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "prometheus.yml").write_text(config)
    (etc / "kube_sd.py").write_text(configmap["data"]["kube_sd.py"])
    # the containers' own command lines, pointed at those files
    spec = pod_spec(find(docs, "Deployment", PROMETHEUS))
    sidecar = [
        sys.executable if a == "python" else a.replace("/etc/prometheus", str(etc))
        for a in container(spec, "discovery")["command"]
    ]
    sidecar += [f"--api={fake.url}", f"--token-file={account / 'token'}"]
    flags = dict(a.split("=", 1) for a in container(spec, "prometheus")["args"])
    flags["--config.file"] = str(etc / "prometheus.yml")
    flags["--storage.tsdb.path"] = str(tmp_path / "data")
    assert flags["--web.listen-address"] == "0.0.0.0:9090"
    flags["--web.listen-address"] = f"127.0.0.1:{web_port}"
    server = [debian_binary("prometheus"), *(f"{k}={v}" for k, v in flags.items())]
    logs = [tmp_path / "sd.log", tmp_path / "prometheus.log"]
    processes: list[subprocess.Popen[bytes]] = []

    def get(path: str) -> Any:
        url = f"http://127.0.0.1:{web_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)["data"]

    def targets() -> list[dict[str, Any]] | None:
        for process, log in zip(processes, logs, strict=True):
            if process.poll() is not None:
                pytest.fail(f"{log.name}:\n{log.read_text()}")
        try:
            active: list[dict[str, Any]] = get("/api/v1/targets?state=active")["activeTargets"]
        except OSError:
            return None  # not listening yet
        ours = [t for t in active if t["scrapePool"] == "ims-testbed"]
        nodes = [t for t in active if t["scrapePool"] == "kubelet"]
        found = len(ours) >= len(expected) and nodes and nodes[0]["health"] == "up"
        return active if found else None

    def cpu() -> list[dict[str, Any]]:
        query = "/api/v1/query?query=container_cpu_usage_seconds_total"
        found: list[dict[str, Any]] = get(query)["result"]
        return found

    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        for command, log in zip([sidecar, server], logs, strict=True):
            with log.open("w") as out:
                processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        active = _wait_for("the targets", targets, logs)
        ours = {
            t["discoveredLabels"]["__address__"]: t
            for t in active
            if t["scrapePool"] == "ims-testbed"
        }
        assert set(ours) == set(expected)
        for address, target in ours.items():
            pod, owner, service_name = expected[address]
            labels = target["labels"]
            assert labels["component"] == pod["metadata"]["labels"]["app.kubernetes.io/component"]
            assert labels["pod"] == pod["metadata"]["name"]
            assert labels["container"] == owner
            assert labels["namespace"] == NAMESPACE
            assert labels["service"] == labels["job"] == service_name
            assert target["scrapeUrl"] == f"http://{address}/metrics"
            assert target["scrapeInterval"] == "1s"
        # the analyzers, native sidecars (init containers), are named too
        assert any(c["name"] == "analyzer" for c in pod_spec(proxy(docs))["initContainers"])
        analyzers = [t for t in ours.values() if t["labels"]["container"] == "analyzer"]
        assert {t["labels"]["pod"] for t in analyzers} == {
            f"{RELEASE}-sip-proxy-0",
            f"{RELEASE}-sip-proxy-1",
        }

        # cAdvisor: through the node proxy with the pod's token, this namespace's series only
        (node,) = [t for t in active if t["scrapePool"] == "kubelet"]
        assert node["scrapeUrl"] == fake.url + resource_path
        assert node["labels"]["instance"] == node["labels"]["node"] == "node-1"
        (series,) = _wait_for("cAdvisor's series", cpu, logs)
        assert {k: series["metric"][k] for k in ("namespace", "pod", "container")} == {
            "namespace": NAMESPACE,
            "pod": f"{RELEASE}-sip-proxy-0",
            "container": "sip-proxy",
        }
        # every request (the sidecar's, the scrape's) carried the token; the sidecar asked
        # for this namespace's objects and the nodes only
        token = "Bearer " + (account / "token").read_text().strip()
        assert {auth for _, auth in fake.seen} == {token}
        assert {path for path, _ in fake.seen} == {*fake.lists, resource_path}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        fake.shutdown()
        fake.server_close()


def test_keda_queries_the_releases_prometheus_when_it_is_on() -> None:
    docs = render("keda", "--set", "prometheus.enabled=true")
    service = find(docs, "Service", PROMETHEUS)
    url = f"http://{PROMETHEUS}.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    for trigger in find(docs, "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["serverAddress"] == url
    # off (the default), the Prometheus keda.prometheusServer names
    for trigger in find(render("keda"), "ScaledObject")["spec"]["triggers"]:
        assert trigger["metadata"]["serverAddress"] == values()["keda"]["prometheusServer"]


# -- fetching results --------------------------------------------------------------------------


def test_fetch_results_writes_local_modes_files(tmp_path: Path) -> None:
    """helm/fetch_results.py against a kubectl stand-in that answers like the services."""
    sys.path.insert(0, str(ROOT / "helm"))
    try:
        import fetch_results
    finally:
        sys.path.pop(0)
    calls: list[list[str]] = []
    sample_header = "timestamp,proxy,pair,call_id,cseq,response_time_ms\n"
    log = (
        "seq,caller,callee,pod,offset_s,scheduled_at,sent_at,lag_ms,status\n"
        "1,0000,0100,00,0,1,1,0.1,sent\n"
    )

    def pods(component: str) -> str:
        names = {
            "scenario-controller": ["testbed-scenario-controller-abc"],
            "sip-proxy": ["testbed-sip-proxy-0", "testbed-sip-proxy-1"],
            "sip-client": ["testbed-sip-client-0"],
        }[component]
        return json.dumps(
            {"items": [{"metadata": {"name": n}, "status": {"phase": "Running"}} for n in names]}
        )

    def run(args: Sequence[str]) -> str:
        calls.append(list(args))
        if args[2] == "get":
            return pods(args[5].split("component=")[1])
        pod, url = args[3], args[-1]
        if url.endswith("/runs/current"):
            return json.dumps({"id": "run-7"})
        if url.endswith("/runs/run-7/log"):
            return log
        if "/samples" in url:
            return sample_header + f"1.5,{pod},invite_challenge,c1,1,0.4\n"
        if "/calls" in url:
            return json.dumps(
                {
                    "total": 1,
                    "items": [
                        {
                            "call_id": "c1",
                            "caller": "0000",
                            "callee": "0100",
                            "outcome": "succeeded",
                            "setup_ms": 12.5,
                        }
                    ],
                }
            )
        raise AssertionError(url)

    cluster = fetch_results.Cluster(NAMESPACE, RELEASE, run)
    out = fetch_results.fetch(cluster, None, tmp_path / "res")
    assert (out / "run_log.csv").read_text() == log
    assert (out / "response_times.csv").read_text() == (
        sample_header
        + "1.5,testbed-sip-proxy-0,invite_challenge,c1,1,0.4\n"
        + "1.5,testbed-sip-proxy-1,invite_challenge,c1,1,0.4\n"
    )
    assert (
        out / "calls.csv"
    ).read_bytes() == b"call_id,caller,callee,outcome,setup_ms\r\nc1,0000,0100,succeeded,12.5\r\n"
    execs = [c for c in calls if c[2] == "exec"]
    assert all(c[:2] == ["-n", NAMESPACE] for c in calls)
    assert {(c[3], c[5]) for c in execs} >= {
        ("testbed-sip-proxy-0", "analyzer"),
        ("testbed-sip-client-0", "sip-client"),
    }
    # the commands run in the pods are plain Python against the pod's own port
    assert all(c[7:9] == ["python", "-c"] and c[-1].startswith("http://127.0.0.1:") for c in execs)


# values the chart sets on purpose to something else than the service's own default
DELIBERATE = {
    ("sip-client", "LOG_LEVEL"),  # local mode's client pods log warnings only too
    # health checks every 2 s x 3 (the same 6 s as the default 1 s x 6): on a cluster the
    # kubelet restarts a dead proxy, and at 1 s the idle proxy pods stayed over the HPA test's
    # 10m target (values.yaml)
    ("sip-controller", "HEALTH_CHECK_INTERVAL_SECONDS"),
    ("sip-controller", "HEALTH_FAILURE_THRESHOLD"),
}


@pytest.mark.parametrize(
    ("key", "module"),
    [
        ("sip-controller", "sip_controller.config"),
        ("scenario-controller", "scenario_controller.config"),
        ("csvgen", "csvgen.config"),
        ("sip-client", "sip_client.config"),
        ("analyzer", "analyzer.config"),
    ],
)
def test_values_start_from_the_services_defaults(key: str, module: str) -> None:
    """The env maps in the subcharts' values.yaml spell out each setting at the service's own
    default, so a user sees every knob and the chart changes nothing by accident."""
    section = values("sip-proxy")["analyzer"] if key == "analyzer" else values(key)
    settings_cls = __import__(module, fromlist=["Settings"]).Settings
    fields = settings_env(module)
    for name, text in section["env"].items():
        if (key, name) in DELIBERATE:
            continue
        attribute = name.lower()
        parsed = getattr(settings_cls.model_validate({attribute: text}), attribute)
        assert parsed == fields[name].default, f"{key}.env.{name}={text!r}"


def test_monitoring_stack_values_fit_the_chart() -> None:
    """The values files for kube-prometheus-stack and prometheus-adapter (docs/kubernetes.md)
    point at what the chart renders."""
    monitoring = ROOT / "helm" / "monitoring"
    adapter = yaml.safe_load((monitoring / "prometheus-adapter.values.yaml").read_text())
    stack = yaml.safe_load((monitoring / "kube-prometheus-stack.values.yaml").read_text())
    docs = render(
        "default",
        "--set",
        "prometheusAdapter.configMap=true",
        "--set",
        "prometheusAdapter.namespace=monitoring",
    )
    config = find(docs, "ConfigMap", adapter["rules"]["existing"])
    assert config["metadata"]["namespace"] == "monitoring"
    assert "config.yaml" in config["data"]
    prometheus = f"{adapter['prometheus']['url']}:{adapter['prometheus']['port']}"
    assert values()["keda"]["prometheusServer"] == prometheus
    sidecar = stack["grafana"]["sidecar"]["dashboards"]
    dashboard = find(docs, "ConfigMap", f"{RELEASE}-dashboard")
    assert dashboard["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert sidecar["searchNamespace"] == "ALL"
    spec = stack["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False


# -- security: the generated secrets, the API token, the network policies ----------------------

SECRET_VALUES = {
    # Secret -> the keys the chart generates in it
    f"{RELEASE}-api-token": ["api-token"],
    f"{RELEASE}-subscribers": ["SUBSCRIBER_PASSWORD_TEMPLATE"],
    f"{RELEASE}-sip-proxy": ["AUTH_SECRET"],
    f"{RELEASE}-database": ["MARIADB_PASSWORD"],
}
# the defaults these secrets had before the chart generated them, and the usual well-known ones
WELL_KNOWN = {"testbed", "ims-testbed-shared-secret", "{username}", "prom-operator", "admin"}
# containers of the project's services and Kamailio: each reads API_TOKEN (not the analyzer:
# its API has only GET routes, and the sidecar with NET_RAW is better without the token)
TOKEN_CONTAINERS = {
    "sip-controller",
    "scenario-controller",
    "sip-client",
    "csvgen",
    "sip-proxy",
    "sip-loadb",
}


def selector_labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ims-testbed",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": component,
    }


def _rule(policy: dict[str, Any], ports: list[dict[str, Any]]) -> dict[str, Any]:
    matches = [r for r in policy["spec"]["ingress"] if r["ports"] == ports]
    assert len(matches) == 1, (policy["metadata"]["name"], ports)
    rule: dict[str, Any] = matches[0]
    return rule


def secret_values(docs: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """The generated secrets' values as the pods get them (decoded)."""
    import base64

    found = {}
    for name, keys in SECRET_VALUES.items():
        secret = find(docs, "Secret", name)
        for k in keys:
            if k in secret.get("data", {}):
                found[(name, k)] = base64.b64decode(secret["data"][k]).decode()
            else:
                found[(name, k)] = secret["stringData"][k]
    return found


def scalars(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(scalars(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(scalars(v) for v in node))
    return {str(node)}


def fresh_render(*flags: str) -> list[dict[str, Any]]:
    """A render of its own (render() is cached, and the secrets are random per render)."""
    out = helm(
        "template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBE_VERSION, *flags
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_secrets_are_generated_random_and_never_a_default() -> None:
    import api_token

    first, second = secret_values(fresh_render()), secret_values(fresh_render())
    assert set(first) == {(n, k) for n, keys in SECRET_VALUES.items() for k in keys}
    # each render draws new ones (an install; an upgrade looks the installed ones up)
    for item, value in first.items():
        assert value != second[item], item
    in_values = set().union(
        scalars(values()), *(scalars(values(name)) for name in SUBCHARTS if name != "common")
    )
    monitoring = yaml.safe_load(
        (ROOT / "helm/monitoring/kube-prometheus-stack.values.yaml").read_text()
    )
    for (name, k), value in first.items():
        assert value not in WELL_KNOWN | in_values, (name, k)
        assert len(value.replace("-{username}", "")) >= 24, (name, k, "too short")
    # the token is one the services accept; the subscribers' passwords differ per user
    assert api_token.validate(first[(f"{RELEASE}-api-token", "api-token")])
    template = first[(f"{RELEASE}-subscribers", "SUBSCRIBER_PASSWORD_TEMPLATE")]
    assert template.endswith("-{username}")
    assert template.format(username="0100") != template.format(username="0101")
    # and kube-prometheus-stack's Grafana gets no fixed admin password from our values either
    assert not monitoring["grafana"]["adminPassword"]


def test_given_secrets_are_used_as_they_are() -> None:
    given = {
        "global.apiToken": "my-own-token-0123456789",
        "global.subscriberPasswordTemplate": "lab-{username}-pw",
        "global.authSecret": "my-own-digest-secret",
        "database.mariadb.password": "My.own-db_pw",
    }
    flags = [arg for k, v in given.items() for arg in ("--set-string", f"{k}={v}")]
    found = secret_values(fresh_render(*flags))
    assert found == {
        (f"{RELEASE}-api-token", "api-token"): given["global.apiToken"],
        (f"{RELEASE}-subscribers", "SUBSCRIBER_PASSWORD_TEMPLATE"): "lab-{username}-pw",
        (f"{RELEASE}-sip-proxy", "AUTH_SECRET"): given["global.authSecret"],
        (f"{RELEASE}-database", "MARIADB_PASSWORD"): given["database.mariadb.password"],
    }
    url = find(fresh_render(*flags), "Secret", f"{RELEASE}-database")["stringData"]
    assert ":My.own-db_pw@" in url["DATABASE_URL"]


@pytest.mark.parametrize(
    ("setting", "path"),
    [
        ("global.apiToken", "/global/apiToken"),
        ("global.authSecret", "/global/authSecret"),
        ("global.subscriberPasswordTemplate", "/global/subscriberPasswordTemplate"),
        ("database.mariadb.password", "/database/mariadb/password"),
    ],
)
def test_an_empty_secret_is_refused_by_the_schema_naming_it(setting: str, path: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set-string", f"{setting}=", check=False)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert f"'{path}'" in result.stderr, result.stderr
    # the same value given properly renders (the schema refuses the empty one only)
    good = "x" * 20 + ("-{username}" if "Template" in setting else "")
    assert helm("template", RELEASE, str(CHART), "--set-string", f"{setting}={good}").stdout


def test_a_short_or_unusable_api_token_is_refused_by_the_schema() -> None:
    for bad in ("short", "has a space in it 0123"):
        result = helm(
            "template", RELEASE, str(CHART), "--set-string", f"global.apiToken={bad}", check=False
        )
        assert result.returncode != 0
        assert "'/global/apiToken'" in result.stderr, result.stderr


def _token_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = pod_spec(doc)
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            if c["name"] in TOKEN_CONTAINERS:
                found.append((doc["metadata"]["name"], c))
            else:
                assert "API_TOKEN" not in env(c), (doc["metadata"]["name"], c["name"])
    return found


@pytest.mark.parametrize("scenario", ["default", "classic-sidecar", "lb-statefulset"])
def test_every_service_and_kamailio_container_reads_the_token_from_the_secret(
    scenario: str,
) -> None:
    docs = render(scenario)
    found = _token_containers(docs)
    assert {c["name"] for _, c in found} == TOKEN_CONTAINERS
    secret = find(docs, "Secret", f"{RELEASE}-api-token")
    assert list(secret["data"]) == ["api-token"]
    for workload, c in found:
        assert env(c).get("API_TOKEN") == {
            "secretKeyRef": {"name": f"{RELEASE}-api-token", "key": "api-token"}
        }, (workload, c["name"])
    # no container anywhere has a token or password as a plain value
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            spec = pod_spec(doc)
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                for name in ("API_TOKEN", "AUTH_SECRET", "SUBSCRIBER_PASSWORD_TEMPLATE"):
                    assert "value" not in next(
                        (e for e in c.get("env", []) if e["name"] == name), {}
                    ), (doc["metadata"]["name"], c["name"], name)


def test_a_token_in_a_components_env_map_does_not_replace_the_secret() -> None:
    docs = render("default", "--set", "csvgen.env.API_TOKEN=plain-text-token-0123")
    c = container(pod_spec(find(docs, "Deployment", f"{RELEASE}-csvgen")), "csvgen")
    assert [e for e in c["env"] if e["name"] == "API_TOKEN"] == [
        {
            "name": "API_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": f"{RELEASE}-api-token", "key": "api-token"}},
        }
    ]


def test_seeding_and_phones_read_the_subscribers_secret() -> None:
    docs = render()
    ref = {
        "secretKeyRef": {"name": f"{RELEASE}-subscribers", "key": "SUBSCRIBER_PASSWORD_TEMPLATE"}
    }
    controller = container(
        pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller"
    )
    job = pod_spec(find(docs, "Job"))["containers"][0]
    client = container(pod_spec(find(docs, "StatefulSet", f"{RELEASE}-sip-client")), "sip-client")
    for c in (controller, job, client):
        assert env(c)["SUBSCRIBER_PASSWORD_TEMPLATE"] == ref, c["name"]
    assert "annotations" not in find(docs, "Secret", f"{RELEASE}-subscribers")["metadata"]
    # with an external database the schema Job runs pre-install: the Secret is a hook before it
    docs = render("external-db")
    secret = find(docs, "Secret", f"{RELEASE}-subscribers")["metadata"]["annotations"]
    job_meta = find(docs, "Job")["metadata"]["annotations"]
    assert secret["helm.sh/hook"] == job_meta["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(secret["helm.sh/hook-weight"]) < int(job_meta["helm.sh/hook-weight"])


def test_the_controller_takes_proxy_addresses_from_the_kubernetes_api() -> None:
    from sip_controller.config import Settings

    docs = render()
    variables = env(
        container(pod_spec(find(docs, "Deployment", f"{RELEASE}-sip-controller")), "sip-controller")
    )
    assert variables["PROXY_ADDRESS_SOURCE"] == "kubernetes"
    assert variables["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    selector = dict(pair.split("=", 1) for pair in variables["PROXY_POD_SELECTOR"].split(","))
    # exactly the proxies' pods of this release: the labels their workload selects them by
    sts = proxy(docs)
    assert selector == sts["spec"]["selector"]["matchLabels"] == selector_labels("sip-proxy")
    assert selector.items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet") and doc is not sts:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert not selector.items() <= labels.items(), doc["metadata"]["name"]
    # the controller accepts these settings, and its Role lets it get the pods
    settings = Settings(
        proxy_address_source=variables["PROXY_ADDRESS_SOURCE"],
        proxy_pod_selector=variables["PROXY_POD_SELECTOR"],
        pod_namespace=NAMESPACE,
    )
    assert settings.proxy_address_source == "kubernetes"
    role = find(docs, "Role", f"{RELEASE}-sip-controller")
    assert any("pods" in r["resources"] and "get" in r["verbs"] for r in role["rules"])


# what each policy admits, port by port: a peer is a component of the release, "release" (any
# pod of it), or "monitoring" (networkPolicy.metricsSources' default, kube-prometheus-stack)
EXPECTED_POLICIES: dict[str, dict[tuple[str, int], set[str]]] = {
    "sip-loadb": {
        ("UDP", 5060): {"sip-client", "sip-proxy"},
        ("TCP", 5060): {"sip-client", "sip-proxy"},
        ("TCP", 8060): {"sip-controller", "monitoring"},
    },
    "sip-proxy": {
        ("UDP", 5060): {"sip-loadb", "sip-proxy"},
        ("TCP", 5060): {"sip-loadb", "sip-proxy"},
        ("UDP", 5061): {"sip-proxy"},
        ("TCP", 8080): {"sip-controller", "monitoring"},
        ("TCP", 9101): {"monitoring"},
    },
    "sip-client": {
        ("UDP", 5060): {"sip-loadb", "sip-proxy", "sip-client"},
        ("TCP", 5060): {"sip-loadb", "sip-proxy", "sip-client"},
        ("TCP", 8090): {"release", "monitoring"},
    },
    "sip-controller": {("TCP", 8000): {"release", "monitoring"}},
    "scenario-controller": {("TCP", 8001): {"release", "monitoring"}},
    "csvgen": {("TCP", 8070): {"release", "monitoring"}},
    "mariadb": {("TCP", 3306): {"release"}},
}
MONITORING_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def _peer_name(peer: dict[str, Any]) -> str:
    if peer == MONITORING_PEER:
        return "monitoring"
    assert set(peer) == {"podSelector"}, peer  # no namespaceSelector: the release's namespace
    labels = peer["podSelector"]["matchLabels"]
    if labels == {"app.kubernetes.io/name": "ims-testbed", "app.kubernetes.io/instance": RELEASE}:
        return "release"
    component: str = labels["app.kubernetes.io/component"]
    assert labels == selector_labels(component), peer
    return component


def admitted(policy: dict[str, Any]) -> dict[tuple[str, int], set[str]]:
    table: dict[tuple[str, int], set[str]] = {}
    for rule in policy["spec"]["ingress"]:
        # an empty or missing `from` would admit every source
        assert rule.get("from"), (policy["metadata"]["name"], rule)
        assert rule.get("ports"), (policy["metadata"]["name"], rule)
        for port in rule["ports"]:
            entry = table.setdefault((port["protocol"], port["port"]), set())
            entry |= {_peer_name(p) for p in rule["from"]}
    return table


def _container_ports(docs: list[dict[str, Any]], component: str) -> set[tuple[str, int]]:
    ports = set()
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet") and doc["spec"]["selector"][
            "matchLabels"
        ] == selector_labels(component):
            spec = pod_spec(doc)
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                for p in c.get("ports", []):
                    ports.add((p.get("protocol", "TCP"), p["containerPort"]))
    return ports


def test_network_policies_admit_only_the_expected_peers_on_the_real_ports() -> None:
    docs = render()
    policies = {d["metadata"]["name"]: d for d in kinds(docs, "NetworkPolicy")}
    assert set(policies) == {f"{RELEASE}-{c}" for c in EXPECTED_POLICIES}
    for component, expected in EXPECTED_POLICIES.items():
        policy = policies[f"{RELEASE}-{component}"]
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        # ingress only: egress (DNS, the controller's calls) is left alone
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in policy["spec"]
        assert policy["spec"]["podSelector"] == {"matchLabels": selector_labels(component)}
        assert admitted(policy) == expected, component
        # every port a container of the component listens on is covered (SIP over TCP is
        # allowed though the pods declare UDP only)
        listening = _container_ports(docs, component)
        assert listening, component
        assert listening <= set(expected), (component, listening - set(expected))
    # every pod of the release but the schema Job's is selected by a policy
    selected = {
        tuple(sorted(p["spec"]["podSelector"]["matchLabels"].items())) for p in policies.values()
    }
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            labels = doc["spec"]["selector"]["matchLabels"]
            assert tuple(sorted(labels.items())) in selected, doc["metadata"]["name"]


def test_network_policies_follow_the_values(tmp_path: Path) -> None:
    assert values()["networkPolicy"]["enabled"] is True
    assert not kinds(render("default", "--set", "networkPolicy.enabled=false"), "NetworkPolicy")
    ingress = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    generator = {"ipBlock": {"cidr": "192.0.2.0/24"}}
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump(
            {
                "networkPolicy": {
                    "metricsSources": [],
                    "httpSources": [ingress],
                    "sipSources": [generator],
                },
                "prometheus": {"enabled": True},
                "sip-proxy": {"outboundThroughLoadBalancer": False},
            }
        )
    )
    docs = fresh_render("-f", str(extra))
    policies = {d["metadata"]["name"]: d for d in kinds(docs, "NetworkPolicy")}
    own = {"podSelector": {"matchLabels": selector_labels("prometheus")}}
    lb = policies[f"{RELEASE}-sip-loadb"]
    # the extra SIP peer at the load balancer only; RPC from the controller and the release's
    # own Prometheus, never from the extra HTTP peers
    assert (
        generator
        in _rule(lb, [{"port": 5060, "protocol": "UDP"}, {"port": 5060, "protocol": "TCP"}])["from"]
    )
    assert _rule(lb, [{"port": 8060, "protocol": "TCP"}])["from"] == [
        {"podSelector": {"matchLabels": selector_labels("sip-controller")}},
        own,
    ]
    sip_proxy = policies[f"{RELEASE}-sip-proxy"]
    proxy_sip = _rule(
        sip_proxy, [{"port": 5060, "protocol": "UDP"}, {"port": 5060, "protocol": "TCP"}]
    )
    # the direct path: the phones send to the proxies too; the SIP generator does not
    assert {"podSelector": {"matchLabels": selector_labels("sip-client")}} in proxy_sip["from"]
    assert generator not in proxy_sip["from"]
    assert _rule(sip_proxy, [{"port": 9101, "protocol": "TCP"}])["from"] == [own]
    for component in ("sip-controller", "scenario-controller", "csvgen", "sip-client"):
        for rule in policies[f"{RELEASE}-{component}"]["spec"]["ingress"]:
            if rule["ports"][0]["protocol"] == "TCP" and rule["ports"][0]["port"] != 5060:
                assert ingress in rule["from"], component
    for doc in policies.values():
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    # without any metrics source the analyzers' port admits nobody (no rule at all)
    docs = fresh_render("--set", "networkPolicy.metricsSources=null")
    sip_proxy = find(docs, "NetworkPolicy", f"{RELEASE}-sip-proxy")
    assert (("TCP", 9101)) not in {
        (p["protocol"], p["port"]) for r in sip_proxy["spec"]["ingress"] for p in r["ports"]
    }


def test_the_policy_controllers_metrics_admit_prometheus_alone() -> None:
    name = f"{RELEASE}-policy-controller"
    policy = find(render("predictive"), "NetworkPolicy", name)
    assert policy["spec"]["podSelector"] == {"matchLabels": selector_labels("policy-controller")}
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": selector_labels("prometheus")}},
                MONITORING_PEER,  # networkPolicy.metricsSources' default
            ],
            "ports": [{"protocol": "TCP", "port": 8095}],
        }
    ]
    # no metrics source: no rule (an empty `from` would admit every peer)
    docs = fresh_render(
        "--set",
        "global.sipProxy.autoscaler=predictive",
        "--set",
        "policyController.prometheusUrl=http://prom:9090",
        "--set",
        "networkPolicy.metricsSources=null",
    )
    assert find(docs, "NetworkPolicy", name)["spec"].get("ingress") in (None, [])
    for version in SCHEMA_VERSIONS:
        kubernetes_validate.validate(find(docs, "NetworkPolicy", name), version, strict=True)


def test_the_panels_ingress_is_off_by_default() -> None:
    assert values("scenario-controller")["ingress"]["enabled"] is False
    assert not kinds(render(), "Ingress")
    assert find(render("exposed"), "Ingress")
