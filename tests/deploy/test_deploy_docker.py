"""The images under docker/, checked without a Docker engine.

Each Dockerfile is parsed (dockerfile-parse) and linted (hadolint); every COPY source exists
and survives the Dockerfile's .dockerignore; the build stage's two `uv sync` steps are replayed
with exactly the files the Dockerfile copies, so a missing workspace package fails here; the
version label, the HEALTHCHECK's path and port, the non-root user and the Kamailio packages
are compared with what the services and configs really need. The helper scripts the images
carry run for real (against a SQLite file, a live scenario controller, a local HTTP server).
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dockerfile_parse import DockerfileParser
from support import ROOT, free_port

from service_kit import env_variables

DOCKER = ROOT / "docker"
PYTHON_IMAGES = [
    "sip-controller",
    "sip-client",
    "scenario-controller",
    "csvgen",
    "analyzer",
    "policy-controller",
]
ALL_IMAGES = [*PYTHON_IMAGES, "kamailio"]
# image -> (settings class, host variable, port variable): what the HEALTHCHECK must name
SERVICE_SETTINGS = {
    "sip-controller": ("sip_controller.config", "SIP_CONTROLLER_HOST", "SIP_CONTROLLER_PORT"),
    "sip-client": ("sip_client.config", "SIP_CLIENT_HTTP_HOST", "SIP_CLIENT_HTTP_PORT"),
    "scenario-controller": (
        "scenario_controller.config",
        "SCENARIO_CONTROLLER_HOST",
        "SCENARIO_CONTROLLER_PORT",
    ),
    "csvgen": ("csvgen.config", "CSVGEN_HOST", "CSVGEN_PORT"),
    "analyzer": ("analyzer.config", "ANALYZER_HTTP_HOST", "ANALYZER_HTTP_PORT"),
    "policy-controller": (
        "policy_controller.config",
        "POLICY_CONTROLLER_HOST",
        "POLICY_CONTROLLER_PORT",
    ),
}


def parse(image: str) -> DockerfileParser:
    parser = DockerfileParser(path=str(DOCKER / f"{image}.Dockerfile"))
    return parser


def instructions(image: str) -> list[dict[str, Any]]:
    return list(parse(image).structure)


def stages(image: str) -> list[list[dict[str, Any]]]:
    """Instructions per stage (ARGs before the first FROM are left out)."""
    result: list[list[dict[str, Any]]] = []
    for instruction in instructions(image):
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def arg_default(image: str, name: str, stage: list[dict[str, Any]]) -> str:
    for instruction in stage:
        if instruction["instruction"] == "ARG" and instruction["value"].startswith(f"{name}="):
            return str(instruction["value"].split("=", 1)[1])
    raise AssertionError(f"{image}: no ARG {name}=default in its final stage")


def env_of(stage: list[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction["instruction"] == "ENV":
            for token in shlex.split(instruction["value"]):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def copies(stage: list[dict[str, Any]]) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from=)."""
    result = []
    for instruction in stage:
        if instruction["instruction"] != "COPY":
            continue
        words = [w for w in shlex.split(instruction["value"]) if not w.startswith("--chmod")]
        if any(w.startswith("--from") for w in words):
            continue
        *sources, destination = words
        result.append((sources, destination))
    return result


def project_version(pyproject: Path) -> str:
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def service_version(image: str) -> str:
    if image == "kamailio":
        return project_version(ROOT / "pyproject.toml")
    return project_version(ROOT / "services" / image / "pyproject.toml")


