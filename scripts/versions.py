#!/usr/bin/env python3
"""One source for every version: the pyproject.toml files. Writes their versions everywhere else
they appear, or checks that they do.

    scripts/versions.py            write them into compose, the chart and the Dockerfiles
    scripts/versions.py --check    change nothing; exit 1 listing every place that disagrees
    scripts/versions.py --list     print each image and chart with its version

A Python service's image, chart and API carry services/<name>/pyproject.toml's version; the
Kamailio image (the repository's configs) and the charts around it (umbrella, common, sip-loadb,
sip-proxy) the root pyproject.toml's. The database and prometheus charts carry the version of
the Debian package their image holds (their own Chart.yaml says it; dependencies follow it).

This script writes: docker-compose.yml's image tags, every values.yaml's image tags, every
Chart.yaml's version, appVersion and dependency versions, the Dockerfiles' SERVICE_VERSION
default (what a compose build labels the image with). It only checks, and names the command
that fixes them: uv.lock (`uv lock`), services/*/openapi.json (`scripts/openapi.sh`) and each
service's CHANGELOG.md (its newest release must be the version). docker/build.sh reads the
pyproject files itself; the services' __version__ reads the installed package's metadata.
Standard library only (Python 3.11+), like docker/build.sh's version lookup.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT_PYPROJECT = "pyproject.toml"
REGISTRY = "ims-testbed"
UMBRELLA = "helm/ims-testbed"
# chart -> the pyproject whose version it carries; None: its own Chart.yaml's (a Debian
# package's version). A chart missing here is an error, so a new one gets a deliberate entry.
CHARTS: dict[str, str | None] = {
    "ims-testbed": ROOT_PYPROJECT,
    "common": ROOT_PYPROJECT,
    "sip-loadb": ROOT_PYPROJECT,
    "sip-proxy": ROOT_PYPROJECT,
    "sip-controller": "services/sip-controller/pyproject.toml",
    "scenario-controller": "services/scenario-controller/pyproject.toml",
    "sip-client": "services/sip-client/pyproject.toml",
    "csvgen": "services/csvgen/pyproject.toml",
    "database": None,
    "prometheus": None,
}


# images docker-compose.yml does not run, each with the reason; every other image must be there
NOT_IN_COMPOSE = {
    "policy-controller": "it sets a workload's scale through a Kubernetes API: the chart runs it",
}


class VersionError(Exception):
    """A file this script needs is missing or unreadable (one line, exit 2)."""


@dataclass(frozen=True)
class Pin:
    """One kind of place a version appears: every match of `pattern` in `path` (group `v` is
    the version) must be `want`. `fix` empty: this script writes it; else the command that does."""

    path: str
    what: str
    want: str
    source: str
    pattern: re.Pattern[str]
    fix: str = ""
    first_only: bool = False


@dataclass(frozen=True)
class Mismatch:
    pin: Pin
    line: int  # 0: the file is missing
    found: str | None  # None: the place is not in the file at all

    def __str__(self) -> str:
        pin = self.pin
        how = f"run {pin.fix}" if pin.fix else "scripts/versions.py writes it"
        if self.line == 0:
            return f"{pin.path}: missing (want {pin.what} {pin.want} from {pin.source})"
        if self.found is None:
            return f"{pin.path}: no {pin.what} found (want {pin.want} from {pin.source})"
        return (
            f"{pin.path}:{self.line}: {pin.what} is {self.found}, {pin.source} says "
            f"{pin.want} ({how})"
        )


def project_version(root: Path, pyproject: str) -> str:
    path = root / pyproject
    try:
        project = tomllib.loads(path.read_text())["project"]
        return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise VersionError(f"{pyproject}: no [project] version ({exc})") from exc


def project_name(root: Path, pyproject: str) -> str:
    return str(tomllib.loads((root / pyproject).read_text())["project"]["name"])


def services(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("services/*/pyproject.toml"))


def images(root: Path) -> dict[str, str]:
    """The project's images built from this repository -> the pyproject carrying their version."""
    found = {name: f"services/{name}/pyproject.toml" for name in services(root)}
    return found | {"kamailio": ROOT_PYPROJECT}


def chart_dirs(root: Path) -> dict[str, Path]:
    umbrella = root / UMBRELLA
    charts = {"ims-testbed": umbrella}
    charts |= {p.parent.name: p.parent for p in sorted(umbrella.glob("charts/*/Chart.yaml"))}
    unknown = sorted(set(charts) - set(CHARTS))
    if unknown:
        raise VersionError(f"chart {unknown[0]} has no entry in CHARTS (scripts/versions.py)")
    return charts


def chart_versions(root: Path) -> dict[str, tuple[str, str]]:
    """chart -> (its version, where that comes from)."""
    versions: dict[str, tuple[str, str]] = {}
    for name, directory in chart_dirs(root).items():
        source = CHARTS[name]
        if source is not None:
            versions[name] = (project_version(root, source), source)
            continue
        chart_yaml = directory / "Chart.yaml"
        match = re.search(r"(?m)^version: (\S+)$", chart_yaml.read_text())
        if match is None:
            raise VersionError(f"{chart_yaml.relative_to(root)}: no version line")
        versions[name] = (match[1], str(chart_yaml.relative_to(root)))
    return versions


