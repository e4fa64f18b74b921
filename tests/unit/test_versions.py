"""One source for every version (README, "Versions"): the pyproject files. scripts/versions.py
writes them into compose, the chart and the Dockerfiles and checks those plus uv.lock, the
OpenAPI documents and the CHANGELOGs; the services report the installed package's version. Also
the licence: the LICENSE file and every pyproject declare MIT."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import ROOT

from service_kit.services import Service, discover

SCRIPT = ROOT / "scripts" / "versions.py"
SERVICES = discover(ROOT)
# what scripts/versions.py reads, relative to the repository's root
INPUTS = [
    "pyproject.toml",
    "uv.lock",
    "docker-compose.yml",
    "docker/*.Dockerfile",
    "libs/*/pyproject.toml",
    "services/*/pyproject.toml",
    "services/*/openapi.json",
    "services/*/CHANGELOG.md",
    "helm/ims-testbed/**/Chart.yaml",
    "helm/**/values.yaml",
]


def run(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def version(pyproject: Path) -> str:
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def set_version(pyproject: Path, new: str) -> None:
    text = pyproject.read_text()
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]*"$', f'version = "{new}"', text, count=1))


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files the script reads, copied as they are in the working tree."""
    for pattern in INPUTS:
        for path in ROOT.glob(pattern):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return tmp_path


def changed_lines(before: Path, after: Path) -> dict[str, list[tuple[str, str]]]:
    """file -> (old line, new line) for every line that differs between two trees."""
    changes: dict[str, list[tuple[str, str]]] = {}
    for old in sorted(p for p in before.rglob("*") if p.is_file()):
        relative = str(old.relative_to(before))
        a, b = old.read_text().splitlines(), (after / relative).read_text().splitlines()
        if a == b:
            continue
        assert len(a) == len(b), f"{relative}: lines added or removed"
        changes[relative] = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return changes


def test_the_repository_agrees_with_its_pyproject_files() -> None:
    result = run("--check")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"versions: \d+ places agree with the pyproject files\n", result.stdout)


