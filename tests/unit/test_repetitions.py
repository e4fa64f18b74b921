"""Repetitions: the statistics against known values, the group runner's bookkeeping and
`testbed compare` on crafted results folders and groups (compare only reads them)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from scenario_gen.output import write_file
from scenario_gen.scenario import Scenario
from testbed.experiment.benchmark import BenchmarkSpec
from testbed.experiment.benchmark_group import capacity_spread, write_benchmark_group
from testbed.experiment.compare import MARK, compare
from testbed.experiment.group import (
    GroupInterrupted,
    Repetition,
    load_group,
    mean_ci,
    reseed,
    run_group,
)
from testbed.experiment.runner import ExperimentFailed
from testbed.experiment.spec import Experiment
from testbed.experiment.stats import estimate, t_quantile, welch

# -- statistics ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("df", "quantile"),
    # two-sided 95% critical values from a printed t table
    [(1, 12.706), (2, 4.303), (4, 2.776), (7, 2.365), (9, 2.262), (29, 2.045), (120, 1.980)],
)
def test_t_quantiles_are_the_textbook_values(df: int, quantile: float):
    assert t_quantile(df) == pytest.approx(quantile, abs=0.0005)


def test_estimate_gives_mean_sd_and_the_t_interval():
    # mean 5, squared deviations sum to 32: sd = sqrt(32/7); t(7) = 2.365 from the table
    e = estimate([2, 4, 4, 4, 5, 5, 7, 9])
    assert (e.n, e.mean, e.minimum, e.maximum) == (8, 5.0, 2.0, 9.0)
    assert e.sd == pytest.approx(math.sqrt(32 / 7))
    half = 2.365 * math.sqrt(32 / 7) / math.sqrt(8)
    assert e.ci_low == pytest.approx(5 - half, abs=1e-3)
    assert e.ci_high == pytest.approx(5 + half, abs=1e-3)
    assert e.half_width == pytest.approx(half, abs=1e-3)


def test_estimate_of_one_value_has_no_interval_and_says_so():
    e = estimate([3.5, None, float("nan")])  # a figure a run did not have is left out
    assert (e.n, e.mean, e.sd, e.ci_low, e.ci_high) == (1, 3.5, None, None, None)
    assert "n=1" in e.note
    assert mean_ci(e) == "3.5 (n=1)"
    assert estimate([]).mean is None
    assert mean_ci(estimate([])) == "-"


def test_zero_variance_gives_a_zero_width_interval():
    e = estimate([7, 7, 7])
    assert (e.mean, e.sd, e.ci_low, e.ci_high) == (7.0, 0.0, 7.0, 7.0)
    assert "zero variance" in e.note


def _t_sf(t: float, df: float, steps: int = 20000) -> float:
    """P(T > t) by Simpson's rule on Student's density: a second method, no scipy."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def density(x: float) -> float:
        return c * math.pow(1 + x * x / df, -(df + 1) / 2)  # float ** float is Any

    h = t / steps  # P(0 < T < t), then 0.5 minus it
    inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 - h / 3 * (density(0) + inner + density(t))


def test_welch_against_a_hand_computed_example():
    # a: mean 3, variance 2.5, n 5; b: mean 8, variance 4, n 3
    # se^2 = 2.5/5 + 4/3 = 11/6; t = -5 / sqrt(11/6)
    # df = (11/6)^2 / ((1/2)^2/4 + (4/3)^2/2) = (121/36) / (1/16 + 8/9)
    result = welch([1, 2, 3, 4, 5], [6, 8, 10])
    t = -5 / math.sqrt(11 / 6)
    df = (121 / 36) / (1 / 16 + 8 / 9)
    assert result.difference == pytest.approx(-5.0)
    assert result.t == pytest.approx(t)
    assert result.df == pytest.approx(df)
    assert t == pytest.approx(-3.6927, abs=1e-4)
    assert df == pytest.approx(3.5329, abs=1e-4)
    assert result.p == pytest.approx(2 * _t_sf(abs(t), df), abs=1e-6)
    assert result.significant  # p is about 0.026


def test_welch_on_overlapping_groups_is_not_significant():
    result = welch([10, 12, 11, 13], [11, 12, 12, 10])
    assert result.p is not None
    assert result.p == pytest.approx(2 * _t_sf(abs(result.t or 0), result.df or 1), abs=1e-6)
    assert result.p > 0.5
    assert not result.significant


