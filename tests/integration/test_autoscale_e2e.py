"""The local autoscaler on the real testbed: a rising load makes the HPA (on the load balancer's
INVITE rate) add a proxy, a falling load removes it again, and no call fails on the way."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from support import own_addresses

from testbed.config import TestbedSettings
from testbed.experiment.runner import run_experiment
from testbed.experiment.spec import Experiment

pytestmark = pytest.mark.integration

HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "sip-proxy"},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "sip-proxy"},
        "minReplicas": 1,
        "maxReplicas": 3,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {"name": "sip_invites_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "8"},
                },
            }
        ],
        "behavior": {
            "scaleUp": {"stabilizationWindowSeconds": 0},
            "scaleDown": {"stabilizationWindowSeconds": 6},
        },
    },
}

EXPERIMENT = {
    "name": "autoscale-e2e",
    "scenario": {
        "generate": {
            # 4/s, then 14/s (two proxies at 8/s each), then 2/s (one again)
            "shape": {"kind": "table", "points": [[0, 4], [20, 14], [50, 2]], "duration_s": 80},
            "pods": 2,
            "phones_per_pod": 20,
        },
        "hold_ms": 200,
    },
    "proxies": {"count": 1},
    "autoscale": {
        "policy": "hpa",
        "hpa": HPA,
        "sync_period_s": 2,
        "scrape_interval_s": 2,
        "metric_window_s": 4,
        "startup_delay_s": 1,
    },
    "qos": {"p0_ms": 1000, "window_s": 5},
    # the run's Prometheus scrapes every 2 s: two scrapes in every 4-5 s window
    "metrics": {"scrape_interval_s": 2},
    "drain_s": 3,
}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_rising_load_adds_a_proxy_and_falling_load_removes_it(tmp_path: Path):
    settings = TestbedSettings(**own_addresses(13))
    experiment = Experiment.model_validate(EXPERIMENT)
    messages: list[str] = []
    folder = run_experiment(
        experiment,
        None,
        tmp_path / "results",
        lambda phase, _row: messages.append(phase),
        settings,
    )

    series = _rows(folder / "timeseries.csv")
    counts = [int(r["proxies"]) for r in series]
    assert counts[0] == 1
    peak = counts.index(max(counts))
    assert max(counts) >= 2, counts
    assert min(counts[peak:]) == 1, counts  # back down once the load fell
    # it went up while the load was high, after the rise at 20 s
    up_at = float(series[peak]["t_s"])
    assert 20 < up_at < 50, up_at
    assert any(r.get("desired_proxies") for r in series)

    log = _rows(folder / "autoscaler.csv")
    changes = [(int(r["target_before"]), int(r["target_after"])) for r in log]
    assert any(after > before for before, after in changes)
    assert any(after < before for before, after in changes)
    assert all("External/sip_invites_per_second" in r["reason"] for r in log if r["reason"])
    assert any("autoscaler: 1 -> 2" in m for m in messages)

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["calls_failed"] == 0
    assert summary["calls_undeliverable"] == 0
    assert summary["calls_attempted"] == summary["calls_succeeded"] > 0
    assert summary["scaling_actions"] >= 2
    # the LB's new-INVITE rate followed the offered load at its top step
    busy = [
        float(r["lb_invites_per_s"])
        for r in series
        if r["lb_invites_per_s"] and 30 <= float(r["t_s"]) <= 48
    ]
    assert 10 <= sum(busy) / len(busy) <= 18
    # every proxy the run started is stopped, the second one included
    assert not (folder / "testbed" / "state.json").exists()
