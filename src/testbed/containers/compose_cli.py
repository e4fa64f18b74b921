"""`testbed compose up | down | status`: docker-compose.yml on this host (ComposeProject).

Host ports come from the environment as compose reads them (LB_SIP_HOST_PORT,
SIP_CONTROLLER_HOST_PORT, SCENARIO_CONTROLLER_HOST_PORT, CSVGEN_HOST_PORT, PROMETHEUS_HOST_PORT),
e.g. beside a local-mode testbed that holds 5060 and 8000.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from testbed.containers.compose import ComposeError, ComposeProject
from testbed.containers.engine import ROOT, EngineError, engine

compose_app = typer.Typer(
    help="The testbed as containers on this host (docker-compose.yml; podman or Docker).",
    no_args_is_help=True,
)
console = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)

Project = Annotated[str, typer.Option("--project", "-p", help="compose project name")]
File = Annotated[Path, typer.Option("--file", "-f", help="the compose file", exists=True)]
Profiles = Annotated[
    list[str] | None, typer.Option("--profile", help="enable a profile (repeatable): cpu, grafana")
]


def _project(
    project: str, file: Path, profiles: list[str] | None, env: dict[str, str] | None = None
) -> ComposeProject:
    try:
        return ComposeProject(engine(), file.resolve(), project, tuple(profiles or ()), env)
    except (EngineError, ComposeError) as exc:
        err.print(f"[red]testbed compose:[/red] {exc}")
        raise typer.Exit(1) from None


@compose_app.command()
def up(
    project: Project = "ims-testbed",
    file: File = ROOT / "docker-compose.yml",
    profile: Profiles = None,
    timeout: Annotated[float, typer.Option(help="seconds for everything to be healthy")] = 300.0,
) -> None:
    """Start every service in dependency order; return once all are healthy and one-shots done.

    The project's secrets come from .env beside the compose file: generated on first use
    (scripts/compose-env.sh) unless the environment already carries API_TOKEN.
    """
    env_file = file.resolve().parent / ".env"
    if "API_TOKEN" not in os.environ and not env_file.exists():
        ensure_env_file(env_file)
        err.print(f"[dim]secrets generated in {env_file} (mode 0600)[/dim]")
    compose = _project(project, file, profile)
    start = time.monotonic()
    try:
        compose.up(timeout, log=lambda message: err.print(f"[dim]{message}[/dim]"))
    except (EngineError, ComposeError) as exc:
        err.print(f"[red]testbed compose up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{project}: up in {time.monotonic() - start:.0f} s")


@compose_app.command()
def down(
    project: Project = "ims-testbed",
    file: File = ROOT / "docker-compose.yml",
    profile: Profiles = None,
) -> None:
    """Remove the project's containers, networks, volumes and host network changes."""
    compose = _project(project, file, profile, _placeholders_for_missing_secrets(file.resolve()))
    start = time.monotonic()
    try:
        left = compose.down()
    except EngineError as exc:
        err.print(f"[red]testbed compose down failed:[/red] {exc}")
        raise typer.Exit(1) from None
    if compose.restored:
        for note in compose.restored.notes:
            err.print(f"[yellow]host network:[/yellow] {note}")
        removed = len(compose.restored.removed_rules) + len(compose.restored.removed_chains)
        if removed:
            err.print(f"[dim]host network: removed {removed} iptables rules and chains[/dim]")
    remaining = {kind: names for kind, names in left.items() if names}
    if remaining:
        for kind, names in remaining.items():
            err.print(f"[red]{project}: {kind} left:[/red] {', '.join(names)}")
        raise typer.Exit(1)
    console.print(f"{project}: down in {time.monotonic() - start:.0f} s, nothing left")


def ensure_env_file(path: Path) -> None:
    """Write the compose secrets to `path` with scripts/compose-env.sh (never overwrites)."""
    script = ROOT / "scripts" / "compose-env.sh"
    done = subprocess.run([str(script), str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        err.print(f"[red]testbed compose:[/red] {script} failed: {done.stderr.strip()}")
        raise typer.Exit(1)


def _placeholders_for_missing_secrets(file: Path) -> dict[str, str]:
    """Removing needs no secret, but compose interpolates the whole file first and refuses a
    required variable (${VAR:?...}) that is unset: without an .env, give those a placeholder
    (in the compose tool's environment only)."""
    if (file.parent / ".env").exists():
        return {}
    required = re.findall(r"\$\{(\w+):\?", file.read_text())
    return {name: "unused-by-down" for name in required if name not in os.environ}


def env_file_value(path: Path, key: str) -> str | None:
    """`key`'s value in a compose .env file (KEY=VALUE lines, # comments, optional quotes)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == key:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value
    return None


@compose_app.command()
def token(file: File = ROOT / "docker-compose.yml") -> None:
    """Print the project's API token, as compose resolves it: API_TOKEN from the environment,
    else from .env beside the compose file (scripts/compose-env.sh writes it)."""
    env_file = file.resolve().parent / ".env"
    value = os.environ.get("API_TOKEN") or env_file_value(env_file, "API_TOKEN")
    if not value:
        err.print(f"testbed compose token: no API_TOKEN in {env_file}; run scripts/compose-env.sh")
        raise typer.Exit(1)
    typer.echo(value)


@compose_app.command()
def status(
    project: Project = "ims-testbed",
    file: File = ROOT / "docker-compose.yml",
    profile: Profiles = None,
) -> None:
    """Every service with its state and health (exit 1 unless all are as they should be)."""
    compose = _project(project, file, profile)
    rows = compose.status()
    table = Table(title=f"compose project {project}")
    for column in ("service", "container", "state", "health"):
        table.add_column(column)
    for row in rows:
        colour = "green" if row.ok else "red"
        table.add_row(
            row.service,
            compose.container(row.service),
            f"[{colour}]{row.state}[/{colour}]",
            f"[{colour}]{row.health}[/{colour}]",
        )
    console.print(table)
    if not all(row.ok for row in rows):
        raise typer.Exit(1)