def pins(root: Path) -> list[Pin]:
    result: list[Pin] = []
    image_versions = {
        image: (project_version(root, src), src) for image, src in images(root).items()
    }
    for image, (version, source) in image_versions.items():
        name = re.escape(image)
        if image not in NOT_IN_COMPOSE:
            result.append(
                Pin(
                    "docker-compose.yml",
                    f"image {REGISTRY}/{image}",
                    version,
                    source,
                    re.compile(
                        rf"(?m)^\s*image: {REGISTRY}/{name}:(?P<v>[^\s\"-]+)(?:-debug)?\s*$"
                    ),
                )
            )
        result.append(
            Pin(
                f"docker/{image}.Dockerfile",
                "ARG SERVICE_VERSION",
                version,
                source,
                re.compile(r"(?m)^ARG SERVICE_VERSION=(?P<v>\S+)$"),
            )
        )
        for values in sorted((root / "helm").rglob("values.yaml")):
            text = values.read_text()
            if not re.search(rf"(?m)^\s*repository: {name}$", text):
                continue
            result.append(
                Pin(
                    str(values.relative_to(root)),
                    f"tag of repository {image}",
                    version,
                    source,
                    re.compile(rf'(?m)^(\s*)repository: {name}\n\1tag: "?(?P<v>[^"\s]*)"?$'),
                )
            )
    charts = chart_versions(root)
    for name, directory in chart_dirs(root).items():
        path = str((directory / "Chart.yaml").relative_to(root))
        version, source = charts[name]
        result.append(
            Pin(path, "chart version", version, source, re.compile(r"(?m)^version: (?P<v>\S+)$"))
        )
        # a library chart has no application; a Debian package's chart says its own appVersion
        if name != "common" and CHARTS[name] is not None:
            result.append(
                Pin(
                    path,
                    "appVersion",
                    version,
                    source,
                    re.compile(r'(?m)^appVersion: "(?P<v>[^"]*)"$'),
                )
            )
        text = (directory / "Chart.yaml").read_text()
        for dependency in re.findall(r"(?m)^  - name: (\S+)$", text):
            if dependency not in charts:
                raise VersionError(f"{path}: dependency {dependency} is no chart in {UMBRELLA}")
            dep_version, dep_source = charts[dependency]
            result.append(
                Pin(
                    path,
                    f"dependency {dependency}'s version",
                    dep_version,
                    dep_source,
                    re.compile(
                        rf"(?m)^  - name: {re.escape(dependency)}\n    version: (?P<v>\S+)$"
                    ),
                )
            )
    member_files = [*root.glob("libs/*/pyproject.toml"), *root.glob("services/*/pyproject.toml")]
    members = [ROOT_PYPROJECT, *sorted(str(p.relative_to(root)) for p in member_files)]
    for member in members:
        name = re.escape(project_name(root, member))
        result.append(
            Pin(
                "uv.lock",
                f"package {project_name(root, member)}",
                project_version(root, member),
                member,
                re.compile(
                    rf'(?m)^name = "{name}"\nversion = "(?P<v>[^"]*)"\nsource = \{{ editable'
                ),
                fix="uv lock",
            )
        )
    for service in services(root):
        source = f"services/{service}/pyproject.toml"
        version = project_version(root, source)
        result.append(
            Pin(
                f"services/{service}/openapi.json",
                "info.version",
                version,
                source,
                re.compile(r'(?s)"info": \{[^{}]*?"version": "(?P<v>[^"]*)"'),
                fix="scripts/openapi.sh",
            )
        )
        result.append(
            Pin(
                f"services/{service}/CHANGELOG.md",
                "release heading (## [x.y.z])",
                version,
                source,
                re.compile(r"(?m)^## \[(?!Unreleased\])(?P<v>[^\]]+)\]"),
                fix=f"an entry for {version} in services/{service}/CHANGELOG.md",
                first_only=True,
            )
        )
    return result


def mismatches(root: Path, pin: Pin) -> list[Mismatch]:
    path = root / pin.path
    if not path.is_file():
        return [Mismatch(pin, 0, None)]
    text = path.read_text()
    matches = list(pin.pattern.finditer(text))[: 1 if pin.first_only else None]
    if not matches:
        return [Mismatch(pin, 1, None)]
    return [
        Mismatch(pin, text.count("\n", 0, m.start("v")) + 1, m["v"])
        for m in matches
        if m["v"] != pin.want
    ]


def write(root: Path, pin: Pin) -> bool:
    """Set every version of a writable pin; True when the file changed."""
    path = root / pin.path
    if pin.fix or not path.is_file():
        return False
    text = path.read_text()

    def replace(m: re.Match[str]) -> str:
        start, end = m.start("v") - m.start(), m.end("v") - m.start()
        return m[0][:start] + pin.want + m[0][end:]

    new = pin.pattern.sub(replace, text)
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/versions.py",
        description="Write or check the versions the pyproject files give to images and charts.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="change nothing; exit 1 on any drift")
    mode.add_argument("--list", action="store_true", help="print each image and chart's version")
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parent.parent, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        if args.list:
            for image, source in images(root).items():
                print(f"image {REGISTRY}/{image}:{project_version(root, source)}  ({source})")
            for chart, (version, source) in chart_versions(root).items():
                print(f"chart {chart}-{version}  ({source})")
            return 0
        all_pins = pins(root)
        if not args.check:
            changed = sorted({pin.path for pin in all_pins if write(root, pin)})
            for path in changed:
                print(f"versions: wrote {path}")
        problems = [str(m) for pin in all_pins for m in mismatches(root, pin)]
    except (VersionError, OSError) as exc:
        print(f"versions: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"versions: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"versions: {len(all_pins)} places agree with the pyproject files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
