"""`testbed run EXPERIMENT --kubeconfig`: the chart deployed with the experiment's values, the
scenario replayed through the scenario controller, rows sampled from the cluster's Prometheus,
and the same results folder as a local run; the release and its namespace gone afterwards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from testbed.cluster.cluster import Cluster
from testbed.cluster.layout import REPO_ROOT
from testbed.experiment.cluster_runner import run_on_cluster
from testbed.experiment.cluster_tools import cluster_tools
from testbed.experiment.loop import Running
from testbed.experiment.spec import load

EXPERIMENT = REPO_ROOT / "experiments" / "cluster-demo.yaml"


@pytest.mark.timeout(900)
def test_the_demo_experiment_runs_on_the_cluster_into_a_local_style_results_folder(
    cluster: Cluster, tmp_path: Path
) -> None:
    experiment = load(EXPERIMENT)
    tools, local_images = cluster_tools(cluster.kubeconfig)
    assert local_images
    phases: list[str] = []

    def progress(phase: str, running: Running | None) -> None:
        if not phases or phases[-1] != phase:
            phases.append(phase)
            print(phase)

    folder = run_on_cluster(experiment, EXPERIMENT, tmp_path, progress, tools, local_images)
    for name in (
        "experiment.yaml",
        "scenario.csv",
        "timeseries.csv",
        "response_times.csv",
        "calls.csv",
        "run_log.csv",
        "summary.json",
        "report.html",
        "chart-values.yaml",
        "pods.txt",
    ):
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "summary.json").read_text())
    print(json.dumps(summary, indent=2))
    # 5, 10 and 15 calls/s for 30 s each
    assert summary["platform"] == "kubernetes"
    assert summary["calls_succeeded"] == 900
    assert summary["calls_failed"] == 0
    assert summary["calls_undeliverable"] == 0
    assert summary["max_proxies"] == 2
    assert summary["windows"] > 60
    assert summary["worst_p99_ms"] is not None
    assert summary["worst_p99_ms"] < 1000
    with (folder / "timeseries.csv").open() as f:
        rows = list(csv.DictReader(f))
    # the local sampler's columns, proxy pods named as in local mode
    assert {
        "t_s",
        "proxies",
        "p99_ms",
        "lb_invites_per_s",
        "sent_per_s",
        "sip-proxy-0.p99_ms",
        "sip-proxy-1.cpu_mcpu",
        "sip-proxy-1.invites_per_s",
    } <= set(rows[0])
    running = [r for r in rows if r.get("run_state") == "running" and r["lb_invites_per_s"]]
    assert running
    # the LB's new INVITEs per second follow the offered load (5 -> 15/s)
    top = max(float(r["lb_invites_per_s"]) for r in running)
    assert 10 <= top <= 25, top
    cpu = [float(r["sip-proxy-0.cpu_mcpu"]) for r in rows if r["sip-proxy-0.cpu_mcpu"]]
    assert cpu
    assert max(cpu) > 1
    with (folder / "response_times.csv").open() as f:
        pairs = {row["pair"] for row in csv.DictReader(f)}
    assert {"invite_challenge", "invite_forward", "ok_forward"} <= pairs
    # nothing of the run is left in the cluster
    namespaces = cluster.kubectl("get", "namespaces", "-o", "name").stdout
    assert json.loads((folder / "summary.json").read_text())["namespace"] not in namespaces
    assert "removing the release" in " ".join(phases)