def test_welch_with_too_few_values_or_no_variance():
    lone = welch([1.0], [2.0, 3.0])
    assert lone.p is None
    assert not lone.significant
    assert "n >= 2" in lone.note
    assert welch([4, 4], [4, 4]).p == 1.0
    constant = welch([4, 4], [5, 5])
    assert constant.p == 0.0
    assert constant.significant
    # one side constant: the other's variance alone gives the test
    one_sided = welch([4, 4, 4], [1, 5, 9])
    assert one_sided.df == pytest.approx(2.0)
    assert one_sided.p is not None
    assert not one_sided.significant


# -- seeds ---------------------------------------------------------------------------------

POISSON = {
    "name": "rep",
    "scenario": {
        "generate": {
            "shape": {"kind": "constant", "rate": 5, "duration_s": 20},
            "arrivals": "poisson",
            "seed": 10,
            "pods": 2,
            "phones_per_pod": 10,
        }
    },
    "proxies": {"count": 1},
    "seed": 3,
}


def test_repetitions_move_both_seeds_and_draw_other_arrivals(tmp_path: Path):
    base = Experiment.model_validate(POISSON)
    first, second = reseed(base, 1), reseed(base, 2)
    assert (first.seed, second.seed) == (3, 4)
    assert first.scenario.generate is not None
    assert second.scenario.generate is not None
    assert (first.scenario.generate.seed, second.scenario.generate.seed) == (10, 11)
    assert first.model_dump() == base.model_dump()  # run-1 is the plain run
    times = []
    for n, run in enumerate((first, second)):
        assert run.scenario.generate is not None
        write_file(Scenario(run.scenario.generate), tmp_path / f"{n}.csv")
        with (tmp_path / f"{n}.csv").open() as f:
            times.append([row[0] for row in csv.reader(f, delimiter=";")][1:])
    assert len(times[0]) > 50
    assert times[0] != times[1]


# -- the group runner (a crafted run in place of the testbed) ---------------------------


def _summary(**figures: Any) -> dict[str, Any]:
    base = {
        "experiment": "rep",
        "status": "completed",
        "end_reason": "the scenario finished",
        "p0_ms": 1000,
        "p99_violation_share": 0.0,
        "worst_p99_ms": 100.0,
        "calls_attempted": 100,
        "calls_failed": 0,
        "ser": 1.0,
        "proxy_seconds": 60.0,
        "scaling_actions": 0,
        "max_proxies": 1,
        "reaction_s": [],
    }
    return {**base, **figures}


def _write_run(folder: Path, summary: dict[str, Any], p99: float = 100.0) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "timeseries.csv").write_text(
        "t_s,proxies,p99_ms\n" + "".join(f"{t},1,{p99 + t}\n" for t in range(5))
    )
    return folder


def test_a_group_records_each_repetition_and_its_statistics(tmp_path: Path):
    experiment = Experiment.model_validate(POISSON)
    worst = {1: 100.0, 2: 140.0, 3: 120.0}
    seen: list[tuple[int, int | None, dict[str, Any]]] = []

    def run_one(run: Experiment, group: Path, name: str, extra: dict[str, Any]) -> Path:
        assert run.scenario.generate is not None
        seen.append((run.seed, run.scenario.generate.seed, extra))
        index = extra["repetition"]
        if index == 4:  # writes its summary, then fails
            _write_run(group / name, _summary(status="failed", end_reason="proxy did not start"))
            raise ExperimentFailed("proxy did not start", folder=group / name)
        return _write_run(group / name, _summary(worst_p99_ms=worst[index]))

    folder = run_group(experiment, None, tmp_path, 4, run_one, lambda _m: None)

    assert [s[:2] for s in seen] == [(3, 10), (4, 11), (5, 12), (6, 13)]
    assert seen[0][2] == {"repetition": 1, "repetitions": 4}
    data = json.loads((folder / "group.json").read_text())
    assert [r["status"] for r in data["repetitions"]] == ["completed"] * 3 + ["failed"]
    assert data["repetitions"][3]["end_reason"] == "proxy did not start"
    assert [r["folder"] for r in data["repetitions"]] == ["run-1", "run-2", "run-3", "run-4"]
    stats = json.loads((folder / "group_summary.json").read_text())
    worst_p99 = stats["figures"]["worst_p99_ms"]
    assert worst_p99["n"] == 3  # the failed one is not counted
    assert worst_p99["mean"] == pytest.approx(120.0)
    assert worst_p99["sd"] == pytest.approx(20.0)
    half = 4.303 * 20 / math.sqrt(3)  # t(2) from the table
    assert worst_p99["ci95_low"] == pytest.approx(120 - half, abs=0.01)
    assert stats["figures"]["calls_failed"]["note"].startswith("zero variance")
    rows = list(csv.DictReader((folder / "summary.csv").open()))
    assert [r["row"] for r in rows] == [
        "run-1",
        "run-2",
        "run-3",
        "run-4",
        "mean",
        "sd",
        "ci95_low",
        "ci95_high",
    ]
    assert "run-4" in (folder / "report.html").read_text()


