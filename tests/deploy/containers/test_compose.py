"""docker-compose.yml brought up for real (podman, a project name of its own, free host ports on
127.0.0.1), used as the testbed is used, and taken down leaving nothing behind.

The stack comes up once for the module with the secrets scripts/compose-env.sh generates (the
test's own file, passed as variables); SIPp registers callees with the generated passwords and
places calls from the host through the containerised load balancer, then Prometheus, the
dashboard's queries and the sip-controller (its token and address checks) are checked against
it. The last test takes it down and compares the host with what it was before: containers,
networks, volumes, the bridge, the CNI iptables chains and net.ipv4.ip_forward.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ROOT, free_port
from typer.testing import CliRunner

from testbed.containers.compose import ComposeProject
from testbed.containers.compose_cli import compose_app
from testbed.containers.engine import Engine
from testbed.local import processes
from testbed.sipp import SippResult, SippRunner

pytestmark = pytest.mark.timeout(3600)  # the first test may wait for docker/build.sh

DASHBOARD = ROOT / "helm" / "ims-testbed" / "dashboards" / "ims-testbed.json"
CALLEES = [f"07{n:02d}" for n in range(10)]
CALLERS = [f"08{n:02d}" for n in range(10)]


@dataclass(frozen=True)
class HostState:
    cni: frozenset[str]  # CNI chains and every rule in or into them, or on a podman bridge
    ip_forward: str
    links: frozenset[str]

    @classmethod
    def now(cls) -> HostState:
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
        table, lines = "", set()
        for line in saved.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif re.match(r"^:CNI-", line):
                lines.add(f"{table} {line.split()[0]}")
            elif line.startswith("-A ") and ("CNI-" in line or "cni-podman" in line):
                lines.add(f"{table} {line}")
        forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        links = frozenset(p.name for p in Path("/sys/class/net").iterdir())
        return cls(frozenset(lines), forward, links)


@dataclass
class Stack:
    project: ComposeProject
    secrets: dict[str, str]
    ports: dict[str, int]
    gateway: str
    bridge: str
    before: HostState
    during_links: frozenset[str]
    registered: SippResult
    calls: SippResult
    traffic_end: float  # Unix time the last call ended
    timings: dict[str, float]
    down_done: bool = False

    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.ports[port_var]}"


def network(engine: Engine, project: str) -> dict[str, Any]:
    out = engine.run("network", "inspect", f"{project}_default").stdout
    found: dict[str, Any] = json.loads(out)[0]
    return found


def compose_secrets(path: Path) -> dict[str, str]:
    """What scripts/compose-env.sh writes, read back as the variables compose interpolates."""
    subprocess.run([str(ROOT / "scripts" / "compose-env.sh"), str(path)], check=True)
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def free_udp_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def stack(
    engine: Engine, images: dict[str, Any], timings: dict[str, float], tmp_path_factory: Any
) -> Iterator[Stack]:
    ports = {
        "LB_SIP_HOST_PORT": free_port(socket.SOCK_DGRAM),
        "SIP_CONTROLLER_HOST_PORT": free_port(),
        "SCENARIO_CONTROLLER_HOST_PORT": free_port(),
        "CSVGEN_HOST_PORT": free_port(),
        "PROMETHEUS_HOST_PORT": free_port(),
    }
    name = f"tbcompose{uuid.uuid4().hex[:8]}"
    secrets = compose_secrets(tmp_path_factory.mktemp("env") / ".env")
    project = ComposeProject(
        engine,
        ROOT / "docker-compose.yml",
        name,
        env={**secrets, **{k: str(v) for k, v in ports.items()}},
    )
    before = HostState.now()
    uas = None
    stack: Stack | None = None
    try:
        start = time.monotonic()
        project.up(timeout=300)
        timings["compose up"] = time.monotonic() - start
        net = network(engine, name)
        gateway = net["subnets"][0]["gateway"]
        during_links = HostState.now().links
        # rates need a scrape from before the traffic: wait for every target's first one
        wait_for_targets(f"http://127.0.0.1:{ports['PROMETHEUS_HOST_PORT']}")

        # SIPp on the host, on the project network's gateway address (what the containers
        # reach the host by), sending to the load balancer's published port on 127.0.0.1
        template = secrets["SUBSCRIBER_PASSWORD_TEMPLATE"]
        sipp = SippRunner(
            tmp_path_factory.mktemp("sipp"),
            password_for=lambda user: template.format(username=user, domain="testbed.local"),
        )
        uas_port = free_udp_port(gateway)
        uas = sipp.start_uas(gateway, uas_port)
        lb = f"127.0.0.1:{ports['LB_SIP_HOST_PORT']}"
        registered = sipp.register(
            CALLEES, f"{gateway}:{uas_port}", lb, f"{gateway}:{free_udp_port(gateway)}"
        )
        # one call a second, so the calls span two scrapes: a labelled series (the analyzers'
        # 200 OK counters) is born with its first increment, and rate() only sees later ones
        calls = sipp.calls(
            list(zip(CALLERS, CALLEES, strict=True)),
            lb,
            f"{gateway}:{free_udp_port(gateway)}",
            rate=1,
            hold_ms=200,
        )
        traffic_end = time.time()
        stack = Stack(
            project,
            secrets,
            ports,
            gateway,
            net["network_interface"],
            before,
            during_links,
            registered,
            calls,
            traffic_end,
            timings,
        )
        yield stack
    finally:
        if uas is not None:
            processes.stop(uas)
        if stack is None or not stack.down_done:
            project.down()


def test_sipp_registers_and_calls_through_the_containerised_load_balancer(stack: Stack) -> None:
    assert stack.registered.successful == len(CALLEES), stack.registered.errors
    assert stack.calls.successful == len(CALLERS), stack.calls.errors
    assert stack.calls.failed == 0


def test_the_controller_lists_both_proxies_enabled_by_their_one_shots(stack: Stack) -> None:
    status = {row.service: row for row in stack.project.status()}
    for proxy in ("sip-proxy-0", "sip-proxy-1"):
        assert status[f"{proxy}-enable"].state == "exited (0)"
        assert status[proxy].health == "healthy"
    assert all(row.ok for row in status.values()), status
    proxies = httpx.get(f"{stack.url('SIP_CONTROLLER_HOST_PORT')}/proxies", timeout=10).json()
    assert sorted(p["name"] for p in proxies) == ["sip-proxy-0", "sip-proxy-1"]
    for proxy in proxies:
        assert proxy["state"] == "enabled", proxy
        # active (A...) at the one load balancer
        assert [lb["flags"][:1] for lb in proxy["loadbalancers"]] == ["A"], proxy


def test_the_controller_refuses_changes_without_the_token_and_foreign_addresses(
    stack: Stack,
) -> None:
    controller = stack.url("SIP_CONTROLLER_HOST_PORT")
    token = {"Authorization": f"Bearer {stack.secrets['API_TOKEN']}"}

    def states() -> dict[str, Any]:
        listed = httpx.get(f"{controller}/proxies", timeout=10).json()
        return {p["name"]: (p["state"], p["loadbalancers"]) for p in listed}

    before = states()
    missing = httpx.post(f"{controller}/proxies/sip-proxy-0/disable?grace_seconds=0", timeout=10)
    assert missing.status_code == 401, missing.text
    wrong = httpx.post(
        f"{controller}/proxies/sip-proxy-0/disable?grace_seconds=0",
        headers={"Authorization": "Bearer not-the-token-of-this-project"},
        timeout=10,
    )
    assert wrong.status_code == 403, wrong.text
    # the token does not let a foreign address in: the name's address is the platform's
    foreign = httpx.post(
        f"{controller}/proxies/sip-proxy-1/enable",
        headers=token,
        json={"sip_address": "192.0.2.10:5060", "http_address": "192.0.2.10:8080"},
        timeout=30,
    )
    assert foreign.status_code == 403, foreign.text
    # nor a name that is not one of the project's proxy services (outside PROXY_NAME_PATTERN:
    # 422, a malformed name; a well-formed one the platform does not know: 403)
    stranger = httpx.post(
        f"{controller}/proxies/mariadb/enable", headers=token, json={}, timeout=30
    )
    assert stranger.status_code in (403, 422), stranger.text
    assert states() == before


def test_compose_status_command_shows_every_service(stack: Stack) -> None:
    result = CliRunner().invoke(
        compose_app, ["status", "--project", stack.project.project], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    for service in ("mariadb", "sip-loadb", "sip-proxy-1-analyzer", "prometheus"):
        assert re.search(rf"{service}\s.*running.*healthy", result.output), result.output
    assert re.search(r"sip-proxy-0-enable\s.*exited \(0\)", result.output), result.output


def wait_for_targets(prometheus: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every target up (cadvisor aside: its `cpu` profile is off here); returns them."""
    deadline = time.monotonic() + timeout
    while True:
        url = f"{prometheus}/api/v1/targets"
        found: list[dict[str, Any]] = httpx.get(url, timeout=10).json()["data"]["activeTargets"]
        down = [
            t["scrapeUrl"]
            for t in found
            if t["health"] != "up" and t["labels"]["job"] != "cadvisor"
        ]
        if found and not down:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"Prometheus targets not up after {timeout:.0f} s: {down}")
        time.sleep(1)


