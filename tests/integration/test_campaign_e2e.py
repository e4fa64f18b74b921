"""`testbed campaign` on the real local testbed, through the CLI, on addresses of its own: two
candidates (one proxy, two proxies) twice each, interleaved, then compared."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import own_addresses_env

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "testbed.cli"]


def _sent_at(folder: Path) -> list[str]:
    with (folder / "scenario.csv").open() as f:
        return [row[0] for row in csv.reader(f, delimiter=";")][1:]


def test_campaign_plays_candidates_interleaved_and_compares_them(tmp_path: Path) -> None:
    env = own_addresses_env(90, tmp_path / "state")
    (tmp_path / "short.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "short",
                "scenario": {
                    "generate": {
                        "shape": {"kind": "constant", "rate": 5, "duration_s": 10},
                        "arrivals": "poisson",
                        "seed": 3,
                        "pods": 2,
                        "phones_per_pod": 5,
                    },
                    "hold_ms": 100,
                },
                "proxies": {"count": 1},
                "qos": {"p0_ms": 1000, "window_s": 5},
                "metrics": {"scrape_interval_s": 2},
                "drain_s": 2,
            }
        )
    )
    campaign = tmp_path / "camp.yaml"
    campaign.write_text(
        yaml.safe_dump(
            {
                "name": "camp",
                "repeat": 2,
                "candidates": [
                    {"name": "one", "experiment": "short.yaml"},
                    {"name": "two", "experiment": "short.yaml", "set": {"proxies.count": 2}},
                ],
            }
        )
    )
    done = subprocess.run(
        [*CLI, "campaign", str(campaign), "--results", str(tmp_path / "results")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == (tmp_path / "results").resolve()
    record = json.loads((folder / "campaign.json").read_text())
    assert [(p["candidate"], p["repetition"], p["status"]) for p in record["played"]] == [
        ("one", 1, "completed"),
        ("two", 1, "completed"),
        ("one", 2, "completed"),
        ("two", 2, "completed"),
    ]
    started = [p["started"] for p in record["played"]]
    assert started == sorted(started)
    summaries = {
        (name, i): json.loads((folder / name / f"run-{i}" / "summary.json").read_text())
        for name in ("one", "two")
        for i in (1, 2)
    }
    # each run served its calls with the candidate's proxies; repetition i: the same seeds
    for (name, i), summary in summaries.items():
        assert summary["experiment"] == name
        assert summary["calls_failed"] == 0
        assert summary["calls_succeeded"] > 0
        assert summary["max_proxies"] == (1 if name == "one" else 2)
        assert (summary["seed"], summary["scenario_seed"]) == (i - 1, 3 + i - 1)
    for i in (1, 2):
        assert _sent_at(folder / "one" / f"run-{i}") == _sent_at(folder / "two" / f"run-{i}")
    assert _sent_at(folder / "one" / "run-1") != _sent_at(folder / "one" / "run-2")
    for name in ("one", "two"):
        stats = json.loads((folder / name / "group_summary.json").read_text())
        assert stats["counted"] == 2
    assert (folder / "compare" / "compare.html").exists()
    with (folder / "compare" / "compare.csv").open() as f:
        rows = list(csv.DictReader(f))
    # one row per candidate and figure, the first candidate the reference
    assert {row["entry"] for row in rows} == {"one", "two"}
    assert [row["entry"] for row in rows if row["figure"] == "proxy_seconds"] == ["one", "two"]
    assert "(n=2)" in done.stdout

    # resuming a campaign that played everything plays nothing and compares again
    again = subprocess.run(
        [*CLI, "campaign", "--resume", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert Path(again.stdout.strip().splitlines()[-1]) == folder
    assert len(json.loads((folder / "campaign.json").read_text())["played"]) == 4