def test_an_interrupted_repetition_ends_the_group_and_the_summary_is_still_written(
    tmp_path: Path,
):
    experiment = Experiment.model_validate(POISSON)

    def run_one(run: Experiment, group: Path, name: str, extra: dict[str, Any]) -> Path:
        if extra["repetition"] == 2:  # the run cleaned up and says it was interrupted
            summary = _summary(status="interrupted", end_reason="interrupted by SIGINT at t=3 s")
            return _write_run(group / name, summary)
        return _write_run(group / name, _summary())

    with pytest.raises(GroupInterrupted) as caught:
        run_group(experiment, None, tmp_path, 4, run_one, lambda _m: None)
    folder = caught.value.folder
    group = load_group(folder)
    assert [r.status for r in group.repetitions] == [
        "completed",
        "interrupted",
        "not run",
        "not run",
    ]
    assert "SIGINT" in str(caught.value)
    stats = json.loads((folder / "group_summary.json").read_text())
    assert stats["counted"] == 1
    assert stats["figures"]["worst_p99_ms"]["note"] == "n=1: no confidence interval"

    def ctrl_c(run: Experiment, group: Path, name: str, extra: dict[str, Any]) -> Path:
        raise KeyboardInterrupt  # before the run had a folder

    with pytest.raises(GroupInterrupted) as caught:
        run_group(experiment, None, tmp_path / "b", 2, ctrl_c, lambda _m: None)
    statuses = [r.status for r in load_group(caught.value.folder).repetitions]
    assert statuses == ["interrupted", "not run"]
    assert (caught.value.folder / "group_summary.json").exists()


# -- compare ---------------------------------------------------------------------------------------


def _group(root: Path, name: str, worst: list[float], share: list[float]) -> Path:
    folder = root / name
    repetitions = []
    for i, (w, s) in enumerate(zip(worst, share, strict=True), start=1):
        _write_run(folder / f"run-{i}", _summary(worst_p99_ms=w, p99_violation_share=s), w)
        repetitions.append(Repetition(i, f"run-{i}", i - 1, None, "completed").__dict__)
    # a failed repetition is listed but does not count
    _write_run(folder / "run-9", _summary(status="failed", worst_p99_ms=1e6))
    repetitions.append(Repetition(9, "run-9", 8, None, "failed").__dict__)
    (folder / "group.json").write_text(json.dumps({"experiment": name, "repetitions": repetitions}))
    return folder


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def test_compare_shows_groups_as_mean_and_ci_and_marks_significant_differences(tmp_path: Path):
    a = _group(tmp_path, "fixed", [100, 110, 105], [0.10, 0.30, 0.20])
    b = _group(tmp_path, "autoscaled", [300, 320, 310], [0.15, 0.35, 0.25])
    plain = _write_run(tmp_path / "single", _summary(worst_p99_ms=200.0))
    before = [_digest(f) for f in (a, b, plain)]

    result = compare([a, b, plain], tmp_path / "out")

    first, second, third = result.rows
    assert first["worst_p99_ms"].startswith("105 ± ")
    assert first["worst_p99_ms"].endswith("(n=3)")
    assert MARK not in first["worst_p99_ms"]  # the reference
    # 300-320 against 100-110: Welch p well under 0.05
    assert second["worst_p99_ms"].startswith("310 ± ")
    assert second["worst_p99_ms"].endswith(f"(n=3) {MARK}")
    # shares 0.1-0.3 against 0.15-0.35: not significant
    assert MARK not in second["p99_violation_share"]
    assert "0.25 ± " in second["p99_violation_share"]
    assert third["worst_p99_ms"] == "200"  # a plain run: its value, not tested
    assert "3 runs" in first["experiment"]

    tests = {(t.figure, t.a, t.b): t.result for t in result.tests}
    worst = tests[("worst_p99_ms", "fixed", "autoscaled")]
    assert worst.p == pytest.approx(welch([100, 110, 105], [300, 320, 310]).p)
    assert worst.significant
    assert tests[("worst_p99_ms", "fixed", "single")].p is None
    assert [(t.figure, t.a, t.b) for t in result.significant] == [
        ("worst_p99_ms", "fixed", "autoscaled")
    ]
    page = result.page.read_text()
    assert "Welch" in page
    assert f"{MARK}: differs from the first entry" in page
    table = list(csv.DictReader(result.table_csv.open()))
    row = next(r for r in table if r["entry"] == "autoscaled" and r["figure"] == "worst_p99_ms")
    assert (row["kind"], row["n"], float(row["mean"])) == ("group", "3", 310.0)
    assert row["significant_vs_first"] == "True"
    pairs = list(csv.DictReader(result.tests_csv.open()))
    assert len(pairs) == 3 * 9  # 3 pairs, 9 numeric figures
    assert (tmp_path / "out" / "compare_p99_ms.png").stat().st_size > 1000
    assert [_digest(f) for f in (a, b, plain)] == before  # compare only reads its inputs


