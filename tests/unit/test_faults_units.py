"""The `faults:` spec, its schedule and the per-fault analysis (no testbed, no sleeps)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from testbed.experiment import report
from testbed.experiment.faults.analysis import analyze, fault_windows
from testbed.experiment.faults.report import mark_faults
from testbed.experiment.faults.schedule import FaultSchedule
from testbed.experiment.faults.spec import FaultSpec
from testbed.experiment.report import write_report
from testbed.experiment.spec import Experiment, ExperimentError, load
from testbed.experiment.summary import summarize
from testbed.sample import Sample, Serving

BASE = {
    "name": "f",
    "scenario": {
        "generate": {"shape": {"kind": "constant", "rate": 5, "duration_s": 60}, "pods": 2}
    },
    "proxies": {"count": 2},
}


def _load(tmp_path: Path, faults: list[dict[str, object]], **extra: object):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({**BASE, **extra, "faults": faults}))
    return load(path)


# -- spec ------------------------------------------------------------------------------------


def test_a_valid_fault_list_is_understood(tmp_path: Path):
    experiment = _load(
        tmp_path,
        [
            {"action": "kill", "target": "sip-proxy-1", "at_s": 10},
            {"action": "restart", "target": "database", "at_s": 30, "duration_s": 2},
            {"action": "drop_websocket", "target": "sip-client-01", "at_s": 50},
            {"action": "netem", "target": "sip-proxy-0", "at_s": 5, "duration_s": 3,
             "loss_percent": 10, "delay_ms": 50, "jitter_ms": 10},
            {"action": "stop", "target": "sip-loadb", "at_s": 20, "duration_s": 1, "name": "lb"},
        ],
        db="mariadb",
    )  # fmt: skip
    labels = [f.label for f in experiment.faults]
    assert labels == ["kill sip-proxy-1", "restart database", "drop_websocket sip-client-01",
                      "netem sip-proxy-0", "lb"]  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "extra", "expected"),
    [
        ({"action": "stop", "target": "sip-proxy-0", "at_s": 1}, {},
         "faults.0: Value error, stop sip-proxy-0: duration_s is required"),
        ({"action": "netem", "target": "database", "at_s": 1, "duration_s": 2, "delay_ms": 5}, {},
         "netem applies to a proxy"),
        ({"action": "netem", "target": "sip-proxy-0", "at_s": 1, "duration_s": 2}, {},
         "give loss_percent or delay_ms"),
        ({"action": "kill", "target": "sip-proxy-9", "at_s": 1}, {},
         "faults.0.target: sip-proxy-9 does not exist (the pool starts with 2 proxies: 0..1)"),
        ({"action": "kill", "target": "pcscf", "at_s": 1}, {}, "target 'pcscf' is not a component"),
        ({"action": "kill", "target": "sip-proxy-0", "at_s": 1, "when": 3}, {},
         "faults.0.when: Extra inputs are not permitted"),
        ({"action": "kill", "target": "sip-proxy-0", "at_s": -1}, {},
         "faults.0.at_s: Input should be greater than or equal to 0"),
        ({"action": "restart", "target": "database", "at_s": 1}, {},
         "faults.0.action: restart database needs db: mariadb"),
        ({"action": "kill", "target": "sip-proxy-0", "at_s": 1, "restart_after_s": 3}, {},
         "the testbed restarts a killed proxy itself"),
        ({"action": "drop_websocket", "target": "sip-client-07", "at_s": 1}, {},
         "faults.0.target: sip-client-07 is not a client pod of this scenario (pods 00, 01)"),
        ({"action": "kill", "target": "sip-proxy-0", "at_s": 1, "loss_percent": 5}, {},
         "for netem only"),
    ],
)  # fmt: skip
def test_bad_faults_are_refused_naming_the_entry_and_field(tmp_path, fault, extra, expected):
    with pytest.raises(ExperimentError) as failure:
        _load(tmp_path, [fault], **extra)
    assert expected in str(failure.value)
    assert str(tmp_path / "e.yaml") in str(failure.value)


def test_two_faults_on_one_target_at_once_are_refused(tmp_path: Path):
    with pytest.raises(ExperimentError, match=r"faults\.1\.at_s: netem sip-proxy-0 starts while "
                       r"faults\.0 \(stop sip-proxy-0\) is still on the same target"):  # fmt: skip
        _load(
            tmp_path,
            [
                {"action": "stop", "target": "sip-proxy-0", "at_s": 10, "duration_s": 5},
                {"action": "netem", "target": "sip-proxy-0", "at_s": 12, "duration_s": 5,
                 "loss_percent": 1},
            ],
        )  # fmt: skip


# -- schedule ----------------------------------------------------------------------------------


def _steps(schedule: FaultSchedule, now: float) -> list[tuple[int, str, float, float | None]]:
    return [(s.index, s.phase, s.due_s, s.lift_s) for s in schedule.due(now)]


def test_the_schedule_hands_out_each_step_once_in_order():
    faults = [
        FaultSpec(action="stop", target="sip-proxy-0", at_s=10, duration_s=5),
        FaultSpec(action="kill", target="sip-proxy-1", at_s=15),
        FaultSpec(action="restart", target="database", at_s=20),
    ]
    schedule = FaultSchedule(faults)
    assert _steps(schedule, 9.99) == []
    assert schedule.next_due_s() == 10
    assert _steps(schedule, 10) == [(0, "apply", 10, 15)]
    assert _steps(schedule, 10.5) == []
    # the stop is lifted before the kill at the same moment; a kill has no lift
    assert _steps(schedule, 15) == [(0, "lift", 15, None), (1, "apply", 15, None)]
    # a restart without downtime: stopped, then started again, in that order
    assert _steps(schedule, 100) == [(2, "apply", 20, 20), (2, "lift", 20, None)]
    assert schedule.finished
    assert schedule.unlifted() == []


def test_a_late_tick_still_applies_before_it_lifts():
    schedule = FaultSchedule([FaultSpec(action="stop", target="sip-loadb", at_s=1, duration_s=1)])
    assert _steps(schedule, 30) == [(0, "apply", 1, 2), (0, "lift", 2, None)]


def test_teardown_lifts_what_is_in_force_and_nothing_else():
    faults = [
        FaultSpec(action="stop", target="sip-proxy-0", at_s=1, duration_s=100),
        FaultSpec(action="netem", target="sip-proxy-1", at_s=1, duration_s=100, delay_ms=5),
        FaultSpec(action="kill", target="sip-loadb", at_s=1),
        FaultSpec(action="stop", target="sip-controller", at_s=50, duration_s=1),
    ]
    schedule = FaultSchedule(faults)
    assert [s.index for s in schedule.due(2)] == [0, 1, 2]
    assert [(s.index, s.phase) for s in schedule.unlifted()] == [(0, "lift"), (1, "lift")]
    assert schedule.unlifted() == []
    assert schedule.due(200) == []  # the run is over: nothing more is applied


# -- analysis ----------------------------------------------------------------------------------

T0 = 1000.0  # Unix time of run second 0


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# a hand-built call: id, caller, proxy (None: never reached one), start, end (None: active),
# outcome and, per fault, (failed in the window, in flight on the target, failed in flight)
HandBuiltCall = tuple[str, str, str | None, float, float | None, str, list[tuple[int, int, int]]]


def _hand_built(tmp_path: Path) -> list[HandBuiltCall]:
    """A small results folder; returns its calls with the expected counts per fault."""
    # one row a second; proxy 1 killed at 5 s and running again at 8 s, serving again from 9 s,
    # p99 over P0 from 5 s to 11 s; proxy 0 impaired from 14 s to 16 s without harm
    rows: list[dict[str, object]] = []
    for t in range(21):
        serving = 1 if 5 <= t < 9 else 2
        p99 = 1500.0 if 5 <= t <= 11 else 100.0
        rows.append({"t_s": t, "time": T0 + t, "proxies": 2, "p99_ms": p99,
                     "proxies_serving": serving})  # fmt: skip
    _write(tmp_path / "timeseries.csv", rows)
    events = [
        (0, "kill sip-proxy-1", "kill", "sip-proxy-1", "apply", 5.0),
        (0, "kill sip-proxy-1", "kill", "sip-proxy-1", "back", 8.0),
        (1, "loss", "netem", "sip-proxy-0", "apply", 14.0),
        (1, "loss", "netem", "sip-proxy-0", "lift", 16.0),
        (2, "kill sip-client-01", "kill", "sip-client-01", "apply", 18.0),
    ]
    _write(tmp_path / "faults.csv", [
        {"index": i, "fault": f, "action": a, "target": g, "phase": p, "t_s": t,
         "time": T0 + t, "detail": ""} for i, f, a, g, p, t in events
    ])  # fmt: skip
    # each call: (proxy it went through or None, start, end or None, outcome) and, for faults
    # 0, 1, 2, whether it failed in the window / was in flight on the target / failed so
    calls: list[HandBuiltCall] = [
        ("c1", "0001", "sip-proxy-1", 4.0, 6.0, "failed", [(1, 1, 1), (0, 0, 0), (0, 0, 0)]),
        ("c2", "0003", "sip-proxy-0", 4.5, 5.5, "failed", [(1, 0, 0), (0, 0, 0), (0, 0, 0)]),
        ("c3", "0005", "sip-proxy-1", 4.0, 5.5, "succeeded", [(0, 1, 0), (0, 0, 0), (0, 0, 0)]),
        ("c4", "0007", "sip-proxy-1", 6.0, 7.0, "failed", [(1, 0, 0), (0, 0, 0), (0, 0, 0)]),
        ("c5", "0009", "sip-proxy-1", 1.0, 2.0, "failed", [(0, 0, 0), (0, 0, 0), (0, 0, 0)]),
        ("c6", "0011", "sip-proxy-0", 13.5, 15.0, "failed", [(0, 0, 0), (1, 1, 1), (0, 0, 0)]),
        ("c7", "0013", "sip-proxy-0", 9.0, 9.1, "succeeded", [(0, 0, 0), (0, 0, 0), (0, 0, 0)]),
        # never reached a proxy; still active when the pods were read; its callee is on pod 01
        ("c8", "0015", None, 7.0, None, "active", [(0, 0, 0), (0, 0, 0), (0, 1, 0)]),
        ("c9", "0017", "sip-proxy-0", 17.5, 19.0, "failed", [(0, 0, 0), (0, 0, 0), (1, 1, 1)]),
    ]
    _write(tmp_path / "calls.csv", [
        {"call_id": c, "caller": caller, "callee": f"01{caller[2:]}", "invite_at": T0 + start,
         "ended_at": "" if end is None else T0 + end, "outcome": outcome}
        for c, caller, _p, start, end, outcome, _e in calls
    ])  # fmt: skip
    _write(tmp_path / "response_times.csv", [
        {"timestamp": T0 + start, "proxy": proxy, "pair": "challenge", "call_id": c, "cseq": 1,
         "response_time_ms": 1.0}
        for c, _caller, proxy, start, _end, _o, _e in calls if proxy
    ])  # fmt: skip
    return calls


def test_per_fault_impact_from_a_hand_built_results_folder(tmp_path: Path):
    calls = _hand_built(tmp_path)

    impacts = analyze(tmp_path, p0_ms=1000)

    assert [i.fault for i in impacts] == ["kill sip-proxy-1", "loss", "kill sip-client-01"]
    for n, impact in enumerate(impacts):
        expected = [sum(c[6][n][k] for c in calls) for k in range(3)]
        assert [impact.calls_failed_in_window, impact.calls_in_flight,
                impact.calls_failed_in_flight] == expected, impact.fault  # fmt: skip
    # first second at or after 8 s with 2 serving and p99 <= P0 is 12 s: 12 - 5
    assert (impacts[0].end_s, impacts[0].recovered_at_s, impacts[0].recovery_s) == (8, 12, 7)
    # calm all along, so recovered when lifted
    assert (impacts[1].end_s, impacts[1].recovered_at_s, impacts[1].recovery_s) == (16, 16, 2)
    # never back: its window runs to the end and it did not recover
    assert (impacts[2].end_s, impacts[2].recovery_s) == (20, None)
    assert [w.end_s for w in fault_windows(tmp_path)] == [8.0, 16.0, None]


def test_no_faults_file_means_no_faults(tmp_path: Path):
    assert analyze(tmp_path, 1000) == []


def test_the_report_marks_every_fault_on_every_figure_and_tabulates_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    _hand_built(tmp_path)
    experiment = Experiment.model_validate(BASE)
    rows = list(csv.DictReader((tmp_path / "timeseries.csv").open()))
    typed = [
        Sample(
            t_s=float(r["t_s"]),
            proxies=int(r["proxies"]),
            time=float(r["time"]),
            latency_percentile_ms=float(r["p99_ms"]),
            serving=Serving(int(r["proxies_serving"])),
        )
        for r in rows
    ]
    marked: list[int] = []
    real_mark = mark_faults

    def spy(ax, windows, run_end_s):
        real_mark(ax, windows, run_end_s)
        # one dotted line per fault start, one shaded span per fault that lasted
        marked.append(sum(1 for line in ax.get_lines() if line.get_linestyle() == ":"))
        marked.append(len(ax.patches))

    monkeypatch.setattr(report, "mark_faults", spy)
    page = write_report(tmp_path, experiment, summarize(typed, [], 0, 1000, 99)).read_text()
    assert marked == [3, 3] * len(report.FIGURES)
    assert "<h2>Faults</h2>" in page
    assert "<td>kill sip-proxy-1</td><td>5.0 s</td><td>8.0 s</td><td>3</td><td>2 (1)</td>" in page
    assert "<td>not within the run</td>" in page


def test_a_cluster_run_refuses_faults_instead_of_ignoring_them(tmp_path: Path):
    from testbed.experiment.cluster_runner import run_on_cluster
    from testbed.experiment.runner import ExperimentFailed

    experiment = Experiment.model_validate(
        {**BASE, "faults": [{"action": "kill", "target": "sip-proxy-0", "at_s": 1}]}
    )
    with pytest.raises(ExperimentFailed, match="faults run on the local testbed only"):
        run_on_cluster(experiment, None, tmp_path, lambda *_: None, None, False)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
