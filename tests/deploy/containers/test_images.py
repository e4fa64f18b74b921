"""Every image starts and answers, built for real by docker/build.sh.

The Python services and Kamailio run on the host network bound to 127.0.0.1 on free ports (their
own settings variables choose them); MariaDB and Prometheus, whose checks or defaults use fixed
ports, get a user-mode network (slirp4netns) with one port published on 127.0.0.1, which adds no
bridge or iptables rule to the host. Each image's version label, its HEALTHCHECK and its own
/health (or the server's own answer) are checked.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import httpx
import pymysql
import pytest
from deploy.containers.harness import Containers, Image
from support import RawSip, free_port

pytestmark = pytest.mark.timeout(3600)  # the first test waits for docker/build.sh

# per service: its host and port settings, and what else it needs to start on its own
PYTHON_SERVICES: dict[str, tuple[str, str, dict[str, str]]] = {
    "sip-controller": (
        "SIP_CONTROLLER_HOST",
        "SIP_CONTROLLER_PORT",
        {
            "DATABASE_URL": "sqlite:////data/testbed.sqlite",
            "SUBSCRIBER_LAST": "9",
            # nothing listens there: the controller must not reach local mode's LB (:8060)
            "LOADBALANCER_RPC_URLS": "http://127.0.0.1:{spare}/RPC",
        },
    ),
    "sip-client": (
        "SIP_CLIENT_HTTP_HOST",
        "SIP_CLIENT_HTTP_PORT",
        {
            "POD_ID": "00",
            "PHONES": "1",
            "SIP_CLIENT_ADDRESS": "127.0.0.1",
            "SIP_CLIENT_PORT": "0",
            "OUTBOUND_PROXY": "127.0.0.1:{spare}",
        },
    ),
    "scenario-controller": (
        "SCENARIO_CONTROLLER_HOST",
        "SCENARIO_CONTROLLER_PORT",
        # no cross-check against a sip-controller (local mode's would be on :8000)
        {"SCENARIO_DIR": "/data/scenarios", "RUNS_DIR": "/data/runs", "SIP_CONTROLLER_URL": ""},
    ),
    "csvgen": ("CSVGEN_HOST", "CSVGEN_PORT", {}),
    "analyzer": (
        "ANALYZER_HTTP_HOST",
        "ANALYZER_HTTP_PORT",
        {"ANALYZER_INTERFACE": "lo", "ANALYZER_PROXY_ADDRESS": "127.0.0.1:{spare}"},
    ),
}


def shared_dir(tmp_path: Path) -> Path:
    """A directory the images' user (uid 10001) can write to."""
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    return data


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]


