"""A short experiment on the real local testbed (Kamailio, analyzers, controller, pods), on
addresses of its own so it never meets the shared SIP system of the other tests."""

from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pytest
from support import own_addresses

from testbed.config import TestbedSettings
from testbed.experiment.runner import run_experiment
from testbed.experiment.spec import Experiment

pytestmark = pytest.mark.integration

EXPERIMENT = {
    "name": "e2e",
    "scenario": {
        "generate": {
            "shape": {"kind": "constant", "rate": 20, "duration_s": 20},
            "pods": 2,
            "phones_per_pod": 10,
        },
        "hold_ms": 100,
    },
    "proxies": {"count": 2, "cpu": "100m"},
    "qos": {"p0_ms": 1000, "window_s": 5},
    # the run's Prometheus scrapes every 2 s: two scrapes in every 4-5 s window
    "metrics": {"scrape_interval_s": 2},
    "drain_s": 2,
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_short_experiment_writes_a_complete_results_folder(tmp_path: Path):
    settings = TestbedSettings(**own_addresses(10))
    experiment = Experiment.model_validate(EXPERIMENT)
    phases: list[str] = []
    folder = run_experiment(
        experiment, None, tmp_path / "results", lambda phase, _row: phases.append(phase), settings
    )

    for name in (
        "experiment.json",
        "scenario.csv",
        "timeseries.csv",
        "response_times.csv",
        "calls.csv",
        "run_log.csv",
        "summary.json",
        "report.html",
    ):
        assert (folder / name).stat().st_size > 0, name
    assert folder.name.startswith("e2e-")

    series = _rows(folder / "timeseries.csv")
    assert float(series[-1]["t_s"]) - float(series[0]["t_s"]) >= 19  # covers the run
    assert all(row["proxies"] == "2" for row in series)
    busy = [row for row in series if row["sent_per_s"] and float(row["sent_per_s"]) > 0]
    assert len(busy) >= 15
    assert any(float(row["sip-proxy-0.cpu_mcpu"] or 0) > 0 for row in busy)
    # the whole machine's CPU from /proc/stat: busy while the load runs, steal a share
    assert all(0 < float(row["host_busy_pct"]) <= 100 for row in busy)
    assert all(0 <= float(row["host_steal_pct"]) <= 100 for row in busy)

    with (folder / "scenario.csv").open() as f:
        wanted = collections.Counter(
            (r["caller"], r["callee"]) for r in csv.DictReader(f, delimiter=";")
        )
    calls = _rows(folder / "calls.csv")
    assert collections.Counter((c["caller"], c["callee"]) for c in calls) == wanted
    assert sum(wanted.values()) == 400
    assert all(c["outcome"] == "succeeded" for c in calls)

    samples = _rows(folder / "response_times.csv")
    assert {s["proxy"] for s in samples} == {"sip-proxy-0", "sip-proxy-1"}
    assert {"invite_challenge", "invite_forward", "ok_forward"} <= {s["pair"] for s in samples}

    log = _rows(folder / "run_log.csv")
    assert len(log) == 400
    assert all(row["status"] == "sent" for row in log)

    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["calls_attempted"], summary["calls_succeeded"], summary["calls_failed"]) == (
        400,
        400,
        0,
    )
    assert summary["ser"] == 1.0
    assert summary["scaling_actions"] == 0
    assert summary["p99_violation_share"] == 0.0
    assert 0 < summary["worst_p99_ms"] < 1000
    assert summary["proxy_seconds"] == pytest.approx(2 * summary["duration_s"], rel=0.01)
    assert 0 <= summary["host_steal_pct"] <= summary["host_steal_max_pct"] <= 100

    page = (folder / "report.html").read_text()
    for figure in (
        "fig_a_invites.png",
        "fig_b_cpu.png",
        "fig_c_p99.png",
        "fig_d_ok.png",
        "fig_e_register.png",
        "fig_f_proxies.png",
    ):
        assert figure in page
        assert (folder / figure).stat().st_size > 1000
    assert "stopping the testbed" in phases
    # everything it started is gone: the testbed's state was cleared
    assert not (folder / "testbed" / "state.json").exists()