def test_prometheus_scrapes_both_analyzers_and_every_service(stack: Stack) -> None:
    found = wait_for_targets(stack.url("PROMETHEUS_HOST_PORT"), timeout=10)
    analyzers = sorted(t["labels"]["pod"] for t in found if t["labels"]["job"] == "analyzer")
    assert analyzers == ["sip-proxy-0", "sip-proxy-1"]
    assert {t["labels"]["job"] for t in found} == {
        "sip-proxy",
        "analyzer",
        "sip-loadb",
        "sip-controller",
        "scenario-controller",
        "csvgen",
        "sip-client",
        "cadvisor",
    }
    cadvisor = [t for t in found if t["labels"]["job"] == "cadvisor"]
    assert [t["health"] for t in cadvisor] == ["down"]


# -- the Grafana dashboard's queries against the live Prometheus -------------------------------

# Grafana's $__rate_interval is at least four scrape intervals (5 s here); $window is the
# dashboard's own widest choice, so a run that just ended is still inside it; $p0 its default.
VARIABLES = {"$__rate_interval": "1m", "$window": "5m", "$p0": "1"}

# Panels about SIP traffic and response times: they must return data after the calls (rates
# from Kamailio's own counters, response times and 200 OKs from the analyzers).
SIP_PANELS = {
    "INVITE rate per proxy and at the load balancer",
    "REGISTER rate per proxy",
    "p99 response time per proxy against P0",
    "200 OK rate per proxy",
}
# May be empty here, and why:
# - "CPU per proxy": container_cpu_usage_seconds_total comes from cAdvisor (compose profile
#   `cpu`, off here) and kube_pod_container_resource_limits from kube-state-metrics (Kubernetes).
# - "Proxies": kube_statefulset_* and kube_horizontalpodautoscaler_* exist on Kubernetes only,
#   testbed_replicas / testbed_desired_replicas only while the local autoscaler runs.
# - "Calls finished at the client pods", "Call setup time (p99)", "Scenario replay": the client
#   pods and the scenario controller place no call here (SIPp does), so their counters never
#   increase and histogram_quantile over them has nothing to work on.


