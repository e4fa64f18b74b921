"""`testbed simulate` end to end on small experiments: the results folder a real run writes,
the real autoscaler reacting to the model, and clear errors for what it cannot do."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from simulated_experiments import step_experiment
from typer.testing import CliRunner

from testbed import cli
from testbed.experiment.spec import load
from testbed.simulate.calibration import Calibration, default_calibration_path, load_calibration
from testbed.simulate.run import Simulation, simulate

STEP = step_experiment(drain_s=3)
STEP["scenario"]["hold_ms"] = 500
STEP["autoscale"]["max_replicas"] = 4


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_simulated_step_load_scales_out_and_writes_a_results_folder(tmp_path: Path):
    path = write(tmp_path, STEP)
    folder = simulate(load(path), Calibration(), tmp_path / "results", path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["simulated"] is True
    assert summary["not_simulated"] == []
    assert summary["status"] == "completed"
    # 4/s for 60 s, then 12/s for 60 s (deterministic arrivals): every call counted
    assert summary["calls_attempted"] == 4 * 60 + 12 * 60
    assert summary["calls_failed"] == 0
    rows = list(csv.DictReader((folder / "timeseries.csv").open()))
    assert len(rows) == 120 + 3 + 1  # the scenario, the drain and the hold, one row a second
    assert rows[59]["scheduled"] == str(4 * 60)  # invites sent so far, as the controller counts
    assert rows[-1]["scheduled"] == str(4 * 60 + 12 * 60)
    before = [r for r in rows if float(r["t_s"]) <= 60]
    after = [r for r in rows if float(r["t_s"]) > 100]
    assert {r["proxies"] for r in before} == {"1"}
    assert {r["proxies"] for r in after} == {"2"}  # 12/s over 6 per proxy
    assert float(after[-5]["lb_invites_per_s"]) == 12
    events = list(csv.DictReader((folder / "autoscaler.csv").open()))
    assert any(e["target_before"] == "1" and e["target_after"] == "2" for e in events)
    assert (folder / "report.html").exists()
    assert (folder / "calibration.yaml").exists()


def test_an_overloaded_proxy_breaks_p0_and_loses_calls():
    data = {**STEP, "autoscale": None}
    data["scenario"] = {
        "generate": {
            "shape": {"kind": "constant", "rate": 30, "duration_s": 120},
            "pods": 2,
            "phones_per_pod": 50,
        },
    }
    experiment = load_dict(data)
    samples = Simulation(experiment, Calibration()).run()
    p99 = [s.latency_percentile_ms for s in samples if s.latency_percentile_ms is not None]
    assert max(p99) > 1000
    failed = sum((s.clients.calls_failed_per_s or 0) for s in samples if s.clients)
    assert failed > 0


def load_dict(data: dict[str, Any]) -> Any:
    from testbed.experiment.spec import Experiment

    return Experiment.model_validate(data)


def test_the_committed_calibration_loads():
    calibration = load_calibration(default_calibration_path())
    assert calibration.sources


def invoke(*args: str):
    return CliRunner().invoke(cli.app, list(args), catch_exceptions=False)


def test_the_cli_prints_the_folder_last(tmp_path: Path):
    path = write(tmp_path, STEP)
    result = invoke("simulate", str(path), "--results", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    folder = Path(result.output.strip().splitlines()[-1])
    assert folder.parent == (tmp_path / "r").resolve()
    assert "real time" in result.output


def test_a_bad_calibration_names_the_file_and_field(tmp_path: Path):
    path = write(tmp_path, STEP)
    bad = tmp_path / "cal.yaml"
    bad.write_text("period_s: -1\ncpu_ms_per_call: 1\n")
    result = invoke("simulate", str(path), "--calibration", str(bad))
    assert result.exit_code == 2
    assert f"{bad}: period_s" in result.output.replace("\n", "")


def test_a_scenario_csv_is_refused_with_the_reason(tmp_path: Path):
    (tmp_path / "s.csv").write_text(
        "caller;callee;wait_before_next_in_ms;seconds_since_start;"
        "arrival_rate_in_s\n0000;0100;1000;0;1\n"
    )
    data = {**STEP, "scenario": {"csv": "s.csv"}}
    path = write(tmp_path, data)
    result = invoke("simulate", str(path), "--results", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert "needs scenario.generate" in result.output
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot be simulated


def test_windowed_levels_equal_the_sum_of_the_window_as_proxies_come_and_go():
    import numpy as np

    from testbed.simulate.run import WindowedLevels

    rng = np.random.default_rng(5)
    window = WindowedLevels(3)
    kept: list[dict[str, Any]] = []
    for _ in range(200):
        names = [n for n in ("p0", "p1", "p2") if rng.random() < 0.6]
        # levels of any length, all zero sometimes (a proxy with no samples in a sample)
        sample = {n: rng.integers(0, 3, rng.integers(1, 4)) * (rng.random() < 0.7) for n in names}
        window.add(sample)
        kept = [*kept, sample][-3:]
        for name in ("p0", "p1", "p2"):
            arrays = [s[name] for s in kept if name in s]
            expected = np.zeros(max((len(a) for a in arrays), default=0), dtype=np.int64)
            for a in arrays:
                expected[: len(a)] += a
            got = window.of(name)
            assert got[: len(expected)].tolist() == expected.tolist()
            assert not got[len(expected) :].any()


# the experiment files (the benchmark files are a BenchmarkSpec: test_simulate_calibrate)
SHIPPED = sorted(
    p
    for p in (Path(__file__).parents[2] / "experiments").glob("*.yaml")
    if not p.stem.startswith("benchmark")
)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_experiment_simulates(path: Path):
    experiment = load(path)
    simulation = Simulation(experiment, Calibration())
    samples = simulation.run()
    assert samples[-1].t_s >= simulation.offered.duration_s
    assert simulation.succeeded + simulation.failed == int(simulation.offered.per_period.sum())
