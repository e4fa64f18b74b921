"""`testbed run --repeat 2` and `testbed benchmark --repeat 2` on the real local testbed, through
the CLI, on addresses of their own."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import own_addresses_env

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "testbed.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return own_addresses_env(50, tmp_path / "state")


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _sent_at(folder: Path) -> list[str]:
    with (folder / "scenario.csv").open() as f:
        return [row[0] for row in csv.reader(f, delimiter=";")][1:]


def test_run_repeat_2_gives_two_seeded_runs_and_the_group_summary(
    tmp_path: Path, env: dict[str, str]
):
    spec = tmp_path / "rep.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "rep",
                "scenario": {
                    "generate": {
                        "shape": {"kind": "constant", "rate": 5, "duration_s": 15},
                        "arrivals": "poisson",
                        "seed": 7,
                        "pods": 2,
                        "phones_per_pod": 5,
                    },
                    "hold_ms": 100,
                },
                "proxies": {"count": 1},
                "qos": {"p0_ms": 1000, "window_s": 5},
                "metrics": {"scrape_interval_s": 2},  # two scrapes in the 5 s window
                "drain_s": 2,
            }
        )
    )
    done = _cli(["run", str(spec), "--repeat", "2", "--results", str(tmp_path / "results")], env)
    # 0: both completed and no call failed (3 if one had)
    assert done.returncode == 0, done.stdout + done.stderr
    # stdout is a pipe: progress lines every 5 s of run time instead of the live view
    line = re.compile(
        r"t=\d+s/1\ds rate=\S+ proxies=\d+ p99=\S+ \((> )?P0 1000ms\) calls ok=\d+ failed=0"
    )
    progress = [x for x in done.stdout.splitlines() if x.startswith("t=")]
    assert len(progress) >= 6, done.stdout  # two runs of about 17 s
    assert all(line.fullmatch(x) for x in progress), progress
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.parent == (tmp_path / "results").resolve()
    assert "mean ± 95% CI" in done.stdout

    group = json.loads((folder / "group.json").read_text())
    assert [
        (r["folder"], r["seed"], r["scenario_seed"], r["status"]) for r in group["repetitions"]
    ] == [
        ("run-1", 0, 7, "completed"),
        ("run-2", 1, 8, "completed"),
    ]
    runs = [folder / "run-1", folder / "run-2"]
    summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
    assert [(s["seed"], s["scenario_seed"], s["repetition"]) for s in summaries] == [
        (0, 7, 1),
        (1, 8, 2),
    ]
    arrivals = [_sent_at(run) for run in runs]
    assert arrivals[0] != arrivals[1]  # other Poisson arrival times
    for run, times in zip(runs, arrivals, strict=True):
        with (run / "run_log.csv").open() as f:
            assert len(list(csv.DictReader(f))) == len(times)  # each replayed its own scenario
    stats = json.loads((folder / "group_summary.json").read_text())
    calls = stats["figures"]["calls_attempted"]
    values = [s["calls_attempted"] for s in summaries]
    assert calls["n"] == 2
    assert calls["mean"] == pytest.approx(sum(values) / 2)
    if values[0] != values[1]:
        assert calls["ci95_low"] < calls["mean"] < calls["ci95_high"]
    assert (folder / "report.html").exists()
    assert (folder / "run-1" / "report.html").exists()

    compared = _cli(["compare", str(folder), str(runs[0]), "--out", str(tmp_path / "cmp")], env)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "(n=2)" in compared.stdout
    assert "Welch" in compared.stdout


def test_benchmark_repeat_2_gives_the_capacity_with_its_spread(tmp_path: Path, env: dict[str, str]):
    spec = tmp_path / "bench.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "bench",
                "cpu": ["100m"],
                "rates": [5],
                "step_s": 12,
                "warmup_s": 2,
                "phones_per_pod": 5,
                "arrivals": "poisson",
            }
        )
    )
    done = _cli(
        ["benchmark", str(spec), "--repeat", "2", "--results", str(tmp_path / "results")], env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert "capacity per proxy over the 2 completed repetitions" in done.stdout
    summary = json.loads((folder / "summary.json").read_text())
    capacity = summary["capacity_calls_per_s"]["100m"]
    assert capacity["values"] == [5.0, 5.0]  # 5 calls/s is far below what 100m serves
    assert (capacity["n"], capacity["mean"], capacity["min"], capacity["max"]) == (2, 5.0, 5.0, 5.0)
    assert (capacity["ci95_low"], capacity["ci95_high"]) == (5.0, 5.0)
    steps = [next((folder / f"run-{i}" / "steps").iterdir()) for i in (1, 2)]
    assert _sent_at(steps[0]) != _sent_at(steps[1])
    assert (folder / "fig_capacity.png").stat().st_size > 1000
    assert "5 ± 0 (n=2)" in (folder / "report.html").read_text()