def test_a_bumped_service_is_written_everywhere_it_appears(
    copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pristine = tmp_path_factory.mktemp("pristine")
    shutil.copytree(copy, pristine, dirs_exist_ok=True)
    old = version(copy / "services/csvgen/pyproject.toml")
    set_version(copy / "services/csvgen/pyproject.toml", "9.8.7")

    check = run("--check", root=copy)
    assert check.returncode == 1
    assert check.stdout == ""
    flagged = {line.split(":")[1].strip() for line in check.stderr.splitlines()}
    assert flagged == {
        "docker-compose.yml",
        "docker/csvgen.Dockerfile",
        "helm/ims-testbed/charts/csvgen/values.yaml",
        "helm/ims-testbed/charts/csvgen/Chart.yaml",
        "helm/ims-testbed/Chart.yaml",
        "uv.lock",
        "services/csvgen/openapi.json",
        "services/csvgen/CHANGELOG.md",
    }
    lock_line = (copy / "uv.lock").read_text().splitlines().index('name = "csvgen"') + 2
    assert (
        f"uv.lock:{lock_line}: package csvgen is {old}, "
        "services/csvgen/pyproject.toml says 9.8.7 (run uv lock)"
    ) in check.stderr
    # --check wrote nothing
    assert set(changed_lines(pristine, copy)) == {"services/csvgen/pyproject.toml"}

    written = run(root=copy)
    # what only other commands fix is still reported, with the command
    assert written.returncode == 1
    assert "versions: wrote docker-compose.yml\n" in written.stdout
    remaining = written.stderr.splitlines()
    assert len(remaining) == 3
    assert [r for r in remaining if "(run uv lock)" in r or "(run scripts/openapi.sh)" in r]
    assert [r for r in remaining if "CHANGELOG.md" in r and "9.8.7" in r]
    # exactly the csvgen tags and chart versions changed, nothing else on those lines
    changes = changed_lines(pristine, copy)
    assert set(changes) == {
        "services/csvgen/pyproject.toml",
        "docker-compose.yml",
        "docker/csvgen.Dockerfile",
        "helm/ims-testbed/charts/csvgen/values.yaml",
        "helm/ims-testbed/charts/csvgen/Chart.yaml",
        "helm/ims-testbed/Chart.yaml",
    }
    for lines in changes.values():
        for before, after in lines:
            assert before.replace(old, "9.8.7") == after
    assert changes["docker-compose.yml"] == [
        (f"    image: ims-testbed/csvgen:{old}", "    image: ims-testbed/csvgen:9.8.7")
    ]
    assert [a for _, a in changes["helm/ims-testbed/charts/csvgen/Chart.yaml"]] == [
        "version: 9.8.7",
        'appVersion: "9.8.7"',
    ]

    # what uv lock, scripts/openapi.sh and a changelog entry would do: then all agree
    for path, pattern in [
        ("uv.lock", r'(name = "csvgen"\nversion = ")[^"]*'),
        ("services/csvgen/openapi.json", r'("info": \{[^{}]*?"version": ")[^"]*'),
        ("services/csvgen/CHANGELOG.md", r"(## \[)(?!Unreleased)[^\]]*"),
    ]:
        text = (copy / path).read_text()
        (copy / path).write_text(re.sub(pattern, r"\g<1>9.8.7", text, count=1))
    assert run("--check", root=copy).returncode == 0


def test_the_kamailio_image_and_its_charts_follow_the_root_pyproject(copy: Path) -> None:
    set_version(copy / "pyproject.toml", "3.0.0")
    run(root=copy)
    compose = (copy / "docker-compose.yml").read_text()
    kamailio = re.findall(r"image: ims-testbed/kamailio:(\S+)", compose)
    assert len(kamailio) >= 2
    assert set(kamailio) == {"3.0.0"}
    # the services' images keep their own versions
    controller = version(copy / "services/sip-controller/pyproject.toml")
    assert f"image: ims-testbed/sip-controller:{controller}" in compose
    for chart in ["", "charts/common/", "charts/sip-loadb/", "charts/sip-proxy/"]:
        text = (copy / f"helm/ims-testbed/{chart}Chart.yaml").read_text()
        assert re.search(r"(?m)^version: 3\.0\.0$", text), chart or "umbrella"
    assert "ARG SERVICE_VERSION=3.0.0" in (copy / "docker/kamailio.Dockerfile").read_text()


def test_a_place_that_vanished_is_reported(copy: Path) -> None:
    values = copy / "helm/ims-testbed/charts/csvgen/values.yaml"
    values.write_text(re.sub(r'(?m)^  tag: "[^"]*"\n', "", values.read_text(), count=1))
    result = run("--check", root=copy)
    assert result.returncode == 1
    assert "versions: helm/ims-testbed/charts/csvgen/values.yaml: no tag of repository csvgen" in (
        result.stderr
    )


def test_bad_input_is_one_line_naming_the_file(copy: Path) -> None:
    pyproject = copy / "services/csvgen/pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "', 'versio = "', 1))
    result = run("--check", root=copy)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "versions: services/csvgen/pyproject.toml: no [project] version"
    )
    assert result.stderr.count("\n") == 1

    pyproject.write_text(pyproject.read_text().replace('versio = "', 'version = "', 1))
    (copy / "helm/ims-testbed/charts/extra").mkdir()
    (copy / "helm/ims-testbed/charts/extra/Chart.yaml").write_text("version: 1.0.0\n")
    result = run("--check", root=copy)
    assert result.returncode == 2
    assert result.stderr == "versions: chart extra has no entry in CHARTS (scripts/versions.py)\n"


def test_list_names_each_image_and_chart_with_its_source() -> None:
    result = run("--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for service in SERVICES:
        pyproject = f"services/{service.name}/pyproject.toml"
        assert (
            f"image ims-testbed/{service.name}:{version(ROOT / pyproject)}  ({pyproject})" in lines
        )
    assert (
        f"image ims-testbed/kamailio:{version(ROOT / 'pyproject.toml')}  (pyproject.toml)" in lines
    )


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_a_service_reports_its_pyproject_version(service: Service) -> None:
    pyproject = version(service.directory / "pyproject.toml")
    assert importlib.metadata.version(service.name) == pyproject, "run uv sync"
    assert importlib.import_module(service.package).__version__ == pyproject


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_a_service_has_a_changelog_with_an_unreleased_section(service: Service) -> None:
    text = (service.directory / "CHANGELOG.md").read_text()
    assert text.startswith(f"# Changelog: {service.name}\n")
    headings = re.findall(r"(?m)^## \[([^\]]+)\]", text)
    # newest first: Unreleased, then the version the images carry (--check holds it to that)
    assert headings[:2] == ["Unreleased", version(service.directory / "pyproject.toml")]


def test_the_licence_is_mit_everywhere_it_is_declared() -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n\nCopyright (c) 2026 The IMS scaling testbed authors\n")
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in licence
    members = [
        ROOT / "pyproject.toml",
        *ROOT.glob("libs/*/pyproject.toml"),
        *ROOT.glob("services/*/pyproject.toml"),
    ]
    undeclared = [
        str(p.relative_to(ROOT))
        for p in members
        if tomllib.loads(p.read_text())["project"].get("license") != "MIT"
    ]
    assert undeclared == []
