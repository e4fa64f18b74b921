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


def make_benchmark(root: Path, calibration: Calibration = TRUE, spec: BenchmarkSpec = SPEC) -> Path:
    """A benchmark folder whose steps ran in the simulator."""
    folder = root / "bench-sim"
    (folder / "steps").mkdir(parents=True)
    (folder / "benchmark.json").write_text(spec.model_dump_json())
    table = []
    for cpu in spec.cpu:
        for rate in spec.rates_for(cpu):
            step = simulate(step_experiment(spec, cpu, rate), calibration, folder / "steps")
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


def test_the_costs_by_message_type_are_the_measured_shares_of_the_fitted_call(benchmark: Path):
    _spec, readings = cal.read_benchmark(benchmark)
    fitted = cal.fit(readings, Calibration(), [str(benchmark)]).calibration
    shares = cal.MESSAGE_SHARES
    assert 0 < shares.challenge < 1 - shares.bye  # the challenge is part of the set-up
    assert 0 < shares.dmq_replica < shares.register
    assert fitted.bye_share == shares.bye
    per_call = fitted.cpu_ms_per_call
    assert fitted.challenge_cpu_ms == pytest.approx(shares.challenge * per_call, abs=1e-4)
    assert fitted.register_cpu_ms == pytest.approx(shares.register * per_call, abs=1e-4)
    assert fitted.retransmission_cpu_ms == pytest.approx(shares.absorbed * per_call, abs=1e-4)
    assert 0 < shares.absorbed < shares.challenge  # absorbing is cheaper than challenging
    assert fitted.dmq_replica_cpu_ms == pytest.approx(shares.dmq_replica * per_call, abs=1e-4)


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


def reading(cpu: str, rate: float, mcpu: float, ok: bool, source: str = "b") -> cal.StepReading:
    millicores = int(cpu.removesuffix("m"))
    return cal.StepReading(source, cpu, millicores, rate, mcpu, None, None, 0, ok)


def test_a_knee_lies_halfway_to_the_first_step_out_of_qos_with_the_proxy_at_its_limit():
    readings = [
        reading("10m", 2, 6.0, True),
        reading("10m", 4, 9.0, True),
        reading("10m", 6, 10.0, False),
        reading("10m", 8, 10.0, True),  # after the run broke: not counted
        reading("20m", 10, 14.0, True),
        reading("20m", 30, 20.0, True),  # the top, within QoS and at the limit: a lower bound
        reading("30m", 10, 14.0, True),
        reading("30m", 20, 21.0, False),  # broke at 70% of its limit: not a CPU knee
    ]
    knees = cal.throttled_knees(readings)
    assert [(k.cpu, k.rate, k.lower_bound) for k in knees] == [
        ("10m", 5.0, False),
        ("20m", 30.0, True),
    ]


def test_the_batched_cost_and_overhead_put_the_knees_where_they_were_measured():
    # knees made with 0.4 ms per batched call and 0.3 ms per period behind, 4 mCPU background:
    # limit - 4 = 3 + 0.4 x rate
    knees = [
        cal.Knee("b", f"{m}m", m, (m - 4 - 3) / 0.4) for m in (10, 20, 30)
    ]  # 7.5, 32.5, 57.5 calls/s
    batched, overhead = cal.fit_throttled(knees, 4.0, 0.9, 0.1)
    assert batched == pytest.approx(0.4)
    assert overhead == pytest.approx(0.3)
    # knees the line already explains, or none: no batching
    assert cal.fit_throttled(knees, 4.0, 0.3, 0.1) == (None, 0.0)
    assert cal.fit_throttled([], 4.0, 0.9, 0.1) == (None, 0.0)


def test_one_limit_gives_the_batched_cost_through_its_knee():
    # 10m, knee at 8 calls/s, 2 mCPU background: 8 mCPU of calls, 1 ms each, no overhead
    knee = cal.Knee("b", "10m", 10, 8.0)
    batched, overhead = cal.fit_throttled([knee], 2.0, 1.2, 0.1)
    assert batched == pytest.approx(1.0)
    assert overhead == 0.0
    # the line already puts the knee there (or beyond): no batching
    assert cal.fit_throttled([knee], 2.0, 0.9, 0.1) == (None, 0.0)


THROTTLED = Calibration(
    background_mcpu=3.0,
    cpu_ms_per_call=1.0,
    batched_cpu_ms_per_call=0.5,
    throttled_overhead_ms=0.2,
    bye_share=0.2,
)
LADDER = BenchmarkSpec(
    name="bench",
    cpu=["10m", "20m", "30m"],
    rates={
        "10m": [1, 2, 3, 4, 6, 8, 10, 12],
        "20m": [3, 6, 9, 20, 25, 30, 35, 40],
        "30m": [3, 6, 9, 30, 40, 45, 50, 55, 60],
    },
    step_s=20,
    warmup_s=3,
    phones_per_pod=20,
)


def test_a_throttled_benchmark_is_fitted_back_to_capacities_within_a_step(tmp_path: Path):
    folder = make_benchmark(tmp_path, THROTTLED, LADDER)
    spec, readings = cal.read_benchmark(folder)
    fitted = cal.fit(readings, Calibration(), [str(folder)])
    c = fitted.calibration
    assert c.cpu_ms_per_call == pytest.approx(1.0, rel=0.05)
    assert c.batched_cpu_ms_per_call is not None
    assert c.batched_cpu_ms_per_call == pytest.approx(0.5, rel=0.25)
    measured = cal.capacities(spec, [(r.cpu, r.rate, r.within_qos) for r in readings])
    checks = cal.simulate_benchmark(spec, c)
    simulated = cal.capacities(spec, [(k.cpu, k.rate, k.simulated_within_qos) for k in checks])
    for cpu, rate in measured.items():
        ladder = spec.rates_for(cpu)
        assert abs(ladder.index(simulated[cpu]) - ladder.index(rate)) <= 1, (
            cpu,
            measured,
            simulated,
        )
    # the line alone puts the 20m and 30m knees far too low
    line = c.model_copy(update={"batched_cpu_ms_per_call": None, "throttled_overhead_ms": 0})
    alone = cal.simulate_benchmark(spec, line)
    alone_capacity = cal.capacities(spec, [(k.cpu, k.rate, k.simulated_within_qos) for k in alone])
    assert alone_capacity["30m"] < measured["30m"]


def test_the_base_latency_comes_from_unthrottled_steps_only():
    # steps at the limit keep QoS with a median of one period: not the proxy's latency
    readings = [
        cal.StepReading("b", "10m", 10, rate, mcpu, p50, None, 0, True)
        for rate, mcpu, p50 in ((2, 4.0, 0.2), (4, 6.0, 0.3), (8, 10.0, 97.0), (10, 10.0, 98.0))
    ]
    fitted = cal.fit(readings, Calibration(), [])
    assert fitted.calibration.base_latency_ms == pytest.approx(0.25)