def test_compare_of_plain_runs_is_as_before(tmp_path: Path):
    one = _write_run(tmp_path / "one", _summary(worst_p99_ms=150.0, reaction_s=[12.0, None]))
    two = _write_run(tmp_path / "two", _summary(worst_p99_ms=900.0))
    result = compare([one, two], tmp_path / "out")
    assert result.rows[0]["worst_p99_ms"] == "150"
    assert result.rows[1]["worst_p99_ms"] == "900"  # no mark: n=1 is not tested
    assert result.rows[0]["reaction"] == "12 -"
    assert result.significant == []
    with pytest.raises(FileNotFoundError, match="not a results folder"):
        compare([tmp_path / "out"], tmp_path / "out2")


# -- benchmark groups ------------------------------------------------------------------------------


def test_a_benchmark_group_gives_the_capacity_with_its_spread(tmp_path: Path):
    spec = BenchmarkSpec(cpu=["10m", "20m"], rates=[4, 8, 12])
    capacities = [{"10m": 8.0, "20m": 12.0}, {"10m": 4.0, "20m": 12.0}, {"10m": 8.0, "20m": 8.0}]
    repetitions = []
    for i, capacity in enumerate(capacities, start=1):
        folder = tmp_path / f"run-{i}"
        folder.mkdir()
        summary = {"status": "completed", "capacity_calls_per_s": capacity}
        (folder / "summary.json").write_text(json.dumps(summary))
        with (folder / "benchmark.csv").open("w") as f:
            f.write("cpu,rate,p50_ms,p99_ms,max_ms\n")
            for cpu in spec.cpu:
                for rate in spec.rates:
                    f.write(f"{cpu},{rate},1,{rate * i},{rate * 2}\n")
        repetitions.append(Repetition(i, f"run-{i}", i - 1, None, "completed"))
    write_benchmark_group(tmp_path, spec, repetitions)

    summary = json.loads((tmp_path / "summary.json").read_text())
    ten = summary["capacity_calls_per_s"]["10m"]
    assert ten["values"] == [8.0, 4.0, 8.0]
    assert (ten["n"], ten["min"], ten["max"]) == (3, 4.0, 8.0)
    assert ten["mean"] == pytest.approx(20 / 3)
    # sd = sqrt(((4/3)^2 * 2 + (8/3)^2) / 2) = sqrt(16/3); half = t(2) * sd / sqrt(3)
    assert ten["sd"] == pytest.approx(math.sqrt(16 / 3))
    assert ten["ci95_high"] == pytest.approx(
        20 / 3 + 4.303 * math.sqrt(16 / 3) / math.sqrt(3), abs=0.01
    )
    assert (tmp_path / "fig_capacity.png").stat().st_size > 1000
    assert "each repetition" in (tmp_path / "report.html").read_text()
    rows = list(csv.reader((tmp_path / "capacity.csv").open()))
    assert ["20m", "mean", str(32 / 3)] in rows
    spread = capacity_spread(spec, [{"status": "interrupted", "capacity_calls_per_s": {}}])
    assert spread["10m"][1].n == 0  # an interrupted repetition does not count
