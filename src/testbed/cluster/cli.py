"""`testbed cluster up | status | down | load`: the single-node Kubernetes cluster."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from testbed.cluster.cluster import Cluster, ClusterError
from testbed.cluster.images import ImageError, built_images, load

cluster_app = typer.Typer(
    help="A real single-node Kubernetes (1.37) built from the Go module proxy, on this machine.",
    no_args_is_help=True,
)
console = Console(width=None if Console().is_terminal else 160)
err = Console(stderr=True)


def _cluster() -> Cluster:
    return Cluster(say=lambda message: err.print(f"[dim]{message}[/dim]"))


@cluster_app.command()
def up(
    images: Annotated[
        bool, typer.Option(help="build the testbed's images and load them into the cluster")
    ] = True,
) -> None:
    """Build (once, cached outside the clone) and start the cluster; print the kubeconfig."""
    cluster = _cluster()
    try:
        kubeconfig = cluster.up()
        if images:
            _load(cluster, build=True)
    except (ClusterError, ImageError) as exc:
        err.print(f"[red]testbed cluster up failed:[/red] {exc}")
        raise typer.Exit(1) from None
    # the last line: the kubeconfig's path, for KUBECONFIG=$(testbed cluster up | tail -1)
    print(kubeconfig)


def _load(cluster: Cluster, build: bool) -> None:
    if build:
        import subprocess

        from testbed.cluster.layout import REPO_ROOT

        subprocess.run([str(REPO_ROOT / "docker" / "build.sh")], check=True, stdout=sys.stderr)
    copied = load(cluster, built_images())
    if copied:
        seconds = max(copied.values())
        err.print(f"[dim]cluster: copied {', '.join(copied)} in {seconds:.1f} s[/dim]")
    else:
        err.print("[dim]cluster: every image is already in the cluster[/dim]")


@cluster_app.command("load")
def load_images(
    build: Annotated[bool, typer.Option(help="run docker/build.sh first")] = True,
) -> None:
    """Copy the testbed's images into the cluster's containerd (changed ones only)."""
    cluster = _cluster()
    if not cluster.is_up():
        err.print("[red]the cluster is not up[/red] (testbed cluster up)")
        raise typer.Exit(1)
    _load(cluster, build)


@cluster_app.command()
def status(
    output: Annotated[str, typer.Option("-o", help="table or json")] = "table",
) -> None:
    """Every component with its PID and whether it runs; the node and pods when up."""
    cluster = _cluster()
    rows = cluster.status()
    if output == "json":
        print(
            json.dumps(
                {
                    "kubeconfig": str(cluster.kubeconfig),
                    "components": [
                        {"name": r.name, "pid": r.pid, "running": r.running, "log": str(r.log)}
                        for r in rows
                    ],
                },
                indent=2,
            )
        )
    else:
        table = Table("component", "pid", "running", "log")
        for r in rows:
            table.add_row(r.name, str(r.pid or "-"), "yes" if r.running else "no", str(r.log))
        console.print(table)
        if cluster.is_up():
            console.print(f"KUBECONFIG={cluster.kubeconfig}")
            console.print(cluster.kubectl("get", "nodes,pods", "-A", "-o", "wide").stdout)
    if not all(r.running for r in rows):
        raise typer.Exit(1)


@cluster_app.command()
def down() -> None:
    """Stop exactly what `up` started and restore what it changed on the host."""
    report = _cluster().down()
    for key, value in report.items():
        console.print(f"{key}: {value}")
    left = [k for k in ("mounts_left", "cgroups_left", "iptables_failures") if report.get(k)]
    if left:
        raise typer.Exit(1)
