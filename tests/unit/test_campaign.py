"""The campaign's logic (testbed.experiment.campaign) with a stand-in for the run itself: the
order, seeds and overrides each run gets, what is written when runs fail, are interrupted or
would start too late. The same campaign on the real local testbed, through the CLI:
tests/integration/test_campaign_e2e.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.cli import next_clock_time
from testbed.experiment.campaign import (
    CampaignError,
    Ended,
    group_folders,
    load_campaign,
    play_campaign,
    play_order,
    resume_campaign,
    run_campaign,
)
from testbed.experiment.compare import compare
from testbed.experiment.group import load_group
from testbed.experiment.spec import Experiment


def _experiment(folder: Path) -> Path:
    path = folder / "exp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "exp",
                "scenario": {
                    "generate": {
                        "shape": {"kind": "constant", "rate": 5, "duration_s": 10},
                        "arrivals": "poisson",
                        "seed": 7,
                    }
                },
                "proxies": {"count": 1},
                "qos": {"p0_ms": 1000, "window_s": 5},
                "metrics": {"scrape_interval_s": 2},
            }
        )
    )
    return path


def _campaign(folder: Path, **fields: Any) -> Path:
    _experiment(folder)
    data = {
        "name": "camp",
        "repeat": 2,
        "set": {"proxies.cpu": "20m"},
        "candidates": [
            {"name": "a", "experiment": "exp.yaml", "set": {"proxies.count": 2}},
            {"name": "b", "experiment": "exp.yaml", "set": {"qos.p0_ms": 500}},
        ],
    } | fields
    path = folder / "camp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Runs:
    """Stands in for run_experiment: records what each run was given and writes the
    summary.json a run writes; `fail` maps (candidate, repetition) to an exception to raise."""

    def __init__(self, fail: dict[tuple[str, int], BaseException] | None = None) -> None:
        self.played: list[tuple[str, int, int, int, int | None, float]] = []
        self.fail = fail or {}

    def __call__(self, run: Experiment, group: Path, folder: str, extra: dict[str, Any]) -> Path:
        generate = run.scenario.generate
        assert generate is not None
        repetition = int(extra["repetition"])
        self.played.append(
            (run.name, repetition, run.seed, generate.seed, run.proxies.count, run.qos.p0_ms)
        )
        out = group / folder
        out.mkdir()
        error = self.fail.get((run.name, repetition))
        if error is not None:
            (out / "partial.csv").write_text("what it measured before it ended\n")
            raise error
        summary = {"status": "completed", "experiment": run.name, "proxy_seconds": 100.0}
        (out / "summary.json").write_text(json.dumps(summary | extra))
        return out


def test_runs_are_interleaved_with_the_same_seeds_per_repetition(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    spec, planned = load_campaign(path, ["seed=10"])
    runs = Runs()
    folder, ended = run_campaign(spec, planned, path, tmp_path / "results", runs, print)
    assert ended is None
    # name, repetition, seed, scenario seed, proxies, P0: the candidate's overrides, the
    # campaign's, then --set; seeds moved on by repetition - 1, alike for both candidates
    assert runs.played == [
        ("a", 1, 10, 7, 2, 1000.0),
        ("b", 1, 10, 7, 1, 500.0),
        ("a", 2, 11, 8, 2, 1000.0),
        ("b", 2, 11, 8, 1, 500.0),
    ]
    assert all(p.experiment.proxies.cpu == "20m" for p in planned)
    for name in ("a", "b"):
        group = load_group(folder / name)
        assert group.name == name
        assert [(r.folder, r.status) for r in group.repetitions] == [
            ("run-1", "completed"),
            ("run-2", "completed"),
        ]
        stats = json.loads((folder / name / "group_summary.json").read_text())
        assert stats["figures"]["proxy_seconds"]["n"] == 2
        assert (folder / name / "experiment.yaml").exists()
    record = json.loads((folder / "campaign.json").read_text())
    assert [(p["candidate"], p["repetition"]) for p in record["played"]] == [
        ("a", 1),
        ("b", 1),
        ("a", 2),
        ("b", 2),
    ]
    assert "seed=10" in record["candidates"][0]["overrides"]
    assert (folder / "campaign.yaml").read_bytes() == path.read_bytes()


def test_a_failed_run_is_recorded_and_the_next_runs(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    spec, planned = load_campaign(path)
    runs = Runs(fail={("a", 1): RuntimeError("kamailio did not start")})
    folder, ended = run_campaign(spec, planned, path, tmp_path / "results", runs, print)
    assert ended is None
    assert len(runs.played) == 4
    first = load_group(folder / "a").repetitions[0]
    assert (first.status, first.end_reason) == ("failed", "RuntimeError: kamailio did not start")
    assert json.loads((folder / "a" / "group_summary.json").read_text())["counted"] == 1


def test_an_interrupted_run_ends_the_campaign_and_the_rest_is_not_run(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    spec, planned = load_campaign(path)
    runs = Runs(fail={("b", 1): KeyboardInterrupt("SIGTERM")})
    folder, ended = run_campaign(spec, planned, path, tmp_path / "results", runs, print)
    assert ended == Ended("b repetition 1: interrupted", interrupted=True)
    assert len(runs.played) == 2
    statuses = {
        name: [r.status for r in load_group(folder / name).repetitions] for name in ("a", "b")
    }
    assert statuses == {"a": ["completed", "not run"], "b": ["interrupted", "not run"]}
    assert json.loads((folder / "campaign.json").read_text())["ended_early"] == ended.reason
    assert (folder / "a" / "group_summary.json").exists()
    # the comparison still reads both groups, b with no completed run
    comparison = compare(group_folders(folder, planned), tmp_path / "cmp")
    assert [len(entry.summaries) for entry in comparison.entries] == [1, 0]


def test_a_resumed_campaign_plays_what_was_left_into_the_same_groups(tmp_path: Path) -> None:
    path = _campaign(tmp_path)
    spec, planned = load_campaign(path, ["seed=10"])
    runs = Runs(fail={("b", 1): KeyboardInterrupt("SIGTERM")})
    folder, ended = run_campaign(spec, planned, path, tmp_path / "results", runs, print)
    assert ended is not None
    spec, planned, played = resume_campaign(folder)
    assert [[r.status for r in p.repetitions] for p in planned] == [
        ["completed", "pending"],
        ["pending", "pending"],
    ]
    # the interrupted run's folder is kept aside, not overwritten
    assert (folder / "b" / "run-1.interrupted-1" / "partial.csv").exists()
    assert not (folder / "b" / "run-1").exists()
    again = Runs()
    assert play_campaign(folder, spec, planned, played, again, print) is None
    # the same overrides (--set seed=10 included) and seeds, in the interleaved order
    assert [(name, rep, seed) for name, rep, seed, *_ in again.played] == [
        ("b", 1, 10),
        ("a", 2, 11),
        ("b", 2, 11),
    ]
    record = json.loads((folder / "campaign.json").read_text())
    assert [(p["candidate"], p["repetition"], p["status"]) for p in record["played"]] == [
        ("a", 1, "completed"),
        ("b", 1, "interrupted"),
        ("b", 1, "completed"),
        ("a", 2, "completed"),
        ("b", 2, "completed"),
    ]
    assert record["ended_early"] is None
    for name in ("a", "b"):
        stats = json.loads((folder / name / "group_summary.json").read_text())
        assert stats["counted"] == 2


def test_resuming_a_folder_that_is_no_campaign_names_it(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match=f"{tmp_path}: not a campaign folder"):
        resume_campaign(tmp_path)


def test_no_run_starts_after_the_latest_start(tmp_path: Path) -> None:
    path = _campaign(tmp_path, repeat=3)
    spec, planned = load_campaign(path)
    runs = Runs()
    now = [1000.0]

    def clock() -> float:
        now[0] += 600  # each look at the clock: 10 minutes later
        return now[0]

    folder, ended = run_campaign(
        spec, planned, path, tmp_path / "results", runs, print, latest_start=2500.0, clock=clock
    )
    assert [(name, rep) for name, rep, *_ in runs.played] == [("a", 1), ("b", 1)]
    assert ended == Ended("--latest-start passed before run 3 of 6", interrupted=False)
    repetitions = load_group(folder / "a").repetitions
    assert [r.status for r in repetitions] == ["completed", "not run", "not run"]
    assert repetitions[1].end_reason == ended.reason


def test_play_order_is_repetition_major() -> None:
    assert play_order(2, 3) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"candidates": []}, "candidates: List should have at least 1 item"),
        ({"repeat": 0}, "repeat: Input should be greater than or equal to 1"),
        ({"rounds": 2}, "rounds: Extra inputs are not permitted"),
        (
            {
                "candidates": [
                    {"name": "a", "experiment": "exp.yaml"},
                    {"name": "a", "experiment": "exp.yaml"},
                ]
            },
            "candidate names must differ: a given twice",
        ),
        (
            {"candidates": [{"name": "../up", "experiment": "exp.yaml"}]},
            "candidates.0.name: String should match pattern",
        ),
        (
            {"candidates": [{"name": "a", "experiment": "missing.yaml"}]},
            "candidate a: ",
        ),
        (
            {"candidates": [{"name": "a", "experiment": "exp.yaml", "set": {"qos.p0_ms": -1}}]},
            "candidate a: ",
        ),
    ],
)
def test_a_bad_campaign_is_refused_naming_the_file_and_field(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    path = _campaign(tmp_path, **change)
    with pytest.raises(CampaignError) as caught:
        load_campaign(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_a_campaign_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "camp.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(CampaignError, match="not valid YAML"):
        load_campaign(path)


def test_the_latest_start_is_the_next_such_clock_time() -> None:
    now = time.mktime((2026, 12, 4, 16, 0, 0, 0, 0, -1))
    assert next_clock_time("17:10", now) - now == 70 * 60
    assert next_clock_time("15:00", now) - now == 23 * 3600  # tomorrow
    with pytest.raises(ValueError, match="expected HH:MM"):
        next_clock_time("25:00", now)
    with pytest.raises(ValueError, match="expected HH:MM"):
        next_clock_time("soon", now)


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parents[2] / "experiments" / "campaigns").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_the_shipped_campaigns_load(path: Path) -> None:
    spec, planned = load_campaign(path)
    assert [p.experiment.name for p in planned] == [c.name for c in spec.candidates]
    assert all(p.experiment.isolation.shield for p in planned)  # measured as docs/results.md