@pytest.mark.parametrize("name", list(PYTHON_SERVICES))
def test_python_service_image_answers_with_its_version(
    name: str, images: dict[str, Image], containers: Containers, tmp_path: Path
) -> None:
    image = images[name]
    host_var, port_var, extra = PYTHON_SERVICES[name]
    port = free_port()
    spare = str(free_port(socket.SOCK_DGRAM))
    env = {host_var: "127.0.0.1", port_var: str(port)}
    env |= {key: value.format(spare=spare) for key, value in extra.items()}
    args = ["--network", "host", "--volume", f"{shared_dir(tmp_path)}:/data", *env_args(env)]
    if name == "analyzer":
        args += ["--cap-add", "NET_RAW"]  # live capture (podman's defaults leave it out)
    container = containers.run(image, *args)

    response = containers.wait_http(container, f"http://127.0.0.1:{port}/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.json()["version"] == image.version
    assert containers.label(image) == image.version
    assert containers.healthcheck(container) == 0, containers.logs(container)


def test_analyzer_image_leaves_out_the_pyshark_backend(
    images: dict[str, Image], containers: Containers
) -> None:
    """No tshark in the image, so no pyshark either (the analyzer's optional extra): choosing
    that backend stops the service at once with one line naming the extra."""
    image = images["analyzer"]
    probe = "command -v tshark; python -c 'import pyshark' 2>/dev/null && echo pyshark"
    found = containers.engine.run(
        "run", "--rm", "--network", "none", "--entrypoint", "sh", image.ref, "-c", probe,
        check=False,
    )  # fmt: skip
    assert found.stdout.strip() == "", found.stdout
    env = {"ANALYZER_BACKEND": "pyshark", "ANALYZER_PROXY_ADDRESS": "127.0.0.1:5060"}
    container = containers.run(image, "--network", "none", *env_args(env))
    waited = containers.engine.run("wait", container, timeout=120).stdout.strip()
    lines = containers.logs(container).splitlines()
    assert waited == "1", lines
    assert len(lines) == 1, lines
    assert "analyzer[pyshark]" in lines[0]


@pytest.mark.parametrize("name", ["kamailio", "kamailio-debug"])
def test_kamailio_image_runs_the_load_balancer_on_a_schema_it_did_not_make(
    name: str, images: dict[str, Image], containers: Containers, tmp_path: Path
) -> None:
    image = images[name]
    data = shared_dir(tmp_path)
    db = ["--volume", f"{data}:/data", "--env", "DATABASE_URL=sqlite:////data/testbed.sqlite"]
    # the schema from the sip-controller image's one-shot, as compose and the chart make it
    init = containers.run(
        images["sip-controller"],
        "--network",
        "none",
        "--entrypoint",
        "testbed-db-init",
        *db,
        command=("--mode", "init", "--timeout", "60"),
    )
    waited = containers.engine.run("wait", init, timeout=120).stdout.strip()
    assert waited == "0", containers.logs(init)

    sip_port = free_port(socket.SOCK_DGRAM)
    http_port = free_port()
    env = {"SIP_ADDRESS": "127.0.0.1", "SIP_PORT": str(sip_port), "HTTP_PORT": str(http_port)}
    env["DMQ_PORT"] = str(free_port(socket.SOCK_DGRAM))
    lb = containers.run(image, "--network", "host", *db, *env_args(env), command=("sip-loadb",))

    response = containers.wait_http(lb, f"http://127.0.0.1:{http_port}/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "role": "sip-loadb"}
    assert containers.label(image) == image.version
    assert containers.healthcheck(lb) == 0, containers.logs(lb)
    # it is the load balancer, reading the (empty) dispatcher set from that database
    sip = RawSip()
    try:
        register = sip.request("REGISTER", "sip:testbed.local", "0001", uuid.uuid4().hex, 1)
        answer = sip.exchange(register, f"127.0.0.1:{sip_port}")
    finally:
        sip.close()
    assert answer.startswith("SIP/2.0 503 Service Unavailable - No Active Proxy"), answer
    if name == "kamailio-debug":
        # the inspection tools, tcpdump usable by the image's non-root user (file capability)
        which = "for t in tcpdump sngrep ip; do command -v $t; done"
        tools = containers.engine.run("exec", lb, "sh", "-c", which, check=False)
        assert len(tools.stdout.split()) == 3, tools.stdout
        caps = containers.engine.run("exec", lb, "getcap", tools.stdout.split()[0]).stdout
        assert "cap_net_raw" in caps, caps


def test_mariadb_image_creates_the_database_and_user(
    images: dict[str, Image], containers: Containers
) -> None:
    image = images["mariadb"]
    port = free_port()
    password = uuid.uuid4().hex
    env = {
        "MARIADB_DATABASE": "tbcheck",
        "MARIADB_USER": "tbuser",
        "MARIADB_PASSWORD": password,
        "MARIADB_RANDOM_ROOT_PASSWORD": "1",
    }
    db = containers.run(
        image,
        "--network",
        "slirp4netns:port_handler=slirp4netns",
        "--publish",
        f"127.0.0.1:{port}:3306",
        *env_args(env),
    )
    containers.wait_healthy(db)

    connection = pymysql.connect(
        host="127.0.0.1", port=port, user="tbuser", password=password, database="tbcheck"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE(), CURRENT_USER(), VERSION()")
            database, user, version = cursor.fetchone() or ("", "", "")
            cursor.execute("CREATE TABLE t (n INT)")
            cursor.execute("INSERT INTO t VALUES (42)")
            cursor.execute("SELECT n FROM t")
            assert cursor.fetchone() == (42,)
    finally:
        connection.close()
    assert (database, user) == ("tbcheck", "tbuser@%")
    assert version.startswith(f"{image.version}.")
    assert containers.label(image) == image.version
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=port, user="tbuser", password="wrong")


def test_prometheus_image_is_ready_and_scrapes(
    images: dict[str, Image], containers: Containers, tmp_path: Path
) -> None:
    image = images["prometheus"]
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: self\n"
        "    static_configs: [{targets: ['127.0.0.1:9090']}]\n"
    )
    config.chmod(0o644)
    server = containers.run(
        image,
        "--network",
        "slirp4netns:port_handler=slirp4netns",
        "--publish",
        f"127.0.0.1:{port}:9090",
        "--volume",
        f"{config}:/etc/prometheus/prometheus.yml:ro",
    )

    base = f"http://127.0.0.1:{port}"
    ready = containers.wait_http(server, f"{base}/-/ready")
    # it answers 503 until its storage is open: seconds on a busy machine
    deadline = time.monotonic() + 60
    while ready.status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
        ready = containers.wait_http(server, f"{base}/-/ready")
    assert ready.status_code == 200, ready.text
    build = httpx.get(f"{base}/api/v1/status/buildinfo", timeout=5).json()["data"]
    assert build["version"].startswith(f"{image.version}.")
    assert containers.label(image) == image.version
    containers.wait_healthy(server, timeout=30)
    # it scrapes: its own target turns up within a few intervals
    containers.wait_http(server, f"{base}/-/healthy")
    for _ in range(30):
        up = httpx.get(f"{base}/api/v1/query", params={"query": 'up{job="self"}'}, timeout=5)
        result = up.json()["data"]["result"]
        if result and result[0]["value"][1] == "1":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"Prometheus never scraped itself: {up.text}")