def workspace_closure(package: str) -> set[str]:
    """The workspace members a package needs, transitively, from their pyproject files."""
    members = {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent
        for p in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]
    }
    needed: set[str] = set()
    pending = [package]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        project = tomllib.loads((members[name] / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            dep = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
            if dep in members:
                pending.append(dep)
    return {str(members[n].relative_to(ROOT)) for n in needed}


# -- .dockerignore: Docker's rules (last match wins, ! re-includes, ** any depth) ------------


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])
    )


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the context: the last pattern matching the path or
    one of its parent directories decides, `!` re-includes, `**` spans directories."""
    parts = path.split("/")
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/").split("/")
        if any(_match(pattern, parts[:n]) for n in range(1, len(parts) + 1)):
            result = not negate
    return result


def ignore_patterns(image: str) -> list[str]:
    lines = (DOCKER / f"{image}.Dockerfile.dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = ["*", "!libs/*/src", "**/__pycache__"]
    assert ignored(".venv/bin/python", patterns)
    assert not ignored("libs/sip-core/src/sip_core/__init__.py", patterns)
    assert ignored("libs/sip-core/src/sip_core/__pycache__/x.pyc", patterns)
    assert ignored("libs/sip-core/tests/test_x.py", patterns)


# -- static checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_every_copy_source_exists_and_is_in_the_build_context(image: str) -> None:
    patterns = ignore_patterns(image)
    for stage in stages(image):
        for sources, _ in copies(stage):
            for source in sources:
                matches = list(ROOT.glob(source))
                assert matches, f"{image}: COPY source {source} does not exist"
                for match in matches:
                    files = [match] if match.is_file() else [p for p in match.rglob("*.py")]
                    assert files, f"{image}: {source} holds no file"
                    for file in files:
                        relative = str(file.relative_to(ROOT))
                        assert not ignored(relative, patterns), (
                            f"{image}: {relative} is copied but excluded by its .dockerignore"
                        )
    # and the context does not carry the project's environment or results
    for heavy in [".venv/bin/python", "results/x/report.html", ".tools/bin/helm"]:
        assert ignored(heavy, patterns), f"{image}: {heavy} would be sent to the builder"


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_version_label_is_the_services_own_version(image: str) -> None:
    final = stages(image)[0 if image == "kamailio" else -1]
    version = service_version(image)
    assert arg_default(image, "SERVICE_VERSION", final) == version
    labels: dict[str, str] = {}
    for instruction in final:
        if instruction["instruction"] == "LABEL":
            for word in shlex.split(instruction["value"]):
                key, value = word.split("=", 1)
                labels[key] = value
    # the label carries the build argument, whose default is the version
    assert labels["org.opencontainers.image.version"] == "${SERVICE_VERSION}"
    assert labels["org.opencontainers.image.title"] == image
    # build.sh passes the same version
    out = subprocess.run(
        [str(DOCKER / "build.sh"), "--dry-run", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"--build-arg SERVICE_VERSION={version}" in out


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_images_run_as_a_fixed_non_root_user(image: str) -> None:
    # the shipped stages: Kamailio's two targets, a Python image's last (the build stage is
    # thrown away)
    shipped = stages(image) if image == "kamailio" else stages(image)[-1:]
    for stage in shipped:
        users = [i["value"] for i in stage if i["instruction"] == "USER"]
        assert users, f"{image}: a stage without USER runs as root"
        assert users[-1] == "10001:10001", f"{image}: last USER is {users[-1]}"


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_healthcheck_hits_the_services_health_path_and_port(image: str) -> None:
    module_name, host_var, port_var = SERVICE_SETTINGS[image]
    module = __import__(module_name, fromlist=["Settings"])
    fields = env_variables(module.Settings)
    final = stages(image)[-1]
    checks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    assert len(checks) == 1, f"{image}: one HEALTHCHECK expected"
    command = json.loads(checks[0].split("CMD", 1)[1].strip())
    assert command[0] == "testbed-healthcheck"
    _, host, port, default_port, path = command
    # the variables the service itself reads, with its own default port
    assert (host, port) == (host_var, port_var)
    assert host in fields
    assert port in fields
    assert int(default_port) == fields[port].default
    assert path == "/health"
    # served on every address in the image, so loopback reaches it
    env = env_of(final)
    assert env[host] == "0.0.0.0"
    assert int(env.get(port, default_port)) == int(default_port)
    exposed = next(i["value"] for i in final if i["instruction"] == "EXPOSE").split()
    assert default_port in exposed


def test_healthcheck_script_asks_the_right_url(tmp_path: Path) -> None:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    try:
        port = str(server.server_address[1])
        script = str(DOCKER / "healthcheck.py")
        env = {**os.environ, "SIP_CONTROLLER_HOST": "0.0.0.0", "SIP_CONTROLLER_PORT": port}
        args = [sys.executable, script, "SIP_CONTROLLER_HOST", "SIP_CONTROLLER_PORT", "1"]
        ok = subprocess.run([*args, "/health"], env=env, check=False)
        assert ok.returncode == 0
        bad = subprocess.run([*args, "/nope"], env=env, check=False, capture_output=True)
        assert bad.returncode == 1
    finally:
        server.shutdown()
    assert seen == ["/health", "/nope"]


def test_kamailio_image_has_every_module_its_configs_load() -> None:
    """Every loadmodule of both configs is shipped by a package the image installs (dpkg -S on
    this Debian machine, whose Kamailio packages are the ones the image installs)."""
    run = [i["value"] for i in stages("kamailio")[0] if i["instruction"] == "RUN"]
    installed = set(re.findall(r"\b(kamailio[a-z-]*)\b", " ".join(run)))
    modules = set()
    for config in ["sip-proxy.cfg", "sip-loadb.cfg"]:
        modules |= set(
            re.findall(r'^loadmodule "([^"]+)"', (ROOT / "kamailio" / config).read_text(), re.M)
        )
    assert len(modules) > 15
    for module in sorted(modules):
        owner = subprocess.run(
            ["dpkg", "-S", f"/usr/lib/x86_64-linux-gnu/kamailio/modules/{module}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split(":")[0]
        assert owner in installed, f"{module} comes from {owner}, which the image does not install"


def test_kamailio_image_reuses_the_repo_entrypoint_and_healthcheck_port() -> None:
    final = stages("kamailio")[0]
    # Debian's own packages on Debian bookworm (Kamailio 5.6, what the configs are tested on)
    assert final[0]["value"] == "${DEBIAN_IMAGE} AS kamailio"
    assert "ARG DEBIAN_IMAGE=debian:bookworm-slim" in (DOCKER / "kamailio.Dockerfile").read_text()
    entry = next(i["value"] for i in final if i["instruction"] == "ENTRYPOINT")
    assert json.loads(entry) == ["/etc/kamailio/testbed/entrypoint.sh"]
    sources = [s for srcs, _ in copies(final) for s in srcs]
    assert {"kamailio/entrypoint.sh", "kamailio/sip-proxy.cfg", "kamailio/sip-loadb.cfg"} <= set(
        sources
    )
    # and every file the configs import (resolved next to them, where the image copies them)
    imported = {
        f"kamailio/{name}"
        for config in ["sip-proxy.cfg", "sip-loadb.cfg"]
        for name in re.findall(
            r'^(?:import_file|include_file)\s+"([^"]+)"',
            (ROOT / "kamailio" / config).read_text(),
            re.M,
        )
    }
    assert imported == {"kamailio/common.cfg"}
    assert imported <= set(sources)
    env = env_of(final)
    assert env["KAMAILIO_CONFIG_DIR"] == "/etc/kamailio/testbed"
    check = next(i["value"] for i in final if i["instruction"] == "HEALTHCHECK")
    entrypoint = (ROOT / "kamailio" / "entrypoint.sh").read_text()
    default = re.search(r"\$\{HTTP_PORT:=(\d+)\}", entrypoint)
    assert default is not None
    assert f"${{HTTP_PORT:-{default.group(1)}}}/health" in check
    # the debug variant adds the capture tools on top
    debug = stages("kamailio")[1]
    assert debug[0]["value"] == "kamailio AS kamailio-debug"
    assert "tcpdump" in " ".join(i["value"] for i in debug)
    assert "sngrep" in " ".join(i["value"] for i in debug)


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [
            str(hadolint),
            "--config",
            str(DOCKER / ".hadolint.yaml"),
            "--failure-threshold",
            "style",
            *sorted(str(p) for p in DOCKER.glob("*.Dockerfile")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the dependency layer, replayed ------------------------------------------------------------


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_build_stage_installs_the_service_from_exactly_what_it_copies(
    image: str, tmp_path: Path
) -> None:
    """Replay the build stage: copy what each COPY names, run each RUN `uv sync` as written
    (offline, from uv's cache, which setup.sh filled from the same uv.lock), then import the
    service from the venv. The first sync sees only pyproject files and uv.lock."""
    build = stages(image)[0]
    src = tmp_path / "src"
    src.mkdir()
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        **env_of(build),
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_OFFLINE": "1",
        "UV_LINK_MODE": "hardlink",
        "UV_COMPILE_BYTECODE": "0",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    syncs = 0
    copied_members: set[str] = set()
    for instruction in build:
        if instruction["instruction"] == "COPY":
            for sources, destination in copies([instruction]):
                for source in sources:
                    target = src / destination
                    if destination.endswith("/") or destination == "./":
                        target = target / Path(source).name
                    origin = ROOT / source
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if origin.is_dir():
                        shutil.copytree(
                            origin, target, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        shutil.copy2(origin, target)
                    if source.endswith("/src"):
                        copied_members.add(str(Path(source).parent))
        elif instruction["instruction"] == "RUN" and "uv sync" in instruction["value"]:
            command = instruction["value"][instruction["value"].index("uv sync") :]
            args = shlex.split(command)
            assert "--frozen" in args
            assert "--no-dev" in args
            assert ["--package", image] == args[
                args.index("--package") : args.index("--package") + 2
            ]
            if syncs == 0:
                assert "--no-install-workspace" in args
                assert not list(src.rglob("*.py")), "the dependency layer must not see code"
            result = subprocess.run(
                [shutil.which("uv") or "uv", *args[1:]],
                cwd=src,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"{image}: {command}\n{result.stderr}"
            syncs += 1
    assert syncs == 2
    # exactly the workspace packages the service depends on
    assert copied_members == workspace_closure(image)
    module = image.replace("-", "_")
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == service_version(image)
    # not an editable install: the code lives in the venv, not in /src
    assert not list(venv.rglob("*.pth")) or all(
        str(src) not in p.read_text() for p in venv.rglob("*.pth")
    )


def test_analyzer_capture_interpreter_copy_keeps_the_venv(tmp_path: Path) -> None:
    """The analyzer image runs the service with a copy of the interpreter inside the venv's
    bin/ (it alone gets CAP_NET_RAW); the copy must still find the venv's packages."""
    run = [i["value"] for i in stages("analyzer")[-1] if i["instruction"] == "RUN"]
    assert any("setcap cap_net_raw+ep /opt/venv/bin/python-netraw" in r for r in run)
    cmd = next(i["value"] for i in stages("analyzer")[-1] if i["instruction"] == "CMD")
    assert json.loads(cmd) == ["python-netraw", "-m", "analyzer"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "probe_pkg.py").write_text("VALUE = 42\n")
    real = Path(os.path.realpath(venv / "bin" / "python"))
    shutil.copy2(real, venv / "bin" / "python-netraw")
    out = subprocess.run(
        [
            str(venv / "bin" / "python-netraw"),
            "-c",
            "import probe_pkg, sys; print(probe_pkg.VALUE, sys.prefix)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["42", str(venv)]


# -- build.sh ----------------------------------------------------------------------------------


def test_build_script_builds_and_tags_every_image_with_its_version() -> None:
    out = subprocess.run(
        [str(DOCKER / "build.sh"), "--dry-run", "--registry", "registry.example/ims"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.splitlines()
    # the services, Kamailio and its debug target, then MariaDB and Prometheus from Debian's
    # packages (tagged with their Debian versions)
    expected = [*PYTHON_IMAGES, "kamailio", "kamailio-debug", "mariadb", "prometheus"]
    assert len(out) == len(expected)
    debian_versions = {"mariadb": "10.11", "prometheus": "2.42"}
    for line, image in zip(out, expected, strict=True):
        args = shlex.split(line)
        assert args[:4] == ["env", "DOCKER_BUILDKIT=1", "docker", "build"]
        base = "kamailio" if image.startswith("kamailio") else image
        assert args[args.index("--file") + 1] == f"docker/{base}.Dockerfile"
        version = debian_versions.get(base) or service_version(base)
        suffix = "-debug" if image == "kamailio-debug" else ""
        assert args[args.index("--tag") + 1] == f"registry.example/ims/{base}:{version}{suffix}"
        assert f"SERVICE_VERSION={version}" in args
        # by default on the Debian bases docker/base-images.sh makes here
        assert "DEBIAN_IMAGE=localhost/ims-testbed/debian:bookworm" in args
        assert args[-1] == "."  # the repository root as context
        if base == "kamailio":
            assert args[args.index("--target") + 1] == image
    listed = subprocess.run(
        [str(DOCKER / "build.sh"), "--list", "--latest", "analyzer"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == [
        f"ims-testbed/analyzer:{service_version('analyzer')}",
        "ims-testbed/analyzer:latest",
    ]


def test_build_script_refuses_unknown_images_and_a_missing_engine(tmp_path: Path) -> None:
    unknown = subprocess.run(
        [str(DOCKER / "build.sh"), "--dry-run", "nope"], capture_output=True, text=True, check=False
    )
    assert unknown.returncode == 2
    assert "unknown image 'nope'" in unknown.stderr
    # neither docker nor podman on PATH: a real build says so instead of half-building
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "python3", "git", "date", "dirname", "sed", "mkdir", "cat", "id"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k != "ENGINE"}
    real = subprocess.run(
        ["bash", str(DOCKER / "build.sh"), "csvgen"],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PATH": str(bin_dir)},
    )
    assert real.returncode == 1, real.stdout + real.stderr
    assert "no container engine here" in real.stderr


# -- the helper scripts the images carry -------------------------------------------------------


def _wrapper_env(script: str, env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run(
        ["bash", str(DOCKER / script), "env"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_sip_client_entrypoint_derives_pod_id_and_resolves_the_outbound_proxy() -> None:
    env = _wrapper_env(
        "sip-client-entrypoint.sh",
        {"HOSTNAME": "testbed-sip-client-7", "OUTBOUND_PROXY": "localhost:5060"},
    )
    assert env["POD_ID"] == "07"
    assert env["OUTBOUND_PROXY"] == "127.0.0.1:5060"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", env["SIP_CLIENT_ADDRESS"])
    # explicit settings are kept; addresses pass through
    kept = _wrapper_env(
        "sip-client-entrypoint.sh",
        {
            "HOSTNAME": "x-3",
            "POD_ID": "42",
            "OUTBOUND_PROXY": "10.0.0.5:5070",
            "SIP_CLIENT_ADDRESS": "10.1.2.3",
        },
    )
    assert (kept["POD_ID"], kept["OUTBOUND_PROXY"], kept["SIP_CLIENT_ADDRESS"]) == (
        "42",
        "10.0.0.5:5070",
        "10.1.2.3",
    )
    # the value the service's own validator accepts
    from sip_client.config import Settings

    assert Settings(pod_id=env["POD_ID"], outbound_proxy=env["OUTBOUND_PROXY"]).pod_id == "07"
    bad = subprocess.run(
        ["bash", str(DOCKER / "sip-client-entrypoint.sh"), "true"],
        env={"PATH": os.environ["PATH"], "HOSTNAME": "testbed-sip-client-100"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "ordinal 0-99" in bad.stderr


def test_analyzer_entrypoint_defaults_to_its_own_address() -> None:
    env = _wrapper_env("analyzer-entrypoint.sh", {})
    from analyzer.config import Settings

    assert Settings(analyzer_proxy_address=env["ANALYZER_PROXY_ADDRESS"]).proxy[1] == 5060
    assert (
        _wrapper_env("analyzer-entrypoint.sh", {"ANALYZER_PROXY_ADDRESS": "10.0.0.9:5070"})[
            "ANALYZER_PROXY_ADDRESS"
        ]
        == "10.0.0.9:5070"
    )


def test_db_init_creates_the_schema_once_and_check_waits_for_it(tmp_path: Path) -> None:
    db = tmp_path / "testbed.sqlite"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "SUBSCRIBER_LAST": "19"}
    script = [sys.executable, str(DOCKER / "db_init.py")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*script, *args], env=env, capture_output=True, text=True, check=False
        )

    missing = run("--mode", "check", "--timeout", "0.5", "--interval", "0.1")
    assert missing.returncode == 1
    assert "missing table" in missing.stderr
    assert run("--mode", "init").returncode == 0
    assert run("--mode", "init").returncode == 0  # idempotent
    assert run("--mode", "check", "--timeout", "1").returncode == 0
    assert run("--mode", "ping", "--timeout", "1").returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM subscriber").fetchone() == (20,)
        versions = dict(conn.execute("SELECT table_name, table_version FROM version"))
    assert versions == {"version": 1, "subscriber": 7, "dispatcher": 4}


UPLOAD_TOKEN = "upload-test-token-0123456789"


@pytest.fixture
def scenario_controller(tmp_path: Path) -> Iterator[str]:
    from scenario_controller.config import Settings
    from scenario_controller.main import create_app

    port = free_port()
    settings = Settings(
        scenario_controller_port=port,
        scenario_dir=tmp_path / "scenarios",
        runs_dir=tmp_path / "runs",
        sip_controller_url="",
        api_token=UPLOAD_TOKEN,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_upload_scenarios_stores_the_charts_scenarios_through_the_api(
    scenario_controller: str, tmp_path: Path
) -> None:
    scenarios = ROOT / "helm" / "ims-testbed" / "scenarios"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.csv").write_text(
        "caller;callee;wait_before_next_in_ms;seconds_since_start;arrival_rate_in_s\n700;0100;x;0;1\n"
    )
    script = [
        sys.executable,
        str(DOCKER / "upload_scenarios.py"),
        "--url",
        scenario_controller,
        "--timeout",
        "30",
    ]
    env = {**os.environ, "API_TOKEN": UPLOAD_TOKEN}
    ok = subprocess.run(
        [*script, str(scenarios)], env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stderr
    import httpx

    stored = {s["name"]: s for s in httpx.get(f"{scenario_controller}/scenarios").json()}
    expected = {p.stem for p in scenarios.glob("*.csv")}
    assert expected
    assert expected <= set(stored)
    assert all(stored[name]["pods_needed"] <= 2 for name in expected)  # the chart's 2 clients
    refused = subprocess.run(
        [*script, str(bad)], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 1
    assert "broken: refused (422)" in refused.stderr
    assert "broken" not in {s["name"] for s in httpx.get(f"{scenario_controller}/scenarios").json()}


def test_upload_scenarios_gives_up_when_the_controller_never_answers(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n")
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(DOCKER / "upload_scenarios.py"),
            "--url",
            f"http://127.0.0.1:{free_port()}",
            "--timeout",
            "1",
            str(tmp_path),
        ],
        env={**os.environ, "API_TOKEN": UPLOAD_TOKEN},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "did not answer" in result.stderr
    assert time.monotonic() - start < 10