def dashboard_queries() -> list[tuple[str, str]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            yield from walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel["title"], target["expr"]

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"a dashboard variable this test does not know: {expr}"
    return expr


def query(stack: Stack, expr: str, at: float | None = None) -> httpx.Response:
    url = f"{stack.url('PROMETHEUS_HOST_PORT')}/api/v1/query"
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at else {})
    return httpx.get(url, params=params, timeout=10)


def panels_without_data(stack: Stack, titles: set[str]) -> list[tuple[str, str, list[float]]]:
    """The queries of these panels that return no series with a real value (a rate above zero,
    a finite percentile), evaluated as a dashboard shows them just after the calls: three
    scrapes (5 s apart) later, the 1m rate window still over the calls."""
    at = stack.traffic_end + 15
    time.sleep(max(0.0, at - time.time()))
    empty = []
    for title, expr in dashboard_queries():
        if title in titles:
            series = query(stack, substitute(expr), at).json()["data"]["result"]
            values = [float(s["value"][1]) for s in series]
            if not any(math.isfinite(v) and v > 0 for v in values):
                empty.append((title, expr, values))
    return empty


def test_every_dashboard_query_parses(stack: Stack) -> None:
    queries = dashboard_queries()
    assert {title for title, _ in queries} >= SIP_PANELS
    for title, expr in queries:
        answer = query(stack, substitute(expr))
        assert answer.status_code == 200, f"{title}: {expr}: {answer.text}"
        assert answer.json()["status"] == "success"
    # and a broken expression is refused (the check can fail)
    assert query(stack, "sum by (pod (up)").status_code == 400


def test_the_sip_panels_have_data_after_the_calls(stack: Stack) -> None:
    assert not panels_without_data(stack, SIP_PANELS)


# -- down -------------------------------------------------------------------------------------


def test_down_leaves_nothing_of_the_project_on_the_host(stack: Stack, engine: Engine) -> None:
    project = stack.project
    start = time.monotonic()
    left = project.down()
    stack.timings["compose down"] = time.monotonic() - start
    stack.down_done = True

    assert left == {"containers": [], "networks": [], "volumes": []}
    exists = engine.run("network", "exists", f"{project.project}_default", check=False)
    assert exists.returncode != 0
    pods = engine.run("pod", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"pod_{project.project}" not in pods
    after = HostState.now()
    assert stack.bridge not in after.links
    assert not (stack.during_links - stack.before.links) & after.links, "veths left"
    assert after.cni == stack.before.cni, (
        f"added: {sorted(after.cni - stack.before.cni)}\n"
        f"removed: {sorted(stack.before.cni - after.cni)}"
    )
    assert after.ip_forward == stack.before.ip_forward
    assert not project.hostnet_file.exists()
    assert project.restored is not None
    assert not project.restored.notes
