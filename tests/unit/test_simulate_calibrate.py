"""`testbed calibrate`: a benchmark folder made by the simulator with known parameters (its
steps through `testbed simulate`, its table as `testbed benchmark` writes it) is fitted back to
those parameters; throttled steps stay out of the fit; broken folders are named."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testbed import cli
from testbed.experiment.benchmark import BenchmarkSpec, step_experiment
from testbed.simulate import calibrate as cal
from testbed.simulate.calibration import Calibration, CalibrationError, load_calibration
from testbed.simulate.run import simulate

TRUE = Calibration(background_mcpu=3.0, cpu_ms_per_call=1.4, bye_share=0.2)
SPEC = BenchmarkSpec(
    name="bench",
    cpu=["10m", "20m"],
    rates={"10m": [1, 2, 3, 8], "20m": [2, 5, 8, 20]},
    step_s=20,
    warmup_s=3,
    phones_per_pod=20,
)


def make_benchmark(root: Path, calibration: Calibration = TRUE) -> Path:
    """A benchmark folder whose steps ran in the simulator."""
    folder = root / "bench-sim"
    (folder / "steps").mkdir(parents=True)
    (folder / "benchmark.json").write_text(SPEC.model_dump_json())
    table = []
    for cpu in SPEC.cpu:
        for rate in SPEC.rates_for(cpu):
            step = simulate(step_experiment(SPEC, cpu, rate), calibration, folder / "steps")
            summary = json.loads((step / "summary.json").read_text())
            table.append(
                {
                    "cpu": cpu,
                    "rate": rate,
                    "p50_ms": "",
                    "p99_ms": summary["worst_p99_ms"],
                    "failed": summary["calls_failed"],
                    "within_qos": summary["p99_violation_share"] == 0,
                    "folder": step.name,
                }
            )
    with (folder / "benchmark.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return folder


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("calibrate"))


def test_the_fit_recovers_the_parameters_the_steps_ran_with(benchmark: Path):
    spec, readings = cal.read_benchmark(benchmark)
    assert spec.step_s == 20
    assert len(readings) == 8
    fitted = cal.fit(readings, Calibration(), [str(benchmark)])
    assert fitted.calibration.cpu_ms_per_call == pytest.approx(1.4, rel=0.05)
    assert fitted.calibration.background_mcpu == pytest.approx(3.0, abs=0.5)
    # 8/s at 10m (3 + 11.2 mCPU) and 20/s at 20m are throttled: not in the fit
    assert {(r.cpu, r.rate) for r in fitted.readings} - {(r.cpu, r.rate) for r in fitted.used} == {
        ("10m", 8),
        ("20m", 20),
    }


def test_the_simulated_capacity_follows_the_calibration():
    checks = cal.simulate_benchmark(SPEC, TRUE)
    capacity = cal.capacities(SPEC, [(k.cpu, k.rate, k.simulated_within_qos) for k in checks])
    # 10m: (10 - 3) / 1.4 = 5 calls/s of CPU: 3 is kept, 8 is not; 20m: 12 calls/s
    assert capacity == {"10m": 3, "20m": 8}
    steps = [("10m", 1.0, True), ("10m", 2.0, False), ("10m", 3.0, True)]
    assert cal.capacities(SPEC, steps) == {"10m": 1}


def test_too_few_unthrottled_steps_are_refused(benchmark: Path):
    _spec, readings = cal.read_benchmark(benchmark)
    with pytest.raises(CalibrationError, match="two rates or more"):
        cal.fit([r for r in readings if r.rate in (8, 20)], Calibration(), [])


def test_a_folder_without_a_benchmark_is_named(tmp_path: Path):
    with pytest.raises(CalibrationError, match=f"{tmp_path}: not a benchmark folder"):
        cal.benchmark_folders([tmp_path])


def test_a_bad_row_is_named_with_its_line(benchmark: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    shutil.copytree(benchmark, broken)
    with (benchmark / "benchmark.csv").open() as f:
        rows = list(csv.DictReader(f))
    rows[1]["rate"] = "fast"  # the second step: line 3 of the file
    with (broken / "benchmark.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(CalibrationError, match=re.escape("benchmark.csv, line 3: could not")):
        cal.read_benchmark(broken)


def test_the_cli_writes_a_calibration_naming_its_sources(benchmark: Path, tmp_path: Path):
    out = tmp_path / "fitted.yaml"
    result = CliRunner().invoke(
        cli.app, ["calibrate", str(benchmark), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "capacity simulated: 10m 3/s, 20m 8/s" in result.output
    fitted = load_calibration(out)
    assert fitted.sources == [str(benchmark)]
    assert fitted.machine.startswith("fitted ")
    assert fitted.cpu_ms_per_call == pytest.approx(1.4, rel=0.05)
