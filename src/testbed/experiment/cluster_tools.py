"""kubectl and helm for `testbed run --kubeconfig`: the ones built with the local cluster when
they exist (matching its version), else those on PATH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testbed.cluster.layout import BUILD_SCRIPT
from testbed.experiment.cluster_runner import ClusterTools
from testbed.experiment.runner import ExperimentFailed


def cluster_tools(kubeconfig: Path) -> tuple[ClusterTools, bool]:
    """The tools, and whether the cluster is this project's single-node one (images loaded
    from the local engine under localhost/ims-testbed, no storage provisioner)."""
    if not kubeconfig.is_file():
        raise ExperimentFailed(f"--kubeconfig {kubeconfig}: no such file")
    built = Path(
        subprocess.run(
            [str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    tools: dict[str, Path] = {}
    for name in ("kubectl", "helm"):
        if (built / name).exists():
            tools[name] = built / name
        elif found := shutil.which(name):
            tools[name] = Path(found)
        else:
            raise ExperimentFailed(f"{name} not found: run `testbed cluster up` or install it")
    # a kubeconfig written by `testbed cluster up` sits in <cluster dir>/kubeconfig/
    local = (kubeconfig.resolve().parent.parent / "pki" / "ca.crt").exists()
    return ClusterTools(kubeconfig, tools["kubectl"], tools["helm"]), local
